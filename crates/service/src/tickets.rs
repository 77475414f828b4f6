//! Tickets: a customer's problem from the first message to its solution. A new ticket gets
//! the next number, is routed to a queue (routing rules), assigned by the queue, given SLA
//! due times (the policy of its account's tier) and acknowledged by mail to its contact.
//! Status moves only along `TRANSITIONS` (`POST /tickets/{id}/status`; 409 naming the
//! allowed ones); pending customer stops the SLA clock.

use crate::common::{record_as, required};
use crate::{mailing, queues, routing, sla};
use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::path_id;
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::respond::WriteProblems;
use crm_core::schema::{accounts, contact_accounts, orders, products, tickets as t};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{clean_tags, json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
    PendingCustomer,
    OnHold,
    Solved,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn rank(self) -> i32 {
        self as i32 + 1
    }

    /// One step more urgent (an SLA breach raises it).
    pub fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Normal,
            Priority::Normal => Priority::High,
            _ => Priority::Urgent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketChannel)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Web,
    Phone,
    Chat,
    Social,
    Api,
}

/// Statuses of a ticket still being worked (queues and SLA checks read these).
pub const UNSOLVED: [&str; 4] = ["new", "open", "pending_customer", "on_hold"];

/// Where each status may go. A solved ticket reopens within `REOPEN_DAYS` of being solved;
/// after that (or once closed) a customer's reply opens a follow-up ticket instead.
pub const TRANSITIONS: &[(Status, &[Status])] = &[
    (
        Status::New,
        &[
            Status::Open,
            Status::PendingCustomer,
            Status::OnHold,
            Status::Solved,
        ],
    ),
    (
        Status::Open,
        &[Status::PendingCustomer, Status::OnHold, Status::Solved],
    ),
    (
        Status::PendingCustomer,
        &[Status::Open, Status::OnHold, Status::Solved],
    ),
    (
        Status::OnHold,
        &[Status::Open, Status::PendingCustomer, Status::Solved],
    ),
    (Status::Solved, &[Status::Open, Status::Closed]),
    (Status::Closed, &[]),
];

