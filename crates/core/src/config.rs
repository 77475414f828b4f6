//! Configuration from the environment. Every variable is listed in the README.

use crate::db::SessionLimits;
use std::net::IpAddr;
use std::time::Duration;

/// A secret from the environment. It cannot be printed: `Debug` shows `[redacted]`, so a
/// `{:?}` of the configuration never leaks it into a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Deliberately not `Debug`: the database URL may carry a password, and nothing should be
/// able to print the whole configuration into a log.
#[derive(Clone)]
pub struct Config {
    /// `sqlite://PATH`, a plain file path, or `postgres://…`.
    pub database_url: String,
    pub listen: String,
    /// HMAC secret for access tokens; generated and kept beside the SQLite file when unset.
    pub jwt_secret: Option<Secret>,
    /// Seals secrets the server keeps to use again (webhook signing secrets). Unset, a
    /// development key is generated beside the database, like the JWT secret.
    pub secrets_key: Option<Secret>,
    /// Secrets that signed tokens before the last rotation: tokens they signed (their `kid`)
    /// are still accepted until they expire; new tokens use `jwt_secret`.
    pub jwt_previous_secrets: Vec<Secret>,
    /// `iss` and `aud` of the access tokens this server issues and accepts.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub db_pool_size: u32,
    pub job_workers: usize,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    pub log_format_json: bool,
    /// Requests a minute per API key or user.
    pub rate_limit_per_minute: u32,
    /// Requests a minute per client address for calls without credentials (login…).
    pub anonymous_rate_limit_per_minute: u32,
    /// How long the change feed keeps events.
    pub event_retention: Duration,
    /// First webhook retry delay; doubles per attempt up to an hour.
    pub webhook_retry_base: Duration,
    /// Attempts per webhook delivery (with the defaults, about a day of retries).
    pub webhook_max_attempts: i32,
    /// Deliveries in a row that failed for good (a 4xx, or every retry) after which a
    /// webhook is disabled.
    pub webhook_disable_after: i32,
    pub webhook_timeout: Duration,
    /// Let webhooks target private, loopback and link-local addresses (off in production:
    /// a webhook must not become a way into the internal network).
    pub webhook_allow_private_urls: bool,
    /// Largest import file accepted.
    pub import_max_bytes: u64,
    /// How long a worker holds a job before another may take it over (a crashed worker's
    /// jobs resume after this); long jobs renew it as they go.
    pub job_lease: Duration,
    /// Limits of every PostgreSQL session (statement, lock wait, idle in a transaction).
    pub pg_session_limits: SessionLimits,
    /// How many segment criteria evaluations (previews, segment members, campaign adds from
    /// a segment) run at once in this server; unset, a quarter of the pool (at least one).
    /// Always fewer than the pool's connections.
    pub criteria_concurrency: Option<usize>,
    /// How long a criteria evaluation waits for its turn before a 503 with `Retry-After`.
    pub criteria_wait: Duration,
    /// How long one statement of a criteria evaluation may run (both databases).
    pub criteria_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed; anyone else's is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed logins for one account (or from one address) before a temporary lockout.
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    /// How long an `Idempotency-Key` whose request never finished (the server stopped
    /// before its write committed) holds before a retry may run the request again.
    pub idempotency_lease: Duration,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this token>`.
    pub metrics_token: Option<Secret>,
    /// `smtp://host:port`, `smtps://user:pass@host` or `smtp://host?tls=required`: where
    /// mail goes. Unset, mail stays in the outbox (`GET /api/v1/outbox`).
    pub smtp_url: Option<Secret>,
    /// `https://gateway.example/sms`: where text messages go, as JSON `POST`s. Unset, they
    /// are only logged (masked) and kept with status `logged`.
    pub sms_url: Option<Secret>,
    /// The sender of every mail the server writes (and where customers reply to).
    pub mail_from: String,
    /// The address customers reach the API at, for links in mail (surveys).
    pub public_url: String,
    /// A ticket still unsolved this long after it was opened is reported to its queue's
    /// manager (once), whatever its SLA.
    pub unresolved_notify_after: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a number, got {v:?}")),
    }
}

