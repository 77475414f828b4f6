//! Response helpers shared by every resource, and the problem responses the spec documents.

use crate::error::Problem;
use actix_web::http::header;
use actix_web::HttpResponse;
use serde::Serialize;

/// `201 Created` with `Location` and `ETag`.
pub fn created<T: Serialize>(location: String, version: i32, body: &T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .insert_header((header::ETAG, crate::etag::format(version)))
        .json(body)
}

/// `200 OK` with `ETag`.
pub fn with_etag<T: Serialize>(version: i32, body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, crate::etag::format(version)))
        .json(body)
}

/// Problems a list endpoint can return.
#[derive(utoipa::IntoResponses)]
pub enum ListProblems {
    #[response(
        status = 400,
        description = "Unknown filter or sort field, bad cursor or limit",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "No or invalid credentials",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The caller's role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 429,
        description = "Rate limit reached; see Retry-After",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
}

/// Problems reading one record can return.
#[derive(utoipa::IntoResponses)]
pub enum ReadProblems {
    #[response(
        status = 400,
        description = "Malformed id",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "No or invalid credentials",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The caller's role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "No such record, or not visible to the caller",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 429,
        description = "Rate limit reached; see Retry-After",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
}

/// Problems a write (create, update, delete, action) can return.
#[derive(utoipa::IntoResponses)]
pub enum WriteProblems {
    #[response(
        status = 400,
        description = "Malformed JSON or id",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "No or invalid credentials",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The caller's role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "No such record, or not visible to the caller",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 409,
        description = "Conflicts with an existing record",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    #[response(
        status = 412,
        description = "If-Match names a stale version",
        content_type = "application/problem+json"
    )]
    PreconditionFailed(Problem),
    #[response(
        status = 413,
        description = "Body larger than the limit",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 422,
        description = "Invalid fields, listed in errors",
        content_type = "application/problem+json"
    )]
    Validation(Problem),
    #[response(
        status = 429,
        description = "Rate limit reached; see Retry-After",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
    #[response(
        status = 503,
        description = "The database is busy (the write waited past its turn) or unreachable; \
            nothing was written: retry after Retry-After",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}
