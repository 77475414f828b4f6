//! Activities: calls, emails, meetings, notes, tasks, SMS, social messages, faxes and
//! visits, linked to any mix of contacts, accounts and (as they land) leads,
//! opportunities and tickets. Each one shows on the timeline of what it is linked to.
//! `GET /activities?assignee_id=me&status=open&due_before=…` is a rep's to-do list.

use crate::common;
use crm_core::access::{Ownership, Permission};
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{activities as act, activity_links as al, contacts, users};
use crm_core::timeline;
use crm_core::{etag, ids, visibility};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// Sorts activities without a due date after every dated one.
pub const NO_DUE_DATE: &str = "9999-12-31T23:59:59.999999Z";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Call,
    Email,
    Meeting,
    Note,
    Task,
    Sms,
    SocialMessage,
    Fax,
    Visit,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Completed,
    Cancelled,
}

/// Record types an activity can be linked to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    Contact,
    Account,
    Lead,
    Opportunity,
    Ticket,
}

fn text<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub entity_type: LinkType,
    #[schema(format = "uuid")]
    pub entity_id: String,
}

#[derive(Queryable, Clone)]
struct ActivityRow {
    id: String,
    kind: String,
    direction: Option<String>,
    channel: Option<String>,
    subject: String,
    body: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    due_at: Option<String>,
    _due_sort: String,
    status: String,
    completed_at: Option<String>,
    assignee_id: Option<String>,
    owner_id: Option<String>,
    outcome: Option<String>,
    next_step: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    pub id: String,
    pub kind: Kind,
    pub direction: Option<Direction>,
    /// Free text: `phone`, `whatsapp`, `linkedin`, `in_person`…
    pub channel: Option<String>,
    pub subject: String,
    pub body: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub due_at: Option<String>,
    pub status: Status,
    pub completed_at: Option<String>,
    pub assignee_id: Option<String>,
    /// Who recorded it.
    pub owner_id: Option<String>,
    pub outcome: Option<String>,
    pub next_step: Option<String>,
    pub links: Vec<Link>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    pub kind: Option<Kind>,
    pub direction: Option<Direction>,
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub channel: Option<String>,
    #[validate(length(min = 1, max = 300, message = "must be 1 to 300 characters"))]
    #[schema(min_length = 1, max_length = 300)]
    pub subject: Option<String>,
    #[validate(length(max = 100_000))]
    #[schema(max_length = 100000)]
    pub body: Option<String>,
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// `completed` stamps `completed_at`.
    pub status: Option<Status>,
    #[schema(format = "uuid")]
    pub assignee_id: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub outcome: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub next_step: Option<String>,
    /// Replaces the links when given. Contacts and accounts must exist.
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub links: Option<Vec<Link>>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["due_at", "created_at", "updated_at"],
    default_sort: "-created_at",
    filters: &[
        Filter::new("assignee_id", FilterKind::IdOrMe, "A user id, or `me`"),
        Filter::of::<Status>("status", "open, completed or cancelled"),
        Filter::of::<Kind>("kind", "call, email, meeting, note, task, …"),
        Filter::time("due_before", "Due before this time"),
        Filter::time("due_after", "Due after this time"),
        Filter::id("contact_id", "Linked to this contact"),
        Filter::id("account_id", "Linked to this account"),
        Filter::time("created_after", "RFC 3339 timestamp"),
    ],
    search: None,
    null_sorts_as: &[("due_at", NO_DUE_DATE)],
};

crm_core::sortable!(act::table, act::BoxedQuery<'static, MultiBackend>, {
    "due_at" => act::due_sort,
    "created_at" => act::created_at,
    "updated_at" => act::updated_at,
    "id" => act::id,
});

/// Activities with their links: one query for all of them.
fn assemble_many(conn: &mut DbConn, rows: Vec<ActivityRow>) -> ApiResult<Vec<Activity>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let links: Vec<(String, Link)> = al::table
        .filter(al::activity_id.eq_any(&ids))
        .order((al::entity_type.asc(), al::entity_id.asc()))
        .select((al::activity_id, al::entity_type, al::entity_id))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .filter_map(|(activity, t, entity_id)| {
            let link = parse(&t).map(|entity_type| Link {
                entity_type,
                entity_id,
            });
            link.map(|l| (activity, l))
        })
        .collect();
    Ok(crm_core::list::with_children(
        rows,
        links,
        |r| &r.id,
        activity,
    ))
}

