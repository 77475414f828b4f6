//! Admin view of the scheduler's tasks (`crate::scheduler`): their clocks, cadence changes,
//! and running a task now.

use crate::access::Permission;
use crate::audit::{self, Actor, Change};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, Json};
use crate::ids;
use crate::list::Page;
use crate::respond::{ReadProblems, WriteProblems};
use crate::scheduler::{self, Schedule};
use crate::schema::schedules;
use crate::state::AppState;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// List the scheduled tasks.
///
/// Every named periodic task this server runs, with its cadence, next tick, last firing and
/// the job that firing enqueued, in one page ordered by name. Admins only (`JobsManage`).
#[utoipa::path(get, path = "/api/v1/schedules", tag = "jobs",
    responses((status = 200, description = "Every scheduled task", body = Page<Schedule>), ReadProblems))]
#[get("/schedules")]
pub async fn list_schedules(state: web::Data<AppState>, me: Principal) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let data: Vec<Schedule> = state
        .db(|c| {
            Ok(schedules::table
                .order(schedules::name.asc())
                .select(Schedule::as_select())
                .load(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        data,
        next_cursor: None,
    }))
}

/// Get a scheduled task.
///
/// The task's clock: cadence, whether it is enabled, its next tick, how many ticks fired and
/// the last tick's job. An unknown name is a 404. Admins only (`JobsManage`).
#[utoipa::path(get, path = "/api/v1/schedules/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Task name, e.g. `lead-recycle`")),
    responses((status = 200, description = "The task's clock", body = Schedule, headers(("ETag" = String, description = "The task's version"))), ReadProblems))]
#[get("/schedules/{name}")]
pub async fn get_schedule(
    state: web::Data<AppState>,
    me: Principal,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let name = name.into_inner();
    let s = state.db(move |c| scheduler::find(c, &name)).await?;
    Ok(tagged(s))
}

fn tagged(s: Schedule) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("ETag", crate::etag::format(s.version)))
        .json(s)
}

/// A change to a task's clock.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// Seconds between ticks, 1 to 31 days' worth; the next tick moves to match.
    #[validate(range(min = 1, max = 2_678_400))]
    #[schema(minimum = 1, maximum = 2_678_400)]
    pub every_seconds: Option<i32>,
    /// Stop (`false`) or resume (`true`) firing.
    pub enabled: Option<bool>,
}

/// Change a task's cadence or pause it.
///
/// Sets `every_seconds` (the next tick is recomputed from now) and/or `enabled`. The change is
/// audited and survives restarts: a server starting later keeps the stored cadence. Honours
/// `If-Match`. Admins only (`JobsManage`).
#[utoipa::path(patch, path = "/api/v1/schedules/{name}", tag = "jobs",
    params(("name" = String, Path, description = "Task name"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; 412 when the task changed since")),
    request_body = SchedulePatch,
    responses((status = 200, description = "The task's clock after the change", body = Schedule, headers(("ETag" = String, description = "The task's version"))), WriteProblems))]
#[patch("/schedules/{name}")]
pub async fn update_schedule(
    state: web::Data<AppState>,
    me: Principal,
    req: HttpRequest,
    name: web::Path<String>,
    body: Json<SchedulePatch>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let expected = if_match(&req)?;
    let (name, patch) = (name.into_inner(), body.into_inner());
    patch.validate()?;
    let s = state
        .db(move |c| {
            crate::db::write_tx(c, |c| {
                let before = scheduler::find(c, &name)?;
                crate::etag::check(expected, before.version)?;
                let every = patch.every_seconds.unwrap_or(before.every_seconds);
                let next = if patch.every_seconds.is_some() {
                    scheduler::next_tick(chrono::Utc::now(), every)
                } else {
                    before.next_run_at.clone()
                };
                diesel::update(schedules::table.find(&name))
                    .set((
                        schedules::every_seconds.eq(every),
                        schedules::enabled.eq(patch.enabled.unwrap_or(before.enabled)),
                        schedules::next_run_at.eq(next),
                        schedules::version.eq(before.version + 1),
                        schedules::updated_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                let after = scheduler::find(c, &name)?;
                let (b, a) = (to_json(&before), to_json(&after));
                audit::record(
                    c,
                    Change {
                        actor: &Actor::from(&me),
                        action: "updated",
                        entity_type: "schedule",
                        entity_id: &after.id,
                        changes: audit::diff(&b, &a, &["next_run_at", "updated_at", "version"]),
                        record: a,
                    },
                )?;
                Ok(after)
            })
        })
        .await?;
    Ok(tagged(s))
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The job a manual run enqueued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledRun {
    /// See `GET /jobs/{id}`.
    pub job_id: String,
}

/// Run a scheduled task now.
///
/// Enqueues one run of the task (payload `tick: "manual"`) without moving its clock, and returns
/// the job's id; a disabled task runs too. Admins only (`JobsManage`).
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", tag = "jobs",
    params(("name" = String, Path, description = "Task name")),
    responses((status = 202, description = "The run is queued", body = ScheduledRun), WriteProblems))]
#[post("/schedules/{name}/run")]
pub async fn run_schedule(
    state: web::Data<AppState>,
    me: Principal,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let name = name.into_inner();
    let job_id = state
        .db(move |c| {
            crate::db::write_tx(c, |c| {
                scheduler::find(c, &name)?;
                let id = ids::new_id();
                scheduler::enqueue_run(c, &name, "manual", &id)?;
                Ok::<_, ApiError>(id)
            })
        })
        .await?;
    Ok(HttpResponse::Accepted().json(ScheduledRun { job_id }))
}
