//! The customers domain: the one shared customer record that sales, marketing, service
//! and partners hang their work on — accounts, contacts, households, activities and the
//! timeline, with duplicates, merges and GDPR requests.

pub mod accounts;
pub mod activities;
pub mod common;
pub mod contacts;
pub mod custom_fields;
pub mod gdpr;
pub mod households;
pub mod merge;
pub mod price_books;
pub mod products;

use actix_web::web::{self, ServiceConfig};
use crm_core::access::{Access, Operation, Permission};
use crm_core::extract::only;
use crm_core::objects::{EventSource, ObjectKind};

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg
        // Literal routes as resources, so other methods on them get a 405 here instead
        // of falling through to the `{id}` routes.
        .service(
            web::resource("/accounts/merge")
                .route(web::post().to(merge::merge_accounts_route))
                .default_service(only("POST")),
        )
        .service(accounts::get_hierarchy)
        .service(accounts::get_timeline)
        .service(
            web::resource("/contacts/merge")
                .route(web::post().to(merge::merge_contacts_route))
                .default_service(only("POST")),
        )
        .service(contacts::get_timeline)
        .service(merge::duplicates)
        .service(gdpr::personal_data)
        .service(gdpr::erase_route)
        .service(custom_fields::list_objects)
        .service(custom_fields::list_fields)
        .service(custom_fields::create_field)
        .service(custom_fields::update_field)
        .service(custom_fields::archive_field);
    // After the literal routes (`/accounts/merge`), which `{id}` would otherwise shadow.
    resource_routes(cfg);
}

crm_core::resources!(
    accounts::Accounts,
    contacts::Contacts,
    households::Households,
    activities::Activities,
    products::Products,
    price_books::PriceBooks,
);

/// This domain's integrable objects (see `crm_core::objects`).
pub const OBJECTS: &[ObjectKind] = &[accounts::OBJECT, contacts::OBJECT, products::OBJECT];

/// This domain's other entity types that appear in the change feed, and who sees them.
pub const EVENT_SOURCES: &[EventSource] = &[
    EventSource {
        entity: "activity",
        read: Permission::CustomersRead,
        visible_to: crm_core::visibility::sees_all,
    },
    EventSource {
        entity: "household",
        read: Permission::CustomersRead,
        visible_to: crm_core::visibility::sees_all,
    },
    EventSource {
        entity: "price_book",
        read: Permission::ProductsRead,
        visible_to: |_| true,
    },
];

const READ: Access = Access::Needs(Permission::CustomersRead);
const WRITE: Access = Access::Needs(Permission::CustomersWrite);
const META: Access = Access::Needs(Permission::MetaManage);

/// This domain's rows of the permission table beside its kernel resources
/// (`RESOURCE_OPERATIONS`; see `crm_core::access`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/accounts/{id}/hierarchy", READ),
    Operation::new("GET", "/api/v1/accounts/{id}/timeline", READ),
    Operation::new("GET", "/api/v1/contacts/{id}/timeline", READ),
    Operation::new("GET", "/api/v1/contacts/{id}/duplicates", READ),
    Operation::new("POST", "/api/v1/contacts/merge", WRITE),
    Operation::new("POST", "/api/v1/accounts/merge", WRITE),
    Operation::new(
        "GET",
        "/api/v1/contacts/{id}/personal-data",
        Access::Needs(Permission::PersonalData),
    ),
    Operation::new(
        "POST",
        "/api/v1/contacts/{id}/erase",
        Access::Needs(Permission::PersonalData),
    ),
    Operation::new("GET", "/api/v1/meta/objects", READ),
    Operation::new("GET", "/api/v1/meta/objects/{object}/fields", READ),
    Operation::new("POST", "/api/v1/meta/objects/{object}/fields", META),
    Operation::new("PATCH", "/api/v1/meta/objects/{object}/fields/{key}", META),
    Operation::new("DELETE", "/api/v1/meta/objects/{object}/fields/{key}", META),
];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        accounts::get_hierarchy, accounts::get_timeline, contacts::get_timeline,
        merge::duplicates, merge::merge_contacts_route, merge::merge_accounts_route,
        gdpr::personal_data, gdpr::erase_route,
        custom_fields::list_objects, custom_fields::list_fields, custom_fields::create_field,
        custom_fields::update_field, custom_fields::archive_field,
    ),
    tags(
        (name = "accounts", description = "Companies (B2B) and their hierarchies"),
        (name = "contacts", description = "People: emails, phones, account roles, consent, duplicates, merges, GDPR"),
        (name = "households", description = "Consumers (B2C) living together"),
        (name = "activities", description = "Calls, emails, meetings, notes, tasks… and to-do lists"),
        (name = "products", description = "Catalogue, bundles and price books"),
        (name = "meta", description = "Objects, their fields, and custom field definitions"),
    )
)]
pub struct Api;
