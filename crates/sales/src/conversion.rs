//! Converting a lead: in one transaction, link or create its account and contact, open an
//! opportunity if asked, and record on the lead what it became. A converted lead is never
//! converted again (409), also when two conversions race: both take the lead's row lock,
//! and the second then finds it converted.

use crate::common::record_change;
use crate::leads::{self, Lead, LeadStatus, Leads};
use crate::opportunities::{self, NewOpportunity, Opportunity, OpportunityInput};
use actix_web::{post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::{role_may, Principal};
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::resource;
use crm_core::respond::WriteProblems;
use crm_core::schema::leads as lead_rows;
use crm_core::state::AppState;
use crm_core::{audit, ids};
use crm_customers::accounts::{self, Account, AccountInput};
use crm_customers::common;
use crm_customers::contacts::{
    self, AccountLinkInput, AccountRole, Contact, ContactInput, EmailInput, PhoneInput,
};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// The deal to open at conversion.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertOpportunity {
    /// `<company> deal` when not given.
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub name: Option<String>,
    #[schema(format = "uuid")]
    pub pipeline_id: String,
    #[validate(range(min = 0, max = 1_000_000_000_000_000_i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub amount: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    #[schema(format = Date)]
    pub close_date: Option<String>,
}

/// What to convert the lead into. Without `account_id` an account is created from the
/// lead's company (or name); without `contact_id` a contact is created from the lead and
/// linked to the account.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    /// An existing account to attach the lead to.
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    /// An existing contact who is this lead.
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    /// The new contact's role at the account (`user` by default).
    pub contact_role: Option<AccountRole>,
    #[validate(nested)]
    pub opportunity: Option<ConvertOpportunity>,
}

/// The converted lead and what it became.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConvertResult {
    pub lead: Lead,
    pub account: Account,
    pub contact: Contact,
    pub opportunity: Option<Opportunity>,
}

