//! The marketing domain: segments, lists, campaigns, messages, automations, scoring, forms,
//! journeys, loyalty, social messages.
//!
//! Its resources land here one module each; the gateway mounts `configure` under
//! `/api/v1` and merges `Api` into the served OpenAPI document.

pub mod attribution;
pub mod automation_runs;
pub mod automations;
pub mod campaigns;
pub mod common;
pub mod criteria;
pub mod forms;
pub mod inbound_sms;
pub mod journeys;
pub mod lists;
pub mod loyalty;
pub mod scoring;
pub mod segments;
pub mod sending;
pub mod social;

use actix_web::web::ServiceConfig;
use crm_core::access::{Access, Operation, Permission};

pub use crm_core::list::{enum_filter, enum_from, enum_text};

/// Routes of this domain, relative to `/api/v1`. Literal paths before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(segments::preview)
        .service(segments::members)
        .service(lists::add_members)
        .service(lists::remove_member)
        .service(lists::members)
        .service(campaigns::add_members_handler)
        .service(campaigns::members)
        .service(campaigns::record_response)
        .service(campaigns::get_metrics)
        .service(sending::send)
        .service(sending::unsubscribe_post)
        .service(sending::unsubscribe_get)
        .service(sending::open)
        .service(sending::click)
        .service(inbound_sms::inbound_sms)
        .service(forms::submit)
        .service(scoring::recompute)
        .service(scoring::history)
        .service(automation_runs::list_runs)
        .service(automation_runs::get_run)
        .service(automation_runs::exit)
        .service(automation_runs::enrol_handler)
        .service(journeys::contact_journey)
        .service(journeys::lead_journey)
        .service(attribution::get_attribution)
        .service(loyalty::ledger::award)
        .service(loyalty::ledger::redeem)
        .service(loyalty::ledger::ledger);
    resource_routes(cfg);
}

crm_core::resources!(
    segments::Segments,
    lists::Lists,
    campaigns::Campaigns,
    forms::Forms,
    scoring::ScoringModels,
    automations::Automations,
    loyalty::LoyaltyPrograms,
    loyalty::members::LoyaltyMembers,
    social::SocialMessages,
);

/// The jobs this domain runs.
/// `criteria_timeout` bounds each statement of the daily triggers' criteria queries.
pub fn register_jobs(
    registry: &mut crm_core::jobs::JobRegistry,
    criteria_timeout: std::time::Duration,
) {
    registry.register(sending::SEND, sending::run);
    registry.register(scoring::RECOMPUTE, scoring::recompute_all);
    registry.register_scheduled(
        scoring::DECAY_TASK,
        "Recompute scores whose behaviour points fade (models with a half-life)",
        std::time::Duration::from_secs(24 * 3600),
        |c, _| scoring::decay(c),
    );
    registry.register(automation_runs::ADVANCE, automation_runs::advance);
    // Every poll of the first worker, like the webhook relay: triggers fire within a poll.
    registry.register_periodic(
        "automation-relay",
        std::time::Duration::ZERO,
        automation_runs::relay_task,
    );
    registry.register_scheduled(
        automation_runs::DAILY_TASK,
        "Enrol the contacts that daily automation triggers match today",
        std::time::Duration::from_secs(24 * 3600),
        move |c, _| automation_runs::daily(c, criteria_timeout),
    );
}

const fn internal(entity: &'static str) -> crm_core::objects::EventSource {
    crm_core::objects::EventSource {
        entity,
        read: Permission::MarketingRead,
        visible_to: crm_core::visibility::sees_all,
    }
}

/// Entity types of this domain's events (in the change feed and for webhooks).
pub const EVENT_SOURCES: &[crm_core::objects::EventSource] = &[
    internal("segment"),
    internal("marketing_list"),
    internal("campaign"),
    internal("form"),
    internal("scoring_model"),
    internal("form_submission"),
    internal("automation"),
    internal("automation_run"),
    internal("loyalty_program"),
    internal("loyalty_member"),
    internal("social_message"),
];

const READ: Access = Access::Needs(Permission::MarketingRead);
const WRITE: Access = Access::Needs(Permission::MarketingWrite);

