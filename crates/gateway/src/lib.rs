//! The gateway: one actix-web app that mounts every domain crate under `/api/v1`,
//! wraps it in the platform middleware, and serves the merged OpenAPI document.

pub mod middleware;
pub mod observability;
pub mod openapi;
pub mod routes;
pub mod seed;
pub mod setup;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use crm_core::access::AccessTable;
use crm_core::extract;
use crm_core::objects::ObjectRegistry;
use crm_core::AppState;
use std::net::TcpListener;
use utoipa_swagger_ui::SwaggerUi;

pub use setup::{build_state, Bootstrap};

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(vec![
            "etag",
            "location",
            "x-request-id",
            "idempotent-replayed",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Every integrable object of every domain crate.
pub fn objects() -> ObjectRegistry {
    ObjectRegistry::new(
        &[
            crm_customers::OBJECTS,
            crm_sales::OBJECTS,
            crm_service::OBJECTS,
        ],
        &[
            crm_customers::EVENT_SOURCES,
            crm_service::EVENT_SOURCES,
            crm_marketing::EVENT_SOURCES,
        ],
    )
}

/// The whole permission table: identity, platform, integrations and every domain crate.
pub fn access_table() -> AccessTable {
    let per_object = crm_core::integrations::object_operations(&objects());
    AccessTable::new(&[
        &per_object,
        crm_core::integrations::OPERATIONS,
        crm_core::access::IDENTITY_OPERATIONS,
        crm_core::mail::OPERATIONS,
        crm_core::mail::RESOURCE_OPERATIONS,
        crm_core::identity::RESOURCE_OPERATIONS,
        observability::OPERATIONS,
        crm_customers::OPERATIONS,
        crm_customers::RESOURCE_OPERATIONS,
        crm_sales::OPERATIONS,
        crm_sales::RESOURCE_OPERATIONS,
        crm_marketing::OPERATIONS,
        crm_marketing::RESOURCE_OPERATIONS,
        crm_service::OPERATIONS,
        crm_service::RESOURCE_OPERATIONS,
        crm_partners::OPERATIONS,
        crm_analytics::OPERATIONS,
    ])
}

/// Every route of the API, relative to `/api/v1`.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    crm_core::identity::configure(cfg);
    crm_core::integrations::configure(cfg);
    crm_core::mail::configure(cfg);
    crm_customers::configure(cfg);
    crm_sales::configure(cfg);
    crm_marketing::configure(cfg);
    crm_service::configure(cfg);
    crm_partners::configure(cfg);
    crm_analytics::configure(cfg);
}

/// Start the HTTP server on an already bound listener.
pub fn serve(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    let spec = openapi::document();
    let limit = state.config.body_limit_bytes;
    let origins = state.config.cors_origins.clone();
    let metrics = web::Data::new(observability::Metrics::new());
    let table = web::Data::new(access_table());
    let limits = web::Data::new(crm_core::ratelimit::RateLimits::new(
        state.config.rate_limit_per_minute,
        state.config.anonymous_rate_limit_per_minute,
    ));
    let routes = web::Data::new(routes::RouteTable::from_document(&spec));
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(metrics.clone())
            .app_data(routes.clone())
            .app_data(table.clone())
            .app_data(limits.clone())
            .app_data(extract::json_config(limit))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(extract::query_config())
            .app_data(extract::path_config())
            .service(
                web::scope("/api/v1")
                    .wrap(actix_web::middleware::from_fn(
                        crm_core::idempotency::middleware,
                    ))
                    // Inside auth, so callers are counted by API key or user.
                    .wrap(actix_web::middleware::from_fn(
                        crm_core::ratelimit::middleware,
                    ))
                    .wrap(actix_web::middleware::from_fn(crm_core::auth::middleware))
                    .configure(configure_api),
            )
            .configure(observability::configure)
            .route(
                "/docs",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header(("Location", "/docs/"))
                        .finish()
                }),
            )
            .service(
                SwaggerUi::new("/docs/{_:.*}")
                    .external_url_unchecked("/openapi.json", spec.clone())
                    // Swagger UI's default sends the spec to an online validator.
                    .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none")),
            )
            .default_service(web::to(routes::fallback))
            .wrap(actix_web::middleware::from_fn(middleware::problem_bodies))
            .wrap(actix_web::middleware::from_fn(middleware::request_limits))
            .wrap(actix_web::middleware::from_fn(middleware::security_headers))
            .wrap(cors(&origins))
            .wrap(actix_web::middleware::from_fn(middleware::request_context))
    })
    .shutdown_timeout(20)
    .listen(listener)?
    .run();
    Ok(server)
}
