//! `GET /events`: the change feed. Every change in commit order with the record's state
//! after it; a client that keeps `next_cursor` and asks again never misses or repeats a
//! change (see `Position`: no writer waits for another to keep it so). Events older than
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
    #[param(nullable = false, pattern = r"^[0-9]{1,18}(\.[0-9]{1,18})?$")]
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
    pub after: Option<Position>,
    pub types: Vec<String>,
    pub limit: i64,
    /// Entity types the reader may see; `None` for all.
    pub entities: Option<Vec<&'static str>>,
}

pub fn parse_cursor(raw: &str) -> ApiResult<Position> {
    let number = |n: &str| n.parse::<i64>().ok().filter(|n| *n >= 0);
    let parsed = match raw.trim().split_once('.') {
        Some((tx, seq)) => number(tx).zip(number(seq)),
        None => number(raw.trim()).map(|seq| (0, seq)),
    };
    parsed.map(|(tx, seq)| Position { tx, seq }).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{raw:?} is not a feed cursor; use the next_cursor of a previous response"
        ))
    })
}

pub fn parse_types(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let Some(raw) = raw else { return Ok(vec![]) };
    let mut out = vec![];
    for t in raw.split(',').map(str::trim) {
        // Exactly what the spec's pattern says: `*`, `entity.*` or `entity.action`.
        let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        let valid = t == "*"
            || t.split_once('.')
                .is_some_and(|(entity, action)| word(entity) && (action == "*" || word(action)));
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

/// A place in the feed: the writing transaction, then the event's number in it. Events are
/// read in this order, and only from transactions older than every one still running, so
/// an event can never appear behind a position a reader holds (on SQLite, with its single
/// writer, `tx` is always 0 and the order is `seq`). Written `tx.seq`, or `seq` when `tx` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub tx: i64,
    pub seq: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tx {
            0 => write!(f, "{}", self.seq),
            tx => write!(f, "{tx}.{}", self.seq),
        }
    }
}

impl Position {
    /// The condition "after this position" on the events table.
    fn after(self) -> BoxedBool<events::table> {
        Box::new(
            events::tx
                .gt(self.tx)
                .or(events::tx.eq(self.tx).and(events::seq.gt(self.seq))),
        )
    }

    fn at_or_before(self) -> BoxedBool<events::table> {
        Box::new(
            events::tx
                .lt(self.tx)
                .or(events::tx.eq(self.tx).and(events::seq.le(self.seq))),
        )
    }
}

/// Transactions below this id that wrote to this database have all finished: their
/// events are all visible and no other event of theirs will ever appear.
///
/// PostgreSQL: the oldest transaction still running (`pg_snapshot_xip`), not counting
/// those that backends of other databases of the cluster run — they cannot write our
/// events, and counting them would hold every reader of this feed back behind, say,
/// another application's long import. A running transaction we cannot attribute (another
/// role's backend, a prepared transaction) counts, so nothing is ever skipped. With none
/// running, every transaction before the snapshot's `xmax` has finished. SQLite, with one
/// writer: every transaction.
pub fn settled_below(conn: &mut DbConn) -> ApiResult<i64> {
    const OLDEST_RUNNING_HERE: &str = "COALESCE(
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(pg_current_snapshot()) AS x
          WHERE NOT EXISTS (
              SELECT 1 FROM pg_stat_activity a
               WHERE a.backend_xid IS NOT NULL
                 AND a.datname IS DISTINCT FROM current_database()
                 AND a.backend_xid::text::bigint = x::text::bigint % 4294967296)),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)";
    match crate::db::backend_of(conn) {
        crate::db::BackendKind::Sqlite => Ok(i64::MAX),
        crate::db::BackendKind::Postgres => Ok(diesel::select(diesel::dsl::sql::<
            diesel::sql_types::BigInt,
        >(OLDEST_RUNNING_HERE))
        .get_result(conn)?),
    }
}

