//! The platform scheduler: named periodic tasks (the sales recycle policy, later SLA checks,
//! alerts and score recomputation) that fire once per tick across every replica.
//!
//! Each task's clock is a row in `schedules`. Ticks are aligned to the epoch (a task every
//! 3600 s fires on the hour on every replica), and a replica fires a due task by moving
//! `next_run_at` forward with a compare-and-set in the same transaction that enqueues the
//! task's job: of several replicas watching one tick, exactly one update matches and the
//! others find the clock already moved. The work itself runs on the job queue, so it is
//! retried with backoff and visible under `/jobs` like any other job. Because the clock is
//! stored, a restart neither loses nor repeats a tick; ticks missed while every replica
//! was down fire once, not once each.

use crate::db::{self, DbConn, DbPool};
use crate::error::ApiError;
use crate::ids;
use crate::jobs::{self, JobRegistry};
use crate::schema::schedules;
use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use utoipa::ToSchema;

/// A task a domain crate registers: its job kind is its name.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: String,
    /// The default cadence; an admin may change it (`PATCH /schedules/{name}`).
    pub every: Duration,
}

/// A task's clock as stored and served.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = schedules)]
pub struct Schedule {
    /// The task's name, also the kind of the jobs it enqueues.
    pub name: String,
    /// What its audit rows and events name it by.
    pub id: String,
    pub description: String,
    /// Seconds between ticks; ticks are aligned to the Unix epoch.
    pub every_seconds: i32,
    /// A disabled task does not fire (its clock still moves on).
    pub enabled: bool,
    /// The next tick.
    pub next_run_at: String,
    pub last_fired_at: Option<String>,
    /// The job the last tick enqueued (see `GET /jobs/{id}`).
    pub last_job_id: Option<String>,
    /// How many ticks have fired, across all replicas.
    pub fired_count: i32,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
}

/// The first tick strictly after `now` for a task every `every_seconds`.
pub fn next_tick(now: DateTime<Utc>, every_seconds: i32) -> String {
    let every = i64::from(every_seconds.max(1));
    let next = (now.timestamp().div_euclid(every) + 1) * every;
    ids::format_ts(Utc.timestamp_opt(next, 0).single().unwrap_or(now))
}

/// Create the clocks of registered tasks that have none yet (on start-up). An existing
/// clock keeps its stored cadence: an admin's change outlives restarts.
pub fn install(conn: &mut DbConn, registry: &JobRegistry) -> Result<(), ApiError> {
    for spec in registry.schedules() {
        let every = i32::try_from(spec.every.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let now = ids::now();
        let exists: i64 = schedules::table.find(&spec.name).count().get_result(conn)?;
        if exists > 0 {
            continue;
        }
        // Two replicas starting together may both try: the primary key keeps one row.
        let inserted = diesel::insert_into(schedules::table)
            .values((
                schedules::name.eq(&spec.name),
                schedules::id.eq(ids::new_id()),
                schedules::description.eq(&spec.description),
                schedules::every_seconds.eq(every),
                schedules::enabled.eq(true),
                schedules::next_run_at.eq(next_tick(Utc::now(), every)),
                schedules::fired_count.eq(0),
                schedules::version.eq(1),
                schedules::created_at.eq(&now),
                schedules::updated_at.eq(&now),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Fire every due task whose tick this replica wins. Returns how many it fired.
pub fn tick(pool: &DbPool, registry: &JobRegistry) -> Result<usize, ApiError> {
    let mut conn = pool.get()?;
    let now = Utc::now();
    let due: Vec<Schedule> = schedules::table
        .filter(schedules::next_run_at.le(ids::format_ts(now)))
        .select(Schedule::as_select())
        .load(&mut conn)?;
    let mut fired = 0;
    for schedule in due {
        if registry.schedules().iter().all(|s| s.name != schedule.name) {
            continue; // a task this build no longer has
        }
        if fire(&mut conn, &schedule, now)? {
            fired += 1;
        }
    }
    Ok(fired)
}

/// Move the clock past `now` if nobody else has, enqueueing the tick's job with it.
fn fire(conn: &mut DbConn, s: &Schedule, now: DateTime<Utc>) -> Result<bool, ApiError> {
    db::write_tx(conn, |c| {
        let stamp = ids::format_ts(now);
        let job_id = s.enabled.then(ids::new_id);
        let won = diesel::update(
            schedules::table
                .find(&s.name)
                .filter(schedules::next_run_at.eq(&s.next_run_at)),
        )
        .set((
            schedules::next_run_at.eq(next_tick(now, s.every_seconds)),
            schedules::last_fired_at.eq(if s.enabled {
                Some(stamp.clone())
            } else {
                s.last_fired_at.clone()
            }),
            schedules::last_job_id.eq(job_id.clone().or(s.last_job_id.clone())),
            schedules::fired_count.eq(schedules::fired_count + i32::from(s.enabled)),
        ))
        .execute(c)?
            == 1;
        if let (true, Some(job_id)) = (won, &job_id) {
            enqueue_run(c, &s.name, &s.next_run_at, job_id)?;
        }
        Ok(won && s.enabled)
    })
}

/// Put one run of task `name` on the queue under `job_id`; `tick` says which tick (or
/// `manual` for `POST /schedules/{name}/run`).
pub fn enqueue_run(
    conn: &mut DbConn,
    name: &str,
    tick: &str,
    job_id: &str,
) -> Result<(), ApiError> {
    let payload = json!({"schedule": name, "tick": tick});
    jobs::enqueue_as(conn, job_id, name, &payload, 3)
}

pub fn find(conn: &mut DbConn, name: &str) -> Result<Schedule, ApiError> {
    schedules::table
        .find(name)
        .select(Schedule::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("schedule"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_aligned_to_the_epoch() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default()
        };
        assert_eq!(
            next_tick(t("2026-12-02T10:17:03Z"), 3600),
            "2026-12-02T11:00:00.000000Z"
        );
        // Exactly on a tick: the next one, not this one again.
        assert_eq!(
            next_tick(t("2026-12-02T11:00:00Z"), 3600),
            "2026-12-02T12:00:00.000000Z"
        );
        assert_eq!(
            next_tick(t("2026-12-02T11:00:00.5Z"), 1),
            "2026-12-02T11:00:01.000000Z"
        );
    }
}
