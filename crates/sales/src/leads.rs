//! Leads: people and companies that may become customers, before they are accounts and
//! contacts. A lead is worked through `new → working → nurturing → qualified`, or
//! disqualified with a reason, and finally converted (`crate::conversion`), after which it
//! records what it became and no longer changes.

use crate::common::{enum_filter, enum_from, enum_text, record_change};
use crate::invoices::id_field;
use crate::lead_channels;
use crm_core::access::{Ownership, Permission};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::schema::{lead_emails, leads};
use crm_core::{audit, etag, ids, visibility};
use crm_customers::contacts::{Email, EmailInput, Phone, PhoneInput};
use crm_customers::{common, custom_fields};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// Where a lead came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    WebForm,
    Import,
    Event,
    Referral,
    Partner,
    Campaign,
    ColdCall,
    Other,
}

/// The statuses a client sets; `converted` is set by `POST /leads/{id}/convert` only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SetLeadStatus {
    New,
    Working,
    Nurturing,
    Qualified,
    Disqualified,
}

/// A lead's place in qualification. `converted` is set by `POST /leads/{id}/convert` only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Working,
    Nurturing,
    Qualified,
    Disqualified,
    Converted,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Working => "working",
            LeadStatus::Nurturing => "nurturing",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Disqualified => "disqualified",
            LeadStatus::Converted => "converted",
        }
    }
}

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = leads)]
pub struct LeadRow {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub phone_e164: Option<String>,
    pub country: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<i64>,
    pub source: String,
    pub campaign_id: Option<String>,
    pub status: String,
    pub disqualified_reason: Option<String>,
    pub score: i32,
    pub owner_id: Option<String>,
    pub converted_at: Option<String>,
    pub converted_account_id: Option<String>,
    pub converted_contact_id: Option<String>,
    pub converted_opportunity_id: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    pub assignment_rule_id: Option<String>,
    pub assigned_at: Option<String>,
    pub recycled_at: Option<String>,
    pub recycle_reason: Option<String>,
    pub custom: String,
}

/// Which assignment rule gave the lead its owner, and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Assignment {
    pub rule_id: String,
    pub assigned_at: String,
}

/// What a lead became when it was converted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversion {
    pub converted_at: String,
    pub account_id: String,
    pub contact_id: String,
    /// The opportunity opened at conversion, if one was.
    pub opportunity_id: Option<String>,
}

