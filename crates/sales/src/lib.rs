//! The sales domain: leads, opportunities, pipelines, quotes, orders, forecasts, territories, commissions.
//!
//! Its resources land here one module each; the gateway mounts `configure` under
//! `/api/v1` and merges `Api` into the served OpenAPI document.

use actix_web::web::ServiceConfig;

/// Routes of this domain, relative to `/api/v1`.
pub fn configure(_cfg: &mut ServiceConfig) {}

/// This domain's rows of the permission table (see `crm_core::access`).
pub const OPERATIONS: &[crm_core::access::Operation] = &[];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct Api;