fn full_name(lead: &Lead) -> String {
    [lead.first_name.as_deref(), lead.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn convert(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    req: &ConvertRequest,
) -> ApiResult<ConvertResult> {
    req.validate()?;
    db::write_tx(conn, |c| {
        let lead = resource::find_for_write::<Leads>(c, me, id)?;
        match lead.status {
            LeadStatus::Converted => {
                return Err(ApiError::Conflict("the lead is already converted".into()))
            }
            LeadStatus::Disqualified => {
                return Err(ApiError::Conflict(
                    "the lead is disqualified; set another status before converting it".into(),
                ))
            }
            _ => {}
        }
        // The new records keep the lead's owner when the caller may give them to them.
        let owner = lead
            .owner_id
            .clone()
            .filter(|o| *o == me.user_id || role_may(me, Permission::SalesManage));
        let account = account_for(c, me, &lead, req, owner.clone())?;
        let contact = contact_for(c, me, &lead, req, &account.id, owner.clone())?;
        let opportunity = match &req.opportunity {
            Some(o) => Some(opportunity_for(
                c,
                me,
                &lead,
                o,
                &account,
                &contact.id,
                owner,
            )?),
            None => None,
        };
        let now = ids::now();
        let changed = diesel::update(lead_rows::table.find(id))
            .filter(lead_rows::version.eq(lead.version))
            .filter(lead_rows::status.ne("converted"))
            .set((
                lead_rows::status.eq(LeadStatus::Converted.as_str()),
                lead_rows::converted_at.eq(&now),
                lead_rows::converted_account_id.eq(&account.id),
                lead_rows::converted_contact_id.eq(&contact.id),
                lead_rows::converted_opportunity_id.eq(opportunity.as_ref().map(|o| &o.id)),
                lead_rows::version.eq(lead.version + 1),
                lead_rows::updated_at.eq(&now),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = leads::load(c, me, id)?;
        let changes = audit::diff(&common::to_json(&lead), &common::to_json(&after), &[]);
        record_change(c, me, "lead", "converted", id, changes, &after)?;
        Ok(ConvertResult {
            lead: after,
            account,
            contact,
            opportunity,
        })
    })
}

fn account_for(
    c: &mut DbConn,
    me: &Principal,
    lead: &Lead,
    req: &ConvertRequest,
    owner: Option<String>,
) -> ApiResult<Account> {
    if let Some(raw) = &req.account_id {
        let id = ids::parse_id(raw)
            .ok_or_else(|| common::invalid("account_id", "invalid", "must be a UUID"))?;
        return accounts::find(c, me, &id)
            .map(Account::from)
            .map_err(|_| common::invalid("account_id", "reference", "no such account"));
    }
    let name = lead
        .company
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| full_name(lead));
    let input = AccountInput {
        name: Some(name),
        industry: lead.industry.clone(),
        employee_count: lead.employee_count,
        owner_id: owner,
        ..Default::default()
    };
    accounts::create_account(c, me, &input)
}

fn contact_for(
    c: &mut DbConn,
    me: &Principal,
    lead: &Lead,
    req: &ConvertRequest,
    account_id: &str,
    owner: Option<String>,
) -> ApiResult<Contact> {
    if let Some(raw) = &req.contact_id {
        let id = ids::parse_id(raw)
            .ok_or_else(|| common::invalid("contact_id", "invalid", "must be a UUID"))?;
        return contacts::find(c, me, &id)
            .map_err(|_| common::invalid("contact_id", "reference", "no such contact"));
    }
    let named = [&lead.first_name, &lead.last_name, &lead.email]
        .into_iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()));
    if !named {
        return Err(common::invalid(
            "contact_id",
            "required",
            "the lead has no name or email to make a contact from: fill them in, or give contact_id",
        ));
    }
    let input = ContactInput {
        first_name: lead.first_name.clone(),
        last_name: lead.last_name.clone(),
        job_title: lead.job_title.clone(),
        owner_id: owner,
        emails: Some(
            lead.emails
                .iter()
                .map(|e| EmailInput {
                    email: e.email.clone(),
                    label: e.label.clone(),
                    primary: e.primary,
                })
                .collect(),
        ),
        // A contact keeps only numbers that parse; the lead keeps the others.
        phones: Some(
            lead.phones
                .iter()
                .filter(|p| crm_customers::common::to_e164(&p.number).is_some())
                .map(|p| PhoneInput {
                    number: p.number.clone(),
                    label: p.label.clone(),
                    primary: p.primary,
                })
                .collect(),
        ),
        accounts: Some(vec![AccountLinkInput {
            account_id: account_id.to_string(),
            role: req.contact_role.unwrap_or(AccountRole::User),
        }]),
        ..Default::default()
    };
    contacts::create_contact(c, me, &input)
}

fn opportunity_for(
    c: &mut DbConn,
    me: &Principal,
    lead: &Lead,
    o: &ConvertOpportunity,
    account: &Account,
    contact_id: &str,
    owner: Option<String>,
) -> ApiResult<Opportunity> {
    let input = OpportunityInput {
        name: Some(
            o.name
                .clone()
                .unwrap_or_else(|| format!("{} deal", account.name)),
        ),
        account_id: Some(account.id.clone()),
        primary_contact_id: Some(contact_id.to_string()),
        pipeline_id: Some(o.pipeline_id.clone()),
        amount: o.amount,
        currency: Some(o.currency.clone()),
        close_date: o.close_date.clone(),
        owner_id: owner,
        ..Default::default()
    };
    // Field errors name the request's fields: `opportunity.pipeline_id`, …
    opportunities::create_opportunity(
        c,
        me,
        NewOpportunity {
            input: &input,
            lead_id: Some(lead.id.clone()),
        },
    )
    .map_err(|e| e.prefixed("opportunity"))
}

/// Convert a lead into an account, a contact and optionally an opportunity.
///
/// In one transaction: links the account and contact given, or creates them from the lead
/// (the account from its company, the contact from its name, email and phone, linked to the
/// account), opens an opportunity when `opportunity` is given, and marks the lead `converted`
/// with what it became (event `lead.converted`). If any part fails nothing is written. A
/// converted lead answers 409, also to the loser of two conversions at once; a disqualified one
/// too. Needs `SalesWrite`, and the right to change the lead (owner, their team, or a manager).
#[utoipa::path(post, path = "/api/v1/leads/{id}/convert", tag = "leads",
    request_body = ConvertRequest,
    params(("id" = String, Path, format = "uuid", description = "Lead id")),
    responses(
        (status = 200, description = "Converted", body = ConvertResult),
        WriteProblems))]
#[post("/leads/{id}/convert")]
pub async fn convert_lead(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<ConvertRequest>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesWrite)?;
    let id = path_id(&id)?;
    let body = body.into_inner();
    let result = state.db(move |c| convert(c, &me, &id, &body)).await?;
    Ok(HttpResponse::Ok().json(result))
}
