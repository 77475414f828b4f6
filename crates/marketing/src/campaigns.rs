//! Campaigns: what was done to reach whom, what it cost, and what it brought. Members come
//! from segments, lists or by hand, one row per contact (so a campaign's mail never reaches a
//! contact twice); responses link the leads and opportunities they produced; the metrics are
//! computed from those rows on every read, so they are always current.

use crate::common::{audit_change, required, MemberContact};
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{campaign_members as cm, campaigns, contacts, leads, opportunities as opp};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{check_active_user, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

/// How a campaign reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CampaignChannel)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Newsletter,
    Telemarketing,
    DirectMail,
    Social,
    Ads,
    Event,
    Webinar,
}

impl Channel {
    /// Channels the server sends itself.
    pub fn mails(self) -> bool {
        matches!(self, Channel::Email | Channel::Newsletter)
    }

    /// Channels the server sends itself: mail, and text messages through the SMS provider.
    pub fn sends(self) -> bool {
        self.mails() || self == Channel::Sms
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CampaignStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Planned,
    Active,
    Completed,
    Aborted,
}

/// Where a member stands. `skipped` members were not mailed (see `skip_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CampaignMemberStatus)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Targeted,
    Skipped,
    Sent,
    Delivered,
    Opened,
    Clicked,
    Responded,
    Converted,
    Bounced,
    Unsubscribed,
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: String, or: T) -> T {
    crm_core::list::enum_from(&s, or)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = campaigns)]