pub const REOPEN_DAYS: i64 = 14;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct Row {
    id: String,
    number: i64,
    subject: String,
    description: Option<String>,
    channel: String,
    contact_id: Option<String>,
    account_id: Option<String>,
    product_id: Option<String>,
    order_id: Option<String>,
    category: Option<String>,
    language: Option<String>,
    priority: String,
    priority_rank: i32,
    status: String,
    queue_id: Option<String>,
    assignee_id: Option<String>,
    tags: String,
    follow_up_of: Option<String>,
    sla_policy_id: Option<String>,
    first_response_due_at: Option<String>,
    next_response_due_at: Option<String>,
    resolution_due_at: Option<String>,
    first_responded_at: Option<String>,
    sla_paused_at: Option<String>,
    sla_state: String,
    solved_at: Option<String>,
    external_source: Option<String>,
    external_id: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A ticket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ticket {
    pub id: String,
    /// The number customers quote (`#1001`); threading finds it in mail subjects.
    pub number: i64,
    pub subject: String,
    pub description: Option<String>,
    pub channel: Channel,
    pub contact_id: Option<String>,
    pub account_id: Option<String>,
    pub product_id: Option<String>,
    pub order_id: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub priority: Priority,
    pub status: Status,
    pub queue_id: Option<String>,
    pub assignee_id: Option<String>,
    pub tags: Vec<String>,
    /// The solved ticket this one follows up.
    pub follow_up_of: Option<String>,
    pub sla_policy_id: Option<String>,
    pub first_response_due_at: Option<String>,
    pub next_response_due_at: Option<String>,
    pub resolution_due_at: Option<String>,
    pub first_responded_at: Option<String>,
    /// Set while the SLA clock is stopped (pending customer).
    pub sla_paused_at: Option<String>,
    /// Business minutes the clock has been stopped so far; due times include them.
    pub sla_paused_minutes: i64,
    pub solved_at: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

fn parse_enum<T: serde::de::DeserializeOwned>(raw: &str, fallback: T) -> T {
    serde_json::from_value(Value::String(raw.to_string())).unwrap_or(fallback)
}

impl From<Row> for Ticket {
    fn from(r: Row) -> Self {
        let state: sla::SlaState = parse_json(&r.sla_state);
        let _ = r.priority_rank;
        Ticket {
            id: r.id,
            number: r.number,
            subject: r.subject,
            description: r.description,
            channel: parse_enum(&r.channel, Channel::Api),
            contact_id: r.contact_id,
            account_id: r.account_id,
            product_id: r.product_id,
            order_id: r.order_id,
            category: r.category,
            language: r.language,
            priority: parse_enum(&r.priority, Priority::Normal),
            status: parse_enum(&r.status, Status::Open),
            queue_id: r.queue_id,
            assignee_id: r.assignee_id,
            tags: parse_json(&r.tags),
            follow_up_of: r.follow_up_of,
            sla_policy_id: r.sla_policy_id,
            first_response_due_at: r.first_response_due_at,
            next_response_due_at: r.next_response_due_at,
            resolution_due_at: r.resolution_due_at,
            first_responded_at: r.first_responded_at,
            sla_paused_at: r.sla_paused_at,
            sla_paused_minutes: state.paused_minutes,
            solved_at: r.solved_at,
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A ticket as sent. `status` changes through `POST /tickets/{id}/status`.
#[derive(Debug, Default, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub subject: Option<String>,
    #[validate(length(max = 100000))]
    #[schema(max_length = 100000)]
    pub description: Option<String>,
    pub channel: Option<Channel>,
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    #[schema(format = "uuid")]
    pub product_id: Option<String>,
    #[schema(format = "uuid")]
    pub order_id: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub category: Option<String>,
    #[validate(length(min = 2, max = 10))]
    #[schema(min_length = 2, max_length = 10)]
    pub language: Option<String>,
    pub priority: Option<Priority>,
    /// Leave out to let the routing rules choose.
    #[schema(format = "uuid")]
    pub queue_id: Option<String>,
    /// Leave out to let the queue assign.
    #[schema(format = "uuid")]
    pub assignee_id: Option<String>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "number"],
    default_sort: "-created_at",
    filters: &[
        Filter::of::<Status>(
            "status",
            "new, open, pending_customer, on_hold, solved or closed",
        ),
        Filter::of::<Priority>("priority", "low, normal, high or urgent"),
        Filter::id("queue_id", "Tickets in this queue"),
        Filter::new(
            "assignee_id",
            FilterKind::IdOrMe,
            "Tickets assigned to this user (`me` for the caller)",
        ),
        Filter::id("contact_id", "This contact's tickets"),
        Filter::id("account_id", "This account's tickets"),
        Filter::text("category", "Tickets in this category"),
        Filter::bool(
            "unsolved",
            "true: only new, open, pending customer and on hold; false: only solved and closed",
        ),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(t::table, t::BoxedQuery<'static, MultiBackend>, {
    "created_at" => t::created_at,
    "updated_at" => t::updated_at,
    "number" => t::number,
    "id" => t::id,
});

pub fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Ticket> {
    crm_core::visibility::check_sees(me, "ticket")?;
    find_any(c, id)
}

pub fn find_any(c: &mut DbConn, id: &str) -> ApiResult<Ticket> {
    find_row(c, id).map(Ticket::from)
}

pub fn find_row(c: &mut DbConn, id: &str) -> ApiResult<Row> {
    t::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("ticket"))
}

/// Unsolved tickets of these contacts or accounts, newest first.
pub fn open_of(
    c: &mut DbConn,
    contacts: &[&str],
    accounts: &[&str],
    limit: i64,
) -> ApiResult<Vec<Ticket>> {
    let rows: Vec<Row> = t::table
        .filter(
            t::contact_id
                .eq_any(contacts)
                .or(t::account_id.eq_any(accounts)),
        )
        .filter(t::status.eq_any(UNSOLVED))
        .filter(t::archived_at.is_null())
        .order((t::created_at.desc(), t::id.desc()))
        .limit(limit)
        .select(Row::as_select())
        .load(c)?;
    Ok(rows.into_iter().map(Ticket::from).collect())
}

pub fn by_number(c: &mut DbConn, number: i64) -> ApiResult<Option<Ticket>> {
    Ok(t::table
        .filter(t::number.eq(number))
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Ticket::from))
}

fn next_number(c: &mut DbConn) -> ApiResult<i64> {
    use crm_core::schema::counters;
    Ok(diesel::update(counters::table.find("ticket_number"))
        .set(counters::value.eq(counters::value + 1))
        .returning(counters::value)
        .get_result(c)?)
}

/// The account's service tier: its `tier` custom field.
pub fn tier_of(c: &mut DbConn, account: Option<&str>) -> ApiResult<Option<String>> {
    let Some(account) = account else {
        return Ok(None);
    };
    let custom: Option<String> = accounts::table
        .find(account)
        .select(accounts::custom)
        .first(c)
        .optional()?;
    let custom: Value = custom.map(|s| parse_json(&s)).unwrap_or_default();
    Ok(custom
        .get("tier")
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Check the records a ticket names: each exists and the caller may see it (404 → 422
/// naming the field, so no hidden record is confirmed), and the contact's account when none
/// is given.
fn check_links(c: &mut DbConn, me: &Principal, input: &TicketInput) -> ApiResult<Option<String>> {
    let id_of = |f: &str, raw: &Option<String>| -> ApiResult<Option<String>> {
        raw.as_deref()
            .map(|r| ids::parse_id(r).ok_or_else(|| ApiError::field(f, "invalid", "must be an id")))
            .transpose()
    };
    let contact = id_of("contact_id", &input.contact_id)?;
    let mut account = id_of("account_id", &input.account_id)?;
    if let Some(contact) = &contact {
        // A contact the caller may not see is a 404, as if it did not exist.
        crm_customers::contacts::find_row(c, me, contact)?;
        if account.is_none() {
            account = contact_accounts::table
                .filter(contact_accounts::contact_id.eq(contact))
                .select(contact_accounts::account_id)
                .order(contact_accounts::account_id)
                .first(c)
                .optional()?;
        }
    }
    if let Some(a) = &input.account_id {
        crm_customers::accounts::find(c, me, a)?;
    }
    if let Some(p) = id_of("product_id", &input.product_id)? {
        let n: i64 = products::table.find(&p).count().get_result(c)?;
        if n == 0 {
            return Err(ApiError::field(
                "product_id",
                "not_found",
                "no product has this id",
            ));
        }
    }
    if let Some(o) = id_of("order_id", &input.order_id)? {
        let n: i64 = orders::table.find(&o).count().get_result(c)?;
        if n == 0 {
            return Err(ApiError::field(
                "order_id",
                "not_found",
                "no order has this id",
            ));
        }
    }
    Ok(account)
}

/// Open a ticket (any channel): number, routing, assignment, SLA, acknowledgement.
pub fn open(
    c: &mut DbConn,
    actor: &Actor,
    input: &TicketInput,
    account: Option<String>,
    follow_up_of: Option<&str>,
) -> ApiResult<Ticket> {
    open_with(c, actor, input, account, follow_up_of, None, |_, _| Ok(()))
}

/// `open` with a queue for when no rule routes the ticket, and what to write before the
/// acknowledgement goes out (the inbound message it answers).
pub fn open_with(
    c: &mut DbConn,
    actor: &Actor,
    input: &TicketInput,
    account: Option<String>,
    follow_up_of: Option<&str>,
    fallback_queue: Option<&str>,
    first_message: impl FnOnce(&mut DbConn, &str) -> ApiResult<()>,
) -> ApiResult<Ticket> {
    let channel = input.channel.unwrap_or(Channel::Api);
    let priority = input.priority.unwrap_or(Priority::Normal);
    let tags = clean_tags(input.tags.as_deref().unwrap_or_default())?;
    let external = objects::external_key_of(&input.external_source, &input.external_id)?;
    let tier = tier_of(c, account.as_deref())?;
    let queue = match &input.queue_id {
        Some(q) => Some(queues::active(c, "queue_id", q)?.id),
        None => routing::route(
            c,
            &routing::Facts {
                category: input.category.as_deref(),
                product_id: input.product_id.as_deref(),
                tier: tier.as_deref(),
                language: input.language.as_deref(),
                channel: &crate::enum_text(channel),
            },
        )?
        .map(|r| r.queue_id)
        .or(fallback_queue.map(str::to_string)),
    };
    let assignee = match (&input.assignee_id, &queue) {
        (Some(a), _) => {
            crm_customers::common::check_active_user(c, a, "assignee_id")?;
            Some(a.clone())
        }
        (None, Some(q)) => queues::pick_assignee(c, q)?,
        (None, None) => None,
    };
    let created = Utc::now();
    let dues = sla::initial(c, tier.as_deref(), priority, created)?;
    let id = ids::new_id();
    let now = ids::format_ts(created);
    diesel::insert_into(t::table)
        .values((
            t::id.eq(&id),
            t::number.eq(next_number(c)?),
            t::subject.eq(input.subject.as_deref().unwrap_or_default().trim()),
            t::description.eq(&input.description),
            t::channel.eq(crate::enum_text(channel)),
            t::contact_id.eq(&input.contact_id),
            t::account_id.eq(&account),
            t::product_id.eq(&input.product_id),
            t::order_id.eq(&input.order_id),
            t::category.eq(&input.category),
            t::language.eq(&input.language),
            t::priority.eq(crate::enum_text(priority)),
            t::priority_rank.eq(priority.rank()),
            t::status.eq(if assignee.is_some() { "open" } else { "new" }),
            t::queue_id.eq(&queue),
            t::assignee_id.eq(&assignee),
            t::tags.eq(json_text(&tags)),
            t::follow_up_of.eq(follow_up_of),
            t::sla_policy_id.eq(&dues.policy_id),
            t::first_response_due_at.eq(&dues.first_response),
            t::resolution_due_at.eq(&dues.resolution),
            t::sla_state.eq(json_text(&sla::SlaState::default())),
            t::external_source.eq(&external.0),
            t::external_id.eq(&external.1),
            t::version.eq(1),
            t::created_at.eq(&now),
            t::updated_at.eq(&now),
        ))
        .execute(c)?;
    let ticket = find_any(c, &id)?;
    record_as(
        c,
        actor,
        "ticket",
        "created",
        &id,
        to_json(&ticket),
        &ticket,
    )?;
    first_message(c, &id)?;
    mailing::acknowledge(c, &ticket)?;
    Ok(ticket)
}

fn create(c: &mut DbConn, me: &Principal, input: &TicketInput) -> ApiResult<Ticket> {
    input.validate()?;
    let errors = required(&[("subject", input.subject.is_none())]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let account = check_links(c, me, input)?;
        open(c, &Actor::from(me), input, account, None)
    })
}

/// A PATCH: the fields of `TicketInput`; a priority change recomputes the due times.
fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Ticket> {
    let input: TicketInput = objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before_row = {
            resource::find_for_write::<Tickets>(c, me, id)?;
            find_row(c, id)?
        };
        let before = Ticket::from(before_row.clone());
        etag::check(expected, before.version)?;
        let merged = TicketInput {
            contact_id: keep(raw, "contact_id", &input.contact_id, &before.contact_id),
            account_id: keep(raw, "account_id", &input.account_id, &before.account_id),
            product_id: keep(raw, "product_id", &input.product_id, &before.product_id),
            order_id: keep(raw, "order_id", &input.order_id, &before.order_id),
            ..input.clone()
        };
        check_links(
            c,
            me,
            &TicketInput {
                account_id: merged.account_id.clone(),
                ..merged.clone()
            },
        )?;
        let priority = input.priority.unwrap_or(before.priority);
        let queue = match raw.get("queue_id") {
            Some(Value::Null) => None,
            Some(_) => Some(
                queues::active(c, "queue_id", input.queue_id.as_deref().unwrap_or_default())?.id,
            ),
            None => before.queue_id.clone(),
        };
        let mut assignee = keep(raw, "assignee_id", &input.assignee_id, &before.assignee_id);
        if let Some(a) = input
            .assignee_id
            .as_deref()
            .filter(|_| raw.get("assignee_id").is_some())
        {
            crm_customers::common::check_active_user(c, a, "assignee_id")?;
        }
        if queue != before.queue_id && raw.get("assignee_id").is_none() {
            assignee = match &queue {
                Some(q) => queues::pick_assignee(c, q)?,
                None => None,
            };
        }
        let tags = match &input.tags {
            Some(tags) => clean_tags(tags)?,
            None => before.tags.clone(),
        };
        let external = objects::external_key_after(
            raw,
            (before.external_source.clone(), before.external_id.clone()),
        )?;
        let dues = if priority != before.priority {
            sla::for_priority(c, &before_row_view(&before), priority)?
        } else {
            sla::Dues::kept(&before)
        };
        let changed = diesel::update(t::table.find(id))
            .filter(t::version.eq(before.version))
            .set((
                t::subject.eq(input.subject.as_deref().unwrap_or(&before.subject).trim()),
                t::description.eq(keep(
                    raw,
                    "description",
                    &input.description,
                    &before.description,
                )),
                t::contact_id.eq(&merged.contact_id),
                t::account_id.eq(&merged.account_id),
                t::product_id.eq(&merged.product_id),
                t::order_id.eq(&merged.order_id),
                t::category.eq(keep(raw, "category", &input.category, &before.category)),
                t::language.eq(keep(raw, "language", &input.language, &before.language)),
                t::priority.eq(crate::enum_text(priority)),
                t::priority_rank.eq(priority.rank()),
                t::queue_id.eq(&queue),
                t::assignee_id.eq(&assignee),
                t::tags.eq(json_text(&tags)),
                t::first_response_due_at.eq(&dues.first_response),
                t::resolution_due_at.eq(&dues.resolution),
                t::external_source.eq(&external.0),
                t::external_id.eq(&external.1),
                t::version.eq(before.version + 1),
                t::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find_any(c, id)?;
        let changes = audit::diff(&to_json(&before), &to_json(&after), &[]);
        record_as(
            c,
            &Actor::from(me),
            "ticket",
            "updated",
            id,
            changes,
            &after,
        )?;
        Ok(after)
    })
}

fn before_row_view(t: &Ticket) -> Ticket {
    t.clone()
}

/// A merge-patch field: absent keeps `before`, `null` clears, a value replaces.
fn keep(
    raw: &Value,
    field: &str,
    sent: &Option<String>,
    before: &Option<String>,
) -> Option<String> {
    match raw.get(field) {
        None => before.clone(),
        Some(Value::Null) => None,
        Some(_) => sent.clone(),
    }
}

/// Assign an unassigned ticket to the caller, if it still is (the queue pull).
pub fn claim(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Option<Ticket>> {
    db::write_tx(c, |c| {
        let taken = diesel::update(t::table.find(id))
            .filter(t::assignee_id.is_null())
            .filter(t::status.eq_any(UNSOLVED))
            .set((
                t::assignee_id.eq(&me.user_id),
                t::status.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
                    "CASE WHEN status = 'new' THEN 'open' ELSE status END",
                )),
                t::version.eq(t::version + 1),
                t::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        if taken == 0 {
            return Ok(None);
        }
        let after = find_any(c, id)?;
        let changes = json!({"assignee_id": {"from": null, "to": me.user_id}});
        record_as(
            c,
            &Actor::from(me),
            "ticket",
            "assigned",
            id,
            changes,
            &after,
        )?;
        Ok(Some(after))
    })
}

/// The body of a status change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
}

/// Change a ticket's status.
///
/// Moves the ticket along its lifecycle: new → open / pending customer / on hold / solved; open,
/// pending customer and on hold between each other and to solved; solved → closed, or back to
/// open within 14 days of being solved. Any other move is a 409 naming the allowed ones. Pending
/// customer stops the SLA clock and leaving it restarts it, pushing the due times back by the
/// business time it stood still. Solving a ticket mails its contact a satisfaction survey once
/// surveys are configured. Agents, managers and admins (`ServiceWrite`).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/status", tag = "tickets", operation_id = "set_ticket_status",
    params(("id" = String, Path, format = "uuid", description = "Ticket id"), crm_core::params::IfMatchParams),
    request_body = StatusChange,
    responses((status = 200, description = "The ticket in its new status", body = Ticket), WriteProblems))]
#[post("/tickets/{id}/status")]
pub async fn set_status(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    req: actix_web::HttpRequest,
    body: crm_core::extract::Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceWrite)?;
    let id = path_id(&id)?;
    let expected = crm_core::extract::if_match(&req)?;
    let to = objects::input::<StatusChange>(&body.into_inner())?.status;
    let ticket = state
        .db(move |c| {
            db::write_tx(c, |c| {
                change_status(c, &Actor::from(&me), Some(&me), &id, expected, to)
            })
        })
        .await?;
    Ok(respond_ticket(ticket))
}

pub fn respond_ticket(t: Ticket) -> HttpResponse {
    crm_core::respond::with_etag(t.version, &t)
}

/// Whether `from` may move to `to` now (a solved ticket only reopens within the window).
pub fn allowed(ticket: &Ticket, to: Status) -> Result<(), String> {
    let targets = TRANSITIONS
        .iter()
        .find(|(s, _)| *s == ticket.status)
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let names: Vec<String> = targets.iter().map(|s| crate::enum_text(*s)).collect();
    if !targets.contains(&to) {
        return Err(format!(
            "a {} ticket can move to {}",
            crate::enum_text(ticket.status),
            if names.is_empty() {
                "nothing: it is final".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    if ticket.status == Status::Solved && to == Status::Open && !reopenable(ticket) {
        return Err(format!(
            "the ticket was solved more than {REOPEN_DAYS} days ago; open a follow-up instead (it can move to closed)"
        ));
    }
    Ok(())
}

/// Whether a solved ticket may still be reopened.
pub fn reopenable(ticket: &Ticket) -> bool {
    ticket.status == Status::Solved
        && ticket
            .solved_at
            .as_deref()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            .is_some_and(|s| Utc::now() - s < chrono::Duration::days(REOPEN_DAYS))
}

/// Move a ticket to `to` (in the caller's transaction), with the SLA clock's pause and resume.
pub fn change_status(
    c: &mut DbConn,
    actor: &Actor,
    me: Option<&Principal>,
    id: &str,
    expected: Option<i32>,
    to: Status,
) -> ApiResult<Ticket> {
    let before = match me {
        Some(me) => {
            resource::find_for_write::<Tickets>(c, me, id)?;
            find_any(c, id)?
        }
        None => {
            db::lock_row(c, "tickets", id)?;
            find_any(c, id)?
        }
    };
    etag::check(expected, before.version)?;
    allowed(&before, to).map_err(|why| {
        ApiError::Conflict(why).with(json!({
            "allowed": TRANSITIONS.iter().find(|(s, _)| *s == before.status).map(|(_, t)| t.to_vec()).unwrap_or_default()
        }))
    })?;
    let now = Utc::now();
    let clock = sla::on_status(c, &before, to, now)?;
    let solved_at = match to {
        Status::Solved => Some(ids::format_ts(now)),
        Status::Closed => before.solved_at.clone(),
        _ => None,
    };
    diesel::update(t::table.find(id))
        .set((
            t::status.eq(crate::enum_text(to)),
            t::solved_at.eq(&solved_at),
            t::sla_paused_at.eq(&clock.paused_at),
            t::sla_state.eq(json_text(&clock.state)),
            t::first_response_due_at.eq(&clock.dues.first_response),
            t::resolution_due_at.eq(&clock.dues.resolution),
            t::version.eq(before.version + 1),
            t::updated_at.eq(ids::format_ts(now)),
        ))
        .execute(c)?;
    let after = find_any(c, id)?;
    let changes = json!({"status": {"from": before.status, "to": to}});
    record_as(c, actor, "ticket", "status_changed", id, changes, &after)?;
    if to == Status::Solved {
        mailing::solved(c, &after)?;
    }
    Ok(after)
}

pub fn load_page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Ticket>> {
    let mut q = crm_core::visible!(t::table.into_boxed::<MultiBackend>(), me, t::id);
    if !p.include_archived {
        q = q.filter(t::archived_at.is_null());
    }
    if let Some(s) = crate::enum_filter::<Status>(p, "status")? {
        q = q.filter(t::status.eq(crate::enum_text(s)));
    }
    if let Some(s) = crate::enum_filter::<Priority>(p, "priority")? {
        q = q.filter(t::priority.eq(crate::enum_text(s)));
    }
    if let Some(v) = p.id_filter("queue_id")? {
        q = q.filter(t::queue_id.eq(v));
    }
    if let Some(v) = p.filter("assignee_id") {
        let who = if v == "me" {
            me.user_id.clone()
        } else {
            p.id_filter("assignee_id")?.unwrap_or_default()
        };
        q = q.filter(t::assignee_id.eq(who));
    }
    if let Some(v) = p.id_filter("contact_id")? {
        q = q.filter(t::contact_id.eq(v));
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(t::account_id.eq(v));
    }
    if let Some(v) = p.filter("category") {
        q = q.filter(t::category.eq(v.to_string()));
    }
    match p.bool_filter("unsolved")? {
        Some(true) => q = q.filter(t::status.eq_any(UNSOLVED)),
        Some(false) => q = q.filter(t::status.ne_all(UNSOLVED)),
        None => {}
    }
    let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
    list::page(rows.into_iter().map(Ticket::from).collect(), p)
}

/// Tickets on the resource kernel: everyone inside the company reads them, agents work them.
pub struct Tickets;

impl Resource for Tickets {
    type Record = Ticket;
    type Input = TicketInput;
    type Patch = TicketInput;
    crm_core::resource_paths!("tickets");
    const ENTITY: &'static str = "ticket";
    const TABLE: &'static str = "tickets";
    const TAG: &'static str = "tickets";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["subject"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] =
        &[("channel", "a ticket keeps the channel it came in on")];

    crm_core::record_meta!(Ticket);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Ticket> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Ticket>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &TicketInput) -> ApiResult<Ticket> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Ticket> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(tickets);
}

pub const OBJECT: ObjectKind =
    resource::object::<Tickets>(crm_core::find_by_external!(tickets), None);

/// Validation problems for fields the inbound path fills itself.
pub fn field_error(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "invalid", message)])
}
