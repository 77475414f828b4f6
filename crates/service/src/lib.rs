//! The service domain: tickets and their conversations, queues and routing, SLAs counted in
//! business hours with escalation, and the mail it writes.
//!
//! Its resources land here one module each; the gateway mounts `configure` under
//! `/api/v1` and merges `Api` into the served OpenAPI document.

pub mod calendars;
pub mod calls;
pub mod common;
pub mod inbound;
pub mod kb;
pub mod mailing;
pub mod messages;
pub mod queues;
pub mod routing;
pub mod sla;
pub mod sla_policies;
pub mod surveys;
pub mod tickets;
pub mod warranty;
pub mod work_orders;

use actix_web::web::ServiceConfig;
use crm_core::access::{Access, Operation, Permission};
use crm_core::objects::ObjectKind;

pub use crm_core::list::{enum_filter, enum_text};

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(sla::compliance)
        .service(inbound::inbound_email)
        .service(calls::caller_lookup)
        .service(calls::log_call)
        .service(surveys::get_survey)
        .service(surveys::answer)
        .service(surveys::report)
        .service(kb::search)
        .service(kb::suggested)
        .service(kb::revisions)
        .service(kb::vote)
        .service(kb::link)
        .service(tickets::set_status)
        .service(messages::create)
        .service(messages::list_messages)
        .service(queues::next);
    resource_routes(cfg);
}

crm_core::resources!(
    tickets::Tickets,
    queues::Queues,
    routing::RoutingRules,
    calendars::Calendars,
    sla_policies::SlaPolicies,
    inbound::MailGateways,
    kb::Articles,
    work_orders::WorkOrders,
    warranty::WarrantyClaims,
);

/// This domain's integrable objects.
pub const OBJECTS: &[ObjectKind] = &[tickets::OBJECT];

const fn internal(entity: &'static str, read: Permission) -> crm_core::objects::EventSource {
    crm_core::objects::EventSource {
        entity,
        read,
        visible_to: crm_core::visibility::sees_all,
    }
}

/// Entity types of this domain's events beside its objects (in the change feed and for
/// webhooks), and who may see them.
pub const EVENT_SOURCES: &[crm_core::objects::EventSource] = &[
    internal("ticket_message", Permission::ServiceRead),
    internal("work_order", Permission::ServiceRead),
    internal("warranty_claim", Permission::ServiceRead),
    internal("survey", Permission::ServiceRead),
    internal("kb_article", Permission::ServiceRead),
    internal("queue", Permission::ServiceRead),
    internal("routing_rule", Permission::ServiceRead),
    internal("sla_policy", Permission::ServiceRead),
    internal("business_calendar", Permission::ServiceRead),
    internal("mail_gateway", Permission::ServiceManage),
];

/// The templates of the mail this domain writes.
pub const TEMPLATES: &[&crm_core::mail::templates::Template] = mailing::TEMPLATES;

const READ: Access = Access::Needs(Permission::ServiceRead);
const WRITE: Access = Access::Needs(Permission::ServiceWrite);

/// This domain's rows of the permission table beside its kernel resources.
pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/sla/compliance", READ),
    // The mail gateway's key, checked by the handler, is the credential.
    Operation::new("POST", "/api/v1/inbound/email", Access::Public),
    Operation::new("POST", "/api/v1/tickets/{id}/status", WRITE),
    Operation::new("GET", "/api/v1/kb/search", READ),
    Operation::new("GET", "/api/v1/caller-lookup", READ),
    Operation::new("POST", "/api/v1/calls", WRITE),
    // The token in the survey link is the credential.
    Operation::new("GET", "/api/v1/surveys/{id}", Access::Public),
    Operation::new("POST", "/api/v1/surveys/{id}", Access::Public),
    Operation::new("GET", "/api/v1/csat", READ),
    Operation::new("GET", "/api/v1/tickets/{id}/suggested-articles", READ),
    Operation::new("GET", "/api/v1/kb/articles/{id}/revisions", READ),
    Operation::new("POST", "/api/v1/kb/articles/{id}/votes", READ),
    Operation::new("POST", "/api/v1/tickets/{id}/articles", WRITE),
    Operation::new("POST", "/api/v1/tickets/{id}/messages", WRITE),
    Operation::new("GET", "/api/v1/tickets/{id}/messages", READ),
    Operation::new("POST", "/api/v1/queues/{id}/next", WRITE),
];

/// This domain's background work: the SLA check once a minute, which also reports tickets
/// unsolved for longer than `unresolved_after` to their queue's manager.
pub fn register_jobs(
    registry: &mut crm_core::jobs::JobRegistry,
    unresolved_after: std::time::Duration,
) {
    registry.register_scheduled(
        sla::TASK,
        "Escalate SLA breaches and upcoming breaches, and report long-unresolved tickets",
        std::time::Duration::from_secs(60),
        move |conn, _| {
            sla::check(conn)?;
            sla::report_unresolved(conn, unresolved_after)
        },
    );
}

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        sla::compliance,
        inbound::inbound_email,
        calls::caller_lookup,
        calls::log_call,
        surveys::get_survey,
        surveys::answer,
        surveys::report,
        kb::search,
        kb::suggested,
        kb::revisions,
        kb::vote,
        kb::link,
        tickets::set_status,
        messages::create,
        messages::list_messages,
        queues::next,
    ),
    tags(
        (name = "tickets", description = "Customer problems from the first message to the solution: numbers, routing, status, conversation"),
        (name = "queues", description = "Queues with members and skills, routing rules, round-robin, least-loaded and pull assignment"),
        (name = "inbound", description = "Mail gateways and the inbound mail they post: new tickets, threaded replies, follow-ups"),
        (name = "calls", description = "Inbound call management: the caller lookup for a screen pop, and the call log"),
        (name = "kb", description = "The knowledge base: articles with revisions, full-text search, suggestions for tickets, votes"),
        (name = "csat", description = "Satisfaction surveys after a ticket is solved (signed, single-use links) and the CSAT and NPS report"),
        (name = "field-service", description = "Work orders for visits at the customer's site, a technician's day, and warranty claims checked against the order"),
        (name = "sla", description = "Business calendars, SLA policies, due times in business hours, escalation and compliance"),
    )
)]
pub struct Api;
