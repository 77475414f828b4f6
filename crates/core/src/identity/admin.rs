//! Admin views of the platform: the job queue (including dead jobs) and the audit log.

use crate::access::Permission;
use crate::auth::Principal;
use crate::db::MultiBackend;
use crate::error::{ApiError, ApiResult};
use crate::extract::path_id;
use crate::ids;
use crate::jobs::{Job, DEAD, QUEUED};
use crate::list::{self, Filter, ListSpec, Page};
use crate::params::PageParams;
use crate::respond::{ListProblems, ReadProblems, WriteProblems};
use crate::schema::{audit_log, jobs};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

const JOB_LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "run_at", "updated_at"],
    default_sort: "-created_at",
    filters: &[
        Filter::text("status", "queued, running, succeeded or dead"),
        Filter::text("kind", "Job kind"),
    ],
    search: None,
    null_sorts_as: &[],
};

mod job_sort {
    use super::*;
    crate::sortable!(jobs::table, jobs::BoxedQuery<'static, MultiBackend>, {
        "created_at" => jobs::created_at,
        "run_at" => jobs::run_at,
        "updated_at" => jobs::updated_at,
        "id" => jobs::id,
    });
}

/// List background jobs.
///
/// A page of the job queue, dead jobs included, newest first unless `sort` says otherwise. Filter
/// on `status` (`queued`, `running`, `succeeded`, `dead`) and `kind`, and page with `limit` and
/// `cursor`. Admins only (`JobsManage`).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|run_at|updated_at)(,-?(created_at|run_at|updated_at))*$", description = "created_at, run_at, updated_at; `-` for descending (default -created_at)"),
        ("status" = Option<String>, Query, nullable = false, min_length = 1, description = "queued, running, succeeded or dead"),
        ("kind" = Option<String>, Query, nullable = false, min_length = 1, description = "Job kind"),
    ),
    responses((status = 200, description = "A page of jobs", body = Page<Job>), ListProblems))]
#[get("/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let p = list::parse(query.into_inner(), &JOB_LIST)?;
    let page = state
        .db(move |c| {
            let mut q = jobs::table.into_boxed::<MultiBackend>();
            if let Some(s) = p.filter("status") {
                q = q.filter(jobs::status.eq(s.to_string()));
            }
            if let Some(k) = p.filter("kind") {
                q = q.filter(jobs::kind.eq(k.to_string()));
            }
            let rows: Vec<Job> = job_sort::apply_sort(q, &p)?.load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a background job.
///
/// Returns the job with its payload, attempts, schedule, lease and `last_error`; an unknown id is a
/// 404. Admins only (`JobsManage`).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses((status = 200, description = "The job, with its last error", body = Job), ReadProblems))]
#[get("/jobs/{id}")]
pub async fn get_job(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let id = path_id(&id)?;
    let job: Job = state
        .db(move |c| {
            jobs::table
                .find(&id)
                .first::<Job>(c)
                .optional()?
                .ok_or_else(|| ApiError::not_found("job"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(job))
}

/// Retry a dead background job.
///
/// Queues a `dead` job again to run now, with its attempt count reset to 0, and returns it. A job
/// in any other status is a 409 naming that status; an unknown id is a 404. Admins only
/// (`JobsManage`); the retry is not written to the audit log.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses((status = 200, description = "The dead job is queued again with fresh attempts", body = Job), WriteProblems))]
#[post("/jobs/{id}/retry")]
pub async fn retry_job(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::JobsManage)?;
    let id = path_id(&id)?;
    let job: Job = state
        .db(move |c| {
            let now = ids::now();
            let n = diesel::update(jobs::table.find(&id).filter(jobs::status.eq(DEAD)))
                .set((
                    jobs::status.eq(QUEUED),
                    jobs::attempts.eq(0),
                    jobs::run_at.eq(&now),
                    jobs::updated_at.eq(&now),
                    jobs::finished_at.eq(None::<String>),
                ))
                .execute(c)?;
            let job = jobs::table
                .find(&id)
                .first::<Job>(c)
                .optional()?
                .ok_or_else(|| ApiError::not_found("job"))?;
            if n == 0 {
                return Err(ApiError::Conflict(format!(
                    "only dead jobs can be retried; this one is {}",
                    job.status
                )));
            }
            Ok(job)
        })
        .await?;
    Ok(HttpResponse::Ok().json(job))
}

/// One audited change.
#[derive(Debug, Queryable, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub occurred_at: String,
    pub actor_id: Option<String>,
    /// `user`, `api_key` or `system`.
    pub actor_kind: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    /// Changed fields as `{"field": {"from": …, "to": …}}`.
    #[schema(value_type = Object)]
    #[serde(serialize_with = "raw_json")]
    pub changes: String,
    pub request_id: Option<String>,
}

fn raw_json<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    serde_json::from_str::<serde_json::Value>(raw)
        .unwrap_or_default()
        .serialize(s)
}

const AUDIT_LIST: ListSpec = ListSpec {
    sort_fields: &["occurred_at"],
    default_sort: "-occurred_at",
    filters: &[
        Filter::text("entity_type", "user, team, api_key, …"),
        Filter::id("entity_id", "Changes to one record"),
        Filter::id("actor_id", "Changes made by one user"),
        Filter::text("action", "created, updated, archived, restored, …"),
    ],
    search: None,
    null_sorts_as: &[],
};

mod audit_sort {
    use super::*;
    crate::sortable!(audit_log::table, audit_log::BoxedQuery<'static, MultiBackend>, {
        "occurred_at" => audit_log::occurred_at,
        "id" => audit_log::id,
    });
}

/// List audit log entries.
///
/// Who changed what and when, newest first (`sort=occurred_at` for oldest first). Filter on
/// `entity_type`, `entity_id`, `actor_id` and `action`, and page with `limit` and `cursor`. Each
/// entry's `changes` holds `{"field": {"from": …, "to": …}}` (the new record on a create), and
/// reads `{"erased": true}` for an erased contact. Admins only (`AuditRead`).
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(occurred_at)(,-?(occurred_at))*$", description = "occurred_at or -occurred_at (default)"),
        ("entity_type" = Option<String>, Query, nullable = false, min_length = 1, description = "user, team, api_key, …"),
        ("entity_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Changes to one record"),
        ("actor_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Changes made by one user"),
        ("action" = Option<String>, Query, nullable = false, min_length = 1, description = "created, updated, archived, restored, …"),
    ),
    responses((status = 200, description = "A page of audit entries", body = Page<AuditEntry>), ListProblems))]
#[get("/audit-log")]
pub async fn list_audit(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::AuditRead)?;
    let p = list::parse(query.into_inner(), &AUDIT_LIST)?;
    let page = state
        .db(move |c| {
            let mut q = audit_log::table.into_boxed::<MultiBackend>();
            p.id_filter("entity_id")?;
            p.id_filter("actor_id")?;
            for (name, col) in [
                ("entity_type", 0),
                ("entity_id", 1),
                ("actor_id", 2),
                ("action", 3),
            ] {
                if let Some(v) = p.filter(name).map(str::to_string) {
                    q = match col {
                        0 => q.filter(audit_log::entity_type.eq(v)),
                        1 => q.filter(audit_log::entity_id.eq(v)),
                        2 => q.filter(audit_log::actor_id.eq(v)),
                        _ => q.filter(audit_log::action.eq(v)),
                    };
                }
            }
            let rows: Vec<AuditEntry> = audit_sort::apply_sort(q, &p)?.load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
