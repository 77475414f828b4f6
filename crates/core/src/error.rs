//! RFC 9457 problem responses. Every error the API returns goes through `ApiError`,
//! including actix's own extractor failures (see `extract`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub type ApiResult<T> = Result<T, ApiError>;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// The field, as a JSON path (`email`, `address.city`).
    pub field: String,
    /// Machine-readable reason (`email`, `length`, `required`, `invalid_type`…).
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:crm:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable problem code, also the last part of `type`.
    pub code: String,
    /// Per-field errors, present for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members particular to a problem (the failing batch item, how to resync…).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(ignore)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this route does not accept that method; it accepts {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PreconditionRequired(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request target is longer than the server reads.
    #[error("{0}")]
    UriTooLong(String),
    /// The request's header section is larger than the server reads.
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// The server runs as much of this kind of work as it allows at once: 503 with
    /// `Retry-After`.
    #[error("{detail}")]
    Busy { detail: String, retry_after: u64 },
    /// Another problem with extra members for the client (which item failed, how to resync).
    #[error("{inner}")]
    Detailed {
        inner: Box<ApiError>,
        extra: serde_json::Map<String, serde_json::Value>,
    },
    /// Internal failures: logged in full, shown to the client only as a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        ApiError::Validation {
            detail: "the request has invalid fields".into(),
            errors,
        }
    }

    /// A validation problem's fields as parts of `prefix` (`opportunity.pipeline_id`),
    /// for a write made from part of a larger request; other problems unchanged.
    pub fn prefixed(self, prefix: &str) -> Self {
        match self {
            ApiError::Validation { detail, errors } => ApiError::Validation {
                detail,
                errors: errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: format!("{prefix}.{}", e.field),
                        ..e
                    })
                    .collect(),
            },
            other => other,
        }
    }

    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, code, message)])
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// This problem with extra members.
    pub fn with(self, extra: serde_json::Value) -> Self {
        let serde_json::Value::Object(extra) = extra else {
            return self;
        };
        match self {
            ApiError::Detailed {
                inner,
                extra: mut old,
            } => {
                old.extend(extra);
                ApiError::Detailed { inner, extra: old }
            }
            other => ApiError::Detailed {
                inner: Box::new(other),
                extra,
            },
        }
    }

    /// The problem document as JSON, for responses that carry several (batch items).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.problem()).unwrap_or_default()
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::Gone(_) => "gone",
            ApiError::Detailed { inner, .. } => inner.code(),
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::PreconditionRequired(_) => "precondition-required",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UriTooLong(_) => "uri-too-long",
            ApiError::HeadersTooLarge(_) => "headers-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Validation { .. } => "validation-failed",
            ApiError::TooManyRequests { .. } => "rate-limited",
            ApiError::Unavailable(_) | ApiError::Busy { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn problem(&self) -> Problem {
        if let ApiError::Detailed { inner, extra } = self {
            let mut p = inner.problem();
            p.extra.extend(extra.clone());
            return p;
        }
        let status = self.status_code();
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred; it has been logged".into(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Validation { errors, .. } => errors.clone(),
            _ => vec![],
        };
        Problem {
            type_uri: format!("urn:crm:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code: self.code().to_string(),
            errors,
            extra: serde_json::Map::new(),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a 503 asks the client to wait before retrying (`Retry-After`).
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Detailed { inner, .. } => inner.status_code(),
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Detailed { inner, .. } = self {
            let body = serde_json::to_string(&self.problem()).unwrap_or_default();
            return inner
                .error_response()
                .set_body(actix_web::body::BoxBody::new(body));
        }
        if let ApiError::Internal(msg) = self {
            tracing::error!(error = %msg, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let ApiError::Unauthorized(_) = self {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        if let ApiError::TooManyRequests { retry_after, .. } | ApiError::Busy { retry_after, .. } =
            self
        {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if let ApiError::Unavailable(_) = self {
            res.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER.to_string()));
        }
        res.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => ApiError::NotFound("record not found".into()),
            E::DatabaseError(K::UniqueViolation, info) => ApiError::Conflict(format!(
                "a record with the same unique value already exists ({})",
                info.constraint_name().unwrap_or("unique constraint")
            )),
            E::DatabaseError(K::ForeignKeyViolation, _) => {
                ApiError::validation(vec![FieldError::new(
                    "",
                    "reference",
                    "a referenced record does not exist",
                )])
            }
            // PostgreSQL writers run concurrently: one that lost a deadlock, or waited past
            // `lock_timeout` for a row another holds, wrote nothing and may simply retry.
            E::DatabaseError(K::SerializationFailure, _) => concurrent_write(),
            E::DatabaseError(K::Unknown, info)
                if info.message().contains("deadlock detected")
                    || info.message().contains("lock timeout") =>
            {
                concurrent_write()
            }
            // SQLite: another writer held the database past the busy timeout (SQLITE_BUSY,
            // SQLITE_LOCKED). PostgreSQL: the statement ran past `statement_timeout`. The
            // database is overloaded, not broken: nothing was written, and a retry a little
            // later may well succeed.
            E::DatabaseError(K::Unknown, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database table is locked")
                    || info.message().contains("statement timeout") =>
            {
                tracing::warn!(error = %info.message(), "database busy");
                ApiError::Unavailable(
                    "the database is busy right now and this request was not carried out; \
                     retry shortly"
                        .into(),
                )
            }
            // A commit that failed and could not be rolled back either: the commit's error
            // says what happened.
            E::RollbackErrorOnCommit { commit_error, .. } => ApiError::from(*commit_error),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn concurrent_write() -> ApiError {
    ApiError::Conflict(
        "another write to the same records ran at the same time and this one was rolled \
         back; nothing was written, retry it"
            .into(),
    )
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        tracing::error!(error = %e, "database pool exhausted or unreachable");
        ApiError::Unavailable("the database is not reachable right now; retry shortly".into())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errs: validator::ValidationErrors) -> Self {
        let mut out = Vec::new();
        flatten_validation("", &errs, &mut out);
        out.sort_by(|a, b| a.field.cmp(&b.field));
        ApiError::validation(out)
    }
}

fn flatten_validation(prefix: &str, errs: &validator::ValidationErrors, out: &mut Vec<FieldError>) {
    use validator::ValidationErrorsKind as Kind;
    for (field, kind) in errs.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            Kind::Field(list) => out.extend(list.iter().map(|e| {
                let message = e
                    .message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| default_message(&e.code));
                FieldError::new(&path, &e.code, message)
            })),
            Kind::Struct(inner) => flatten_validation(&path, inner, out),
            Kind::List(items) => {
                for (i, inner) in items {
                    flatten_validation(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

fn default_message(code: &str) -> String {
    match code {
        "email" => "must be a valid email address".into(),
        "length" => "has the wrong length".into(),
        "range" => "is out of range".into(),
        "url" => "must be a valid URL".into(),
        other => format!("is invalid ({other})"),
    }
}

/// A 422 entry for each required field that is missing.
pub fn required(fields: &[(&str, bool)]) -> Vec<FieldError> {
    fields
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(f, _)| FieldError::new(f, "required", "is required"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use validator::Validate;

    #[derive(Validate)]
    struct Sample {
        #[validate(email)]
        email: String,
        #[validate(length(min = 1, message = "must not be empty"))]
        name: String,
    }

    #[test]
    fn a_busy_database_is_a_503_with_retry_after() {
        use diesel::result::{DatabaseErrorKind, Error};
        struct Info(&'static str);
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                self.0
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        for message in [
            "database is locked",
            "database table is locked",
            "canceling statement due to statement timeout",
        ] {
            let e = ApiError::from(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(Info(message)),
            ));
            assert_eq!(
                e.status_code(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{message}"
            );
            let res = e.error_response();
            assert_eq!(
                res.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some("2")
            );
        }
    }

    #[test]
    fn validation_errors_become_field_errors() {
        let err = Sample {
            email: "nope".into(),
            name: "".into(),
        }
        .validate()
        .map_err(ApiError::from)
        .err();
        let problem = err.map(|e| e.problem());
        let errors = problem.map(|p| p.errors).unwrap_or_default();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "email");
        assert_eq!(errors[1].message, "must not be empty");
    }
}
