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
    cfg.service(invoices::list_invoices)
        .service(invoices::create)
        .service(invoices::get_one)
        .service(invoices::update)
        .service(invoices::archive_one)
        .service(invoices::restore_one)
        .service(payments::list_payments)
        .service(payments::create)
        .service(payments::get_one)
        .service(payments::update)
        .service(payments::archive_one)
        .service(payments::restore_one)
        .service(balances::get_balance);
}

/// This domain's integrable objects (see `crm_core::objects`).
pub const OBJECTS: &[ObjectKind] = &[invoices::OBJECT, payments::OBJECT];

const READ: Access = Access::Needs(Permission::CustomersRead);
const BILLING: Access = Access::Needs(Permission::BillingWrite);

/// This domain's rows of the permission table (see `crm_core::access`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/invoices", READ),
    Operation::new("POST", "/api/v1/invoices", BILLING),
    Operation::new("GET", "/api/v1/invoices/{id}", READ),
    Operation::new("PATCH", "/api/v1/invoices/{id}", BILLING),
    Operation::new("DELETE", "/api/v1/invoices/{id}", BILLING),
    Operation::new("POST", "/api/v1/invoices/{id}/restore", BILLING),
    Operation::new("GET", "/api/v1/payments", READ),
    Operation::new("POST", "/api/v1/payments", BILLING),
    Operation::new("GET", "/api/v1/payments/{id}", READ),
    Operation::new("PATCH", "/api/v1/payments/{id}", BILLING),
    Operation::new("DELETE", "/api/v1/payments/{id}", BILLING),
    Operation::new("POST", "/api/v1/payments/{id}/restore", BILLING),
    Operation::new("GET", "/api/v1/accounts/{id}/balance", READ),
];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        invoices::list_invoices, invoices::create, invoices::get_one, invoices::update,
        invoices::archive_one, invoices::restore_one,
        payments::list_payments, payments::create, payments::get_one, payments::update,
        payments::archive_one, payments::restore_one,
        balances::get_balance,
    ),
    tags(
        (name = "invoices", description = "Invoices pushed in from an accounting system, and what each account owes"),
        (name = "payments", description = "Payments received, applied to invoices or not yet"),
    )
)]
pub struct Api;
