//! The job queue: rows in `jobs`, a pool of worker threads inside the server that lease
//! them (expiring leases, so a crashed worker's job runs again), retries with exponential
//! backoff, and dead jobs kept for inspection. Domain crates register job kinds.

use crate::db::{self, DbConn, DbPool};
use crate::error::ApiError;
use crate::ids;
use crate::schema::jobs;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use utoipa::ToSchema;

/// Why a job failed, and optionally when to try again (a webhook receiver's `Retry-After`).
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl From<String> for JobFailure {
    fn from(message: String) -> Self {
        JobFailure {
            message,
            retry_after: None,
        }
    }
}

impl From<&str> for JobFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

pub type JobResult = Result<(), JobFailure>;
pub type JobHandler = Arc<dyn Fn(&mut DbConn, &Value) -> JobResult + Send + Sync>;
pub type PeriodicTask = Arc<dyn Fn(&mut DbConn) + Send + Sync>;
/// Told when a job of its kind is given up on (dead), with the job's payload and why, so
/// the record the job works for (an import) does not stay "running" forever.
pub type DeadHandler = Arc<dyn Fn(&mut DbConn, &Value, &str) + Send + Sync>;

/// How a job kind backs off between attempts: `base` doubling, at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    fn delay(&self, attempts: i32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.clamp(1, 20) as u32 - 1);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const DEAD: &str = "dead";

/// Job kinds and how the workers run them.
pub struct JobRegistry {
    handlers: HashMap<String, JobHandler>,
    policies: HashMap<String, RetryPolicy>,
    /// Housekeeping run by the first worker every so often (event retention…).
    periodic: Vec<(String, Duration, PeriodicTask)>,
    dead_handlers: HashMap<String, DeadHandler>,
    /// Named periodic tasks fired once per tick across replicas (`crate::scheduler`).
    schedules: Vec<crate::scheduler::ScheduleSpec>,
    /// First retry delay; doubles with each attempt (capped at an hour).
    pub backoff_base: Duration,
    /// How long a claimed job is reserved for its worker before another may take it.
    pub lease: Duration,
    pub poll_interval: Duration,
}

impl Default for JobRegistry {
    fn default() -> Self {
        JobRegistry {
            handlers: HashMap::new(),
            policies: HashMap::new(),
            periodic: Vec::new(),
            dead_handlers: HashMap::new(),
            schedules: Vec::new(),
            backoff_base: Duration::from_secs(2),
            lease: Duration::from_secs(300),
            poll_interval: Duration::from_millis(200),
        }
    }
}

impl JobRegistry {
    pub fn register<F>(&mut self, kind: &str, handler: F)
    where
        F: Fn(&mut DbConn, &Value) -> JobResult + Send + Sync + 'static,
    {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
    }

    /// Register a job kind with its own backoff.
    pub fn register_with_policy<F>(&mut self, kind: &str, policy: RetryPolicy, handler: F)
    where
        F: Fn(&mut DbConn, &Value) -> JobResult + Send + Sync + 'static,
    {
        self.policies.insert(kind.to_string(), policy);
        self.register(kind, handler);
    }

    /// Run `task` about every `every` on one worker of each server.
    pub fn register_periodic<F>(&mut self, name: &str, every: Duration, task: F)
    where
        F: Fn(&mut DbConn) + Send + Sync + 'static,
    {
        self.periodic
            .push((name.to_string(), every, Arc::new(task)));
    }

    /// A named task fired once per tick across all replicas (see `crate::scheduler`); its
    /// job kind is `name`, and `handler` runs each tick's job.
    pub fn register_scheduled<F>(
        &mut self,
        name: &str,
        description: &str,
        every: Duration,
        handler: F,
    ) where
        F: Fn(&mut DbConn, &Value) -> JobResult + Send + Sync + 'static,
    {
        self.schedules.push(crate::scheduler::ScheduleSpec {
            name: name.to_string(),
            description: description.to_string(),
            every,
        });
        self.register(name, handler);
    }