/// A lead.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lead {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    /// The primary email, lowercased.
    pub email: Option<String>,
    /// The primary phone, as written.
    pub phone: Option<String>,
    /// Every email, the primary first.
    pub emails: Vec<Email>,
    /// Every phone, the primary first; `e164` is the number as written when it doesn't parse.
    pub phones: Vec<Phone>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<i64>,
    pub source: LeadSource,
    /// The campaign that brought the lead in.
    pub campaign_id: Option<String>,
    pub status: LeadStatus,
    /// Why it was disqualified (set with `status: disqualified`).
    pub disqualified_reason: Option<String>,
    /// Fit and interest, 0–1000, given by the scoring models (`/scoring-models`); read-only.
    pub score: i32,
    pub owner_id: Option<String>,
    /// Set once the lead is converted.
    pub conversion: Option<Conversion>,
    /// Set when an assignment rule chose the owner (`/lead-assignment-rules`).
    pub assignment: Option<Assignment>,
    /// When the recycle policy last moved the lead, and why (`/lead-recycle-policy`).
    pub recycled_at: Option<String>,
    pub recycle_reason: Option<String>,
    /// Values of the custom fields defined for leads (`/meta/objects/lead/fields`).
    #[schema(value_type = Object)]
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<LeadRow> for Lead {
    fn from(r: LeadRow) -> Self {
        let conversion = match (
            r.converted_at,
            r.converted_account_id,
            r.converted_contact_id,
        ) {
            (Some(converted_at), Some(account_id), Some(contact_id)) => Some(Conversion {
                converted_at,
                account_id,
                contact_id,
                opportunity_id: r.converted_opportunity_id,
            }),
            _ => None,
        };
        let assignment = match (r.assignment_rule_id, r.assigned_at) {
            (Some(rule_id), Some(assigned_at)) => Some(Assignment {
                rule_id,
                assigned_at,
            }),
            _ => None,
        };
        Lead {
            id: r.id,
            first_name: r.first_name,
            last_name: r.last_name,
            company: r.company,
            job_title: r.job_title,
            email: r.email,
            phone: r.phone,
            emails: vec![],
            phones: vec![],
            country: r.country,
            industry: r.industry,
            employee_count: r.employee_count,
            source: enum_from(&r.source, LeadSource::Other),
            campaign_id: r.campaign_id,
            status: enum_from(&r.status, LeadStatus::New),
            disqualified_reason: r.disqualified_reason,
            score: r.score,
            owner_id: r.owner_id,
            conversion,
            assignment,
            recycled_at: r.recycled_at,
            recycle_reason: r.recycle_reason,
            custom: common::parse_json(&r.custom),
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of a lead a client sends. A lead needs a last name, a company or an email.
/// `email` and `phone` are shorthand for `emails` and `phones` of one (send one form or the
/// other); either replaces all the lead's emails (phones), and `null` removes them.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub first_name: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub last_name: Option<String>,
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub company: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub job_title: Option<String>,
    #[validate(email(message = "must be an email address"), length(max = 254))]
    #[schema(format = "email", max_length = 254)]
    pub email: Option<String>,
    /// Any written form; `+44 20 7946 0958` or a national number in the default region.
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    /// Replaces every email; the one marked `primary` (else the first) is `email`.
    #[validate(length(max = 20), nested)]
    #[schema(max_items = 20)]
    pub emails: Option<Vec<EmailInput>>,
    /// Replaces every phone; the one marked `primary` (else the first) is `phone`.
    #[validate(length(max = 20), nested)]
    #[schema(max_items = 20)]
    pub phones: Option<Vec<PhoneInput>>,
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub industry: Option<String>,
    #[validate(range(min = 0, max = 100_000_000))]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub employee_count: Option<i64>,
    /// `other` when not given.
    pub source: Option<LeadSource>,
    #[schema(format = "uuid")]
    pub campaign_id: Option<String>,
    /// Any status but `converted`, which only conversion sets. `disqualified` needs a
    /// `disqualified_reason`.
    #[schema(value_type = Option<SetLeadStatus>)]
    pub status: Option<LeadStatus>,
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub disqualified_reason: Option<String>,
    /// When not given on create, the lead assignment rules choose (falling back to the
    /// creator when none matches).
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
    /// Values of the custom fields defined for leads; `null` clears one.
    #[schema(value_type = Option<Object>)]
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "score"],
    default_sort: "-created_at",
    filters: &[
        Filter::of::<LeadStatus>(
            "status",
            "new, working, nurturing, qualified, disqualified or converted",
        ),
        Filter::of::<LeadSource>("source", "Where the lead came from"),
        Filter::id("owner_id", "Owned by this user"),
        Filter::text("email", "Any of its emails, exactly (case-insensitive)"),
        Filter::time("created_after", "RFC 3339 timestamp"),
        Filter::CUSTOM,
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(leads::table, leads::BoxedQuery<'static, MultiBackend>, {
    "created_at" => leads::created_at,
    "updated_at" => leads::updated_at,
    "score" => leads::score,
    "id" => leads::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<LeadRow> {
    visibility::check_sees(me, "lead")?;
    leads::table
        .find(id)
        .select(LeadRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("lead"))
}

/// A lead with its emails and phones.
pub fn load(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Lead> {
    let lead = find(conn, me, id)?.into();
    list::only(lead_channels::attach(conn, vec![lead])?)
}

fn check_input(input: &LeadInput) -> ApiResult<()> {
    input.validate()?;
    let mut errors = vec![];
    if input.status == Some(LeadStatus::Converted) {
        errors.push(FieldError::new(
            "status",
            "status",
            "a lead is converted with POST /leads/{id}/convert",
        ));
    }
    if input.country.as_deref().is_some_and(|c| !is_country(c)) {
        errors.push(FieldError::new(
            "country",
            "country",
            "must be an ISO 3166 code such as GB",
        ));
    }
    let _ = id_field(&mut errors, "campaign_id", &input.campaign_id);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn is_country(c: &str) -> bool {
    c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase())
}

/// The rules across fields, on the lead as it would be stored.
fn check_whole(row: &LeadRow) -> ApiResult<()> {
    let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !has(&row.last_name) && !has(&row.company) && !has(&row.email) {
        return Err(common::invalid(
            "last_name",
            "required",
            "a lead needs a last name, a company or an email",
        ));
    }
    if row.status == "disqualified" && !has(&row.disqualified_reason) {
        return Err(common::invalid(
            "disqualified_reason",
            "required",
            "say why the lead is disqualified",
        ));
    }
    Ok(())
}

pub fn create_lead(conn: &mut DbConn, me: &Principal, input: &LeadInput) -> ApiResult<Lead> {
    check_input(input)?;
    let channels = lead_channels::requested(input, None)?;
    let emails = channels.emails.clone().unwrap_or_default();
    let (phone, e164) =
        lead_channels::primary_phone(channels.phones.as_deref().unwrap_or_default());
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let owner = common::resolve_owner(c, me, input.owner_id.as_deref(), None)?;
        let now = ids::now();
        let id = ids::new_id();
        // Before the rules run: they may test custom fields.
        let custom = custom_fields::apply(c, "lead", &id, "{}", input.custom.as_ref())?;
        let row = LeadRow {
            id,
            first_name: input.first_name.clone(),
            last_name: input.last_name.clone(),
            company: input.company.clone(),
            job_title: input.job_title.clone(),
            email: lead_channels::primary_email(&emails),
            phone,
            phone_e164: e164,
            country: input.country.clone(),
            industry: input.industry.clone(),
            employee_count: input.employee_count,
            source: enum_text(input.source.unwrap_or(LeadSource::Other)),
            campaign_id: input.campaign_id.clone(),
            status: input.status.unwrap_or(LeadStatus::New).as_str().to_string(),
            disqualified_reason: input.disqualified_reason.clone(),
            // Scores are the scoring models' to give (read-only to clients).
            score: 0,
            owner_id: owner,
            converted_at: None,
            converted_account_id: None,
            converted_contact_id: None,
            converted_opportunity_id: None,
            external_source: source,
            external_id: external,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            archived_at: None,
            assignment_rule_id: None,
            assigned_at: None,
            recycled_at: None,
            recycle_reason: None,
            custom,
        };
        check_whole(&row)?;
        let row = assigned_by_rules(c, row, input.owner_id.is_none())?;
        insert(c, &row)?;
        lead_channels::write(c, &row.id, &channels)?;
        let lead = load(c, me, &row.id)?;
        record_change(
            c,
            me,
            "lead",
            "created",
            &lead.id,
            common::to_json(&lead),
            &lead,
        )?;
        Ok(lead)
    })
}

/// A new lead without an owner given goes to whoever the assignment rules say; with no
/// matching rule it stays with its creator.
fn assigned_by_rules(c: &mut DbConn, row: LeadRow, unowned: bool) -> ApiResult<LeadRow> {
    if !unowned {
        return Ok(row);
    }
    Ok(match crate::assignment::decide(c, &row)? {
        Some((owner, rule)) => LeadRow {
            owner_id: Some(owner),
            assignment_rule_id: Some(rule),
            assigned_at: Some(row.created_at.clone()),
            ..row
        },
        None => row,
    })
}

fn insert(c: &mut DbConn, r: &LeadRow) -> ApiResult<()> {
    diesel::insert_into(leads::table)
        .values((
            leads::id.eq(&r.id),
            leads::first_name.eq(&r.first_name),
            leads::last_name.eq(&r.last_name),
            leads::company.eq(&r.company),
            leads::job_title.eq(&r.job_title),
            leads::email.eq(&r.email),
            leads::phone.eq(&r.phone),
            leads::phone_e164.eq(&r.phone_e164),
            leads::country.eq(&r.country),
            leads::industry.eq(&r.industry),
            leads::employee_count.eq(r.employee_count),
            leads::source.eq(&r.source),
            leads::campaign_id.eq(&r.campaign_id),
            leads::status.eq(&r.status),
            leads::disqualified_reason.eq(&r.disqualified_reason),
            leads::score.eq(r.score),
            leads::owner_id.eq(&r.owner_id),
            leads::assignment_rule_id.eq(&r.assignment_rule_id),
            leads::assigned_at.eq(&r.assigned_at),
            leads::external_source.eq(&r.external_source),
            leads::external_id.eq(&r.external_id),
            leads::custom.eq(&r.custom),
            leads::version.eq(1),
            leads::created_at.eq(&r.created_at),
            leads::updated_at.eq(&r.updated_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Apply a JSON merge patch. A converted lead no longer changes (409).
pub fn update_lead(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Lead> {
    let input: LeadInput = objects::input(raw)?;
    check_input(&input)?;
    let channels = lead_channels::requested(&input, Some(raw))?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    let pick = |field: &str, new: &Option<String>, old: &Option<String>| {
        if cleared(field) {
            None
        } else {
            new.clone().or(old.clone())
        }
    };
    db::write_tx(conn, |c| {
        let current = resource::find_for_write::<Leads>(c, me, id)?;
        etag::check(expected, current.version)?;
        if current.conversion.is_some() {
            return Err(ApiError::Conflict(
                "the lead is converted and no longer changes".into(),
            ));
        }
        let row = find(c, me, id)?;
        let owner = if cleared("owner_id") {
            None
        } else {
            common::resolve_owner(c, me, input.owner_id.as_deref(), row.owner_id.as_deref())?
        };
        let status = input
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or(row.status.clone());
        let (phone, phone_e164) = match &channels.phones {
            Some(phones) => lead_channels::primary_phone(phones),
            None => (row.phone.clone(), row.phone_e164.clone()),
        };
        let email = match &channels.emails {
            Some(emails) => lead_channels::primary_email(emails),
            None => row.email.clone(),
        };
        let next = LeadRow {
            first_name: pick("first_name", &input.first_name, &row.first_name),
            last_name: pick("last_name", &input.last_name, &row.last_name),
            company: pick("company", &input.company, &row.company),
            job_title: pick("job_title", &input.job_title, &row.job_title),
            email,
            phone_e164,
            phone,
            country: pick("country", &input.country, &row.country),
            industry: pick("industry", &input.industry, &row.industry),
            employee_count: if cleared("employee_count") {
                None
            } else {
                input.employee_count.or(row.employee_count)
            },
            source: input.source.map(enum_text).unwrap_or(row.source.clone()),
            campaign_id: pick("campaign_id", &input.campaign_id, &row.campaign_id),
            // Leaving `disqualified` drops the reason unless a new one is given.
            disqualified_reason: if status == "disqualified" {
                pick(
                    "disqualified_reason",
                    &input.disqualified_reason,
                    &row.disqualified_reason,
                )
            } else {
                None
            },
            status,
            score: row.score,
            owner_id: owner,
            custom: match &input.custom {
                Some(sent) => custom_fields::apply(c, "lead", id, &row.custom, Some(sent))?,
                None => row.custom.clone(),
            },
            ..row.clone()
        };
        check_whole(&next)?;
        let (source, external) = objects::external_key_after(
            raw,
            (row.external_source.clone(), row.external_id.clone()),
        )?;
        let changed = diesel::update(leads::table.find(id))
            .filter(leads::version.eq(row.version))
            .set((
                leads::first_name.eq(&next.first_name),
                leads::last_name.eq(&next.last_name),
                leads::company.eq(&next.company),
                leads::job_title.eq(&next.job_title),
                leads::email.eq(&next.email),
                leads::phone.eq(&next.phone),
                leads::phone_e164.eq(&next.phone_e164),
                leads::country.eq(&next.country),
                leads::industry.eq(&next.industry),
                leads::employee_count.eq(next.employee_count),
                leads::source.eq(&next.source),
                leads::campaign_id.eq(&next.campaign_id),
                leads::status.eq(&next.status),
                leads::disqualified_reason.eq(&next.disqualified_reason),
                leads::score.eq(next.score),
                leads::owner_id.eq(&next.owner_id),
                leads::custom.eq(&next.custom),
                leads::external_source.eq(&source),
                leads::external_id.eq(&external),
                leads::version.eq(row.version + 1),
                leads::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        lead_channels::write(c, id, &channels)?;
        let after = load(c, me, id)?;
        let changes = audit::diff(&common::to_json(&current), &common::to_json(&after), &[]);
        record_change(c, me, "lead", "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Lead>> {
    let mut q = crm_core::visible!(leads::table.into_boxed::<MultiBackend>(), me, leads::id);
    if !p.include_archived {
        q = q.filter(leads::archived_at.is_null());
    }
    if let Some(v) = enum_filter::<LeadStatus>(p, "status")? {
        q = q.filter(leads::status.eq(v.as_str()));
    }
    if let Some(v) = enum_filter::<LeadSource>(p, "source")? {
        q = q.filter(leads::source.eq(enum_text(v)));
    }
    if let Some(v) = p.id_filter("owner_id")? {
        q = q.filter(leads::owner_id.eq(v));
    }
    if let Some(v) = p.filter("email") {
        let with_email = lead_emails::table
            .filter(lead_emails::email.eq(v.trim().to_lowercase()))
            .select(lead_emails::lead_id);
        q = q.filter(leads::id.eq_any(with_email));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(leads::created_at.gt(t));
    }
    for filter in custom_fields::filters(conn, "lead", p)? {
        q = crm_customers::custom_filter!(q, leads::id, "lead", &filter);
    }
    let rows: Vec<LeadRow> = apply_sort(q, p)?.load(conn)?;
    let leads = lead_channels::attach(conn, rows.into_iter().map(Lead::from).collect())?;
    list::page(leads, p)
}

/// Leads on the resource kernel: every role reads them (partners only what is shared
/// with them); reps and marketers work them; the owner, their team or a manager may change one.
pub struct Leads;

impl Resource for Leads {
    type Record = Lead;
    type Input = LeadInput;
    type Patch = LeadInput;
    crm_core::resource_paths!("leads");
    const ENTITY: &'static str = "lead";
    const TABLE: &'static str = "leads";
    const TAG: &'static str = "leads";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesWrite;
    const EDITS: Ownership = crate::common::EDITS;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &[];

    crm_core::record_meta!(Lead, owner_id);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Lead> {
        load(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Lead>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &LeadInput) -> ApiResult<Lead> {
        create_lead(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Lead> {
        update_lead(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(leads);
}

/// Leads as an integrable object (upserts, batch, composite, imports, exports, feed).
pub const OBJECT: ObjectKind = resource::object::<Leads>(crm_core::find_by_external!(leads), None);

/// List a lead's timeline.
///
/// Everything that happened to the lead, newest first unless `sort=occurred_at`: its audited
/// changes, assignments by rule (`lead.assigned`), moves by the recycle policy with their reason
/// (`lead.recycled`) and its conversion. Filter on `kind`; page with `limit` and `cursor`. Needs
/// `SalesRead`.
#[utoipa::path(get, path = "/api/v1/leads/{id}/timeline", operation_id = "get_lead_timeline", tag = "leads",
    params(("id" = String, Path, format = "uuid", description = "Lead id"),
        crm_core::params::PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?occurred_at$", description = "-occurred_at (default, newest first) or occurred_at"),
        ("kind" = Option<String>, Query, nullable = false, min_length = 1, description = "Only entries of this kind, e.g. lead.recycled"),
    ),
    responses((status = 200, description = "Everything that happened to the lead", body = Page<crm_core::timeline::TimelineEntry>), crm_core::respond::ReadProblems))]
#[actix_web::get("/leads/{id}/timeline")]
pub async fn get_timeline(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    id: actix_web::web::Path<String>,
    query: actix_web::web::Query<Vec<(String, String)>>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = crm_core::extract::path_id(&id)?;
    let p = list::parse(query.into_inner(), &crm_core::timeline::LIST)?;
    let page = state
        .db(move |c| {
            find(c, &me, &id)?;
            crm_core::timeline::page(c, "lead", &id, &p)
        })
        .await?;
    Ok(actix_web::HttpResponse::Ok().json(page))
}
