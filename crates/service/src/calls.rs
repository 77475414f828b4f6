//! Inbound call management: the screen pop (`GET /caller-lookup`) and the call log
//! (`POST /calls`). A number arrives in whatever form the phone system sends (`+47 22 33 44
//! 55`, `0047 22334455`, `22334455` with the caller's region) and is matched on its E.164
//! form, which contacts' and leads' phones are indexed by. The lookup costs a fixed number of
//! queries however many records match.

use crate::tickets::{self, Channel, Ticket, TicketInput};
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::Json;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{
    accounts, activities as act, activity_links as al, contact_accounts, contact_phones, contacts,
    lead_phones, leads, orders,
};
use crm_core::state::AppState;
use crm_customers::activities::{self, ActivityInput, Direction, Kind, Link, LinkType};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// A number in E.164, read in `region` when it has no country code (with that region's
/// international prefix, `011` say, and `00` understood: see `common::to_e164_in`).
pub fn normalise(raw: &str, region: Option<&str>) -> Option<String> {
    let region = region
        .and_then(|r| r.trim().to_uppercase().parse().ok())
        .unwrap_or_else(crm_customers::common::default_region);
    crm_customers::common::to_e164_in(raw, region)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    /// The caller's number as the phone system sends it.
    #[param(min_length = 3, max_length = 40)]
    pub phone: String,
    /// ISO 3166 region for numbers without a country code (default `CRM_DEFAULT_PHONE_REGION`).
    #[param(pattern = "^[A-Za-z]{2}$")]
    pub region: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallerContact {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub account_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema, Queryable)]
pub struct CallerLead {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema, Queryable)]
pub struct CallerAccount {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema, Queryable)]
pub struct RecentActivity {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema, Queryable)]
pub struct RecentOrder {
    pub id: String,
    pub account_id: String,
    pub status: String,
    pub currency: String,
    /// In minor units.
    pub total: i64,
    pub ordered_on: String,
}

/// Everything a screen pop shows about a caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallerLookup {
    /// The number as matched, in E.164.
    pub e164: String,
    pub contacts: Vec<CallerContact>,
    pub leads: Vec<CallerLead>,
    pub accounts: Vec<CallerAccount>,
    /// Unsolved tickets of those contacts and accounts, newest first (at most 10).
    pub open_tickets: Vec<Ticket>,
    /// The contacts' latest activities (at most 5).
    pub recent_activities: Vec<RecentActivity>,
    /// The accounts' latest orders (at most 5).
    pub last_orders: Vec<RecentOrder>,
}

