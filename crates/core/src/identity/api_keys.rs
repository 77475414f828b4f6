//! API keys for scripts and integrations. The secret is shown once, at creation; only its
//! SHA-256 digest is stored. A key acts as the user who created it, with that user's role.

use crate::access::Permission;
use crate::audit::{self, Actor, Change};
use crate::auth::{self, Principal, API_KEY_PREFIX};
use crate::db::{self, DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, Json};
use crate::ids;
use crate::list::{self, Filter, ListSpec, Page};
use crate::params::{IdempotencyParams, PageParams};
use crate::respond::{ListProblems, WriteProblems};
use crate::schema::api_keys as ak;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{delete, get, post, web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Queryable, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// A new key, with its secret. The secret is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Send as `Authorization: Bearer <key>`. Only the response that created the key has
    /// it: the secret is not stored, so an `Idempotency-Key` replay of the request answers
    /// `null` here, and says so in `secret_note`.
    #[schema(example = "crm_Zm9vYmFy…", value_type = Option<String>)]
    pub secret: String,
    /// On a replay only: why `secret` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_note: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Optional RFC 3339 expiry time; one in the past is a 422.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

const COLUMNS: (
    ak::id,
    ak::user_id,
    ak::name,
    ak::prefix,
    ak::expires_at,
    ak::last_used_at,
    ak::revoked_at,
    ak::created_at,
) = (
    ak::id,
    ak::user_id,
    ak::name,
    ak::prefix,
    ak::expires_at,
    ak::last_used_at,
    ak::revoked_at,
    ak::created_at,
);

const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "name"],
    default_sort: "created_at",
    filters: &[
        Filter::id("user_id", "Admins: keys of this user (default: all users)"),
        Filter::bool("revoked", "Only revoked (or only live) keys"),
    ],
    search: None,
    null_sorts_as: &[],
};

crate::sortable!(ak::table, ak::BoxedQuery<'static, MultiBackend>, {
    "created_at" => ak::created_at,
    "name" => ak::name,
    "id" => ak::id,
});

fn find(c: &mut DbConn, id: &str) -> ApiResult<ApiKey> {
    ak::table
        .find(id)
        .select(COLUMNS)
        .first::<ApiKey>(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("API key"))
}

/// Create an API key.
///
/// Creates a key that acts as the calling user, with that user's role; send it as
/// `Authorization: Bearer <secret>`. The `secret` is returned only in this 201 response (only its
/// digest is stored, and an `Idempotency-Key` replay returns `secret: null`); an `expires_at` that
/// is not a future RFC 3339 time is a 422. Every role may create its own keys (`ApiKeysOwn`);
/// audited as `api_key.created`.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "create_api_key", tag = "api-keys", request_body = CreateApiKey,
    params(IdempotencyParams),
    responses((status = 201, description = "Created; `secret` is shown only now", body = CreatedApiKey,
        headers(("Location" = String))), WriteProblems))]
#[post("/api-keys")]
pub async fn create(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ApiKeysOwn)?;
    body.validate()?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| ids::normalise_ts(t).filter(|t| *t > ids::now()))
        .map(|t| {
            t.ok_or_else(|| {
                ApiError::field(
                    "expires_at",
                    "invalid",
                    "must be an RFC 3339 time in the future",
                )
            })
        })
        .transpose()?;
    let secret = format!("{API_KEY_PREFIX}{}", auth::random_token(32)?);
    let created = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let id = ids::new_id();
                diesel::insert_into(ak::table)
                    .values((
                        ak::id.eq(&id),
                        ak::user_id.eq(&me.user_id),
                        ak::name.eq(body.name.trim()),
                        ak::prefix.eq(secret.get(..12).unwrap_or_default()),
                        ak::key_hash.eq(auth::secret_digest(&secret)),
                        ak::expires_at.eq(&expires_at),
                        ak::created_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                let key = find(c, &id)?;
                let json = serde_json::to_value(&key).unwrap_or_default();
                audit::record(
                    c,
                    Change {
                        actor: &Actor::from(&me),
                        action: "created",
                        entity_type: "api_key",
                        entity_id: &id,
                        changes: json.clone(),
                        record: json,
                    },
                )?;
                Ok(CreatedApiKey {
                    key,
                    secret,
                    secret_note: None,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/api-keys/{}", created.key.id),
        ))
        .json(created))
}

/// List API keys.
///
/// Returns your own keys; admins (`ApiKeysAll`) see everyone's and may narrow the list with
/// `user_id`, which is ignored for other roles. Filter on `revoked`, order with `sort`, and page
/// with `limit` and `cursor`. Secrets are never listed, only each key's `prefix`.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|name)(,-?(created_at|name))*$", description = "created_at or name; `-` for descending"),
        ("user_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Admins: keys of this user (default: all users)"),
        ("revoked" = Option<bool>, Query, nullable = false, description = "Only revoked (or only live) keys"),
    ),
    responses((status = 200, description = "Your keys (admins: everyone's); secrets are never listed", body = Page<ApiKey>), ListProblems))]
#[get("/api-keys")]
pub async fn list_keys(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ApiKeysOwn)?;
    let p = list::parse(query.into_inner(), &LIST)?;
    let page = state
        .db(move |c| {
            let mut q = ak::table.into_boxed::<MultiBackend>();
            // Visibility is part of the query: non-admins only ever load their own keys.
            if !auth::role_may(&me, Permission::ApiKeysAll) {
                q = q.filter(ak::user_id.eq(me.user_id.clone()));
            } else if let Some(user) = p.id_filter("user_id")? {
                q = q.filter(ak::user_id.eq(user));
            }
            match p.bool_filter("revoked")? {
                Some(true) => q = q.filter(ak::revoked_at.is_not_null()),
                Some(false) => q = q.filter(ak::revoked_at.is_null()),
                None => {}
            }
            let rows: Vec<ApiKey> = apply_sort(q, &p)?.select(COLUMNS).load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Revoke an API key.
///
/// The key stops working at once; revoking a key that is already revoked changes nothing and also
/// answers 204. You may revoke your own keys, admins (`ApiKeysAll`) anyone's; another user's key is
/// a 404 for everyone else. Audited as `api_key.revoked`.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, format = "uuid", description = "API key id")),
    responses((status = 204, description = "Revoked; the key stops working at once"), WriteProblems))]
#[delete("/api-keys/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ApiKeysOwn)?;
    let id = path_id(&id)?;
    state
        .db(move |c| {
            db::write_tx(c, |c| {
                db::lock_row(c, "api_keys", &id)?;
                let key = find(c, &id)?;
                if key.user_id != me.user_id && !auth::role_may(&me, Permission::ApiKeysAll) {
                    return Err(ApiError::not_found("API key"));
                }
                if key.revoked_at.is_none() {
                    let now = ids::now();
                    diesel::update(ak::table.find(&id))
                        .set(ak::revoked_at.eq(&now))
                        .execute(c)?;
                    let after = find(c, &id)?;
                    audit::record(
                        c,
                        Change {
                            actor: &Actor::from(&me),
                            action: "revoked",
                            entity_type: "api_key",
                            entity_id: &id,
                            changes: serde_json::json!({"revoked_at": {"from": null, "to": now}}),
                            record: serde_json::to_value(&after).unwrap_or_default(),
                        },
                    )?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
