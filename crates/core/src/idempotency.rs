//! `Idempotency-Key` on POST: the first successful response is stored with a digest of
//! the request; a repeat with the same key replays it, and the same key with a different
//! request is a 422. Keys are scoped to the principal (user or API key) that sent them and kept 24 hours.
//!
//! A claim whose request never finished (the server stopped mid-request) is told apart by
//! `write_committed`, set inside the transaction of the request's write: a claim older
//! than the lease without it may run again (nothing was written); with it, the write
//! happened and the retry is a 409 rather than a second write.

use crate::access::AuthorizedOperation;
use crate::auth::{secret_digest, Principal};
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::ids;
use crate::schema::idempotency_keys as ik;
use crate::state::AppState;
use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};
use diesel::prelude::*;

pub const HEADER: &str = "Idempotency-Key";
const REPLAYED: &str = "Idempotent-Replayed";
const KEPT_HOURS: i64 = 24;
/// Response headers worth replaying along with the body.
const KEPT_HEADERS: [&str; 3] = ["location", "etag", "content-type"];

type Stored = (String, Option<i32>, Option<String>, Option<String>);

tokio::task_local! {
    /// The idempotency row claimed by the request this task serves.
    static CLAIM: String;
}

thread_local! {
    /// The same claim on the blocking thread doing the request's database work.
    static CLAIM_HERE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The claim of the request being served, to hand to its blocking database work.
pub fn current_claim() -> Option<String> {
    CLAIM.try_with(Clone::clone).ok()
}

/// Run `f` (on a blocking thread) as part of the request holding `claim`.
pub fn with_claim<T>(claim: Option<String>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CLAIM_HERE.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CLAIM_HERE.with(|c| c.replace(claim)));
    f()
}

/// Inside a write transaction: record that the current request's write happened.
pub fn mark_written(conn: &mut DbConn) -> Result<(), diesel::result::Error> {
    let Some(id) = CLAIM_HERE.with(|c| c.borrow().clone()) else {
        return Ok(());
    };
    diesel::update(ik::table.find(id))
        .set(ik::write_committed.eq(true))
        .execute(conn)?;
    Ok(())
}

enum Claim {
    /// A stored outcome, or a claim still pending (`true`: its write did commit).
    Replay(Stored, bool),
    Proceed(String),
}

fn problem(req: ServiceRequest, e: ApiError) -> ServiceResponse<BoxBody> {
    req.into_response(e.error_response())
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().unwrap_or("").to_string());
    // Keys belong to who sent them (the user, or the API key), not to one token: a
    // client that refreshed its access token and retries must get the replay.
    let principal_scope = req
        .extensions()
        .get::<Principal>()
        .map(|p| match &p.api_key_id {
            Some(key) => format!("key:{key}"),
            None => format!("user:{}", p.user_id),
        });
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let operation = req.extensions().get::<AuthorizedOperation>().map(|o| o.0);
    // Import uploads are streamed (up to hundreds of MB) and never buffered; an import is
    // a job the client can look up, so it is not replayed by key.
    let replayable =
        req.method() == Method::POST && operation.is_some_and(|op| op.path != "/api/v1/imports");
    let (Some(key), Some(scope), Some(state), true) = (key, principal_scope, state, replayable)
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        let e = ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        );
        return Ok(problem(req, e));
    }
    let body = match req.extract::<web::Bytes>().await {
        Ok(b) => b,
        Err(e) => return Ok(req.error_response(e)),
    };
    let request_hash = secret_digest(&format!(
        "{} {}?{}\n{}",
        req.method(),
        req.match_info().as_str(),
        req.query_string(),
        String::from_utf8_lossy(&body)
    ));
    req.set_payload(Payload::from(body));

    let claim = {
        let (scope, key, hash) = (scope.clone(), key.clone(), request_hash.clone());
        let lease = chrono::Duration::from_std(state.config.idempotency_lease)
            .unwrap_or(chrono::Duration::minutes(5));
        state
            .db(move |c| claim_key(c, &scope, &key, &hash, lease))
            .await
    };
    let row_id = match claim {
        Err(e) => return Ok(problem(req, e)),
        Ok(Claim::Replay(stored, written)) => {
            return Ok(match replay(stored, written, &request_hash) {
                Ok(res) => req.into_response(res),
                Err(e) => problem(req, e),
            })
        }
        Ok(Claim::Proceed(id)) => id,
    };

    let res = CLAIM.scope(row_id.clone(), next.call(req)).await?;
    let (http_req, res) = res.into_parts();
    let status = res.status();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            res.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.to_string(), v.to_string()))
        })
        .collect();
    let mut builder = HttpResponse::build(status);
    for (name, value) in res.headers() {
        builder.append_header((name.clone(), value.clone()));
    }
    let bytes = body::to_bytes(res.into_body())
        .await
        .map_err(|_| ApiError::internal("cannot buffer response body"))?;
    let text = without_secrets(&bytes);
    let outcome = state
        .db(move |c| store_outcome(c, &row_id, status, &headers, &text))
        .await;
    if let Err(e) = outcome {
        tracing::error!(error = %e, "could not store idempotent response");
    }
    Ok(ServiceResponse::new(http_req, builder.body(bytes)))
}