fn assemble(conn: &mut DbConn, r: ActivityRow) -> ApiResult<Activity> {
    crm_core::list::only(assemble_many(conn, vec![r])?)
}

fn activity(r: ActivityRow, links: Vec<Link>) -> Activity {
    Activity {
        kind: parse(&r.kind).unwrap_or(Kind::Note),
        direction: r.direction.as_deref().and_then(parse),
        status: parse(&r.status).unwrap_or(Status::Open),
        links,
        id: r.id,
        channel: r.channel,
        subject: r.subject,
        body: r.body,
        starts_at: r.starts_at,
        ends_at: r.ends_at,
        due_at: r.due_at,
        completed_at: r.completed_at,
        assignee_id: r.assignee_id,
        owner_id: r.owner_id,
        outcome: r.outcome,
        next_step: r.next_step,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived_at: r.archived_at,
    }
}

fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Activity> {
    visibility::check_sees(me, "activity")?;
    let row = act::table
        .find(id)
        .first::<ActivityRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    assemble(conn, row)
}

fn time_field(errors: &mut Vec<FieldError>, name: &str, raw: &Option<String>) -> Option<String> {
    let raw = raw.as_ref()?;
    let t = ids::normalise_ts(raw);
    if t.is_none() {
        errors.push(FieldError::new(
            name,
            "datetime",
            "must be an RFC 3339 timestamp",
        ));
    }
    t
}

struct Checked {
    starts_at: Option<String>,
    ends_at: Option<String>,
    due_at: Option<String>,
    assignee: Option<String>,
}

