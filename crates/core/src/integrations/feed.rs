//! `GET /events`: the change feed. Every change in commit order with the record's state
//! after it; a client that keeps `next_cursor` and asks again never misses or repeats a
//! change (writers commit in event order, see `db::take_write_lock`). Events older than
//! the retention period are pruned; a cursor from before then answers 410 with how to resync.

use crate::auth::Principal;
use crate::db::{DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};
use crate::list::BoxedBool;
use crate::objects::ObjectRegistry;
use crate::respond::ListProblems;
use crate::schema::{events, feed_state};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = crate::list::MAX_LIMIT;

/// One change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedEvent {
    /// Pass as `after` to continue after this event.
    pub cursor: String,
    pub id: String,
    /// `<entity>.<action>`: `contact.created`, `account.updated`, `invoice.archived`…
    #[serde(rename = "type")]
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub actor_id: Option<String>,
    pub occurred_at: String,
    /// The record's state after the change.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub data: Vec<FeedEvent>,
    /// Where to continue from; store it and send it as `after` next time.
    pub next_cursor: String,
    /// More events are already waiting: ask again at once.
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The `next_cursor` of the previous call; without it the feed starts at the oldest
    /// retained event.
    #[param(nullable = false, pattern = "^[0-9]{1,18}$")]
    pub after: Option<String>,
    /// Comma-separated event types; `contact.*` matches every contact event.
    #[param(
        nullable = false,
        pattern = r"^(\*|[a-z_]+\.(\*|[a-z_]+))(,(\*|[a-z_]+\.(\*|[a-z_]+)))*$"
    )]
    pub types: Option<String>,
    /// 1 to 200, default 100.
    #[param(nullable = false, minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// What to read from the feed.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub after: Option<i64>,
    pub types: Vec<String>,
    pub limit: i64,
    /// Entity types the reader may see; `None` for all.
    pub entities: Option<Vec<&'static str>>,
}

pub fn parse_cursor(raw: &str) -> ApiResult<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{raw:?} is not a feed cursor; use the next_cursor of a previous response"
            ))
        })
}

pub fn parse_types(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let Some(raw) = raw else { return Ok(vec![]) };
    let mut out = vec![];
    for t in raw.split(',').map(str::trim) {
        let body = t.strip_suffix('*').unwrap_or(t);
        let valid = !t.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            && (t == "*" || t.contains('.'));
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "{t:?} is not an event type pattern (such as contact.* or account.updated)"
            )));
        }
        out.push(t.to_string());
    }
    Ok(out)
}

/// Whether an event type matches any of the patterns (none means all).
pub fn type_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => p == event_type,
        })
}

fn type_condition(patterns: &[String]) -> Option<BoxedBool<events::table>> {
    let mut cond: Option<BoxedBool<events::table>> = None;
    for p in patterns {
        let c: BoxedBool<events::table> = match p.strip_suffix('*') {
            Some("") => return None,
            Some(prefix) => Box::new(
                events::event_type
                    .like(format!("{}%", prefix.replace('_', "\\_")))
                    .escape('\\'),
            ),
            None => Box::new(events::event_type.eq(p.clone())),
        };
        cond = Some(match cond {
            None => c,
            Some(prev) => Box::new(prev.or(c)),
        });
    }
    cond
}

/// The newest committed event number (still known after retention emptied the table).
pub fn head(conn: &mut DbConn) -> ApiResult<i64> {
    let newest = events::table
        .select(diesel::dsl::max(events::seq))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0);
    Ok(newest.max(pruned_through(conn)?))
}