fn lookup(c: &mut DbConn, me: &Principal, e164: &str) -> ApiResult<CallerLookup> {
    crm_core::visibility::check_sees(me, "caller")?;
    let people: Vec<(String, String, String)> = contact_phones::table
        .inner_join(contacts::table)
        .filter(contact_phones::e164.eq(e164))
        .filter(contacts::archived_at.is_null())
        .filter(contacts::erased_at.is_null())
        .select((contacts::id, contacts::first_name, contacts::last_name))
        .distinct()
        .limit(20)
        .load(c)?;
    let contact_ids: Vec<&str> = people.iter().map(|p| p.0.as_str()).collect();
    let links: Vec<(String, String)> = contact_accounts::table
        .filter(contact_accounts::contact_id.eq_any(&contact_ids))
        .select((contact_accounts::contact_id, contact_accounts::account_id))
        .load(c)?;
    let account_ids: Vec<&str> = links.iter().map(|l| l.1.as_str()).collect();
    let accounts: Vec<CallerAccount> = accounts::table
        .filter(accounts::id.eq_any(&account_ids))
        .select((accounts::id, accounts::name))
        .load(c)?;
    let leads: Vec<CallerLead> = leads::table
        .filter(
            leads::phone_e164.eq(e164).or(leads::id.eq_any(
                lead_phones::table
                    .filter(lead_phones::e164.eq(e164))
                    .select(lead_phones::lead_id),
            )),
        )
        .filter(leads::archived_at.is_null())
        .select((
            leads::id,
            leads::first_name,
            leads::last_name,
            leads::company,
            leads::status,
        ))
        .limit(20)
        .load(c)?;
    let open_tickets = tickets::open_of(c, &contact_ids, &account_ids, 10)?;
    let recent_activities: Vec<RecentActivity> = act::table
        .inner_join(al::table)
        .filter(al::entity_type.eq("contact"))
        .filter(al::entity_id.eq_any(&contact_ids))
        .filter(act::archived_at.is_null())
        .order((act::created_at.desc(), act::id.desc()))
        .select((act::id, act::kind, act::subject, act::created_at))
        .distinct()
        .limit(5)
        .load(c)?;
    let last_orders: Vec<RecentOrder> = orders::table
        .filter(orders::account_id.eq_any(&account_ids))
        .filter(orders::archived_at.is_null())
        .order((orders::ordered_on.desc(), orders::id.desc()))
        .select((
            orders::id,
            orders::account_id,
            orders::status,
            orders::currency,
            orders::total,
            orders::ordered_on,
        ))
        .limit(5)
        .load(c)?;
    Ok(CallerLookup {
        e164: e164.to_string(),
        contacts: people
            .into_iter()
            .map(|(id, first_name, last_name)| CallerContact {
                account_ids: links
                    .iter()
                    .filter(|l| l.0 == id)
                    .map(|l| l.1.clone())
                    .collect(),
                id,
                first_name,
                last_name,
            })
            .collect(),
        leads,
        accounts,
        open_tickets,
        recent_activities,
        last_orders,
    })
}

fn e164_or_422(phone: &str, region: Option<&str>) -> ApiResult<String> {
    // A region that names no country is refused, not read as the default region.
    if let Some(r) = region {
        if !crm_customers::common::known_region(r) {
            return Err(ApiError::field(
                "region",
                "invalid",
                format!("{r:?} is not an ISO 3166 region code"),
            ));
        }
    }
    normalise(phone, region).ok_or_else(|| {
        ApiError::field(
            "phone",
            "phone",
            format!("{phone:?} is not a phone number (add the country code or a region)"),
        )
    })
}

/// Who is calling.
///
/// The contacts and leads with this number (in any format: `+47 22 33 44 55`, `0047 22334455`, or
/// `22334455` with `region=NO`), their accounts, their unsolved tickets, their latest activities
/// and their accounts' last orders: a screen pop in a fixed number of indexed queries. A number
/// that can't be one is a 422. Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/caller-lookup", tag = "calls", operation_id = "lookup_caller",
    params(LookupParams),
    responses((status = 200, description = "What is known about the caller", body = CallerLookup), (status = 422, description = "The number can't be a phone number", body = crm_core::error::Problem, content_type = "application/problem+json"), ReadProblems))]
#[get("/caller-lookup")]
pub async fn caller_lookup(
    state: web::Data<AppState>,
    me: Principal,
    q: web::Query<LookupParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let p = q.into_inner();
    let e164 = e164_or_422(&p.phone, p.region.as_deref())?;
    let found = state.db(move |c| lookup(c, &me, &e164)).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// A call to log.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallInput {
    /// The other party's number, in any format.
    #[validate(length(min = 3, max = 40))]
    #[schema(min_length = 3, max_length = 40)]
    pub phone: String,
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub region: Option<String>,
    /// `inbound` (default) or `outbound`.
    pub direction: Option<Direction>,
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub subject: Option<String>,
    #[validate(length(max = 100000))]
    #[schema(max_length = 100000)]
    pub notes: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// The contact spoken to; defaults to the only contact with this number.
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    /// Open a ticket for the call (channel `phone`) with this subject and the notes.
    pub open_ticket: Option<bool>,
}

/// The logged call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogged {
    pub activity: activities::Activity,
    pub ticket: Option<Ticket>,
}

