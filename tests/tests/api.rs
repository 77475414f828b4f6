//! Black-box tests of the whole gateway over HTTP. One binary (faster to link);
//! each test starts its own server on a fresh database.

#[path = "api/access.rs"]
mod access;
#[path = "api/api_keys.rs"]
mod api_keys;
#[path = "api/assignment.rs"]
mod assignment;
#[path = "api/auth.rs"]
mod auth;
#[path = "api/automations.rs"]
mod automations;
#[path = "api/billing.rs"]
mod billing;
#[path = "api/commissions.rs"]
mod commissions;
#[path = "api/concurrency.rs"]
mod concurrency;
#[path = "api/contract.rs"]
mod contract;
#[path = "api/conventions.rs"]
mod conventions;
#[path = "api/customers.rs"]
mod customers;
#[path = "api/durability.rs"]
mod durability;
#[path = "api/feed.rs"]
mod feed;
#[path = "api/guide.rs"]
mod guide;
#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/imports.rs"]
mod imports;
#[path = "api/integrations.rs"]
mod integrations;
#[path = "api/jobs.rs"]
mod jobs;
#[path = "api/journeys.rs"]
mod journeys;
#[path = "api/loyalty.rs"]
mod loyalty;
#[path = "api/marketing.rs"]
mod marketing;
#[path = "api/matrix.rs"]
mod matrix;
#[path = "api/plans.rs"]
mod plans;
#[path = "api/platform.rs"]
mod platform;
#[path = "api/queries.rs"]
mod queries;
#[path = "api/quotes.rs"]
mod quotes;
#[path = "api/readme.rs"]
mod readme;
#[path = "api/readonly.rs"]
mod readonly;
#[path = "api/recommendations.rs"]
mod recommendations;
#[path = "api/sales.rs"]
mod sales;
#[path = "api/schedules.rs"]
mod schedules;
#[path = "api/secrets.rs"]
mod secrets;
#[path = "api/security.rs"]
mod security;
#[path = "api/seed.rs"]
mod seed;
#[path = "api/service.rs"]
mod service;
#[path = "api/social.rs"]
mod social;
#[path = "api/territories.rs"]
mod territories;
#[path = "api/webhooks.rs"]
mod webhooks;
