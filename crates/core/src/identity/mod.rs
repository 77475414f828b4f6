//! Identity and access: sessions, API keys, users and teams, plus the admin views of
//! the platform (jobs, audit log). Mounted under `/api/v1` by the gateway.

pub mod admin;
pub mod api_keys;
pub mod schedules;
pub mod sessions;
pub mod teams;
pub mod users;

use actix_web::web::{self, ServiceConfig};
use serde::{Deserialize, Deserializer};

/// For PATCH bodies: absent → `None`, `null` → `Some(None)`, value → `Some(Some(v))`.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Routes, relative to `/api/v1`. Literal paths come before `{id}` paths.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(sessions::login)
        .service(sessions::refresh)
        .service(sessions::logout)
        .service(api_keys::create)
        .service(api_keys::list_keys)
        .service(api_keys::revoke)
        // A resource without a method guard, so that other methods on `/users/me` get a
        // 405 here instead of falling through to `/users/{id}`.
        .service(
            web::resource("/users/me")
                .route(web::get().to(users::get_me))
                .default_service(crate::extract::only("GET")),
        )
        .service(admin::list_jobs)
        .service(admin::get_job)
        .service(admin::retry_job)
        .service(admin::list_audit)
        .service(schedules::list_schedules)
        .service(schedules::run_schedule)
        .service(schedules::get_schedule)
        .service(schedules::update_schedule);
    resource_routes(cfg);
}

crate::resources!(users::Users, teams::Teams);

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        sessions::login, sessions::refresh, sessions::logout,
        api_keys::create, api_keys::list_keys, api_keys::revoke,
        users::get_me,
        admin::list_jobs, admin::get_job, admin::retry_job, admin::list_audit,
        schedules::list_schedules, schedules::get_schedule, schedules::update_schedule,
        schedules::run_schedule,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    tags(
        (name = "auth", description = "Log in, refresh and log out"),
        (name = "api-keys", description = "Keys for scripts and integrations"),
        (name = "users", description = "Users, their roles and teams (admins manage)"),
        (name = "teams", description = "Teams of users"),
        (name = "jobs", description = "The background job queue and the scheduled tasks that feed it (admins)"),
        (name = "audit", description = "Who changed what, when (admins)"),
    )
)]
pub struct IdentityApi;