/// The newest settled position (still known after retention emptied the table).
pub fn head(conn: &mut DbConn) -> ApiResult<Position> {
    let below = settled_below(conn)?;
    let newest: Option<(i64, i64)> = events::table
        .filter(events::tx.lt(below))
        .order((events::tx.desc(), events::seq.desc()))
        .select((events::tx, events::seq))
        .first(conn)
        .optional()?;
    let newest = newest
        .map(|(tx, seq)| Position { tx, seq })
        .unwrap_or_default();
    Ok(newest.max(pruned_through(conn)?))
}

fn pruned_through(conn: &mut DbConn) -> ApiResult<Position> {
    Ok(feed_state::table
        .select((feed_state::pruned_tx, feed_state::pruned_through))
        .first::<(i64, i64)>(conn)
        .optional()?
        .map(|(tx, seq)| Position { tx, seq })
        .unwrap_or_default())
}

/// 410 when events after the position have been pruned.
pub fn check_not_expired(conn: &mut DbConn, after: Position) -> ApiResult<()> {
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
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);

/// Events after a position up to a settled head, oldest first, at most `limit + 1` of them.
fn settled_between(
    conn: &mut DbConn,
    after: Position,
    head: Position,
    q: &FeedQuery,
) -> ApiResult<Vec<EventRow>> {
    let mut query = events::table
        .filter(after.after())
        .filter(head.at_or_before())
        .into_boxed::<MultiBackend>();
    if let Some(cond) = type_condition(&q.types) {
        query = query.filter(cond);
    }
    if let Some(entities) = &q.entities {
        query = query.filter(events::entity_type.eq_any(entities.clone()));
    }
    Ok(query
        .order((events::tx.asc(), events::seq.asc()))
        .limit(q.limit + 1)
        .select((
            events::tx,
            events::seq,
            events::id,
            events::event_type,
            events::entity_type,
            events::entity_id,
            events::actor_id,
            events::occurred_at,
            events::payload,
        ))
        .load(conn)?)
}

/// A page of the feed: events after the cursor that the reader may see, oldest first.
pub fn read(conn: &mut DbConn, q: &FeedQuery) -> ApiResult<FeedPage> {
    let after = q.after.unwrap_or_default();
    if q.after.is_some() {
        check_not_expired(conn, after)?;
    }
    // The head is read first: every event up to it has settled, so the cursor may move to
    // it even when none of those events is the reader's.
    let head = head(conn)?;
    let rows = settled_between(conn, after, head, q)?;
    let has_more = rows.len() as i64 > q.limit;
    let data: Vec<FeedEvent> = rows
        .into_iter()
        .take(q.limit as usize)
        .map(
            |(tx, seq, id, event_type, entity_type, entity_id, actor_id, occurred_at, payload)| {
                FeedEvent {
                    cursor: Position { tx, seq }.to_string(),
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
        // Replicas prune in turn (the row lock), so the pruned position only moves forward.
        diesel::update(feed_state::table)
            .set(feed_state::id.eq(feed_state::id))
            .execute(c)?;
        let below = settled_below(c)?;
        let last: Option<(i64, i64)> = events::table
            .filter(events::occurred_at.lt(&cutoff))
            .filter(events::tx.lt(below))
            .order((events::tx.desc(), events::seq.desc()))
            .select((events::tx, events::seq))
            .first(c)
            .optional()?;
        let Some((tx, seq)) = last else { return Ok(0) };
        let last = Position { tx, seq };
        if last <= pruned_through(c)? {
            return Ok(0);
        }
        let n = diesel::delete(events::table.filter(last.at_or_before())).execute(c)?;
        diesel::update(feed_state::table)
            .set((
                feed_state::pruned_tx.eq(last.tx),
                feed_state::pruned_through.eq(last.seq),
            ))
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

/// Read the change feed after a cursor.
///
/// Returns the events the caller may see, oldest first in commit order, each with the record's
/// state after the change in `data`. Store `next_cursor` and send it back as `after` to continue
/// without missing or repeating an event; `has_more` means more are waiting, so ask again at once.
/// Without `after` the feed starts at the oldest retained event; narrow it with `types`
/// (`contact.*`, `account.updated`) and size pages with `limit` (1–200, default 100). A cursor
/// older than the retention period is a 410 whose `resync_cursor` says where to resume after
/// re-reading the records; any valid credential may read, non-admins only the entity types their
/// role may see.
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