/// What is kept for replay: the body, except that a once-shown secret (a new API key's or
/// webhook's `secret`, a mail gateway's `key` beside its `key_prefix`) is never stored; the
/// replay says it was shown once instead.
fn without_secrets(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).to_string();
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_str(&text) else {
        return text;
    };
    let shown_once = if body.contains_key("key_prefix") {
        "key"
    } else {
        "secret"
    };
    if !body
        .get(shown_once)
        .is_some_and(serde_json::Value::is_string)
    {
        return text;
    }
    body.insert(shown_once.into(), serde_json::Value::Null);
    body.insert(
        "secret_note".into(),
        "the secret was shown once, in the first response to this request; it is not stored".into(),
    );
    serde_json::Value::Object(body).to_string()
}

fn claim_key(
    conn: &mut DbConn,
    scope: &str,
    key: &str,
    hash: &str,
    lease: chrono::Duration,
) -> Result<Claim, ApiError> {
    db::write_tx(conn, |c| {
        let cutoff = ids::now_plus(chrono::Duration::hours(-KEPT_HOURS));
        diesel::delete(
            ik::table
                .filter(ik::scope.eq(scope))
                .filter(ik::idem_key.eq(key))
                .filter(ik::created_at.lt(&cutoff)),
        )
        .execute(c)?;
        let existing: Option<(String, String, bool, Stored)> = ik::table
            .filter(ik::scope.eq(scope))
            .filter(ik::idem_key.eq(key))
            .select((
                ik::id,
                ik::created_at,
                ik::write_committed,
                (
                    ik::request_hash,
                    ik::status_code,
                    ik::response_body,
                    ik::response_headers,
                ),
            ))
            .first(c)
            .optional()?;
        let abandoned = ids::now_plus(-lease);
        match existing {
            // The request that claimed the key stopped before writing anything: run it.
            Some((id, claimed_at, false, stored))
                if stored.1.is_none() && claimed_at < abandoned && stored.0 == hash =>
            {
                // Of two retries taking over at once, the one whose update still finds the
                // old claim runs; the other answers as for a request in flight.
                let taken = diesel::update(
                    ik::table
                        .find(&id)
                        .filter(ik::created_at.eq(&claimed_at))
                        .filter(ik::write_committed.eq(false)),
                )
                .set(ik::created_at.eq(ids::now()))
                .execute(c)?;
                if taken == 1 {
                    Ok(Claim::Proceed(id))
                } else {
                    Ok(Claim::Replay(stored, false))
                }
            }
            Some((_, _, written, stored)) => Ok(Claim::Replay(stored, written)),
            None => {
                let id = ids::new_id();
                diesel::insert_into(ik::table)
                    .values((
                        ik::id.eq(&id),
                        ik::scope.eq(scope),
                        ik::idem_key.eq(key),
                        ik::request_hash.eq(hash),
                        ik::created_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                Ok(Claim::Proceed(id))
            }
        }
    })
}

fn replay(stored: Stored, written: bool, hash: &str) -> Result<HttpResponse, ApiError> {
    let (stored_hash, status, body, headers) = stored;
    if stored_hash != hash {
        return Err(ApiError::validation(vec![crate::error::FieldError::new(
            "Idempotency-Key",
            "reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )]));
    }
    let Some(status) = status else {
        return Err(ApiError::Conflict(if written {
            "the request with this Idempotency-Key was carried out, but its response was \
             not kept (the server stopped); look the result up instead of retrying"
                .into()
        } else {
            "a request with this Idempotency-Key is still being processed; retry shortly".into()
        }));
    };
    let status = StatusCode::from_u16(status as u16).map_err(ApiError::internal)?;
    let mut res = HttpResponse::build(status);
    let headers: Vec<(String, String)> = headers
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default();
    for (name, value) in headers {
        res.insert_header((name, value));
    }
    res.insert_header((REPLAYED, "true"));
    Ok(res.body(body.unwrap_or_default()))
}

/// Keep successful responses; forget failed ones so the client may retry with the same key.
fn store_outcome(
    conn: &mut DbConn,
    row_id: &str,
    status: StatusCode,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), ApiError> {
    let row = ik::table.find(row_id);
    if status.is_success() {
        let headers = serde_json::to_string(headers).map_err(ApiError::internal)?;
        diesel::update(row)
            .set((
                ik::status_code.eq(status.as_u16() as i32),
                ik::response_body.eq(body),
                ik::response_headers.eq(headers),
            ))
            .execute(conn)?;
    } else {
        diesel::delete(row).execute(conn)?;
    }
    Ok(())
}