fn check(conn: &mut DbConn, input: &ActivityInput) -> ApiResult<Checked> {
    input.validate()?;
    let mut errors = vec![];
    let starts_at = time_field(&mut errors, "starts_at", &input.starts_at);
    let ends_at = time_field(&mut errors, "ends_at", &input.ends_at);
    let due_at = time_field(&mut errors, "due_at", &input.due_at);
    if let (Some(s), Some(e)) = (&starts_at, &ends_at) {
        if e < s {
            errors.push(FieldError::new(
                "ends_at",
                "order",
                "must not be before starts_at",
            ));
        }
    }
    let assignee = match &input.assignee_id {
        None => None,
        Some(raw) => {
            let id = ids::parse_id(raw);
            let ok = match &id {
                Some(id) => {
                    users::table
                        .filter(users::id.eq(id))
                        .filter(users::archived_at.is_null())
                        .count()
                        .get_result::<i64>(conn)?
                        > 0
                }
                None => false,
            };
            if !ok {
                errors.push(FieldError::new("assignee_id", "reference", "no such user"));
            }
            id
        }
    };
    for (i, link) in input.links.iter().flatten().enumerate() {
        let id = ids::parse_id(&link.entity_id);
        let ok = match (link.entity_type, &id) {
            (_, None) => false,
            (LinkType::Contact, Some(id)) => {
                contacts::table
                    .filter(contacts::id.eq(id))
                    .filter(contacts::archived_at.is_null())
                    .count()
                    .get_result::<i64>(conn)?
                    > 0
            }
            (LinkType::Account, Some(id)) => crate::accounts::exists(conn, id)?,
            // Leads, opportunities and tickets are checked by their domains as they land.
            (_, Some(_)) => true,
        };
        if !ok {
            errors.push(FieldError::new(
                &format!("links[{i}].entity_id"),
                "reference",
                "no such record",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Checked {
        starts_at,
        ends_at,
        due_at,
        assignee,
    })
}

fn write_links(conn: &mut DbConn, id: &str, links: &[Link]) -> ApiResult<()> {
    diesel::delete(al::table.filter(al::activity_id.eq(id))).execute(conn)?;
    let mut seen = vec![];
    for l in links {
        let key = (
            text(&l.entity_type),
            ids::parse_id(&l.entity_id).unwrap_or_default(),
        );
        if seen.contains(&key) {
            continue;
        }
        diesel::insert_into(al::table)
            .values((
                al::activity_id.eq(id),
                al::entity_type.eq(&key.0),
                al::entity_id.eq(&key.1),
            ))
            .execute(conn)?;
        seen.push(key);
    }
    Ok(())
}

/// Put a line on the timeline of every record the activity is linked to.
fn to_timelines(conn: &mut DbConn, me: &Principal, a: &Activity, what: &str) -> ApiResult<()> {
    let kind = format!("activity.{}", text(&a.kind));
    for link in &a.links {
        timeline::add(
            conn,
            timeline::NewEntry {
                entity_type: &text(&link.entity_type),
                entity_id: &link.entity_id,
                kind: &kind,
                summary: format!("{what}: {}", a.subject),
                source_type: "activity",
                source_id: &a.id,
                actor: &Actor::from(me),
                data: serde_json::json!({"subject": a.subject, "status": a.status, "direction": a.direction, "outcome": a.outcome, "due_at": a.due_at}),
            },
        )?;
    }
    Ok(())
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Activity,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "activity",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

pub fn create_activity(
    conn: &mut DbConn,
    me: &Principal,
    input: &ActivityInput,
) -> ApiResult<Activity> {
    let kind = input
        .kind
        .ok_or_else(|| common::invalid("kind", "required", "is required"))?;
    let subject = input
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| common::invalid("subject", "required", "is required"))?
        .to_string();
    db::write_tx(conn, |c| {
        let checked = check(c, input)?;
        let status = input.status.unwrap_or(if kind == Kind::Task {
            Status::Open
        } else {
            Status::Completed
        });
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(act::table)
            .values((
                act::id.eq(&id),
                act::kind.eq(text(&kind)),
                act::direction.eq(input.direction.map(|d| text(&d))),
                act::channel.eq(&input.channel),
                act::subject.eq(&subject),
                act::body.eq(&input.body),
                act::starts_at.eq(&checked.starts_at),
                act::ends_at.eq(&checked.ends_at),
                act::due_at.eq(&checked.due_at),
                act::due_sort.eq(checked.due_at.clone().unwrap_or(NO_DUE_DATE.into())),
                act::status.eq(text(&status)),
                act::completed_at.eq((status == Status::Completed).then(|| now.clone())),
                act::assignee_id.eq(checked.assignee.clone().or(Some(me.user_id.clone()))),
                act::owner_id.eq(&me.user_id),
                act::outcome.eq(&input.outcome),
                act::next_step.eq(&input.next_step),
                act::version.eq(1),
                act::created_at.eq(&now),
                act::updated_at.eq(&now),
            ))
            .execute(c)?;
        write_links(c, &id, input.links.as_deref().unwrap_or(&[]))?;
        let a = find(c, me, &id)?;
        to_timelines(c, me, &a, "logged")?;
        record(c, me, "created", &id, common::to_json(&a), &a)?;
        Ok(a)
    })
}

fn update_activity(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Activity> {
    let input: ActivityInput = crm_core::objects::input(raw)?;
    let cleared = |f: &str| raw.get(f).is_some_and(|v| v.is_null());
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Activities>(c, me, id)?;
        etag::check(expected, before.version)?;
        let checked = check(c, &input)?;
        let pick = |f: &str, new: Option<String>, old: &Option<String>| {
            if cleared(f) {
                None
            } else {
                new.or(old.clone())
            }
        };
        let due_at = pick("due_at", checked.due_at, &before.due_at);
        let status = input.status.unwrap_or(before.status);
        let now = ids::now();
        let completed_at = match (status, before.status) {
            (Status::Completed, Status::Completed) => before.completed_at.clone(),
            (Status::Completed, _) => Some(now.clone()),
            _ => None,
        };
        let changed = diesel::update(act::table.find(id))
            .filter(act::version.eq(before.version))
            .set((
                act::kind.eq(text(&input.kind.unwrap_or(before.kind))),
                act::direction.eq(if cleared("direction") {
                    None
                } else {
                    input.direction.or(before.direction).map(|d| text(&d))
                }),
                act::channel.eq(pick("channel", input.channel.clone(), &before.channel)),
                act::subject.eq(input
                    .subject
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&before.subject)),
                act::body.eq(pick("body", input.body.clone(), &before.body)),
                act::starts_at.eq(pick("starts_at", checked.starts_at, &before.starts_at)),
                act::ends_at.eq(pick("ends_at", checked.ends_at, &before.ends_at)),
                act::due_sort.eq(due_at.clone().unwrap_or(NO_DUE_DATE.into())),
                act::due_at.eq(due_at),
                act::status.eq(text(&status)),
                act::completed_at.eq(completed_at),
                act::assignee_id.eq(pick("assignee_id", checked.assignee, &before.assignee_id)),
                act::outcome.eq(pick("outcome", input.outcome.clone(), &before.outcome)),
                act::next_step.eq(pick(
                    "next_step",
                    input.next_step.clone(),
                    &before.next_step,
                )),
                act::version.eq(before.version + 1),
                act::updated_at.eq(&now),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        if let Some(links) = &input.links {
            write_links(c, id, links)?;
        }
        let after = find(c, me, id)?;
        if after.status != before.status {
            to_timelines(c, me, &after, &format!("marked {}", text(&after.status)))?;
        }
        record(
            c,
            me,
            "updated",
            id,
            audit::diff(&common::to_json(&before), &common::to_json(&after), &[]),
            &after,
        )?;
        Ok(after)
    })
}

fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Activity>> {
    let mut q = crm_core::visible!(act::table.into_boxed::<MultiBackend>(), me, act::id);
    if !p.include_archived {
        q = q.filter(act::archived_at.is_null());
    }
    if let Some(v) = p.filter("assignee_id") {
        let id = if v == "me" {
            me.user_id.clone()
        } else {
            ids::parse_id(v)
                .ok_or_else(|| ApiError::BadRequest("assignee_id must be a UUID or me".into()))?
        };
        q = q.filter(act::assignee_id.eq(id));
    }
    if let Some(v) = p.filter("status") {
        let s: Status =
            parse(v).ok_or_else(|| ApiError::BadRequest(format!("unknown status {v:?}")))?;
        q = q.filter(act::status.eq(text(&s)));
    }
    if let Some(v) = p.filter("kind") {
        let k: Kind =
            parse(v).ok_or_else(|| ApiError::BadRequest(format!("unknown kind {v:?}")))?;
        q = q.filter(act::kind.eq(text(&k)));
    }
    if let Some(t) = p.time_filter("due_before")? {
        q = q.filter(act::due_sort.lt(t));
    }
    if let Some(t) = p.time_filter("due_after")? {
        q = q.filter(act::due_at.gt(t));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(act::created_at.gt(t));
    }
    for (filter, kind) in [("contact_id", "contact"), ("account_id", "account")] {
        if let Some(v) = p.id_filter(filter)? {
            q = q.filter(
                act::id.eq_any(
                    al::table
                        .filter(al::entity_type.eq(kind))
                        .filter(al::entity_id.eq(v))
                        .select(al::activity_id),
                ),
            );
        }
    }
    let rows: Vec<ActivityRow> = apply_sort(q, p)?.load(conn)?;
    list::page(assemble_many(conn, rows)?, p)
}

/// Activities on the resource kernel.
pub struct Activities;

impl Resource for Activities {
    type Record = Activity;
    type Input = ActivityInput;
    type Patch = ActivityInput;
    crm_core::resource_paths!("activities");
    const ENTITY: &'static str = "activity";
    const TABLE: &'static str = "activities";
    const TAG: &'static str = "activities";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::CustomersWrite;
    const EDITS: Ownership = common::EDITS;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["kind", "subject"];

    crm_core::record_meta!(Activity, owner_id);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Activity> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Activity>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &ActivityInput) -> ApiResult<Activity> {
        create_activity(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Activity> {
        update_activity(c, me, id, expected, patch)
    }

    /// The recorder, the assignee, their teams, and managers may change an activity.
    fn require_edit(c: &mut DbConn, me: &Principal, a: &Activity) -> ApiResult<()> {
        if a.assignee_id.as_deref() == Some(me.user_id.as_str()) {
            return Ok(());
        }
        common::require_edit(c, me, a.owner_id.as_deref(), "activity")
    }

    crm_core::archive_stamp!(activities);
}
