//! What the server mailed (`GET /api/v1/outbox`), the built-in templates and their merge
//! fields (`GET /api/v1/mail-template-keys`), and the template overrides.

use super::templates::{self, Template};
use super::MailMessage;
use crate::access::{Access, Operation, Permission};
use crate::auth::Principal;
use crate::db::MultiBackend;
use crate::error::{ApiError, ApiResult};
use crate::extract::path_id;
use crate::list::{self, Filter, ListSpec};
use crate::params::PageParams;
use crate::respond::{ListProblems, ReadProblems};
use crate::schema::mail_messages;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;

const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at"],
    default_sort: "-created_at",
    filters: &[
        Filter::text("status", "queued, sent, outbox or failed"),
        Filter::text("to_address", "Mail to this address"),
        Filter::text("template", "Mail written from this template"),
        Filter::id("entity_id", "Mail about this record (a ticket…)"),
    ],
    search: None,
    null_sorts_as: &[],
};

crate::sortable!(mail_messages::table, mail_messages::BoxedQuery<'static, MultiBackend>, {
    "created_at" => mail_messages::created_at,
    "id" => mail_messages::id,
});

/// List the mail the server wrote.
///
/// Every message the server queued, newest first: what was sent through SMTP (`sent`), what is
/// kept here because no `SMTP_URL` is configured (`outbox`), what still waits for its next
/// attempt (`queued`, with `last_error`) and what was given up on (`failed`). Filter on `status`,
/// `to_address`, `template` and `entity_id`. Admins and managers (`MailRead`).
#[utoipa::path(get, path = "/api/v1/outbox", tag = "mail",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at)(,-?(created_at))*$", description = "created_at or -created_at (default)"),
        ("status" = Option<String>, Query, nullable = false, min_length = 1, description = "queued, sent, outbox or failed"),
        ("to_address" = Option<String>, Query, nullable = false, min_length = 1, description = "Mail to this address"),
        ("template" = Option<String>, Query, nullable = false, min_length = 1, description = "Mail written from this template"),
        ("entity_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Mail about this record (a ticket…)"),
    ),
    responses((status = 200, description = "A page of mail", body = crate::list::Page<MailMessage>), ListProblems))]
#[get("/outbox")]
pub async fn list_outbox(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MailRead)?;
    let p = list::parse(query.into_inner(), &LIST)?;
    let page = state
        .db(move |c| {
            let mut q = mail_messages::table.into_boxed::<MultiBackend>();
            if let Some(v) = p.filter("status") {
                q = q.filter(mail_messages::status.eq(v.to_string()));
            }
            if let Some(v) = p.filter("to_address") {
                q = q.filter(mail_messages::to_address.eq(v.to_string()));
            }
            if let Some(v) = p.filter("template") {
                q = q.filter(mail_messages::template.eq(v.to_string()));
            }
            if let Some(v) = p.id_filter("entity_id")? {
                q = q.filter(mail_messages::entity_id.eq(v));
            }
            let rows: Vec<MailMessage> = apply_sort(q, &p)?
                .select(MailMessage::as_select())
                .load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get one mail the server wrote.
///
/// The message with its status, attempts and last error; an unknown id is a 404. Admins and
/// managers (`MailRead`).
#[utoipa::path(get, path = "/api/v1/outbox/{id}", tag = "mail",
    params(("id" = String, Path, format = "uuid", description = "Mail id")),
    responses((status = 200, description = "The mail", body = MailMessage), ReadProblems))]
#[get("/outbox/{id}")]
pub async fn get_mail(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MailRead)?;
    let id = path_id(&id)?;
    let m = state
        .db(move |c| {
            mail_messages::table
                .find(&id)
                .select(MailMessage::as_select())
                .first(c)
                .optional()?
                .ok_or_else(|| ApiError::not_found("mail"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// List the built-in mail templates.
///
/// Every mail the server writes, by key, with its default subject and body and the merge fields
/// an override (`POST /api/v1/mail-templates`) may use. Admins and managers (`MailRead`).
#[utoipa::path(get, path = "/api/v1/mail-template-keys", tag = "mail",
    responses((status = 200, description = "The built-in templates", body = Vec<Template>), ReadProblems))]
#[get("/mail-template-keys")]
pub async fn template_keys(me: Principal) -> ApiResult<HttpResponse> {
    me.require(Permission::MailRead)?;
    Ok(HttpResponse::Ok().json(templates::built_in()))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_outbox)
        .service(get_mail)
        .service(template_keys);
    resource_routes(cfg);
}

crate::resources!(templates::MailTemplates);

const MAIL_READ: Access = Access::Needs(Permission::MailRead);

pub const OPERATIONS: &[Operation] = &[
    Operation::new("GET", "/api/v1/outbox", MAIL_READ),
    Operation::new("GET", "/api/v1/outbox/{id}", MAIL_READ),
    Operation::new("GET", "/api/v1/mail-template-keys", MAIL_READ),
];

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_outbox, get_mail, template_keys),
    tags((name = "mail", description = "What the server mails: the outbox, the built-in templates and their overrides"))
)]
pub struct Api;
