//! `GET /events/stream`: the change feed pushed as server-sent events, filtered to what the
//! caller may see, resumable with `Last-Event-ID`. The stream polls the same feed query,
//! so every replica serves it without shared memory and it never misses an event.

use super::feed::{self, FeedEvent, FeedQuery};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::respond::ListProblems;
use crate::state::AppState;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use std::time::{Duration, Instant};
use utoipa::IntoParams;

const POLL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing an idle stream, and lets the
/// server notice a client that went away.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an idle stream checks that its credential still holds (it also checks before
/// sending anything): a revoked key, a deactivated user or ended sessions close it.
const RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this cursor (`Last-Event-ID` wins); without either, only new events.
    #[param(nullable = false, pattern = r"^[0-9]{1,18}(\.[0-9]{1,18})?$")]
    pub after: Option<String>,
    /// Comma-separated event types; `ticket.*` matches every ticket event.
    #[param(
        nullable = false,
        pattern = r"^(\*|[a-z_]+\.(\*|[a-z_]+))(,(\*|[a-z_]+\.(\*|[a-z_]+)))*$"
    )]
    pub types: Option<String>,
}

struct Stream {
    state: web::Data<AppState>,
    query: FeedQuery,
    /// The bearer credential the stream was opened with, checked again every `RECHECK`.
    credential: String,
    checked: Instant,
    last_sent: Instant,
    greeted: bool,
    ended: bool,
}

fn frame(e: &FeedEvent) -> String {
    let data = serde_json::to_string(e).unwrap_or_default();
    format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        e.cursor, e.event_type
    )
}

async fn next_frame(mut s: Stream) -> Option<(Result<Bytes, crate::error::ApiError>, Stream)> {
    if s.ended {
        return None;
    }
    if !s.greeted {
        s.greeted = true;
        return Some((Ok(Bytes::from_static(b"retry: 2000\n\n")), s));
    }
    loop {
        let q = s.query.clone();
        let page = match s.state.db(move |c| feed::read(c, &q)).await {
            Ok(p) => p,
            Err(e) => return Some((Err(e), s)),
        };
        // Nothing is sent on a credential that no longer holds; an idle stream checks it
        // every RECHECK.
        if !page.data.is_empty() || s.checked.elapsed() >= RECHECK {
            if let Some(goodbye) = recheck(&mut s).await {
                s.ended = true;
                return Some((Ok(Bytes::from(goodbye)), s));
            }
        }
        s.query.after = feed::parse_cursor(&page.next_cursor).ok();
        if !page.data.is_empty() {
            s.last_sent = Instant::now();
            let text: String = page.data.iter().map(frame).collect();
            return Some((Ok(Bytes::from(text)), s));
        }
        if s.last_sent.elapsed() >= KEEP_ALIVE {
            s.last_sent = Instant::now();
            return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s));
        }
        actix_web::rt::time::sleep(POLL).await;
    }
}

/// Authenticate the stream's credential again. The caller's visibility follows a changed
/// role or team; a credential that no longer holds ends the stream with a `revoked` event
/// (a reconnecting client then gets the 401).
async fn recheck(s: &mut Stream) -> Option<String> {
    s.checked = Instant::now();
    let (state, credential) = (s.state.clone(), s.credential.clone());
    let outcome = s
        .state
        .db(move |c| crate::auth::authenticate(c, &state.jwt, &credential))
        .await;
    match outcome {
        Ok(me) => {
            s.query.entities = s.state.objects.visible_entities(&me);
            None
        }
        Err(e) => {
            let detail = serde_json::json!({"detail": e.problem().detail});
            Some(format!("event: revoked\ndata: {detail}\n\n"))
        }
    }
}

/// Stream the change feed as server-sent events.
///
/// A `text/event-stream` of the events `GET /api/v1/events` returns, for what the caller may see
/// and, with `types`, of those types only. It opens with `retry: 2000`, then sends each event as an
/// `id: <cursor>` line, an `event: <type>` line (`contact.updated`) and a `data:` line holding the
/// event as one line of JSON with the fields of a feed item (`cursor`, `id`, `type`, `entity_type`,
/// `entity_id`, `actor_id`, `occurred_at`, `data`), then a blank line. After 15 seconds with
/// nothing to send, the server sends a `: keep-alive` comment line.
///
/// To resume, send the last `id` received as the `Last-Event-ID` header (browsers do on reconnect)
/// or as `after`; the header wins, and with neither the stream carries only new events. A cursor
/// older than the retention period is a 410 before the stream starts. The credential is checked
/// again before events are sent and every 2 seconds: once it no longer holds (API key revoked, user
/// deactivated, sessions ended, or a JWT access token expired), the stream sends a last
/// `event: revoked` with `data: {"detail": "…"}` and no `id`, then closes. Any valid credential may
/// stream; use an API key for a stream that outlives an access token.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "integrations",
    params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (browsers send it on reconnect)")),
    responses(
        (status = 200, description = "`text/event-stream`: one `event: <type>` per change with the event as JSON in `data`; when the credential is revoked or the user's sessions end, a last `event: revoked` and the stream closes", content_type = "text/event-stream", body = String,
            example = json!("retry: 2000\n\nid: 1842.7\nevent: contact.updated\ndata: {\"cursor\":\"1842.7\",\"id\":\"01939a6e-8f1e-7c2a-9a43-5f0d2c1b7e10\",\"type\":\"contact.updated\",\"entity_type\":\"contact\",\"entity_id\":\"01939a6e-1b2c-7d3e-8f40-0a1b2c3d4e5f\",\"actor_id\":null,\"occurred_at\":\"2026-12-02T09:30:00.000000Z\",\"data\":{}}\n\n: keep-alive\n\n")),
        (status = 410, description = "The cursor is older than the retention period", body = crate::error::Problem, content_type = "application/problem+json"),
        ListProblems))]
pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    params: web::Query<StreamParams>,
) -> ApiResult<HttpResponse> {
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let after = match last_id.or(params.after.as_deref()) {
        Some(raw) => Some(feed::parse_cursor(raw)?),
        None => None,
    };
    let types = feed::parse_types(params.types.as_deref())?;
    let start = state
        .db(move |c| match after {
            Some(a) => feed::check_not_expired(c, a).map(|_| a),
            None => feed::head(c),
        })
        .await?;
    let query = FeedQuery {
        after: Some(start),
        types,
        limit: feed::DEFAULT_LIMIT,
        entities: state.objects.visible_entities(&me),
    };
    let s = Stream {
        state,
        query,
        credential: crate::auth::bearer(&req)?,
        checked: Instant::now(),
        last_sent: Instant::now(),
        greeted: false,
        ended: false,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::stream::unfold(s, next_frame)))
}
