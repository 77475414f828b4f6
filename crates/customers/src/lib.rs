//! The customers domain: the one shared customer record that sales, marketing, service
//! and partners hang their work on — accounts, contacts, households, activities and the
//! timeline, with duplicates, merges and GDPR requests.

pub mod accounts;
pub mod common;
pub mod contacts;

use actix_web::web::ServiceConfig;
use crm_core::access::{Access, Operation, Ownership, Permission};

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(accounts::list_accounts)
        .service(accounts::create)
        .service(accounts::get_one)
        .service(accounts::update)
        .service(accounts::archive_one)
        .service(accounts::restore_one)
        .service(accounts::get_hierarchy)
        .service(accounts::get_timeline)
        .service(contacts::list_contacts)
        .service(contacts::create)
        .service(contacts::get_one)
        .service(contacts::update)
        .service(contacts::archive_one)
        .service(contacts::restore_one)
        .service(contacts::get_timeline);
}

const READ: Access = Access::Needs(Permission::CustomersRead);
const WRITE: Access = Access::Needs(Permission::CustomersWrite);
const EDITS: Ownership = Ownership::OwnerOrTeamEdits(Permission::CustomersManage);

/// This domain's rows of the permission table (see `crm_core::access`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/accounts", READ),
    Operation::new("POST", "/api/v1/accounts", WRITE),
    Operation::new("GET", "/api/v1/accounts/{id}", READ),
    Operation::new("PATCH", "/api/v1/accounts/{id}", WRITE).owned(EDITS),
    Operation::new("DELETE", "/api/v1/accounts/{id}", WRITE).owned(EDITS),
    Operation::new("POST", "/api/v1/accounts/{id}/restore", WRITE).owned(EDITS),
    Operation::new("GET", "/api/v1/accounts/{id}/hierarchy", READ),
    Operation::new("GET", "/api/v1/accounts/{id}/timeline", READ),
    Operation::new("GET", "/api/v1/contacts", READ),
    Operation::new("POST", "/api/v1/contacts", WRITE),
    Operation::new("GET", "/api/v1/contacts/{id}", READ),
    Operation::new("PATCH", "/api/v1/contacts/{id}", WRITE).owned(EDITS),
    Operation::new("DELETE", "/api/v1/contacts/{id}", WRITE).owned(EDITS),
    Operation::new("POST", "/api/v1/contacts/{id}/restore", WRITE).owned(EDITS),
    Operation::new("GET", "/api/v1/contacts/{id}/timeline", READ),
];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        accounts::list_accounts, accounts::create, accounts::get_one, accounts::update,
        accounts::archive_one, accounts::restore_one, accounts::get_hierarchy, accounts::get_timeline,
        contacts::list_contacts, contacts::create, contacts::get_one, contacts::update,
        contacts::archive_one, contacts::restore_one, contacts::get_timeline,
    ),
    tags(
        (name = "accounts", description = "Companies (B2B) and their hierarchies"),
        (name = "contacts", description = "People: emails, phones, account roles, consent"),
    )
)]
pub struct Api;
