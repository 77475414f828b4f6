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
use crm_core::access::{Access, Operation, Ownership, Permission};
use crm_core::extract::only;
use crm_core::objects::{EventSource, ObjectKind};

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(accounts::list_accounts)
        .service(accounts::create)
        // Literal routes as resources, so other methods on them get a 405 here instead
        // of falling through to the `{id}` routes.
        .service(
            web::resource("/accounts/merge")
                .route(web::post().to(merge::merge_accounts_route))
                .default_service(only("POST")),
        )
        .service(accounts::get_one)
        .service(accounts::update)
        .service(accounts::archive_one)
        .service(accounts::restore_one)
        .service(accounts::get_hierarchy)
        .service(accounts::get_timeline)
        .service(contacts::list_contacts)
        .service(contacts::create)
        .service(
            web::resource("/contacts/merge")
                .route(web::post().to(merge::merge_contacts_route))
                .default_service(only("POST")),
        )
        .service(contacts::get_one)
        .service(contacts::update)
        .service(contacts::archive_one)
        .service(contacts::restore_one)
        .service(contacts::get_timeline)
        .service(merge::duplicates)
        .service(gdpr::personal_data)
        .service(gdpr::erase_route)
        .service(households::list_households)
        .service(households::create)
        .service(households::get_one)
        .service(households::update)
        .service(households::archive_one)
        .service(households::restore_one)
        .service(activities::list_activities)
        .service(activities::create)
        .service(activities::get_one)
        .service(activities::update)
        .service(activities::archive_one)
        .service(activities::restore_one)
        .service(products::list_products)
        .service(products::create)
        .service(products::get_one)
        .service(products::update)
        .service(products::archive_one)
        .service(products::restore_one)
        .service(price_books::list_books)
        .service(price_books::create)
        .service(price_books::get_one)
        .service(price_books::update)
        .service(price_books::archive_one)
        .service(price_books::restore_one)
        .service(custom_fields::list_objects)
        .service(custom_fields::list_fields)
        .service(custom_fields::create_field)
        .service(custom_fields::update_field)
        .service(custom_fields::archive_field);
}

/// This domain's integrable objects (see `crm_core::objects`).
pub const OBJECTS: &[ObjectKind] = &[accounts::OBJECT, contacts::OBJECT, products::OBJECT];

/// This domain's other entity types that appear in the change feed, and who sees them.
pub const EVENT_SOURCES: &[EventSource] = &[
    EventSource {
        entity: "activity",
        read: Permission::CustomersRead,
        visible_to: common::sees_all,
    },
    EventSource {
        entity: "household",
        read: Permission::CustomersRead,
        visible_to: common::sees_all,
    },
    EventSource {
        entity: "price_book",
        read: Permission::ProductsRead,
        visible_to: |_| true,
    },
];

const READ: Access = Access::Needs(Permission::CustomersRead);
const WRITE: Access = Access::Needs(Permission::CustomersWrite);
const CATALOGUE: Access = Access::Needs(Permission::ProductsRead);
const PRICING: Access = Access::Needs(Permission::ProductsManage);
const META: Access = Access::Needs(Permission::MetaManage);
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
    Operation::new("GET", "/api/v1/households", READ),
    Operation::new("POST", "/api/v1/households", WRITE),
    Operation::new("GET", "/api/v1/households/{id}", READ),
    Operation::new("PATCH", "/api/v1/households/{id}", WRITE),
    Operation::new("DELETE", "/api/v1/households/{id}", WRITE),
    Operation::new("POST", "/api/v1/households/{id}/restore", WRITE),
    Operation::new("GET", "/api/v1/activities", READ),
    Operation::new("POST", "/api/v1/activities", WRITE),
    Operation::new("GET", "/api/v1/activities/{id}", READ),
    Operation::new("PATCH", "/api/v1/activities/{id}", WRITE).owned(EDITS),
    Operation::new("DELETE", "/api/v1/activities/{id}", WRITE).owned(EDITS),
    Operation::new("POST", "/api/v1/activities/{id}/restore", WRITE).owned(EDITS),
    Operation::new("GET", "/api/v1/products", CATALOGUE),
    Operation::new("POST", "/api/v1/products", PRICING),
    Operation::new("GET", "/api/v1/products/{id}", CATALOGUE),
    Operation::new("PATCH", "/api/v1/products/{id}", PRICING),
    Operation::new("DELETE", "/api/v1/products/{id}", PRICING),
    Operation::new("POST", "/api/v1/products/{id}/restore", PRICING),
    Operation::new("GET", "/api/v1/price-books", CATALOGUE),
    Operation::new("POST", "/api/v1/price-books", PRICING),
    Operation::new("GET", "/api/v1/price-books/{id}", CATALOGUE),
    Operation::new("PATCH", "/api/v1/price-books/{id}", PRICING),
    Operation::new("DELETE", "/api/v1/price-books/{id}", PRICING),
    Operation::new("POST", "/api/v1/price-books/{id}/restore", PRICING),
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
        accounts::list_accounts, accounts::create, accounts::get_one, accounts::update,
        accounts::archive_one, accounts::restore_one, accounts::get_hierarchy, accounts::get_timeline,
        contacts::list_contacts, contacts::create, contacts::get_one, contacts::update,
        contacts::archive_one, contacts::restore_one, contacts::get_timeline,
        merge::duplicates, merge::merge_contacts_route, merge::merge_accounts_route,
        gdpr::personal_data, gdpr::erase_route,
        households::list_households, households::create, households::get_one, households::update,
        households::archive_one, households::restore_one,
        activities::list_activities, activities::create, activities::get_one, activities::update,
        activities::archive_one, activities::restore_one,
        products::list_products, products::create, products::get_one, products::update,
        products::archive_one, products::restore_one,
        price_books::list_books, price_books::create, price_books::get_one, price_books::update,
        price_books::archive_one, price_books::restore_one,
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