/// This domain's rows of the permission table beside its kernel resources.
pub const OPERATIONS: &[Operation] = &[
    Operation::new("POST", "/api/v1/segments/preview", READ),
    Operation::new("GET", "/api/v1/segments/{id}/members", READ),
    Operation::new("POST", "/api/v1/lists/{id}/members", WRITE),
    Operation::new("DELETE", "/api/v1/lists/{id}/members/{contact_id}", WRITE),
    Operation::new("GET", "/api/v1/lists/{id}/members", READ),
    Operation::new("POST", "/api/v1/campaigns/{id}/members", WRITE),
    Operation::new("GET", "/api/v1/campaigns/{id}/members", READ),
    Operation::new("POST", "/api/v1/campaigns/{id}/responses", WRITE),
    Operation::new("GET", "/api/v1/campaigns/{id}/metrics", READ),
    Operation::new("POST", "/api/v1/campaigns/{id}/send", WRITE),
    // The member's token in the mailed link is the credential.
    Operation::new("POST", "/api/v1/campaigns/{id}/unsubscribe", Access::Public),
    Operation::new("GET", "/api/v1/campaigns/{id}/unsubscribe", Access::Public),
    Operation::new("GET", "/api/v1/campaigns/{id}/open", Access::Public),
    Operation::new("GET", "/api/v1/campaigns/{id}/click", Access::Public),
    // Web pages post forms without login; the form's public key names it.
    Operation::new(
        "POST",
        "/api/v1/forms/{public_key}/submissions",
        Access::Public,
    ),
    Operation::new("POST", "/api/v1/scoring-models/{id}/recompute", WRITE),
    Operation::new("GET", "/api/v1/score-history", READ),
    Operation::new("GET", "/api/v1/automation-runs", READ),
    Operation::new("GET", "/api/v1/automation-runs/{id}", READ),
    Operation::new("POST", "/api/v1/automation-runs/{id}/exit", WRITE),
    Operation::new("POST", "/api/v1/automations/{id}/enrolments", WRITE),
    Operation::new("GET", "/api/v1/contacts/{id}/journey", READ),
    Operation::new("GET", "/api/v1/leads/{id}/journey", READ),
    Operation::new("GET", "/api/v1/opportunities/{id}/attribution", READ),
    Operation::new("POST", "/api/v1/loyalty-members/{id}/awards", WRITE),
    Operation::new("POST", "/api/v1/loyalty-members/{id}/redemptions", WRITE),
    Operation::new("GET", "/api/v1/loyalty-members/{id}/ledger", READ),
    Operation::new("POST", "/api/v1/inbound/sms", WRITE),
];

/// What this domain does when other domains' records change (`crm_core::hooks`).
pub const LISTENERS: &[(&str, crm_core::hooks::Listener)] = &[
    ("activity", journeys::on_activity_change),
    ("order", loyalty::ledger::on_order_change),
    ("contact", social::on_contact_change),
];

/// This domain's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        segments::preview,
        segments::members,
        lists::add_members,
        lists::remove_member,
        lists::members,
        campaigns::add_members_handler,
        campaigns::members,
        campaigns::record_response,
        campaigns::get_metrics,
        sending::send,
        sending::unsubscribe_post,
        sending::unsubscribe_get,
        sending::open,
        sending::click,
        inbound_sms::inbound_sms,
        forms::submit,
        scoring::recompute,
        scoring::history,
        automation_runs::list_runs,
        automation_runs::get_run,
        automation_runs::exit,
        automation_runs::enrol_handler,
        journeys::contact_journey,
        journeys::lead_journey,
        attribution::get_attribution,
        loyalty::ledger::award,
        loyalty::ledger::redeem,
        loyalty::ledger::ledger,
    ),
    tags(
        (name = "segments", description = "Dynamic segments in a JSON criteria language (and, or, not; comparisons, in, exists, relative dates) over contact, account and custom fields, purchase history, engagement and consent, evaluated in the database"),
        (name = "lists", description = "Static lists of contacts"),
        (name = "forms", description = "Web forms: fields mapped to lead fields, consent, allowed origins, and the public submission endpoint that creates or matches the lead"),
        (name = "scoring", description = "Lead scoring: attribute and behaviour rules with decay, scores on leads and contacts, their history, and the hand-off to sales"),
        (name = "automations", description = "Automations: triggers on domain events (an order of a product family, a lead from a form, a solved ticket, a score crossing a threshold) or a daily date condition; steps that wait, test conditions, mail a campaign message, add to a list, set a field, create a task or notify by webhook; enrolment and exit rules; a history per run"),
        (name = "journeys", description = "Journeys and attribution: the touchpoints where contacts and leads met the company (form submissions, campaign responses, email clicks, meetings, social messages) in order, and the first-touch, last-touch and linear campaign attribution of opportunities"),
        (name = "loyalty", description = "Loyalty programmes: members earn points by rules on their account's orders, climb tiers on lifetime points and redeem rewards; a ledger that never counts an order or a retried award twice and never takes a balance below zero"),
        (name = "social", description = "Inbound social messages a connector pushes in: stored once per network and message id, matched to contacts by the handles in their social profiles, logged as activities and journey touchpoints, optionally opening a ticket"),
        (name = "campaigns", description = "Campaigns with budgets, members from segments and lists, consented and throttled sending by mail or text message with one-click unsubscribe and STOP replies, open and click tracking, responses and always-current ROI"),
    )
)]
pub struct Api;
