//! One database layer for both backends. `DbConn` is diesel's multi-connection over
//! PostgreSQL and SQLite, so queries are written once; the URL scheme picks the backend.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

/// Which backend a `DATABASE_URL` names, and the connection string to hand to it:
/// `postgres://…` or `postgresql://…`, `sqlite://PATH` or `sqlite:PATH`, or a plain file
/// path. Any other `scheme://` (`mysql://…`) is an error rather than a file of that name.
pub fn classify_url(url: &str) -> Result<(BackendKind, String), DbSetupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((BackendKind::Postgres, url.to_string()));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme && scheme != "sqlite" {
            return Err(DbSetupError::Url(scheme.to_string()));
        }
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = path.strip_prefix("sqlite:").unwrap_or(path);
    if path.is_empty() {
        return Err(DbSetupError::EmptyPath);
    }
    Ok((BackendKind::Sqlite, path.to_string()))
}

/// Limits every PostgreSQL session gets, so a stuck query, a lock wait or a transaction a
/// client abandoned cannot hold rows (or a pool slot) for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            statement_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl SessionLimits {
    fn sql(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET idle_in_transaction_session_timeout = {};",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }
}

/// A database URL fit to print: any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let shown = if user.len() == userinfo.len() {
        user.to_string()
    } else {
        format!("{user}:***")
    };
    format!("{scheme}://{shown}@{host}")
}

/// r2d2 manager that opens the backend named by the URL scheme (never by trial) and
/// applies SQLite's pragmas, or PostgreSQL's session limits, to every new connection.
pub struct Manager {
    kind: BackendKind,
    target: String,
    limits: SessionLimits,
}

/// Never prints the connection string itself: it may carry a password.
impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("kind", &self.kind)
            .field("target", &redact_url(&self.target))
            .finish()
    }
}

impl Manager {
    pub fn new(url: &str, limits: SessionLimits) -> Result<Self, DbSetupError> {
        let (kind, target) = classify_url(url)?;
        Ok(Manager {
            kind,
            target,
            limits,
        })
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;";

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match self.kind {
            BackendKind::Postgres => {
                let mut c = diesel::PgConnection::establish(&self.target)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                c.batch_execute(&self.limits.sql())
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Pg(c))
            }
            BackendKind::Sqlite => {
                let mut c = diesel::SqliteConnection::establish(&self.target)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                c.batch_execute(SQLITE_PRAGMAS)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                crm_within_budget_utils::register_nondeterministic_impl(&c, allowance)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    /// A connection goes back to the pool only outside any transaction: one that a panic
    /// or an error left inside a transaction would otherwise hold SQLite's write lock and
    /// swallow the next request's writes into a transaction nobody commits. r2d2 drops
    /// a broken connection, and closing it rolls that transaction back.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || in_transaction(conn)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error(
        "DATABASE_URL names the unsupported scheme {0}://; use postgres://… (or \
         postgresql://…) for PostgreSQL, or sqlite://PATH (or a plain file path) for SQLite"
    )]
    Url(String),
    #[error("DATABASE_URL names no SQLite file; use sqlite://PATH or a plain file path")]
    EmptyPath,
    #[error("cannot create the database folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migrate(String),
}

/// Create the SQLite folder if needed, run pending migrations, and build the pool.
pub fn connect_and_migrate(
    url: &str,
    pool_size: u32,
    limits: SessionLimits,
) -> Result<DbPool, DbSetupError> {
    count_queries();
    let manager = Manager::new(url, limits)?;
    if manager.kind == BackendKind::Sqlite {
        if let Some(dir) = std::path::Path::new(&manager.target).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbSetupError::Folder(dir.display().to_string(), e))?;
            }
        }
    }
    let mut conn = r2d2::ManageConnection::connect(&manager)
        .map_err(|e| DbSetupError::Connect(e.to_string()))?;
    run_migrations(&mut conn)?;
    r2d2::Pool::builder()
        .max_size(pool_size)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| DbSetupError::Connect(e.to_string()))
}

