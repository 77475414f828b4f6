//! `PUT /{collection}/external/{source}/{external_id}` and `PUT /{collection}/by-email?email=`:
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

/// `?email=` of an upsert by email.
#[derive(Debug, serde::Deserialize)]
pub struct EmailKey {
    pub email: String,
}

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

/// Create or update a record by its external key.
///
/// Finds the record whose `external_source` and `external_id` are the path's and applies the body
/// to it (200 with `ETag`), or creates a record carrying that key (201 with `Location` and `ETag`);
/// re-sending values the record already has writes nothing and fires no event. With `If-Match`, a
/// stale version is a 412, and so is a key no record has yet. A body whose `external_source` or
/// `external_id` differs from the path is a 422. Needs the object's write permission.
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
///
/// Matches the oldest live contact whose primary email is the `email` parameter (trimmed,
/// case-insensitively); a new contact gets that email as its primary one unless the body lists
/// `emails`. An update answers 200 with `ETag`, a create 201 with `Location` and `ETag`, and
/// re-sending unchanged values writes nothing. Without `If-Match` an existing contact is updated
/// unconditionally; with it, a stale version, or no match at all, is a 412. Needs the object's
/// write permission (`CustomersWrite` for contacts).
/// The email is a query parameter, not a path segment: an address may hold `/` or `?`, and
/// `/contacts/by-email/{email}` would be ambiguous with `/contacts/{id}/restore` and the like.
#[utoipa::path(put, path = "/api/v1/{collection}/by-email", tag = "integrations",
    request_body(content = Object, description = "The object's fields; a new record gets this email as its primary one unless the body lists emails"),
    params(
        ("collection" = String, Path, description = "The object"),
        ("email" = String, Query, format = "email", max_length = 254, description = "Primary email (percent-encode `+` as `%2B`)"),
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
    path: web::Path<String>,
    key: web::Query<EmailKey>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    let (collection, email) = (path.into_inner(), key.into_inner().email);
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
