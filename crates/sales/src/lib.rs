//! The sales domain: leads, opportunities, pipelines, quotes, orders, forecasts, territories, commissions.
//!
//! Its resources land here one module each; the gateway mounts `configure` under
//! `/api/v1` and merges `Api` into the served OpenAPI document. Accounting records
//! (invoices and payments pushed in from an ERP or billing system) and the account
//! balances computed from them live here too.

pub mod balances;
pub mod invoices;
pub mod payments;

use actix_web::web::ServiceConfig;
use crm_core::access::{Access, Operation, Permission};
use crm_core::objects::ObjectKind;

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(balances::get_balance);
    resource_routes(cfg);
}

crm_core::resources!(invoices::Invoices, payments::Payments);

/// This domain's integrable objects (see `crm_core::objects`).
pub const OBJECTS: &[ObjectKind] = &[invoices::OBJECT, payments::OBJECT];

const READ: Access = Access::Needs(Permission::CustomersRead);

/// This domain's rows of the permission table beside its kernel resources
/// (`RESOURCE_OPERATIONS`; see `crm_core::access`).
pub const OPERATIONS: &[Operation] =
    &[Operation::new("GET", "/api/v1/accounts/{id}/balance", READ)];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        balances::get_balance,
    ),
    tags(
        (name = "invoices", description = "Invoices pushed in from an accounting system, and what each account owes"),
        (name = "payments", description = "Payments received, applied to invoices or not yet"),
    )
)]
pub struct Api;
