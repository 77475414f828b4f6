//! `POST /{collection}/batch`: up to 200 creates, updates, upserts and deletes in one call,
//! each answered in order; with `all_or_none` they commit together or not at all.

use crate::auth::Principal;
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::objects::{self, MatchKey, ObjectKind, Write};
use crate::params::IdempotencyParams;
use crate::respond::WriteProblems;
use crate::state::AppState;
use actix_web::{web, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

pub const MAX_ITEMS: usize = 200;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchOp {
    Create,
    Update,
    Upsert,
    Delete,
}

/// One write of a batch.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub op: BatchOp,
    /// The record, for `update` and `delete`.
    #[schema(format = "uuid")]
    pub id: Option<String>,
    /// With `external_id`: the key an `upsert` matches on.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
    /// The primary email an `upsert` matches on (contacts), instead of an external key.
    #[validate(email)]
    #[schema(format = "email")]
    pub email: Option<String>,
    /// Version the record must still have (as `If-Match`), for `update` and `upsert`.
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub if_match: Option<i32>,
    /// The fields, for `create`, `update` and `upsert`.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Commit every item or none (one transaction); otherwise each item stands alone.
    #[serde(default)]
    pub all_or_none: bool,
    #[validate(nested)]
    #[schema(min_items = 1, max_items = 200)]
    pub items: Vec<BatchItem>,
}

/// What happened to one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    /// The HTTP status the item would have had alone: 200, 201, 204, or a problem's status.
    pub status: u16,
    pub id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub record: Option<Value>,
    /// The problem document, for a failed item.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<ItemResult>,
}

fn item_write(item: BatchItem) -> ApiResult<Write> {
    let body = || {
        item.body
            .clone()
            .unwrap_or(Value::Object(Default::default()))
    };
    let id = || {
        item.id
            .as_deref()
            .and_then(crate::ids::parse_id)
            .ok_or_else(|| ApiError::field("id", "required", "this op needs the record's id"))
    };
    Ok(match item.op {
        BatchOp::Create => Write::Create(body()),
        BatchOp::Update => Write::Update {
            id: id()?,
            if_match: item.if_match,
            body: body(),
        },
        BatchOp::Delete => Write::Delete(id()?),
        BatchOp::Upsert => {
            let key = match (&item.external_source, &item.external_id, &item.email) {
                (Some(source), Some(id), None) => MatchKey::External {
                    source: source.clone(),
                    id: id.clone(),
                },
                (None, None, Some(email)) => MatchKey::Email(email.clone()),
                _ => {
                    return Err(ApiError::field(
                        "external_id",
                        "required",
                        "an upsert matches on external_source + external_id, or on email",
                    ))
                }
            };
            Write::Upsert {
                key,
                if_match: item.if_match,
                body: body(),
            }
        }
    })
}

fn run_item(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    item: BatchItem,
) -> ApiResult<ItemResult> {
    let outcome = objects::apply(conn, me, kind, item_write(item)?)?;
    Ok(ItemResult {
        index: 0,
        status: outcome.status,
        id: Some(outcome.id),
        record: outcome.record,
        error: None,
    })
}

fn failed(index: usize, e: &ApiError) -> ItemResult {
    let error = e.to_json();
    ItemResult {
        index,
        status: e.status_code().as_u16(),
        id: None,
        record: None,
        error: Some(error),
    }
}

/// Each item in its own transaction: a failure stops nothing else.
fn run_each(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    items: Vec<BatchItem>,
) -> Vec<ItemResult> {
    items
        .into_iter()
        .enumerate()
        .map(
            |(i, item)| match db::write_tx(conn, |c| run_item(c, me, kind, item)) {
                Ok(r) => ItemResult { index: i, ..r },
                Err(e) => failed(i, &e),
            },
        )
        .collect()
}

