//! Health checks and Prometheus metrics.

use actix_web::{get, web, HttpResponse};
use crm_core::access::{Access, Operation};
use crm_core::error::{ApiError, ApiResult, Problem};
use crm_core::schema::jobs;
use crm_core::AppState;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    queries: IntCounterVec,
    latency: HistogramVec,
    jobs: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "crm_http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let queries = IntCounterVec::new(
            Opts::new(
                "crm_db_queries_total",
                "Database statements run for HTTP requests, by method and route",
            ),
            &["method", "route"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new("crm_http_request_duration_seconds", "HTTP request latency"),
            &["method", "route"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let jobs = IntGaugeVec::new(
            Opts::new("crm_jobs", "Jobs in the queue by status"),
            &["status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queries.clone()),
            Box::new(latency.clone()),
            Box::new(jobs.clone()),
        ] {
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            queries,
            latency,
            jobs,
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration, queries: u64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.queries
            .with_label_values(&[method, route])
            .inc_by(queries);
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

/// Check that the process is up.
///
/// Answers 200 `{"status": "ok"}` whenever the server handles requests, without touching the
/// database; for liveness probes. Public: no token needed.
#[utoipa::path(get, path = "/health/live", tag = "health", security(()),
    responses((status = 200, description = "The process is up", body = Health)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

/// Check that the server can reach its database.
///
/// Runs `SELECT 1` on the database and answers 200 `{"status": "ok"}`, or a 503 problem when the
/// database does not answer; for readiness probes and load balancers. Public: no token needed.
#[utoipa::path(get, path = "/health/ready", tag = "health", security(()),
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .db(|c| {
            c.batch_execute("SELECT 1")
                .map_err(|e| ApiError::Unavailable(format!("database check failed: {e}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok".into(),
    }))
}

/// With `CRM_METRICS_TOKEN` set, only a scraper that sends it may read the metrics.
fn check_metrics_token(req: &actix_web::HttpRequest, state: &AppState) -> ApiResult<()> {
    let Some(expected) = &state.config.metrics_token else {
        return Ok(());
    };
    let sent = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests, so the time taken says nothing about the token.
    if crm_core::auth::secret_digest(sent) == crm_core::auth::secret_digest(expected.expose()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the metrics need Authorization: Bearer <CRM_METRICS_TOKEN>".into(),
        ))
    }
}

/// Get Prometheus metrics.
///
/// Prometheus text exposition: HTTP requests by method, route and status, request latency, database
/// statements per route, and jobs in the queue by status (counted at each scrape). Public, with no
/// customer data; when the server sets `CRM_METRICS_TOKEN`, send it as
/// `Authorization: Bearer <token>` or get a 401.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "CRM_METRICS_TOKEN is set and was not sent", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/metrics")]
pub async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    m: web::Data<Metrics>,
) -> ApiResult<HttpResponse> {
    check_metrics_token(&req, &state)?;
    let counts: Vec<(String, i64)> = state
        .db(|c| {
            Ok(jobs::table
                .group_by(jobs::status)
                .select((jobs::status, diesel::dsl::count_star()))
                .load(c)?)
        })
        .await?;
    m.jobs.reset();
    for (status, n) in counts {
        m.jobs.with_label_values(&[&status]).set(n);
    }
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut buf)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(buf))
}

/// Health and metrics need no user credentials (metrics carry no customer data); the
/// metrics can be kept to a scraper's token with `CRM_METRICS_TOKEN`.
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/health/live", Access::Public),
    Operation::new("GET", "/health/ready", Access::Public),
    Operation::new("GET", "/metrics", Access::Public),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(live).service(ready).service(metrics);
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(live, ready, metrics),
    tags((name = "health", description = "Liveness, readiness and Prometheus metrics, for load balancers and monitoring; no token needed"))
)]
pub struct HealthApi;
