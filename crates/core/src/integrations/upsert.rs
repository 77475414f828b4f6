//! `PUT /{collection}/external/{source}/{external_id}` and `PUT /{collection}/by-email/{email}`:
//! create the record the integrator's key names, or update it — 201 or 200 says which.

use crate::auth::Principal;
use crate::db;
use crate::error::ApiResult;
use crate::extract::{if_match, Json};
use crate::objects::{self, MatchKey, Outcome, Write};
use crate::params::IfMatchParams;
use crate::respond::{self, WriteProblems};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

/// The response for a write that created (201) or changed (200) a record.
pub fn respond_outcome(collection: &str, outcome: &Outcome) -> HttpResponse {
    let record = outcome.record.clone().unwrap_or(Value::Null);
    let version = record.get("version").and_then(Value::as_i64).unwrap_or(1) as i32;
    if outcome.status == 201 {
        respond::created(
            format!("/api/v1/{collection}/{}", outcome.id),
            version,
            &record,
        )
    } else {
        respond::with_etag(version, &record)
    }
}

async fn run_upsert(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    collection: String,
    key: MatchKey,
    body: Value,
) -> ApiResult<HttpResponse> {
    let expected = if_match(&req)?;
    let objects = state.objects.clone();
    let name = collection.clone();
    let outcome = state
        .db(move |c| {
            let kind = objects.get(&name)?;
            let write = Write::Upsert {
                key,
                if_match: expected,
                body,
            };
            db::write_tx(c, |c| objects::apply(c, &me, kind, write))
        })
        .await?;
    Ok(respond_outcome(&collection, &outcome))
}

/// Create or update the record carrying this external key.
#[utoipa::path(put, path = "/api/v1/{collection}/external/{source}/{external_id}", tag = "integrations",
    request_body(content = Object, description = "The object's fields, as for its create and update endpoints; the key is taken from the path"),
    params(
        ("collection" = String, Path, description = "The object"),
        ("source" = String, Path, min_length = 1, max_length = 200, pattern = "^[^/]+$", description = "The system the key comes from, e.g. `erp`"),
        ("external_id" = String, Path, min_length = 1, max_length = 200, pattern = "^[^/]+$", description = "The record's id in that system"),
        IfMatchParams,
    ),
    responses(
        (status = 200, description = "An existing record was updated", body = Object, headers(("ETag" = String))),
        (status = 201, description = "A new record was created", body = Object, headers(("Location" = String), ("ETag" = String))),
        WriteProblems))]
pub async fn upsert_external(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<(String, String, String)>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    let (collection, source, id) = path.into_inner();
    let key = MatchKey::External { source, id };
    run_upsert(req, state, me, collection, key, body.into_inner()).await
}

/// Create or update the contact whose primary email this is.
#[utoipa::path(put, path = "/api/v1/{collection}/by-email/{email}", tag = "integrations",
    request_body(content = Object, description = "The object's fields; a new record gets this email as its primary one unless the body lists emails"),
    params(
        ("collection" = String, Path, description = "The object"),
        ("email" = String, Path, format = "email", max_length = 254, description = "Primary email"),
        IfMatchParams,
    ),
    responses(
        (status = 200, description = "An existing record was updated", body = Object, headers(("ETag" = String))),
        (status = 201, description = "A new record was created", body = Object, headers(("Location" = String), ("ETag" = String))),
        WriteProblems))]
pub async fn upsert_by_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<(String, String)>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    let (collection, email) = path.into_inner();
    run_upsert(
        req,
        state,
        me,
        collection,
        MatchKey::Email(email),
        body.into_inner(),
    )
    .await
}