/// Log a call.
///
/// Records the call as an activity (kind `call`) on the contact (the one given, or the only one
/// with this number) and their account, and with `open_ticket` opens a phone ticket for it in
/// the same transaction, linked to the activity. Agents, managers and admins (`ServiceWrite`).
#[utoipa::path(post, path = "/api/v1/calls", tag = "calls", operation_id = "log_call",
    request_body = CallInput,
    responses((status = 201, description = "The call's activity, and its ticket", body = CallLogged), WriteProblems))]
#[post("/calls")]
pub async fn log_call(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceWrite)?;
    let input: CallInput = crm_core::objects::input(&body.into_inner())?;
    input.validate()?;
    let e164 = e164_or_422(&input.phone, input.region.as_deref())?;
    let logged = state
        .db(move |c| db::write_tx(c, |c| log(c, &me, &input, &e164)))
        .await?;
    Ok(HttpResponse::Created().json(logged))
}

fn log(c: &mut DbConn, me: &Principal, input: &CallInput, e164: &str) -> ApiResult<CallLogged> {
    let contact = match &input.contact_id {
        Some(id) => Some(crm_customers::contacts::find_row(c, me, id).map(|_| id.clone())?),
        None => {
            let found = lookup(c, me, e164)?;
            match found.contacts.as_slice() {
                [one] => Some(one.id.clone()),
                _ => None,
            }
        }
    };
    let subject = input
        .subject
        .clone()
        .unwrap_or_else(|| format!("Call with {e164}"));
    let ticket = if input.open_ticket == Some(true) {
        let t = TicketInput {
            subject: Some(subject.clone()),
            description: input.notes.clone(),
            channel: Some(Channel::Phone),
            contact_id: contact.clone(),
            ..TicketInput::default()
        };
        let account = match &contact {
            Some(ct) => contact_accounts::table
                .filter(contact_accounts::contact_id.eq(ct))
                .select(contact_accounts::account_id)
                .order(contact_accounts::account_id)
                .first(c)
                .optional()?,
            None => None,
        };
        Some(tickets::open(c, &Actor::from(me), &t, account, None)?)
    } else {
        None
    };
    let mut links: Vec<Link> = vec![];
    if let Some(ct) = &contact {
        links.push(Link {
            entity_type: LinkType::Contact,
            entity_id: ct.clone(),
        });
    }
    if let Some(t) = &ticket {
        links.push(Link {
            entity_type: LinkType::Ticket,
            entity_id: t.id.clone(),
        });
    }
    let activity = activities::create_activity(
        c,
        me,
        &ActivityInput {
            kind: Some(Kind::Call),
            direction: Some(input.direction.unwrap_or(Direction::Inbound)),
            channel: Some("phone".into()),
            subject: Some(subject),
            body: input.notes.clone(),
            starts_at: input.started_at.clone(),
            ends_at: input.ended_at.clone(),
            status: Some(activities::Status::Completed),
            outcome: Some(format!("number {e164}")),
            links: Some(links),
            ..ActivityInput::default()
        },
    )?;
    Ok(CallLogged { activity, ticket })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_format_meet_in_e164() {
        for raw in [
            "+47 22 33 44 55",
            "0047 22334455",
            "+4722334455",
            "(+47) 22-33-44-55",
        ] {
            assert_eq!(
                normalise(raw, Some("NO")).as_deref(),
                Some("+4722334455"),
                "{raw}"
            );
        }
        assert_eq!(
            normalise("+47 22 33 44 55", Some("US")).as_deref(),
            Some("+4722334455")
        );
        assert_eq!(
            normalise("22334455", Some("NO")).as_deref(),
            Some("+4722334455")
        );
        assert_eq!(
            normalise("011 47 22 33 44 55", Some("US")).as_deref(),
            Some("+4722334455")
        );
        assert_eq!(normalise("12", Some("NO")), None);
    }
}