struct Row {
    id: String,
    name: String,
    channel: String,
    status: String,
    parent_id: Option<String>,
    currency: String,
    budget: i64,
    actual_cost: i64,
    starts_on: Option<String>,
    ends_on: Option<String>,
    subject: Option<String>,
    body_text: Option<String>,
    send_started_at: Option<String>,
    owner_id: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A marketing campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub channel: Channel,
    pub status: Status,
    /// The campaign this one is part of.
    pub parent_id: Option<String>,
    /// ISO 4217 code of the budget and cost.
    pub currency: String,
    /// In minor units.
    pub budget: i64,
    /// In minor units.
    pub actual_cost: i64,
    pub starts_on: Option<String>,
    pub ends_on: Option<String>,
    /// The mail's subject, with merge fields (`{{ contact.first_name }}`).
    pub subject: Option<String>,
    /// The mail's text, with merge fields; an unsubscribe link is added below it.
    pub body_text: Option<String>,
    /// When sending started (`POST /campaigns/{id}/send`).
    pub send_started_at: Option<String>,
    pub owner_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for Campaign {
    fn from(r: Row) -> Self {
        Campaign {
            id: r.id,
            name: r.name,
            channel: parse_enum(r.channel, Channel::Email),
            status: parse_enum(r.status, Status::Planned),
            parent_id: r.parent_id,
            currency: r.currency,
            budget: r.budget,
            actual_cost: r.actual_cost,
            starts_on: r.starts_on,
            ends_on: r.ends_on,
            subject: r.subject,
            body_text: r.body_text,
            send_started_at: r.send_started_at,
            owner_id: r.owner_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A campaign as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub channel: Option<Channel>,
    pub status: Option<Status>,
    #[schema(format = "uuid")]
    pub parent_id: Option<String>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[validate(range(min = 0))]
    #[schema(minimum = 0)]
    pub budget: Option<i64>,
    #[validate(range(min = 0))]
    #[schema(minimum = 0)]
    pub actual_cost: Option<i64>,
    #[schema(format = "date")]
    pub starts_on: Option<String>,
    #[schema(format = "date")]
    pub ends_on: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub subject: Option<String>,
    #[validate(length(max = 100000))]
    #[schema(max_length = 100000)]
    pub body_text: Option<String>,
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
}

/// Merge fields a campaign's subject and text may use.
pub const MERGE_FIELDS: &[&str] = &[
    "contact.first_name",
    "contact.last_name",
    "contact.email",
    "contact.job_title",
    "account.name",
    "account.industry",
    "campaign.name",
    "unsubscribe_url",
];

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "-created_at",
    filters: &[
        Filter::of::<Channel>("channel", "Campaigns on this channel"),
        Filter::of::<Status>("status", "Campaigns in this status"),
        Filter::id("parent_id", "Campaigns under this one"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(campaigns::table, campaigns::BoxedQuery<'static, MultiBackend>, {
    "name" => campaigns::name,
    "created_at" => campaigns::created_at,
    "id" => campaigns::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Campaign> {
    campaigns::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Campaign::from)
        .ok_or_else(|| ApiError::not_found("campaign"))
}

fn day_ok(v: &Option<String>) -> bool {
    v.as_deref()
        .is_none_or(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
}

/// Field checks a create and an update share, on the campaign as it would be.
fn check(c: &mut DbConn, id: Option<&str>, next: &Campaign) -> ApiResult<()> {
    let mut errors: Vec<FieldError> = vec![];
    for (field, v) in [("starts_on", &next.starts_on), ("ends_on", &next.ends_on)] {
        if !day_ok(v) {
            errors.push(FieldError::new(
                field,
                "date",
                "must be a date (YYYY-MM-DD)",
            ));
        }
    }
    if let (Some(a), Some(b)) = (&next.starts_on, &next.ends_on) {
        if b < a {
            errors.push(FieldError::new("ends_on", "range", "is before starts_on"));
        }
    }
    if !next.currency.chars().all(|ch| ch.is_ascii_uppercase()) || next.currency.len() != 3 {
        errors.push(FieldError::new(
            "currency",
            "currency",
            "must be an ISO 4217 code (EUR)",
        ));
    }
    if let Some(parent) = &next.parent_id {
        if Some(parent.as_str()) == id {
            errors.push(FieldError::new(
                "parent_id",
                "cycle",
                "a campaign can't be its own parent",
            ));
        } else if ids::parse_id(parent).is_none() || find(c, parent).is_err() {
            errors.push(FieldError::new(
                "parent_id",
                "not_found",
                "no campaign has this id",
            ));
        }
    }
    if let Some(owner) = &next.owner_id {
        if check_active_user(c, owner, "owner_id").is_err() {
            errors.push(FieldError::new(
                "owner_id",
                "not_found",
                "no active user has this id",
            ));
        }
    }
    for (field, src) in [("subject", &next.subject), ("body_text", &next.body_text)] {
        if let Some(src) = src {
            crm_core::mail::templates::check_fields(&mut errors, field, src, MERGE_FIELDS);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn create(c: &mut DbConn, me: &Principal, input: &CampaignInput) -> ApiResult<Campaign> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("channel", input.channel.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (id, now) = (ids::new_id(), ids::now());
    let next = Campaign {
        id: id.clone(),
        name: input.name.clone().unwrap_or_default().trim().to_string(),
        channel: input.channel.unwrap_or(Channel::Email),
        status: input.status.unwrap_or(Status::Planned),
        parent_id: input.parent_id.clone(),
        currency: input.currency.clone().unwrap_or_else(|| "EUR".into()),
        budget: input.budget.unwrap_or(0),
        actual_cost: input.actual_cost.unwrap_or(0),
        starts_on: input.starts_on.clone(),
        ends_on: input.ends_on.clone(),
        subject: input.subject.clone(),
        body_text: input.body_text.clone(),
        send_started_at: None,
        owner_id: input.owner_id.clone().or_else(|| Some(me.user_id.clone())),
        version: 1,
        created_at: now.clone(),
        updated_at: now,
        archived_at: None,
    };
    db::write_tx(c, |c| {
        check(c, None, &next)?;
        write(c, &next, true)?;
        let saved = find(c, &id)?;
        audit_change(c, me, "campaign", "created", &id, to_json(&saved), &saved)?;
        Ok(saved)
    })
}

/// Insert or overwrite the row (the caller checked the version).
fn write(c: &mut DbConn, k: &Campaign, insert: bool) -> ApiResult<()> {
    let values = (
        campaigns::name.eq(&k.name),
        campaigns::channel.eq(crate::enum_text(k.channel)),
        campaigns::status.eq(crate::enum_text(k.status)),
        campaigns::parent_id.eq(&k.parent_id),
        campaigns::currency.eq(&k.currency),
        campaigns::budget.eq(k.budget),
        campaigns::actual_cost.eq(k.actual_cost),
        campaigns::starts_on.eq(&k.starts_on),
        campaigns::ends_on.eq(&k.ends_on),
        campaigns::subject.eq(&k.subject),
        campaigns::body_text.eq(&k.body_text),
        campaigns::owner_id.eq(&k.owner_id),
        campaigns::version.eq(k.version),
        campaigns::updated_at.eq(&k.updated_at),
    );
    if insert {
        diesel::insert_into(campaigns::table)
            .values((
                campaigns::id.eq(&k.id),
                campaigns::created_at.eq(&k.created_at),
                values,
            ))
            .execute(c)?;
    } else {
        let changed = diesel::update(campaigns::table.find(&k.id))
            .filter(campaigns::version.eq(k.version - 1))
            .set(values)
            .execute(c)?;
        resource::changed_one(changed)?;
    }
    Ok(())
}

/// The merged value of a nullable field in a merge patch.
fn merged(
    raw: &Value,
    key: &str,
    sent: &Option<String>,
    before: &Option<String>,
) -> Option<String> {
    match raw.get(key) {
        Some(Value::Null) => None,
        Some(_) => sent.clone(),
        None => before.clone(),
    }
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Campaign> {
    let input: CampaignInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Campaigns>(c, me, id)?;
        etag::check(expected, before.version)?;
        let next = Campaign {
            name: input
                .name
                .as_deref()
                .map(str::trim)
                .map(str::to_string)
                .unwrap_or(before.name.clone()),
            channel: input.channel.unwrap_or(before.channel),
            status: input.status.unwrap_or(before.status),
            parent_id: merged(raw, "parent_id", &input.parent_id, &before.parent_id),
            currency: input.currency.clone().unwrap_or(before.currency.clone()),
            budget: input.budget.unwrap_or(before.budget),
            actual_cost: input.actual_cost.unwrap_or(before.actual_cost),
            starts_on: merged(raw, "starts_on", &input.starts_on, &before.starts_on),
            ends_on: merged(raw, "ends_on", &input.ends_on, &before.ends_on),
            subject: merged(raw, "subject", &input.subject, &before.subject),
            body_text: merged(raw, "body_text", &input.body_text, &before.body_text),
            owner_id: merged(raw, "owner_id", &input.owner_id, &before.owner_id),
            version: before.version + 1,
            updated_at: ids::now(),
            ..before.clone()
        };
        check(c, Some(id), &next)?;
        write(c, &next, false)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "campaign", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Who to add: a segment's current members, a list's, or contacts by id (any mix).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCampaignMembers {
    #[schema(format = "uuid")]
    pub segment_id: Option<String>,
    #[schema(format = "uuid")]
    pub list_id: Option<String>,
    /// At most 1,000.
    #[schema(max_items = 1000)]
    pub contact_ids: Option<Vec<String>>,
}

/// How many a batch of adds took in.
const ADD_BATCH: i64 = 1000;

/// Insert the contacts a query selects as `targeted` members, a thousand at a time in id
/// order; returns how many were new.
fn add_from(
    c: &mut DbConn,
    campaign: &str,
    query: &dyn Fn() -> contacts::BoxedQuery<'static, MultiBackend>,
) -> ApiResult<i64> {
    let mut after = String::new();
    let mut added = 0;
    let now = ids::now();
    loop {
        let batch: Vec<String> = query()
            .filter(contacts::id.gt(after.clone()))
            .order(contacts::id)
            .limit(ADD_BATCH)
            .select(contacts::id)
            .load(c)?;
        let Some(last) = batch.last().cloned() else {
            return Ok(added);
        };
        // Members already in are left as they are (the campaign's row lock keeps two adds
        // from racing here).
        let known: Vec<String> = cm::table
            .filter(cm::campaign_id.eq(campaign))
            .filter(cm::contact_id.eq_any(&batch))
            .select(cm::contact_id)
            .load(c)?;
        for contact in batch.iter().filter(|id| !known.contains(id)) {
            added += diesel::insert_into(cm::table)
                .values((
                    cm::campaign_id.eq(campaign),
                    cm::contact_id.eq(contact),
                    cm::status.eq("targeted"),
                    cm::added_at.eq(&now),
                ))
                .execute(c)? as i64;
        }
        if (batch.len() as i64) < ADD_BATCH {
            return Ok(added);
        }
        after = last;
    }
}

fn add_members(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    input: &AddCampaignMembers,
    budget: std::time::Duration,
) -> ApiResult<crate::lists::Added> {
    if input.segment_id.is_none() && input.list_id.is_none() && input.contact_ids.is_none() {
        return Err(ApiError::field(
            "segment_id",
            "required",
            "send segment_id, list_id or contact_ids",
        ));
    }
    db::write_tx(c, |c| {
        db::lock_row(c, "campaigns", id)?;
        let k = find(c, id)?;
        if k.archived_at.is_some() || matches!(k.status, Status::Completed | Status::Aborted) {
            return Err(ApiError::Conflict(
                "the campaign is closed: members can't be added".into(),
            ));
        }
        let mut added = 0;
        let mut offered = 0;
        if let Some(sid) = &input.segment_id {
            let s = ids::parse_id(sid)
                .and_then(|sid| crate::segments::find(c, &sid).ok())
                .filter(|s| s.archived_at.is_none())
                .ok_or_else(|| {
                    ApiError::field("segment_id", "not_found", "no active segment has this id")
                })?;
            let node = crate::segments::checked(c, &s.criteria)?;
            crate::segments::evaluate(c, budget, |c| {
                offered += crate::segments::matching(me, &node)
                    .count()
                    .get_result::<i64>(c)?;
                added += add_from(c, id, &|| crate::segments::matching(me, &node))?;
                Ok(())
            })?;
        }
        if let Some(lid) = &input.list_id {
            let l = ids::parse_id(lid)
                .and_then(|lid| crate::lists::find(c, &lid).ok())
                .filter(|l| l.archived_at.is_none())
                .ok_or_else(|| {
                    ApiError::field("list_id", "not_found", "no active list has this id")
                })?;
            offered += crate::lists::on_list(me, &l.id)
                .count()
                .get_result::<i64>(c)?;
            added += add_from(c, id, &|| crate::lists::on_list(me, &l.id))?;
        }
        if let Some(list) = &input.contact_ids {
            crate::lists::check_contacts(c, me, list)?;
            let ids: Vec<String> = list.clone();
            offered += ids.len() as i64;
            added += add_from(c, id, &|| {
                contacts::table
                    .into_boxed::<MultiBackend>()
                    .filter(contacts::id.eq_any(ids.clone()))
            })?;
        }
        audit_change(
            c,
            me,
            "campaign",
            "members_added",
            id,
            json!({"added": added}),
            &k,
        )?;
        Ok(crate::lists::Added {
            added,
            already: (offered - added).max(0),
        })
    })
}

/// Add members to a campaign
///
/// Adds, as `targeted` members, the contacts a segment selects now, the contacts on a list,
/// and contacts by id (any mix). A contact already in the campaign is not added again, so it
/// is never mailed twice. 409 once the campaign is completed, aborted or archived. A
/// segment's criteria take turns with the previews (503 with `Retry-After` when none frees
/// up) and are a 422 `too_expensive` when a statement runs past `CRM_CRITERIA_TIMEOUT_MS`
/// (nothing is added then). Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/members", tag = "campaigns", operation_id = "add_campaign_members",
    params(("id" = String, Path, format = "uuid", description = "Campaign id")),
    request_body = AddCampaignMembers,
    responses(
        (status = 200, description = "How many were added", body = crate::lists::Added),
        (status = 503, description = "As many criteria evaluations as the server allows are running; see Retry-After", body = crm_core::error::Problem, content_type = "application/problem+json"),
        WriteProblems))]
#[post("/campaigns/{id}/members")]
pub async fn add_members_handler(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: AddCampaignMembers = crm_core::objects::input(&body.into_inner())?;
    // A segment's criteria take a turn with the previews (`CRM_CRITERIA_CONCURRENCY`).
    let slot = match input.segment_id {
        Some(_) => Some(state.criteria_slots.take().await?),
        None => None,
    };
    let budget = state.config.criteria_timeout;
    let out = state
        .db(move |c| {
            let _slot = slot;
            add_members(c, &me, &id, &input, budget)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// A contact in a campaign, and how far they got.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignMember {
    #[serde(flatten)]
    pub contact: MemberContact,
    pub status: MemberStatus,
    /// Why a `skipped` member was not mailed: `no_email`, `no_consent`, `suppressed`.
    pub skip_reason: Option<String>,
    /// The mail sent to them (see `/outbox/{id}`).
    pub mail_id: Option<String>,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub added_at: String,
    pub sent_at: Option<String>,
    pub opened_at: Option<String>,
    pub clicked_at: Option<String>,
    pub responded_at: Option<String>,
    pub unsubscribed_at: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cm)]
struct MemberRow {
    contact_id: String,
    status: String,
    skip_reason: Option<String>,
    mail_id: Option<String>,
    lead_id: Option<String>,
    opportunity_id: Option<String>,
    added_at: String,
    sent_at: Option<String>,
    opened_at: Option<String>,
    clicked_at: Option<String>,
    responded_at: Option<String>,
    unsubscribed_at: Option<String>,
}

pub const MEMBERS: ListSpec = ListSpec {
    sort_fields: &["created_at", "last_name"],
    default_sort: "created_at",
    filters: &[Filter::of::<MemberStatus>(
        "status",
        "Members in this status",
    )],
    search: None,
    null_sorts_as: &[],
};

fn member_page(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    p: &ListParams,
) -> ApiResult<Page<CampaignMember>> {
    find(c, id)?;
    let of_campaign = cm::table.filter(cm::campaign_id.eq(id.to_string()));
    let q = contacts::table.into_boxed::<MultiBackend>();
    let q = match crate::enum_filter::<MemberStatus>(p, "status")? {
        Some(s) => q.filter(
            contacts::id.eq_any(
                of_campaign
                    .filter(cm::status.eq(crate::enum_text(s)))
                    .select(cm::contact_id),
            ),
        ),
        None => q.filter(contacts::id.eq_any(of_campaign.select(cm::contact_id))),
    };
    let people = crate::segments::member_page(c, crm_core::visible!(q, me, contacts::id), p)?;
    let ids: Vec<&String> = people.data.iter().map(|m| &m.id).collect();
    let rows: Vec<MemberRow> = cm::table
        .filter(cm::campaign_id.eq(id))
        .filter(cm::contact_id.eq_any(ids))
        .select(MemberRow::as_select())
        .load(c)?;
    let data = people
        .data
        .into_iter()
        .filter_map(|contact| {
            let r = rows.iter().find(|r| r.contact_id == contact.id)?.clone();
            Some(CampaignMember {
                contact,
                status: parse_enum(r.status, MemberStatus::Targeted),
                skip_reason: r.skip_reason,
                mail_id: r.mail_id,
                lead_id: r.lead_id,
                opportunity_id: r.opportunity_id,
                added_at: r.added_at,
                sent_at: r.sent_at,
                opened_at: r.opened_at,
                clicked_at: r.clicked_at,
                responded_at: r.responded_at,
                unsubscribed_at: r.unsubscribed_at,
            })
        })
        .collect();
    Ok(Page {
        data,
        next_cursor: people.next_cursor,
    })
}

/// A campaign's members
///
/// A page of the campaign's members with their status, oldest contact first unless `sort`
/// says otherwise; `status=` keeps one status. Three queries whatever the page size.
/// Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/members", tag = "campaigns", operation_id = "list_campaign_members",
    params(
        ("id" = String, Path, format = "uuid", description = "Campaign id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|last_name)(,-?(created_at|last_name))*$", description = "created_at (default), last_name; `-` for descending"),
        ("status" = Option<MemberStatus>, Query, nullable = false, description = "Members in this status"),
    ),
    responses((status = 200, description = "A page of members", body = Page<CampaignMember>), ReadProblems))]
#[get("/campaigns/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &MEMBERS)?;
    let page = state.db(move |c| member_page(c, &me, &id, &p)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A member's response.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseInput {
    #[schema(format = "uuid")]
    pub contact_id: String,
    /// The lead the response produced.
    #[schema(format = "uuid")]
    pub lead_id: Option<String>,
    /// The opportunity it produced; the member counts as converted.
    #[schema(format = "uuid")]
    pub opportunity_id: Option<String>,
}

fn respond(c: &mut DbConn, me: &Principal, id: &str, r: &ResponseInput) -> ApiResult<Value> {
    db::write_tx(c, |c| {
        let k = find(c, id)?;
        let mut errors = vec![];
        if let Some(l) = &r.lead_id {
            let found: i64 = leads::table.filter(leads::id.eq(l)).count().get_result(c)?;
            if found == 0 {
                errors.push(FieldError::new(
                    "lead_id",
                    "not_found",
                    "no lead has this id",
                ));
            }
        }
        if let Some(o) = &r.opportunity_id {
            let found: i64 = opp::table.filter(opp::id.eq(o)).count().get_result(c)?;
            if found == 0 {
                errors.push(FieldError::new(
                    "opportunity_id",
                    "not_found",
                    "no opportunity has this id",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let status = if r.opportunity_id.is_some() {
            "converted"
        } else {
            "responded"
        };
        let now = ids::now();
        let changed = diesel::update(
            cm::table
                .filter(cm::campaign_id.eq(id))
                .filter(cm::contact_id.eq(&r.contact_id)),
        )
        .set((
            cm::status.eq(status),
            cm::responded_at.eq(&now),
            cm::lead_id.eq(&r.lead_id),
            cm::opportunity_id.eq(&r.opportunity_id),
        ))
        .execute(c)?;
        if changed == 0 {
            return Err(ApiError::field(
                "contact_id",
                "not_found",
                "this contact is not a member of the campaign",
            ));
        }
        crate::journeys::record(
            c,
            &crate::journeys::Touch {
                subject: ("contact", &r.contact_id),
                kind: crate::journeys::TouchKind::CampaignResponse,
                campaign_id: Some(id),
                source: ("campaign_member", &format!("{id}:{}", r.contact_id)),
                summary: format!("Responded to {}", k.name),
                occurred_at: &now,
            },
        )?;
        let out = json!({"contact_id": r.contact_id, "status": status, "responded_at": now,
            "lead_id": r.lead_id, "opportunity_id": r.opportunity_id});
        audit_change(c, me, "campaign", "response_recorded", id, out.clone(), &k)?;
        Ok(out)
    })
}

/// Record a member's response
///
/// Marks the member `responded` (or `converted` when the response produced an
/// opportunity), linking the lead and opportunity, which the metrics then count.
/// Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/responses", tag = "campaigns", operation_id = "record_campaign_response",
    params(("id" = String, Path, format = "uuid", description = "Campaign id")),
    request_body = ResponseInput,
    responses((status = 200, description = "The member's new status", body = Object), WriteProblems))]
#[post("/campaigns/{id}/responses")]
pub async fn record_response(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: ResponseInput = crm_core::objects::input(&body.into_inner())?;
    let out = state.db(move |c| respond(c, &me, &id, &input)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// What a campaign reached and brought, as of now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metrics {
    pub campaign_id: String,
    pub members: i64,
    /// Members not mailed yet.
    pub targeted: i64,
    /// Members mailed (or reached on another channel).
    pub reached: i64,
    /// Members not mailed: no email, no consent, suppressed.
    pub skipped: i64,
    pub opened: i64,
    pub clicked: i64,
    pub responded: i64,
    pub converted: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
    /// responded ÷ reached (0 when nobody was reached).
    pub response_rate: f64,
    /// converted ÷ reached.
    pub conversion_rate: f64,
    /// Leads that name this campaign.
    pub leads: i64,
    /// actual_cost ÷ leads, in minor units; null without leads.
    pub cost_per_lead: Option<i64>,
    /// Open opportunities from its leads or responses, in minor units.
    pub pipeline_influenced: i64,
    /// Won opportunities from its leads or responses, in minor units.
    pub revenue_influenced: i64,
    pub actual_cost: i64,
    pub currency: String,
    /// (revenue_influenced − actual_cost) ÷ actual_cost; null while nothing was spent.
    pub roi: Option<f64>,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0
    }
}

fn metrics(c: &mut DbConn, id: &str) -> ApiResult<Metrics> {
    let k = find(c, id)?;
    let by_status: Vec<(String, i64)> = cm::table
        .filter(cm::campaign_id.eq(id))
        .group_by(cm::status)
        .select((cm::status, diesel::dsl::count_star()))
        .load(c)?;
    let stamped: (i64, i64, i64, i64) = cm::table
        .filter(cm::campaign_id.eq(id))
        .select((
            diesel::dsl::count(cm::sent_at),
            diesel::dsl::count(cm::opened_at),
            diesel::dsl::count(cm::clicked_at),
            diesel::dsl::count(cm::responded_at),
        ))
        .first(c)?;
    let n = |s: &str| by_status.iter().find(|(k, _)| k == s).map_or(0, |x| x.1);
    let total: i64 = by_status.iter().map(|x| x.1).sum();
    let lead_count: i64 = leads::table
        .filter(leads::campaign_id.eq(id))
        .count()
        .get_result(c)?;
    // Opportunities from the campaign's leads or recorded on its responses, each once.
    let from_campaign = opp::lead_id
        .eq_any(
            leads::table
                .filter(leads::campaign_id.eq(id.to_string()))
                .select(leads::id.nullable()),
        )
        .or(opp::id.eq_any(
            cm::table
                .filter(cm::campaign_id.eq(id.to_string()))
                .filter(cm::opportunity_id.is_not_null())
                .select(cm::opportunity_id.assume_not_null()),
        ));
    let sums: Vec<(String, Option<i64>)> = opp::table
        .filter(from_campaign)
        .filter(opp::archived_at.is_null())
        .group_by(opp::status)
        // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both databases give an i64.
        .select((
            opp::status,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "CAST(SUM(opportunities.amount) AS BIGINT)",
            ),
        ))
        .load(c)?
        .into_iter()
        .collect();
    let sum_of = |s: &str| {
        sums.iter()
            .find(|(k, _)| k == s)
            .and_then(|x| x.1)
            .unwrap_or(0)
    };
    let reached = if k.channel.mails() {
        stamped.0
    } else {
        total - n("targeted") - n("skipped")
    };
    let revenue = sum_of("won");
    let responded = stamped.3;
    Ok(Metrics {
        campaign_id: k.id,
        members: total,
        targeted: n("targeted"),
        reached,
        skipped: n("skipped"),
        opened: stamped.1,
        clicked: stamped.2,
        responded,
        converted: n("converted"),
        unsubscribed: n("unsubscribed"),
        bounced: n("bounced"),
        response_rate: ratio(responded, reached),
        conversion_rate: ratio(n("converted"), reached),
        leads: lead_count,
        cost_per_lead: (lead_count > 0).then(|| k.actual_cost / lead_count),
        pipeline_influenced: sum_of("open"),
        revenue_influenced: revenue,
        actual_cost: k.actual_cost,
        currency: k.currency,
        roi: (k.actual_cost > 0).then(|| ratio(revenue - k.actual_cost, k.actual_cost)),
    })
}

/// A campaign's metrics
///
/// Reach, opens, clicks, responses and conversions, response and conversion rates, leads and
/// cost per lead, pipeline and revenue influenced and ROI, computed from the campaign's rows
/// on this request (a fixed number of aggregate queries), so always current.
/// Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/metrics", tag = "campaigns", operation_id = "campaign_metrics",
    params(("id" = String, Path, format = "uuid", description = "Campaign id")),
    responses((status = 200, description = "The figures", body = Metrics), ReadProblems))]
#[get("/campaigns/{id}/metrics")]
pub async fn get_metrics(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let out = state.db(move |c| metrics(c, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Campaigns on the resource kernel.
pub struct Campaigns;

impl Resource for Campaigns {
    type Record = Campaign;
    type Input = CampaignInput;
    type Patch = CampaignInput;
    crm_core::resource_paths!("campaigns");
    const ENTITY: &'static str = "campaign";
    const TABLE: &'static str = "campaigns";
    const TAG: &'static str = "campaigns";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "channel"];

    crm_core::record_meta!(Campaign);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Campaign> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Campaign>> {
        let mut q = campaigns::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(campaigns::archived_at.is_null());
        }
        if let Some(v) = crate::enum_filter::<Channel>(p, "channel")? {
            q = q.filter(campaigns::channel.eq(crate::enum_text(v)));
        }
        if let Some(v) = crate::enum_filter::<Status>(p, "status")? {
            q = q.filter(campaigns::status.eq(crate::enum_text(v)));
        }
        if let Some(v) = p.id_filter("parent_id")? {
            q = q.filter(campaigns::parent_id.eq(v));
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(Campaign::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &CampaignInput) -> ApiResult<Campaign> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Campaign> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(campaigns);
}