/// Every item in one transaction: the first failure undoes them all.
fn run_atomic(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    items: Vec<BatchItem>,
) -> ApiResult<Vec<ItemResult>> {
    db::write_tx(conn, |c| {
        let mut results = vec![];
        for (i, item) in items.into_iter().enumerate() {
            match run_item(c, me, kind, item) {
                Ok(r) => results.push(ItemResult { index: i, ..r }),
                Err(e) => {
                    let item_error = e.to_json();
                    let detail = format!(
                        "item {i} failed ({}); all_or_none is set, so nothing was written",
                        e.problem().detail
                    );
                    let status = e.status_code().as_u16();
                    let base = match status {
                        404 => ApiError::NotFound(detail),
                        409 => ApiError::Conflict(detail),
                        412 => ApiError::PreconditionFailed(detail),
                        403 => ApiError::Forbidden(detail),
                        _ => ApiError::Validation {
                            detail,
                            errors: match e {
                                ApiError::Validation { errors, .. } => errors,
                                _ => vec![],
                            },
                        },
                    };
                    return Err(base.with(serde_json::json!({
                        "failed_index": i,
                        "item_error": item_error,
                    })));
                }
            }
        }
        Ok(results)
    })
}

/// Write up to 200 records of one object in one call.
///
/// Each item is a `create`, an `update` or `delete` by `id` (a delete archives the record), or an
/// `upsert` matched on `external_source` + `external_id` (or `email`, for contacts); results come
/// back in order, each with the status it would have had alone. By default every item commits on
/// its own and failures are reported per item in a 200. With `all_or_none`, the first failure rolls
/// everything back and the call fails with that item's 403, 404, 409 or 412 (any other failure as a
/// 422), plus `failed_index` and `item_error`. Needs the object's write permission; more than 200
/// items is a 413, and an `Idempotency-Key` makes a retry safe.
#[utoipa::path(post, path = "/api/v1/{collection}/batch", tag = "integrations",
    request_body = BatchRequest,
    params(("collection" = String, Path, description = "The object"), IdempotencyParams),
    responses(
        (status = 200, description = "Per-item results in order (each item's own status inside)", body = BatchResponse),
        (status = 413, description = "More than 200 items", body = crate::error::Problem, content_type = "application/problem+json"),
        WriteProblems))]
pub async fn batch(
    state: web::Data<AppState>,
    me: Principal,
    collection: web::Path<String>,
    body: Json<BatchRequest>,
) -> ApiResult<HttpResponse> {
    let BatchRequest { all_or_none, items } = body.into_inner();
    if items.len() > MAX_ITEMS {
        return Err(ApiError::PayloadTooLarge(format!(
            "a batch holds at most {MAX_ITEMS} items; this one has {}",
            items.len()
        )));
    }
    if items.is_empty() {
        return Err(ApiError::field("items", "length", "send 1 to 200 items"));
    }
    for (i, item) in items.iter().enumerate() {
        item.validate()?;
        let needs_body = !matches!(item.op, BatchOp::Delete);
        if needs_body && item.body.is_none() {
            return Err(ApiError::field(
                &format!("items[{i}].body"),
                "required",
                "create, update and upsert items need a body",
            ));
        }
        if item.body.as_ref().is_some_and(|b| !b.is_object()) {
            return Err(ApiError::field(
                &format!("items[{i}].body"),
                "invalid_type",
                "must be a JSON object",
            ));
        }
        if item
            .id
            .as_deref()
            .is_some_and(|id| crate::ids::parse_id(id).is_none())
        {
            return Err(ApiError::field(
                &format!("items[{i}].id"),
                "invalid",
                "must be a record id (a UUID)",
            ));
        }
    }
    let objects = state.objects.clone();
    let results = state
        .db(move |c| {
            let kind = objects.get(&collection)?;
            me.require(kind.write)?;
            if all_or_none {
                run_atomic(c, &me, kind, items)
            } else {
                Ok(run_each(c, &me, kind, items))
            }
        })
        .await?;
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(HttpResponse::Ok().json(BatchResponse {
        succeeded: results.len() - failed,
        failed,
        results,
    }))
}
