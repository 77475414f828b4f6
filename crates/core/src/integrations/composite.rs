//! `POST /composite`: up to 25 sub-requests in one transaction. A later sub-request may
//! use an earlier one's result — `"account_id": "@{new_account.id}"` — so a client creates
//! an account, its contact and their deal in one call, or nothing at all.

use crate::auth::Principal;
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::objects::{self, MatchKey, ObjectRegistry, Write};
use crate::params::IdempotencyParams;
use crate::respond::WriteProblems;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;
use validator::Validate;

pub const MAX_REQUESTS: usize = 25;

/// One sub-request: an object endpoint, addressed as over HTTP.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SubRequest {
    /// Name later sub-requests use to refer to this one's result: `@{<reference_id>.<field>}`.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    pub reference_id: String,
    /// `GET`, `POST`, `PATCH`, `PUT` or `DELETE`.
    #[schema(pattern = "^(GET|POST|PATCH|PUT|DELETE)$")]
    pub method: String,
    /// `/api/v1/<collection>`, `/api/v1/<collection>/<id>`,
    /// `/api/v1/<collection>/external/<source>/<external_id>` or
    /// `/api/v1/<collection>/by-email?email=<email>`; references may appear in it.
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub path: String,
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// Version the record must still have (as `If-Match`).
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub if_match: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeRequest {
    #[schema(min_items = 1, max_items = 25)]
    pub requests: Vec<SubRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubResult {
    pub reference_id: String,
    pub status: u16,
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompositeResponse {
    pub results: Vec<SubResult>,
}

/// The names referenced in a string: `@{name.field}` → `name`.
fn references(text: &str) -> Vec<&str> {
    text.match_indices("@{")
        .filter_map(|(at, _)| {
            let (inside, _) = text.get(at + 2..)?.split_once('}')?;
            inside.split('.').next()
        })
        .collect()
}

fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings_in(i, out)),
        _ => {}
    }
}

/// Before anything runs: ids are unique and every reference names an earlier sub-request.
fn check_references(requests: &[SubRequest]) -> ApiResult<()> {
    let mut seen: Vec<&str> = vec![];
    for (i, r) in requests.iter().enumerate() {
        let valid_name = r.reference_id.len() <= 64
            && r.reference_id
                .starts_with(|c: char| c.is_ascii_alphabetic())
            && r.reference_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || seen.contains(&r.reference_id.as_str()) {
            return Err(ApiError::field(
                &format!("requests[{i}].reference_id"),
                "invalid",
                "must be a unique name of letters, digits and _",
            ));
        }
        let mut texts = vec![r.path.clone()];
        if let Some(b) = &r.body {
            strings_in(b, &mut texts);
        }
        for text in &texts {
            for name in references(text) {
                if !seen.contains(&name) {
                    return Err(ApiError::field(
                        &format!("requests[{i}]"),
                        "reference",
                        format!("@{{{name}…}} does not name an earlier sub-request"),
                    ));
                }
            }
        }
        seen.push(&r.reference_id);
    }
    Ok(())
}

/// The value at `name.a.b.0` among earlier results.
fn lookup(results: &HashMap<String, Value>, reference: &str) -> ApiResult<Value> {
    let mut parts = reference.split('.');
    let name = parts.next().unwrap_or("");
    let mut v = results.get(name).unwrap_or(&Value::Null);
    for part in parts {
        v = match v {
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Object(map) => map.get(part),
            _ => None,
        }
        .unwrap_or(&Value::Null);
    }
    if v.is_null() {
        return Err(ApiError::field(
            "requests",
            "reference",
            format!("@{{{reference}}} has no value in that sub-request's result"),
        ));
    }
    Ok(v.clone())
}

/// Replace references in a string: a string that is one reference takes the referenced
/// value as it is (a number stays a number); otherwise values are spliced in as text.
fn resolve_str(text: &str, results: &HashMap<String, Value>) -> ApiResult<Value> {
    let whole = text.strip_prefix("@{").and_then(|t| t.strip_suffix('}'));
    if let Some(reference) = whole.filter(|r| !r.contains("@{")) {
        return lookup(results, reference);
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("@{") {
        let Some((reference, tail)) = after.split_once('}') else {
            break;
        };
        out.push_str(before);
        match lookup(results, reference)? {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn resolve(v: &Value, results: &HashMap<String, Value>) -> ApiResult<Value> {
    Ok(match v {
        Value::String(s) if s.contains("@{") => resolve_str(s, results)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| resolve(i, results))
                .collect::<ApiResult<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| Ok((k.clone(), resolve(i, results)?)))
                .collect::<ApiResult<_>>()?,
        ),
        other => other.clone(),
    })
}

fn unsupported(path: &str, method: &str) -> ApiError {
    ApiError::field(
        "path",
        "unsupported",
        format!("{method} {path} is not an object endpoint a composite request can call"),
    )
}

/// Run one sub-request; returns its status and body.
fn run_one(
    conn: &mut DbConn,
    me: &Principal,
    registry: &ObjectRegistry,
    method: &str,
    path: &str,
    body: Value,
    if_match: Option<i32>,
) -> ApiResult<(u16, Option<Value>)> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let trimmed = path.trim_start_matches("/api/v1").trim_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    let Some((collection, rest)) = segments.split_first() else {
        return Err(unsupported(path, method));
    };
    let kind = registry.get(collection)?;
    let id = |raw: &str| crate::extract::path_id(raw);
    let write = match (method, rest) {
        ("GET", [raw]) => {
            me.require(kind.read)?;
            return Ok((200, Some((kind.get)(conn, me, &id(raw)?)?)));
        }
        ("POST", []) => Write::Create(body),
        ("PATCH", [raw]) => Write::Update {
            id: id(raw)?,
            if_match,
            body,
        },
        ("DELETE", [raw]) => Write::Delete(id(raw)?),
        ("PUT", ["external", source, external]) => Write::Upsert {
            key: MatchKey::External {
                source: source.to_string(),
                id: external.to_string(),
            },
            if_match,
            body,
        },
        ("PUT", ["by-email"]) => Write::Upsert {
            key: MatchKey::Email(email_of(query).ok_or_else(|| unsupported(path, method))?),
            if_match,
            body,
        },
        _ => return Err(unsupported(path, method)),
    };
    let outcome = objects::apply(conn, me, kind, write)?;
    Ok((outcome.status, outcome.record))
}