/// A comma-separated list variable.
fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let database_url = var("DATABASE_URL").unwrap_or_else(|| "sqlite://data/crm.db".into());
        // A scheme this server does not speak is refused here, before any command runs.
        crate::db::classify_url(&database_url).map_err(|e| e.to_string())?;
        Ok(Config {
            database_url,
            listen: var("CRM_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into()),
            jwt_secret: var("CRM_JWT_SECRET").map(Secret),
            secrets_key: var("CRM_SECRETS_KEY").map(Secret),
            jwt_previous_secrets: list("CRM_JWT_PREVIOUS_SECRETS")
                .into_iter()
                .map(Secret)
                .collect(),
            jwt_issuer: var("CRM_JWT_ISSUER").unwrap_or_else(|| "crm".into()),
            jwt_audience: var("CRM_JWT_AUDIENCE").unwrap_or_else(|| "crm-api".into()),
            access_token_ttl: Duration::from_secs(number("CRM_ACCESS_TOKEN_TTL_SECS", 900)?),
            refresh_token_ttl: Duration::from_secs(number(
                "CRM_REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
            )?),
            cors_origins: list("CRM_CORS_ORIGINS"),
            body_limit_bytes: number("CRM_BODY_LIMIT_BYTES", 1024 * 1024)?,
            db_pool_size: number("CRM_DB_POOL_SIZE", 10)?,
            job_workers: number("CRM_JOB_WORKERS", 2)?,
            admin_email: var("CRM_ADMIN_EMAIL"),
            admin_password: var("CRM_ADMIN_PASSWORD").map(Secret),
            log_format_json: var("CRM_LOG_FORMAT").as_deref() == Some("json"),
            rate_limit_per_minute: number("CRM_RATE_LIMIT_PER_MINUTE", 600)?,
            anonymous_rate_limit_per_minute: number("CRM_ANONYMOUS_RATE_LIMIT_PER_MINUTE", 60)?,
            event_retention: Duration::from_secs(
                number::<u64>("CRM_EVENT_RETENTION_DAYS", 30)? * 24 * 3600,
            ),
            webhook_retry_base: Duration::from_secs(number("CRM_WEBHOOK_RETRY_BASE_SECS", 30)?),
            webhook_max_attempts: number("CRM_WEBHOOK_MAX_ATTEMPTS", 30)?,
            webhook_disable_after: number("CRM_WEBHOOK_DISABLE_AFTER", 20)?,
            webhook_timeout: Duration::from_secs(number("CRM_WEBHOOK_TIMEOUT_SECS", 10)?),
            webhook_allow_private_urls: var("CRM_WEBHOOK_ALLOW_PRIVATE_URLS").as_deref()
                == Some("true"),
            import_max_bytes: number("CRM_IMPORT_MAX_BYTES", 200 * 1024 * 1024)?,
            job_lease: Duration::from_secs(number("CRM_JOB_LEASE_SECS", 60)?),
            pg_session_limits: SessionLimits {
                statement_timeout: Duration::from_millis(number(
                    "CRM_PG_STATEMENT_TIMEOUT_MS",
                    60_000,
                )?),
                lock_timeout: Duration::from_millis(number("CRM_PG_LOCK_TIMEOUT_MS", 10_000)?),
                idle_in_transaction_timeout: Duration::from_millis(number(
                    "CRM_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                    60_000,
                )?),
            },
            criteria_concurrency: match var("CRM_CRITERIA_CONCURRENCY") {
                None => None,
                Some(_) => Some(number("CRM_CRITERIA_CONCURRENCY", 1)?),
            },
            criteria_wait: Duration::from_millis(number("CRM_CRITERIA_WAIT_MS", 1_000)?),
            criteria_timeout: Duration::from_millis(number("CRM_CRITERIA_TIMEOUT_MS", 10_000)?),
            trusted_proxies: list("CRM_TRUSTED_PROXIES")
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|_| format!("CRM_TRUSTED_PROXIES: {p:?} is not an IP address"))
                })
                .collect::<Result<_, _>>()?,
            login_max_failures: number("CRM_LOGIN_MAX_FAILURES", 5)?,
            login_lockout: Duration::from_secs(number("CRM_LOGIN_LOCKOUT_SECS", 900)?),
            idempotency_lease: Duration::from_secs(number("CRM_IDEMPOTENCY_LEASE_SECS", 300)?),
            metrics_token: var("CRM_METRICS_TOKEN").map(Secret),
            smtp_url: var("SMTP_URL").map(Secret),
            sms_url: var("CRM_SMS_URL").map(Secret),
            mail_from: var("CRM_MAIL_FROM").unwrap_or_else(|| "CRM <crm@localhost>".into()),
            public_url: var("CRM_PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            unresolved_notify_after: Duration::from_secs(
                number::<u64>("CRM_UNRESOLVED_NOTIFY_HOURS", 72)? * 3600,
            ),
        })
    }

    /// A configuration for a given database with defaults, used by tests and the CLI.
    pub fn for_database(database_url: &str) -> Self {
        Config {
            database_url: database_url.to_string(),
            listen: "127.0.0.1:0".into(),
            jwt_secret: None,
            secrets_key: None,
            jwt_previous_secrets: vec![],
            jwt_issuer: "crm".into(),
            jwt_audience: "crm-api".into(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            cors_origins: vec![],
            body_limit_bytes: 1024 * 1024,
            db_pool_size: 8,
            job_workers: 2,
            admin_email: None,
            admin_password: None,
            log_format_json: false,
            rate_limit_per_minute: 100_000,
            anonymous_rate_limit_per_minute: 100_000,
            event_retention: Duration::from_secs(30 * 24 * 3600),
            webhook_retry_base: Duration::from_millis(200),
            webhook_max_attempts: 5,
            webhook_disable_after: 50,
            webhook_timeout: Duration::from_secs(5),
            // Tests deliver to receivers on loopback.
            webhook_allow_private_urls: true,
            import_max_bytes: 200 * 1024 * 1024,
            job_lease: Duration::from_secs(60),
            pg_session_limits: SessionLimits::default(),
            criteria_concurrency: None,
            criteria_wait: Duration::from_millis(1_000),
            criteria_timeout: Duration::from_millis(10_000),
            trusted_proxies: vec![],
            login_max_failures: 5,
            login_lockout: Duration::from_secs(900),
            idempotency_lease: Duration::from_secs(300),
            metrics_token: None,
            smtp_url: None,
            sms_url: None,
            mail_from: "CRM <support@example.com>".into(),
            public_url: "http://127.0.0.1:8080".into(),
            unresolved_notify_after: Duration::from_secs(72 * 3600),
        }
    }
}

impl Config {
    /// How many criteria evaluations run at once: the setting, or a quarter of the pool,
    /// always at least one and fewer than the pool's connections (when it has two or more),
    /// so that other requests and the health check always find one.
    pub fn criteria_slots(&self) -> usize {
        let pool = self.db_pool_size as usize;
        let wanted = self.criteria_concurrency.unwrap_or(pool / 4);
        wanted.clamp(1, pool.saturating_sub(1).max(1))
    }
}