    pub fn schedules(&self) -> &[crate::scheduler::ScheduleSpec] {
        &self.schedules
    }

    pub fn on_dead<F>(&mut self, kind: &str, handler: F)
    where
        F: Fn(&mut DbConn, &Value, &str) + Send + Sync + 'static,
    {
        self.dead_handlers
            .insert(kind.to_string(), Arc::new(handler));
    }

    fn bury(&self, conn: &mut DbConn, kind: &str, payload: &str, why: &str) {
        if let Some(handler) = self.dead_handlers.get(kind) {
            let payload: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
            handler(conn, &payload, why);
        }
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }

    fn backoff(&self, attempts: i32) -> Duration {
        RetryPolicy {
            base: self.backoff_base,
            cap: Duration::from_secs(3600),
        }
        .delay(attempts)
    }

    fn retry_delay(&self, kind: &str, attempts: i32, failure: &JobFailure) -> Duration {
        let backoff = match self.policies.get(kind) {
            Some(p) => p.delay(attempts),
            None => self.backoff(attempts),
        };
        backoff.max(failure.retry_after.unwrap_or_default())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: String,
    pub kind: String,
    #[schema(value_type = Object)]
    #[serde(serialize_with = "as_json")]
    pub payload: String,
    /// `queued`, `running`, `succeeded` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: String,
    pub locked_by: Option<String>,
    pub locked_until: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

fn as_json<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    v.serialize(s)
}

pub type JobColumns = diesel::dsl::AsSelect<Job, crate::db::MultiBackend>;

/// Put a job on the queue (in the caller's transaction, so it exists only if the change does).
pub fn enqueue(
    conn: &mut DbConn,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
) -> Result<String, ApiError> {
    let id = ids::new_id();
    enqueue_as(conn, &id, kind, payload, max_attempts)?;
    Ok(id)
}

/// `enqueue`, to run no sooner than `delay` from now (a throttled batch's next step).
pub fn enqueue_after(
    conn: &mut DbConn,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    delay: std::time::Duration,
) -> Result<String, ApiError> {
    let id = ids::new_id();
    enqueue_as(conn, &id, kind, payload, max_attempts)?;
    let run_at = ids::now_plus(chrono::Duration::milliseconds(delay.as_millis() as i64));
    diesel::update(jobs::table.find(&id))
        .set(jobs::run_at.eq(run_at))
        .execute(conn)?;
    Ok(id)
}

/// `enqueue` under an id the caller chose (the scheduler records it on the task's clock).
pub fn enqueue_as(
    conn: &mut DbConn,
    id: &str,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
) -> Result<(), ApiError> {
    let now = ids::now();
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(id),
            jobs::kind.eq(kind),
            jobs::payload.eq(payload.to_string()),
            jobs::status.eq(QUEUED),
            jobs::attempts.eq(0),
            jobs::max_attempts.eq(max_attempts.max(1)),
            jobs::run_at.eq(&now),
            jobs::created_at.eq(&now),
            jobs::updated_at.eq(&now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Take the next ready job: queued and due, or running with an expired lease.
/// Jobs whose worker died (lease expired) after their last allowed attempt: a job that
/// kills its worker every time would otherwise be leased again forever. Each expired
/// lease already counted as an attempt when it was claimed.
fn reap_expired(conn: &mut DbConn, registry: &JobRegistry) -> Result<(), ApiError> {
    let now = ids::now();
    let why = "the job's worker stopped during its last allowed attempt (lease expired)";
    let doomed: Vec<(String, String, String)> = jobs::table
        .filter(jobs::status.eq(RUNNING))
        .filter(jobs::locked_until.lt(&now))
        .filter(jobs::attempts.ge(jobs::max_attempts))
        .select((jobs::id, jobs::kind, jobs::payload))
        .load(conn)?;
    for (id, kind, payload) in doomed {
        let buried = db::write_tx(conn, |c| -> Result<usize, ApiError> {
            let n = diesel::update(
                jobs::table
                    .find(&id)
                    .filter(jobs::status.eq(RUNNING))
                    .filter(jobs::locked_until.lt(&now)),
            )
            .set((
                jobs::status.eq(DEAD),
                jobs::locked_by.eq(None::<String>),
                jobs::locked_until.eq(None::<String>),
                jobs::last_error.eq(why),
                jobs::updated_at.eq(&now),
                jobs::finished_at.eq(&now),
            ))
            .execute(c)?;
            if n == 1 {
                registry.bury(c, &kind, &payload, why);
            }
            Ok(n)
        })?;
        if buried == 1 {
            tracing::warn!(job_id = %id, kind = %kind, "job given up: its worker kept dying");
        }
    }
    Ok(())
}

pub fn claim(conn: &mut DbConn, worker: &str, lease: Duration) -> Result<Option<Job>, ApiError> {
    claim_turn(conn, worker, lease, None)
}

/// Claim the next ready job, giving job kinds fair turns: the oldest job of a kind that no
/// worker is running (and that this worker did not just run, `last_kind`) goes before
/// older jobs of busy kinds, so a flood of one kind, or its slow retries (deliveries to a
/// dead webhook receiver), never holds up mail, SLA checks, imports or automations. With
/// nothing else ready, the oldest job goes, whatever its kind.
fn claim_turn(
    conn: &mut DbConn,
    worker: &str,
    lease: Duration,
    last_kind: Option<&str>,
) -> Result<Option<Job>, ApiError> {
    let now = ids::now();
    let until = ids::now_plus(chrono::Duration::milliseconds(lease.as_millis() as i64));
    db::write_tx(conn, |c| {
        let mut busy: Vec<String> = jobs::table
            .filter(jobs::status.eq(RUNNING))
            .filter(jobs::locked_until.ge(now.clone()))
            .select(jobs::kind)
            .distinct()
            .load(c)?;
        busy.extend(last_kind.map(str::to_string));
        let candidate = match next_ready(c, &now, &busy)? {
            Some(id) => Some(id),
            None if !busy.is_empty() => next_ready(c, &now, &[])?,
            None => None,
        };
        let Some(id) = candidate else {
            return Ok(None);
        };
        let taken = diesel::update(jobs::table.find(&id).filter(ready(&now)))
            .set((
                jobs::status.eq(RUNNING),
                jobs::attempts.eq(jobs::attempts + 1),
                jobs::locked_by.eq(worker),
                jobs::locked_until.eq(&until),
                jobs::updated_at.eq(&now),
            ))
            .execute(c)?;
        if taken == 0 {
            return Ok(None);
        }
        Ok(Some(
            jobs::table.find(&id).select(Job::as_select()).first(c)?,
        ))
    })
}

/// The type of `ready`'s condition.
type Ready = diesel::dsl::Or<
    diesel::dsl::And<
        diesel::dsl::Eq<jobs::status, &'static str>,
        diesel::dsl::LtEq<jobs::run_at, String>,
    >,
    diesel::dsl::And<
        diesel::dsl::And<
            diesel::dsl::Eq<jobs::status, &'static str>,
            diesel::dsl::Lt<jobs::locked_until, String>,
        >,
        diesel::dsl::Lt<jobs::attempts, jobs::max_attempts>,
    >,
>;

/// Queued and due, or running with an expired lease and attempts left.
fn ready(now: &str) -> Ready {
    jobs::status
        .eq(QUEUED)
        .and(jobs::run_at.le(now.to_string()))
        .or(jobs::status
            .eq(RUNNING)
            .and(jobs::locked_until.lt(now.to_string()))
            .and(jobs::attempts.lt(jobs::max_attempts)))
}

/// The oldest ready job of a kind not in `except`.
fn next_ready(c: &mut DbConn, now: &str, except: &[String]) -> Result<Option<String>, ApiError> {
    let query = jobs::table
        .filter(ready(now))
        .filter(jobs::kind.ne_all(except.to_vec()))
        .order(jobs::run_at.asc())
        .select(jobs::id);
    // Several replicas may poll one PostgreSQL: skip rows another worker holds.
    Ok(if let DbConn::Pg(pg) = &mut *c {
        query.for_update().skip_locked().first(pg).optional()?
    } else {
        query.first(c).optional()?
    })
}

fn finish(
    conn: &mut DbConn,
    job: &Job,
    outcome: JobResult,
    registry: &JobRegistry,
) -> Result<(), ApiError> {
    let now = ids::now();
    let mine = jobs::table
        .find(&job.id)
        .filter(jobs::locked_by.eq(&job.locked_by));
    match outcome {
        Ok(()) => diesel::update(mine)
            .set((
                jobs::status.eq(SUCCEEDED),
                jobs::locked_by.eq(None::<String>),
                jobs::locked_until.eq(None::<String>),
                jobs::last_error.eq(None::<String>),
                jobs::updated_at.eq(&now),
                jobs::finished_at.eq(&now),
            ))
            .execute(conn)?,
        Err(failure) if job.attempts >= job.max_attempts => {
            let n = diesel::update(mine)
                .set((
                    jobs::status.eq(DEAD),
                    jobs::locked_by.eq(None::<String>),
                    jobs::locked_until.eq(None::<String>),
                    jobs::last_error.eq(&failure.message),
                    jobs::updated_at.eq(&now),
                    jobs::finished_at.eq(&now),
                ))
                .execute(conn)?;
            if n == 1 {
                registry.bury(conn, &job.kind, &job.payload, &failure.message);
            }
            n
        }
        Err(failure) => {
            let delay = registry.retry_delay(&job.kind, job.attempts, &failure);
            let run_at = ids::now_plus(chrono::Duration::milliseconds(delay.as_millis() as i64));
            diesel::update(mine)
                .set((
                    jobs::status.eq(QUEUED),
                    jobs::locked_by.eq(None::<String>),
                    jobs::locked_until.eq(None::<String>),
                    jobs::last_error.eq(&failure.message),
                    jobs::run_at.eq(&run_at),
                    jobs::updated_at.eq(&now),
                ))
                .execute(conn)?
        }
    };
    Ok(())
}

thread_local! {
    /// The job this worker thread is running, for `keep_alive`.
    static CURRENT: std::cell::RefCell<Option<(String, Option<String>, Duration)>> =
        const { std::cell::RefCell::new(None) };
}

/// Extend the running job's lease (long jobs call this as they make progress, so that no
/// other worker takes the job while this one is alive). Returns false when the lease was
/// lost to another worker: the caller should stop.
pub fn keep_alive(conn: &mut DbConn) -> Result<bool, ApiError> {
    let Some((id, worker, lease)) = CURRENT.with(|c| c.borrow().clone()) else {
        return Ok(true);
    };
    let until = ids::now_plus(chrono::Duration::milliseconds(lease.as_millis() as i64));
    let n = diesel::update(
        jobs::table
            .find(&id)
            .filter(jobs::locked_by.eq(&worker))
            .filter(jobs::status.eq(RUNNING)),
    )
    .set(jobs::locked_until.eq(until))
    .execute(conn)?;
    Ok(n == 1)
}

fn run_one(conn: &mut DbConn, job: &Job, registry: &JobRegistry) -> JobResult {
    let Some(handler) = registry.handlers.get(&job.kind).cloned() else {
        return Err(format!("no handler is registered for job kind {:?}", job.kind).into());
    };
    let payload: Value = serde_json::from_str(&job.payload).unwrap_or(Value::Null);
    CURRENT
        .with(|c| *c.borrow_mut() = Some((job.id.clone(), job.locked_by.clone(), registry.lease)));
    // A panicking handler must not take the worker thread down with it.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(conn, &payload)))
            .unwrap_or_else(|_| Err("the job handler panicked".into()));
    CURRENT.with(|c| *c.borrow_mut() = None);
    outcome
}

/// Claim and run one job if one is ready. Returns whether a job ran.
pub fn work_once(pool: &DbPool, registry: &JobRegistry, worker: &str) -> Result<bool, ApiError> {
    work_turn(pool, registry, worker, &mut None)
}

/// `work_once` for a worker that remembers the kind it ran last, to give others a turn.
fn work_turn(
    pool: &DbPool,
    registry: &JobRegistry,
    worker: &str,
    last_kind: &mut Option<String>,
) -> Result<bool, ApiError> {
    let mut conn = pool.get()?;
    reap_expired(&mut conn, registry)?;
    let Some(job) = claim_turn(&mut conn, worker, registry.lease, last_kind.as_deref())? else {
        *last_kind = None;
        return Ok(false);
    };
    *last_kind = Some(job.kind.clone());
    let outcome = run_one(&mut conn, &job, registry);
    if db::in_transaction(&mut conn) {
        // A panic unwound out of the handler's transaction: the pool discards this
        // connection (rolling the transaction back); record the outcome on a fresh one.
        drop(conn);
        conn = pool.get()?;
    }
    if let Err(e) = &outcome {
        tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, error = %e.message, "job failed");
    }
    finish(&mut conn, &job, outcome, registry)?;
    Ok(true)
}

/// Worker threads polling the queue until stopped.
pub struct WorkerPool {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    pub fn start(pool: DbPool, registry: Arc<JobRegistry>, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..workers)
            .map(|n| {
                let (pool, registry, stop) = (pool.clone(), registry.clone(), stop.clone());
                let name = format!("worker-{n}-{}", ids::new_id());
                // The first worker also runs the periodic housekeeping.
                let periodic = n == 0;
                std::thread::spawn(move || worker_loop(&pool, &registry, &stop, &name, periodic))
            })
            .collect();
        WorkerPool { stop, threads }
    }

    /// Ask the workers to stop after their current job, and wait for them.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn run_periodic(
    pool: &DbPool,
    registry: &JobRegistry,
    last_run: &mut HashMap<String, std::time::Instant>,
) {
    for (task, every, run) in &registry.periodic {
        if last_run.get(task).is_some_and(|t| t.elapsed() < *every) {
            continue;
        }
        last_run.insert(task.clone(), std::time::Instant::now());
        match pool.get() {
            Ok(mut conn) => {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut conn)));
                if outcome.is_err() {
                    tracing::error!(task = %task, "periodic task panicked");
                }
            }
            Err(e) => tracing::error!(task = %task, error = %e, "periodic task has no connection"),
        }
    }
}

fn worker_loop(
    pool: &DbPool,
    registry: &JobRegistry,
    stop: &AtomicBool,
    name: &str,
    periodic: bool,
) {
    let mut last_run = HashMap::new();
    let mut last_tick: Option<std::time::Instant> = None;
    let mut last_kind = None;
    while !stop.load(Ordering::SeqCst) {
        if periodic {
            run_periodic(pool, registry, &mut last_run);
            if last_tick.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_tick = Some(std::time::Instant::now());
                if let Err(e) = crate::scheduler::tick(pool, registry) {
                    tracing::error!(error = %e, "scheduler tick failed");
                }
            }
        }
        match work_turn(pool, registry, name, &mut last_kind) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(worker = name, error = %e, "job worker error"),
        }
        std::thread::sleep(registry.poll_interval);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = JobRegistry::default();
        assert_eq!(r.backoff(1), Duration::from_secs(2));
        assert_eq!(r.backoff(3), Duration::from_secs(8));
        assert_eq!(r.backoff(30), Duration::from_secs(3600));
    }
}