/// One connection outside any pool: what a separate reader of the database sees.
pub fn connect_once(url: &str) -> Result<DbConn, DbSetupError> {
    r2d2::ManageConnection::connect(&Manager::new(url, SessionLimits::default())?)
        .map_err(|e| DbSetupError::Connect(e.to_string()))
}

pub fn run_migrations(conn: &mut DbConn) -> Result<usize, DbSetupError> {
    let applied = match conn {
        DbConn::Pg(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| DbSetupError::Migrate(e.to_string()))
}

/// Whether a transaction is open on the connection (or its transaction state is broken).
pub fn in_transaction(conn: &mut DbConn) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConn::Pg(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
        DbConn::Sqlite(c) => AnsiTransactionManager::is_broken_transaction_manager(c),
    }
}

pub fn backend_of(conn: &DbConn) -> BackendKind {
    match conn {
        DbConn::Pg(_) => BackendKind::Postgres,
        DbConn::Sqlite(_) => BackendKind::Sqlite,
    }
}

/// Take SQLite's write lock at the start of a write transaction: a deferred transaction
/// that reads and then writes fails with SQLITE_BUSY when another writer committed in
/// between, and the busy timeout cannot help it; a no-op write to the lock table makes
/// SQLite take the lock up front (waiting up to the busy timeout). PostgreSQL writers run
/// concurrently: a write locks the rows it reads to change (`lock_row`, `lock_key`),
/// updates carry `WHERE version = ?`, uniqueness is the database's, and the change feed
/// stays gap-free by transaction ids (`integrations::feed::Position`).
pub fn take_write_lock(conn: &mut DbConn) -> diesel::QueryResult<()> {
    match backend_of(conn) {
        BackendKind::Sqlite => conn.batch_execute("UPDATE write_lock SET n = n WHERE n < 0"),
        BackendKind::Postgres => Ok(()),
    }
}

