//! Gateway middleware: request ids with structured request logs and metrics, and a
//! last line of defence that turns any non-problem error body into problem+json.

use crate::observability::Metrics;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use crm_core::error::{ApiError, PROBLEM_JSON};
use std::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// Give every request an id (the client's `X-Request-Id` if sane, else a new one),
/// echo it on the response, log the request, and count it.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crm_core::ids::new_id);
    let started = Instant::now();
    let method = req.method().to_string();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    // Only the route pattern is logged, never the path or query: they carry emails
    // (`/contacts/by-email?email=`), search words and external keys.
    let span = tracing::info_span!("request", request_id = %request_id, %method);
    let _entered = span.enter();
    let (res, queries) = crm_core::db::counting_queries(next.call(req)).await;
    let mut res = res?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    if let Some(m) = metrics {
        m.observe(&method, &route, status, elapsed, queries);
    }
    tracing::info!(status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, queries, route = %route, "request");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), v);
    }
    Ok(res)
}

fn problem_for(status: actix_web::http::StatusCode, original: &str) -> ApiError {
    let detail = if original.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        original.trim().to_string()
    };
    match status.as_u16() {
        400 => ApiError::BadRequest(detail),
        401 => ApiError::Unauthorized(detail),
        403 => ApiError::Forbidden(detail),
        404 => ApiError::NotFound(detail),
        409 => ApiError::Conflict(detail),
        413 => ApiError::PayloadTooLarge(detail),
        415 => ApiError::UnsupportedMediaType(detail),
        422 => ApiError::validation(vec![]),
        500..=599 => ApiError::Internal(detail),
        _ => ApiError::BadRequest(detail),
    }
}

/// Errors raised inside actix itself (405, payload errors, …) arrive as plain text.
/// Rewrite them as problem documents, keeping the status.
pub async fn problem_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !status.is_client_error() && !status.is_server_error() || is_problem {
        return Ok(res.map_into_boxed_body());
    }
    let (req, res) = res.into_parts();
    let headers = res.headers().clone();
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let mut problem = problem_for(status, &String::from_utf8_lossy(&body)).error_response();
    *problem.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, problem))
}

/// The API answers JSON only: nothing in it may run as a page or be framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
/// The docs page runs Swagger UI from this server and nothing else (no online validator,
/// no third-party assets).
const DOCS_CSP: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every response: `nosniff`, a content security policy (strict on
/// the API, one that lets Swagger UI work on `/docs`), no framing, and `no-store` on API
/// responses unless a handler chose its own caching: they carry customer data, tokens and
/// once-shown secrets, none of which belongs in a shared or disk cache.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let docs = req.path().starts_with("/docs");
    let api = req.path().starts_with("/api/");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let csp = if docs { DOCS_CSP } else { API_CSP };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// Longest request target served (the spec's longest query, an import mapping of 10,000
/// characters, percent-encoded, fits). Beyond it the answer is a 414 problem document.
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Largest header section served; beyond it a 431 problem document.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuse over-long targets and header sections with a problem document before anything
/// reads them. (Past 64 KiB for a target or 128 KiB for the head, actix's own parser
/// refuses the request with an empty 400 or 431 before any application code runs.)
pub async fn request_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let uri_len = req.uri().to_string().len();
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_bytes().len() + 4)
        .sum();
    let refusal = if uri_len > MAX_URI_BYTES {
        Some(ApiError::UriTooLong(format!(
            "the request target is {uri_len} bytes; the limit is {MAX_URI_BYTES}"
        )))
    } else if header_len > MAX_HEADER_BYTES {
        Some(ApiError::HeadersTooLarge(format!(
            "the headers are {header_len} bytes; the limit is {MAX_HEADER_BYTES}"
        )))
    } else {
        None
    };
    match refusal {
        Some(e) => Ok(req.into_response(e.error_response())),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}