/// The `email` of a sub-request's `?email=…`, percent-decoded as a query string is.
fn email_of(query: &str) -> Option<String> {
    web::Query::<super::upsert::EmailKey>::from_query(query)
        .ok()
        .map(|q| q.into_inner().email)
}

fn run_all(
    conn: &mut DbConn,
    me: &Principal,
    registry: &ObjectRegistry,
    requests: Vec<SubRequest>,
) -> ApiResult<Vec<SubResult>> {
    db::write_tx(conn, |c| {
        let mut done: HashMap<String, Value> = HashMap::new();
        let mut results = vec![];
        for (i, r) in requests.into_iter().enumerate() {
            let outcome = (|| {
                let path = match resolve_str(&r.path, &done)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let body = resolve(&r.body.unwrap_or(Value::Object(Default::default())), &done)?;
                run_one(c, me, registry, &r.method, &path, body, r.if_match)
            })();
            match outcome {
                Ok((status, body)) => {
                    done.insert(r.reference_id.clone(), body.clone().unwrap_or(Value::Null));
                    results.push(SubResult {
                        reference_id: r.reference_id,
                        status,
                        body,
                    });
                }
                Err(e) => {
                    return Err(e.with(serde_json::json!({
                        "failed_index": i,
                        "failed_reference_id": r.reference_id,
                        "rolled_back": true,
                    })))
                }
            }
        }
        Ok(results)
    })
}

/// Run up to 25 object requests in one transaction.
///
/// Each sub-request names an object endpoint by `method` and `path`: GET, PATCH or DELETE (which
/// archives) by id, POST to the collection, or PUT by external key or by email. A later sub-request
/// may use an earlier result as `@{reference_id.field}` in its path or body. Either all succeed and
/// commit together (200), or the first failure rolls everything back and the call answers with that
/// sub-request's problem plus `failed_index`, `failed_reference_id` and `rolled_back: true`. Any
/// valid credential may call it, but each sub-request needs the object's read or write permission.
#[utoipa::path(post, path = "/api/v1/composite", tag = "integrations",
    request_body = CompositeRequest,
    params(IdempotencyParams),
    responses(
        (status = 200, description = "Every sub-request succeeded and was committed", body = CompositeResponse),
        WriteProblems))]
pub async fn composite(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<CompositeRequest>,
) -> ApiResult<HttpResponse> {
    let requests = body.into_inner().requests;
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(ApiError::field(
            "requests",
            "length",
            format!("send 1 to {MAX_REQUESTS} sub-requests"),
        ));
    }
    for (i, r) in requests.iter().enumerate() {
        r.validate()?;
        if r.body.as_ref().is_some_and(|b| !b.is_object()) {
            return Err(ApiError::field(
                &format!("requests[{i}].body"),
                "invalid_type",
                "must be a JSON object",
            ));
        }
    }
    check_references(&requests)?;
    let registry = state.objects.clone();
    let results = state
        .db(move |c| run_all(c, &me, &registry, requests))
        .await?;
    Ok(HttpResponse::Ok().json(CompositeResponse { results }))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_resolve_to_values_and_splice_into_text() {
        let mut done = HashMap::new();
        done.insert(
            "acct".to_string(),
            json!({"id": "a1", "emails": [{"email": "x@y.z"}], "n": 3}),
        );
        assert_eq!(resolve(&json!("@{acct.id}"), &done).ok(), Some(json!("a1")));
        assert_eq!(resolve(&json!("@{acct.n}"), &done).ok(), Some(json!(3)));
        assert_eq!(
            resolve(
                &json!({"p": "/accounts/@{acct.id}", "e": "@{acct.emails.0.email}"}),
                &done
            )
            .ok(),
            Some(json!({"p": "/accounts/a1", "e": "x@y.z"}))
        );
        assert!(resolve(&json!("@{acct.missing}"), &done).is_err());
    }
}