/// Lock one record's row for the rest of the write transaction, before reading it to
/// change it, so two writers of the same record take turns instead of one losing the
/// other's change. `NO KEY UPDATE`, the lock an UPDATE that keeps the key takes: it still
/// makes writers of the row take turns, but not inserts elsewhere whose foreign key points
/// at it (a bundle's component, a child account, a user's refresh token), which would
/// otherwise deadlock with them. SQLite's write transactions already hold the database's
/// write lock. `table` is a table name from the code, never from a request.
pub fn lock_row(conn: &mut DbConn, table: &'static str, id: &str) -> diesel::QueryResult<()> {
    match conn {
        DbConn::Pg(pg) => diesel::sql_query(format!(
            "SELECT 1 FROM {table} WHERE id = $1 FOR NO KEY UPDATE"
        ))
        .bind::<diesel::sql_types::Text, _>(id)
        .execute(pg)
        .map(|_| ()),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Lock a value that is not a row yet (an external key, an email being upserted, a unique
/// custom value) for the rest of the write transaction, so two writers checking that it is
/// free take turns instead of both inserting it. PostgreSQL: a transaction-scoped advisory
/// lock on the value's hash (a collision only makes unrelated writers wait); SQLite's
/// write transactions are serial already.
pub fn lock_key(conn: &mut DbConn, key: &str) -> diesel::QueryResult<()> {
    match conn {
        DbConn::Pg(pg) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(key)
                .execute(pg)
                .map(|_| ())
        }
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Lock several rows of one table, in id order so that two writers locking overlapping
/// sets (two merges) cannot deadlock.
pub fn lock_rows(conn: &mut DbConn, table: &'static str, ids: &[&str]) -> diesel::QueryResult<()> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().try_for_each(|id| lock_row(conn, table, id))
}

/// SQLite has one writer at a time, and its busy handler is not fair: a writer that
/// commits and at once begins again (an import's next slice, a campaign's next batch)
/// can keep the lock while the others sleep and poll for it, until their busy timeout
/// runs out. So this process's writers queue for it here, first come first served, and
/// every write gets its turn between two slices of a long one.
static SQLITE_WRITERS: parking_lot::FairMutex<()> = parking_lot::const_fair_mutex(());

/// How long a write waits for its turn before it answers 503 (SQLite's busy timeout).
const SQLITE_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

thread_local! {
    /// Whether this thread holds `SQLITE_WRITERS` (a nested write does not queue again).
    static HOLDS_WRITE_TURN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This thread's turn to write to SQLite, held until the guard drops.
struct WriteTurn(Option<parking_lot::FairMutexGuard<'static, ()>>);

impl Drop for WriteTurn {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            HOLDS_WRITE_TURN.with(|h| h.set(false));
        }
    }
}

fn write_turn(conn: &DbConn) -> diesel::QueryResult<WriteTurn> {
    if !matches!(conn, DbConn::Sqlite(_)) || HOLDS_WRITE_TURN.with(|h| h.get()) {
        return Ok(WriteTurn(None));
    }
    let Some(guard) = SQLITE_WRITERS.try_lock_for(SQLITE_WRITE_WAIT) else {
        // Mapped to a 503 with Retry-After, like SQLite's own "database is locked".
        return Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database is locked: other writes kept it busy".to_string()),
        ));
    };
    HOLDS_WRITE_TURN.with(|h| h.set(true));
    Ok(WriteTurn(Some(guard)))
}

pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let _turn = write_turn(conn)?;
    conn.transaction(|c| {
        take_write_lock(c)?;
        let out = f(c)?;
        // A request sent with an Idempotency-Key: its claim records, in this same
        // transaction, that the write happened, so a retry after a crash never repeats it.
        crate::idempotency::mark_written(c)?;
        Ok(out)
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_and_managers_carry_no_password() {
        let url = "postgres://crm:s3cret-pw@db.internal:5432/crm";
        assert_eq!(redact_url(url), "postgres://crm:***@db.internal:5432/crm");
        let shown = format!("{:?}", Manager::new(url, SessionLimits::default()).ok());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert_eq!(redact_url("postgres://crm@h/db"), "postgres://crm@h/db");
        assert_eq!(redact_url("sqlite://data/crm.db"), "sqlite://data/crm.db");
    }

    #[test]
    fn url_scheme_picks_the_backend() {
        let kind = |url: &str| classify_url(url).ok().map(|(k, _)| k);
        assert_eq!(kind("postgres://u@h/db"), Some(BackendKind::Postgres));
        assert_eq!(kind("postgresql://u@h/db"), Some(BackendKind::Postgres));
        assert_eq!(
            classify_url("sqlite://data/crm.db").ok(),
            Some((BackendKind::Sqlite, "data/crm.db".into()))
        );
        assert_eq!(
            classify_url("sqlite:data/crm.db").ok(),
            Some((BackendKind::Sqlite, "data/crm.db".into()))
        );
        assert_eq!(
            classify_url("/tmp/x.db").ok(),
            Some((BackendKind::Sqlite, "/tmp/x.db".into()))
        );
        assert_eq!(
            classify_url("data/odd://name.db").ok(),
            Some((BackendKind::Sqlite, "data/odd://name.db".into()))
        );
    }

    #[test]
    fn an_unknown_scheme_is_an_error_not_a_file_name() {
        for url in [
            "mysql://x/y",
            "mariadb://u:pw@h/db",
            "Postgres://u@h/db",
            "sqlite://",
        ] {
            assert!(classify_url(url).is_err(), "{url}");
        }
        let said = classify_url("mysql://u:s3cret@h/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(said.contains("mysql://"), "{said}");
        assert!(!said.contains("s3cret"), "{said}");
    }
}

// ---- Counting queries ----
// Every statement a connection starts is counted on its thread; `AppState::db` hands the
// count of its work to the request it serves, and the request's total is a metric
// (`crm_db_queries_total` by route), so a list page that costs a query per row shows.

thread_local! {
    static QUERIES_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

tokio::task_local! {
    static REQUEST_QUERIES: std::cell::Cell<u64>;
}

/// Whether statements are being recorded (`capture_statements`, for the query plan tests).
static CAPTURING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CAPTURED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn capture(statement: String) {
    if let Ok(mut all) = CAPTURED.lock() {
        all.push(statement);
    }
}

/// Start (or stop) recording the text of every statement this process runs.
pub fn capture_statements(on: bool) {
    CAPTURING.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The statements recorded so far (SQL with placeholders, then ` -- binds: […]`).
pub fn take_captured() -> Vec<String> {
    CAPTURED
        .lock()
        .map(|mut all| std::mem::take(&mut *all))
        .unwrap_or_default()
}

/// Count the statements of every connection opened from now on (called once at start-up).
pub fn count_queries() {
    fn counter() -> Option<Box<dyn diesel::connection::Instrumentation>> {
        Some(Box::new(
            |event: diesel::connection::InstrumentationEvent<'_>| match event {
                diesel::connection::InstrumentationEvent::StartQuery { query, .. } => {
                    QUERIES_HERE.with(|q| q.set(q.get() + 1));
                    budget_statement_started();
                    if CAPTURING.load(std::sync::atomic::Ordering::Relaxed) {
                        capture(query.to_string());
                    }
                }
                diesel::connection::InstrumentationEvent::FinishQuery {
                    error: Some(_), ..
                } => budget_statement_failed(),
                _ => {}
            },
        ))
    }
    if let Err(e) = diesel::connection::set_default_instrumentation(counter) {
        tracing::warn!(error = %e, "queries will not be counted");
    }
}

/// Statements started on this thread so far.
pub fn queries_here() -> u64 {
    QUERIES_HERE.with(std::cell::Cell::get)
}

/// Add statements run for the request this task serves (outside a request: ignored).
pub fn add_request_queries(n: u64) {
    let _ = REQUEST_QUERIES.try_with(|c| c.set(c.get() + n));
}

/// Run a request, returning also how many statements its database work ran.
pub async fn counting_queries<F: std::future::Future>(request: F) -> (F::Output, u64) {
    REQUEST_QUERIES
        .scope(std::cell::Cell::new(0), async move {
            let out = request.await;
            (out, REQUEST_QUERIES.with(std::cell::Cell::get))
        })
        .await
}

// ---- Time budgets ----
// Work whose cost a client shapes (segment criteria) runs under a budget per statement,
// tighter than the session's `statement_timeout`, so that no request can hold a connection
// for long. PostgreSQL: `SET LOCAL statement_timeout` inside a transaction (a savepoint when
// one is open), and the server cancels the statement. SQLite has no statement timeout, and
// diesel does not expose its progress handler or `sqlite3_interrupt`; instead the query
// calls `crm_within_budget()` (`BudgetCheck`) on every row it reads from `contacts`, a
// function of every SQLite connection that fails the statement once its deadline passed.

thread_local! {
    /// The budget of each statement this thread runs, while `within_budget` runs.
    static BUDGET: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
    /// When the running statement started, and when its budget ends.
    static STATEMENT: std::cell::Cell<Option<(std::time::Instant, std::time::Instant)>> =
        const { std::cell::Cell::new(None) };
    /// Whether a statement was stopped for its budget.
    static SPENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A statement starts (instrumentation): its budget starts.
fn budget_statement_started() {
    if let Some(budget) = BUDGET.with(std::cell::Cell::get) {
        let now = std::time::Instant::now();
        STATEMENT.with(|s| s.set(Some((now, now + budget))));
    }
}

/// A statement failed (instrumentation): it was over budget if it ran the whole budget.
fn budget_statement_failed() {
    let over = STATEMENT
        .with(std::cell::Cell::get)
        .is_some_and(|(_, deadline)| std::time::Instant::now() >= deadline);
    if over && BUDGET.with(std::cell::Cell::get).is_some() {
        SPENT.with(|s| s.set(true));
    }
}

#[diesel::expression::functions::declare_sql_function]
extern "SQL" {
    /// 1 while the running statement is within its budget; fails the statement after.
    fn crm_within_budget() -> diesel::sql_types::Integer;
}

/// What `crm_within_budget()` answers: 1, or an error that stops the statement.
#[derive(Debug)]
struct Allowance(bool);

const BUDGET_SPENT: &str = "the statement ran past its time budget";

impl diesel::serialize::ToSql<diesel::sql_types::Integer, diesel::sqlite::Sqlite> for Allowance {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        const ONE: i32 = 1;
        if self.0 {
            <i32 as diesel::serialize::ToSql<diesel::sql_types::Integer, _>>::to_sql(&ONE, out)
        } else {
            Err(BUDGET_SPENT.into())
        }
    }
}

fn allowance() -> Allowance {
    let within = STATEMENT
        .with(std::cell::Cell::get)
        .is_none_or(|(_, deadline)| std::time::Instant::now() < deadline);
    if !within && BUDGET.with(std::cell::Cell::get).is_some() {
        SPENT.with(|s| s.set(true));
        return Allowance(false);
    }
    Allowance(true)
}

/// A condition to put in a query that `within_budget` bounds: on SQLite, the check of the
/// statement's deadline on every row (`crm_within_budget() = 1`); on PostgreSQL, whose
/// server enforces the budget, `TRUE`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetCheck;

impl diesel::expression::Expression for BudgetCheck {
    type SqlType = diesel::sql_types::Bool;
}

impl<QS> diesel::expression::AppearsOnTable<QS> for BudgetCheck {}

impl<QS> diesel::expression::SelectableExpression<QS> for BudgetCheck {}

impl<GB> diesel::expression::ValidGrouping<GB> for BudgetCheck {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl diesel::query_builder::QueryId for BudgetCheck {
    type QueryId = BudgetCheck;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<MultiBackend> for BudgetCheck {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, MultiBackend>,
    ) -> QueryResult<()> {
        match out.backend() {
            MultiBackend::Sqlite(_) => out.push_sql("crm_within_budget() = 1"),
            MultiBackend::Pg(_) => out.push_sql("TRUE"),
        }
        Ok(())
    }
}

/// The work ran past its budget (and was stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// Run read work a client shapes with each of its statements bounded by `budget`: a
/// statement that runs past it is stopped, and `Err(OverBudget)` says so (whatever error
/// the work made of it). PostgreSQL: the work runs in a transaction (a savepoint inside an
/// open one) with `SET LOCAL statement_timeout`, restored afterwards. SQLite: statements
/// stop where their query has a `BudgetCheck`, at the first row read after the deadline.
pub fn within_budget<T, E>(
    conn: &mut DbConn,
    budget: Duration,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<Result<T, E>, OverBudget>
where
    E: From<diesel::result::Error>,
{
    let outer = BUDGET.with(|b| b.replace(Some(budget)));
    SPENT.with(|s| s.set(false));
    // Until the first statement starts (or without the instrumentation): from now.
    let now = std::time::Instant::now();
    STATEMENT.with(|s| s.set(Some((now, now + budget))));
    let out = match backend_of(conn) {
        BackendKind::Sqlite => f(conn),
        BackendKind::Postgres => conn.transaction(|c| {
            use diesel::sql_types::Text;
            let before: String = diesel::select(diesel::dsl::sql::<Text>(
                "current_setting('statement_timeout')",
            ))
            .get_result(c)?;
            set_statement_timeout(c, &budget.as_millis().max(1).to_string())?;
            let out = f(c)?;
            set_statement_timeout(c, &before)?;
            Ok(out)
        }),
    };
    let spent = SPENT.with(|s| s.replace(false));
    BUDGET.with(|b| b.set(outer));
    STATEMENT.with(|s| s.set(None));
    match out {
        Err(_) if spent => Err(OverBudget),
        other => Ok(other),
    }
}

/// `statement_timeout` until the end of the transaction (or of the savepoint, rolled back).
fn set_statement_timeout(c: &mut DbConn, value: &str) -> QueryResult<()> {
    diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Text>("set_config('statement_timeout', ")
            .bind::<diesel::sql_types::Text, _>(value)
            .sql(", true)"),
    )
    .execute(c)
    .map(|_| ())
}
