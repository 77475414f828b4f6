//! Queues: where tickets wait for an agent. Members have skills; a queue assigns new
//! tickets round-robin (members in the order listed, after the last one assigned),
//! least-loaded (the member with the fewest unsolved tickets, then the order listed), or
//! not at all (`pull`): agents call `POST /queues/{id}/next` for the oldest ticket of the
//! highest priority, and a conditional update hands each ticket to exactly one agent.

use crate::common::{audit_change, required};
use crate::tickets::{self, Ticket};
use actix_web::{post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::path_id;
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::respond::WriteProblems;
use crm_core::schema::{queues, tickets as t};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{check_active_user, json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// How a queue hands out new tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = QueueAssignment)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    RoundRobin,
    LeastLoaded,
    Pull,
}

/// A queue member and what they are good at.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Validate)]
#[serde(deny_unknown_fields)]
pub struct Member {
    #[schema(format = "uuid")]
    pub user_id: String,
    /// Free-form skills (`norwegian`, `billing`); routing rules may require one.
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 skills"))]
    #[schema(max_items = 50)]
    pub skills: Vec<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = queues)]
struct Row {
    id: String,
    name: String,
    description: Option<String>,
    assignment: String,
    members: String,
    manager_id: Option<String>,
    last_assigned_id: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub assignment: Assignment,
    pub members: Vec<Member>,
    /// Who SLA escalations of this queue's tickets go to.
    pub manager_id: Option<String>,
    /// The member round-robin assigned last.
    pub last_assigned_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for Queue {
    fn from(r: Row) -> Self {
        Queue {
            id: r.id,
            name: r.name,
            description: r.description,
            assignment: serde_json::from_value(Value::String(r.assignment))
                .unwrap_or(Assignment::Pull),
            members: parse_json(&r.members),
            manager_id: r.manager_id,
            last_assigned_id: r.last_assigned_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A queue as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub assignment: Option<Assignment>,
    #[validate(length(max = 500), nested)]
    #[schema(max_items = 500)]
    pub members: Option<Vec<Member>>,
    #[schema(format = "uuid")]
    pub manager_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(queues::table, queues::BoxedQuery<'static, MultiBackend>, {
    "name" => queues::name,
    "created_at" => queues::created_at,
    "id" => queues::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Queue> {
    queues::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Queue::from)
        .ok_or_else(|| ApiError::not_found("queue"))
}

/// An active queue named by an input field (422 naming the field otherwise).
pub fn active(c: &mut DbConn, field: &str, raw: &str) -> ApiResult<Queue> {
    let q = ids::parse_id(raw)
        .map(|id| find(c, &id))
        .transpose()
        .ok()
        .flatten()
        .filter(|q| q.archived_at.is_none());
    q.ok_or_else(|| ApiError::field(field, "not_found", "no active queue has this id"))
}

fn check_people(c: &mut DbConn, members: &[Member], manager: &Option<String>) -> ApiResult<()> {
    let mut errors: Vec<FieldError> = vec![];
    for (i, m) in members.iter().enumerate() {
        let field = format!("members[{i}].user_id");
        if check_active_user(c, &m.user_id, &field).is_err() {
            errors.push(FieldError::new(
                &field,
                "not_found",
                "no active user has this id",
            ));
        }
        if members.iter().take(i).any(|o| o.user_id == m.user_id) {
            errors.push(FieldError::new(&field, "duplicate", "is already a member"));
        }
    }
    if let Some(m) = manager {
        if check_active_user(c, m, "manager_id").is_err() {
            errors.push(FieldError::new(
                "manager_id",
                "not_found",
                "no active user has this id",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn create(c: &mut DbConn, me: &Principal, input: &QueueInput) -> ApiResult<Queue> {
    input.validate()?;
    let errors = required(&[("name", input.name.is_none())]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let members = input.members.clone().unwrap_or_default();
        check_people(c, &members, &input.manager_id)?;
        let (id, now) = (ids::new_id(), ids::now());
        let mode = input.assignment.unwrap_or(Assignment::RoundRobin);
        diesel::insert_into(queues::table)
            .values((
                queues::id.eq(&id),
                queues::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                queues::description.eq(&input.description),
                queues::assignment.eq(crate::enum_text(mode)),
                queues::members.eq(json_text(&members)),
                queues::manager_id.eq(&input.manager_id),
                queues::version.eq(1),
                queues::created_at.eq(&now),
                queues::updated_at.eq(&now),
            ))
            .execute(c)?;
        let q = find(c, &id)?;
        audit_change(c, me, "queue", "created", &id, to_json(&q), &q)?;
        Ok(q)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Queue> {
    let input: QueueInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Queues>(c, me, id)?;
        etag::check(expected, before.version)?;
        let members = input.members.clone().unwrap_or(before.members.clone());
        let manager = match raw.get("manager_id") {
            Some(Value::Null) => None,
            Some(_) => input.manager_id.clone(),
            None => before.manager_id.clone(),
        };
        check_people(c, &members, &manager)?;
        let description = match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description.clone(),
        };
        let changed = diesel::update(queues::table.find(id))
            .filter(queues::version.eq(before.version))
            .set((
                queues::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                queues::description.eq(&description),
                queues::assignment.eq(crate::enum_text(
                    input.assignment.unwrap_or(before.assignment),
                )),
                queues::members.eq(json_text(&members)),
                queues::manager_id.eq(&manager),
                queues::version.eq(before.version + 1),
                queues::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes =
            crm_core::audit::diff(&to_json(&before), &to_json(&after), &["last_assigned_id"]);
        audit_change(c, me, "queue", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Unsolved tickets assigned to each of `users`, for least-loaded assignment.
fn open_load(c: &mut DbConn, users: &[String]) -> ApiResult<Vec<(String, i64)>> {
    Ok(t::table
        .filter(t::assignee_id.eq_any(users))
        .filter(t::status.eq_any(tickets::UNSOLVED))
        .filter(t::archived_at.is_null())
        .group_by(t::assignee_id)
        .select((t::assignee_id.assume_not_null(), diesel::dsl::count_star()))
        .load(c)?)
}

/// The member a queue gives its next new ticket to (`None` for pull queues and queues
/// without members). Round-robin moves the queue's cursor, under the queue's row lock so
/// concurrent tickets take turns.
pub fn pick_assignee(c: &mut DbConn, queue_id: &str) -> ApiResult<Option<String>> {
    db::lock_row(c, "queues", queue_id)?;
    let q = find(c, queue_id)?;
    let ids: Vec<String> = q.members.iter().map(|m| m.user_id.clone()).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let pick = match q.assignment {
        Assignment::Pull => return Ok(None),
        Assignment::RoundRobin => {
            let after = q
                .last_assigned_id
                .as_ref()
                .and_then(|last| ids.iter().position(|i| i == last))
                .map_or(0, |p| p + 1);
            ids.get(after % ids.len()).cloned()
        }
        Assignment::LeastLoaded => {
            let load = open_load(c, &ids)?;
            let of = |u: &String| load.iter().find(|(i, _)| i == u).map_or(0, |l| l.1);
            ids.iter().min_by_key(|u| of(u)).cloned()
        }
    };
    if pick.is_some() {
        diesel::update(queues::table.find(queue_id))
            .set(queues::last_assigned_id.eq(&pick))
            .execute(c)?;
    }
    Ok(pick)
}

/// Hand the calling agent the next ticket of a queue.
///
/// Assigns to the caller the unassigned, unsolved ticket of this queue with the highest priority,
/// the oldest first among equals, and returns it (200); 204 when there is none. Two agents
/// pulling at once never get the same ticket. The caller must be a member of the queue (403
/// otherwise). Agents, managers and admins (`ServiceWrite`).
#[utoipa::path(post, path = "/api/v1/queues/{id}/next", tag = "queues", operation_id = "pull_next_ticket",
    params(("id" = String, Path, format = "uuid", description = "Queue id")),
    responses(
        (status = 200, description = "The ticket, now assigned to the caller", body = Ticket),
        (status = 204, description = "No ticket is waiting"),
        WriteProblems,
    ))]
#[post("/queues/{id}/next")]
pub async fn next(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceWrite)?;
    let id = path_id(&id)?;
    let taken = state.db(move |c| pull(c, &me, &id)).await?;
    Ok(match taken {
        Some(t) => HttpResponse::Ok().json(t),
        None => HttpResponse::NoContent().finish(),
    })
}

fn pull(c: &mut DbConn, me: &Principal, queue_id: &str) -> ApiResult<Option<Ticket>> {
    let q = find(c, queue_id)?;
    if q.archived_at.is_some() {
        return Err(ApiError::Conflict("the queue is archived".into()));
    }
    if !q.members.iter().any(|m| m.user_id == me.user_id) {
        return Err(ApiError::Forbidden(
            "only members of the queue pull from it".into(),
        ));
    }
    // Each round reads the best candidates and claims one with an update that only succeeds
    // while it is still unassigned; an agent who loses a race moves on to the next one.
    for _ in 0..50 {
        let candidates: Vec<String> = t::table
            .filter(t::queue_id.eq(queue_id))
            .filter(t::assignee_id.is_null())
            .filter(t::status.eq_any(tickets::UNSOLVED))
            .filter(t::archived_at.is_null())
            .order((t::priority_rank.desc(), t::created_at, t::id))
            .limit(20)
            .select(t::id)
            .load(c)?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for candidate in candidates {
            if let Some(ticket) = tickets::claim(c, me, &candidate)? {
                return Ok(Some(ticket));
            }
        }
    }
    Err(ApiError::Unavailable(
        "the queue is too busy right now; try again".into(),
    ))
}

/// Queues on the resource kernel: service managers set them up; agents see them.
pub struct Queues;

impl Resource for Queues {
    type Record = Queue;
    type Input = QueueInput;
    type Patch = QueueInput;
    crm_core::resource_paths!("queues");
    const ENTITY: &'static str = "queue";
    const TABLE: &'static str = "queues";
    const TAG: &'static str = "queues";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(Queue);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Queue> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Queue>> {
        let mut q = queues::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(queues::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(Queue::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &QueueInput) -> ApiResult<Queue> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Queue> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(queues);
}