fn pruned_through(conn: &mut DbConn) -> ApiResult<i64> {
    Ok(feed_state::table
        .select(feed_state::pruned_through)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// 410 when events after the cursor have been pruned.
pub fn check_not_expired(conn: &mut DbConn, after: i64) -> ApiResult<()> {
    if after >= pruned_through(conn)? {
        return Ok(());
    }
    let resync = head(conn)?;
    Err(ApiError::Gone(
        "events after this cursor are past the retention period. Resync: note resync_cursor, \
         re-read the records you keep (GET /api/v1/exports/{collection}), then read the feed \
         from resync_cursor"
            .into(),
    )
    .with(serde_json::json!({"resync_cursor": resync.to_string()})))
}

type EventRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);

/// A page of the feed: events after the cursor that the reader may see, oldest first.
pub fn read(conn: &mut DbConn, q: &FeedQuery) -> ApiResult<FeedPage> {
    let after = q.after.unwrap_or(0);
    if q.after.is_some() {
        check_not_expired(conn, after)?;
    }
    // The head is read first: every event up to it has committed, so the cursor may move
    // to it even when none of those events is the reader's.
    let head = head(conn)?;
    let mut query = events::table
        .filter(events::seq.gt(after))
        .filter(events::seq.le(head))
        .into_boxed::<MultiBackend>();
    if let Some(cond) = type_condition(&q.types) {
        query = query.filter(cond);
    }
    if let Some(entities) = &q.entities {
        query = query.filter(events::entity_type.eq_any(entities.clone()));
    }
    let rows: Vec<EventRow> = query
        .order(events::seq.asc())
        .limit(q.limit + 1)
        .select((
            events::seq,
            events::id,
            events::event_type,
            events::entity_type,
            events::entity_id,
            events::actor_id,
            events::occurred_at,
            events::payload,
        ))
        .load(conn)?;
    let has_more = rows.len() as i64 > q.limit;
    let data: Vec<FeedEvent> = rows
        .into_iter()
        .take(q.limit as usize)
        .map(
            |(seq, id, event_type, entity_type, entity_id, actor_id, occurred_at, payload)| {
                FeedEvent {
                    cursor: seq.to_string(),
                    id,
                    event_type,
                    entity_type,
                    entity_id,
                    actor_id,
                    occurred_at,
                    data: serde_json::from_str(&payload).unwrap_or(Value::Null),
                }
            },
        )
        .collect();
    let next_cursor = match (has_more, data.last()) {
        (true, Some(last)) => last.cursor.clone(),
        _ => head.max(after).to_string(),
    };
    Ok(FeedPage {
        data,
        next_cursor,
        has_more,
    })
}

/// Delete events older than the retention period and remember how far pruning went.
/// Returns how many events were deleted.
pub fn prune(conn: &mut DbConn, retention: chrono::Duration) -> ApiResult<usize> {
    let cutoff = crate::ids::now_plus(-retention);
    crate::db::write_tx(conn, |c| {
        let last: Option<i64> = events::table
            .filter(events::occurred_at.lt(&cutoff))
            .select(diesel::dsl::max(events::seq))
            .first(c)?;
        let Some(last) = last else { return Ok(0) };
        let n = diesel::delete(events::table.filter(events::seq.le(last))).execute(c)?;
        diesel::update(feed_state::table.filter(feed_state::pruned_through.lt(last)))
            .set(feed_state::pruned_through.eq(last))
            .execute(c)?;
        Ok(n)
    })
}

pub fn query_for(
    me: &Principal,
    registry: &ObjectRegistry,
    p: &FeedParams,
) -> ApiResult<FeedQuery> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    Ok(FeedQuery {
        after: p.after.as_deref().map(parse_cursor).transpose()?,
        types: parse_types(p.types.as_deref())?,
        limit,
        entities: registry.visible_entities(me),
    })
}

/// Every change since a cursor, in commit order.
#[utoipa::path(get, path = "/api/v1/events", tag = "integrations",
    params(FeedParams),
    responses(
        (status = 200, description = "Events after the cursor that the caller may see", body = FeedPage),
        (status = 410, description = "The cursor is older than the retention period; the problem says how to resync and gives `resync_cursor`", body = crate::error::Problem, content_type = "application/problem+json"),
        ListProblems))]
pub async fn list_events(
    state: web::Data<AppState>,
    me: Principal,
    params: web::Query<FeedParams>,
) -> ApiResult<HttpResponse> {
    let q = query_for(&me, &state.objects, &params)?;
    let page = state.db(move |c| read(c, &q)).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns_match_prefixes_and_exact_types() {
        let p = parse_types(Some("contact.*,opportunity.updated")).unwrap_or_default();
        assert!(type_matches(&p, "contact.merged"));
        assert!(type_matches(&p, "opportunity.updated"));
        assert!(!type_matches(&p, "opportunity.created"));
        assert!(parse_types(Some("contact")).is_err());
        assert!(parse_types(Some("DROP TABLE")).is_err());
    }
}
