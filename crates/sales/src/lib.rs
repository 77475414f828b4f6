//! The sales domain: leads, opportunities, pipelines, quotes, orders, forecasts, territories, commissions.
//!
//! Its resources land here one module each; the gateway mounts `configure` under
//! `/api/v1` and merges `Api` into the served OpenAPI document. Accounting records
//! (invoices and payments pushed in from an ERP or billing system) and the account
//! balances computed from them live here too.

pub mod assignment;
pub mod balances;
pub mod commissions;
pub mod common;
pub mod conversion;
pub mod documents;
pub mod duplicates;
pub mod forecasts;
pub mod invoices;
pub mod lead_channels;
pub mod leads;
pub mod opportunities;
pub mod orders;
pub mod payments;
pub mod pipelines;
pub mod pricing;
pub mod projection;
pub mod quotas;
pub mod quotes;
pub mod recommendations;
pub mod recycle;
pub mod statements;
pub mod territories;

use actix_web::web::ServiceConfig;
use crm_core::access::{Access, Operation, Permission};
use crm_core::objects::ObjectKind;
use crm_core::resource::Resource;

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(balances::get_balance)
        .service(conversion::convert_lead)
        .service(duplicates::lead_duplicates)
        .service(forecasts::get_forecast)
        .service(quotes::set_status)
        .service(quotes::revise_quote)
        .service(documents::document)
        .service(opportunities::change_stage)
        .service(opportunities::stage_history)
        .service(leads::get_timeline)
        .service(assignment::assign)
        // A literal path beside `/territories/{id}`: other methods are a 405 here, not an id.
        .service(
            actix_web::web::resource("/territories/realign")
                .route(actix_web::web::post().to(territories::realign_all))
                .default_service(crm_core::extract::only("POST")),
        )
        .service(territories::account_territory)
        .service(statements::get_statement)
        .service(recommendations::get_recommendations)
        .service(statements::preview)
        .service(recycle::get_policy)
        .service(recycle::put_policy);
    resource_routes(cfg);
}

crm_core::resources!(
    invoices::Invoices,
    payments::Payments,
    leads::Leads,
    assignment::AssignmentRules,
    territories::Territories,
    quotas::Quotas,
    commissions::CommissionPlans,
    pipelines::Pipelines,
    opportunities::Opportunities,
    quotes::Quotes,
    orders::Orders,
);

/// This domain's integrable objects (see `crm_core::objects`).
pub const OBJECTS: &[ObjectKind] = &[
    invoices::OBJECT,
    payments::OBJECT,
    leads::OBJECT,
    opportunities::OBJECT,
    quotes::OBJECT,
    orders::OBJECT,
];

const READ: Access = Access::Needs(Permission::CustomersRead);

/// This domain's rows of the permission table beside its kernel resources
/// (`RESOURCE_OPERATIONS`; see `crm_core::access`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/accounts/{id}/balance", READ),
    Operation::new("POST", "/api/v1/leads/{id}/convert", SALES_WRITE).owned(common::EDITS),
    Operation::new("GET", "/api/v1/leads/{id}/duplicates", SALES_READ),
    Operation::new("GET", "/api/v1/leads/{id}/timeline", SALES_READ),
    Operation::new("POST", "/api/v1/leads/{id}/assign", SALES_WRITE).owned(common::EDITS),
    Operation::new("POST", "/api/v1/territories/realign", SALES_MANAGE),
    Operation::new("GET", "/api/v1/accounts/{id}/territory", SALES_READ),
    Operation::new("GET", "/api/v1/commissions", SALES_READ),
    Operation::new("GET", "/api/v1/accounts/{id}/recommendations", SALES_READ),
    Operation::new(
        "GET",
        "/api/v1/opportunities/{id}/commission-preview",
        SALES_READ,
    ),
    Operation::new("GET", "/api/v1/forecasts", SALES_READ),
    Operation::new("GET", "/api/v1/lead-recycle-policy", SALES_READ),
    Operation::new("PUT", "/api/v1/lead-recycle-policy", SALES_MANAGE),
    // A quote follows its opportunity's edit rule (`quotes::Quotes::PARENTS`).
    Operation::new("POST", "/api/v1/quotes/{id}/status", SALES_WRITE).owned(quotes::Quotes::EDITS),
    Operation::new("POST", "/api/v1/quotes/{id}/revise", SALES_WRITE).owned(quotes::Quotes::EDITS),
    Operation::new("GET", "/api/v1/quotes/{id}/document", SALES_READ),
    Operation::new("POST", "/api/v1/opportunities/{id}/stage", SALES_WRITE).owned(common::EDITS),
    Operation::new(
        "GET",
        "/api/v1/opportunities/{id}/stage-history",
        SALES_READ,
    ),
];

/// This domain's background work: the scheduled recycle policy.
pub fn register_jobs(registry: &mut crm_core::jobs::JobRegistry) {
    registry.register_scheduled(
        recycle::TASK,
        "Apply the lead recycle policy to leads left untouched",
        std::time::Duration::from_secs(3600),
        |conn, _| recycle::run(conn),
    );
    registry.register(territories::REALIGN, |conn, _| territories::realign(conn));
}

/// What this domain does when other domains' records change (`crm_core::hooks`).
pub const LISTENERS: &[(&str, crm_core::hooks::Listener)] =
    &[("account", territories::on_account_change)];

const SALES_READ: Access = Access::Needs(Permission::SalesRead);
const SALES_WRITE: Access = Access::Needs(Permission::SalesWrite);
const SALES_MANAGE: Access = Access::Needs(Permission::SalesManage);

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        balances::get_balance,
        conversion::convert_lead,
        duplicates::lead_duplicates,
        forecasts::get_forecast,
        quotes::set_status,
        quotes::revise_quote,
        documents::document,
        opportunities::change_stage,
        opportunities::stage_history,
        recycle::get_policy,
        recycle::put_policy,
        leads::get_timeline,
        assignment::assign,
        territories::realign_all,
        territories::account_territory,
        statements::get_statement,
        recommendations::get_recommendations,
        statements::preview,
    ),
    components(schemas(documents::DocumentFormat)),
    tags(
        (name = "invoices", description = "Invoices pushed in from an accounting system, and what each account owes"),
        (name = "payments", description = "Payments received, applied to invoices or not yet"),
        (name = "opportunities", description = "Deals moving through pipelines with exit criteria, team and partner selling, and their stage history"),
        (name = "quotes", description = "Quotes priced from price books (discounts, taxes, bundles, rounding), revisions, lifecycle and HTML or PDF proposal, and the orders accepting them creates"),
        (name = "orders", description = "What customers bought: orders from accepted quotes or pushed by an ERP (their upserts, batch and export)"),
        (name = "commissions", description = "Quotas, commission plans with tiers, family rates and accelerators, statements and what an open deal would earn"),
        (name = "territories", description = "Territories: a hierarchy with rules on where customers are and what they are, the accounts in each and their history"),
        (name = "leads", description = "Prospects before they are customers: qualification, duplicates and conversion into an account, a contact and an opportunity"),
    )
)]
pub struct Api;
