//! Shared platform of the CRM API. Every domain crate builds on these conventions:
//! one database layer for SQLite and PostgreSQL, RFC 9457 errors, keyset pagination,
//! ETags, soft delete, idempotency, audit + events in the write transaction, and jobs.

pub mod access;
pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod etag;
pub mod extract;
pub mod hooks;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod integrations;
pub mod jobs;
pub mod list;
pub mod mail;
pub mod objects;
pub mod params;
pub mod ratelimit;
pub mod resource;
pub mod respond;
pub mod scheduler;
pub mod schema;
pub mod sealed;
pub mod search;
pub mod sms;
pub mod state;
pub mod timeline;
pub mod visibility;

pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// Re-exports used by this crate's macros.
pub mod reexport {
    pub use actix_web;
    pub use diesel;
    pub use serde_json;
    pub use utoipa;
}
