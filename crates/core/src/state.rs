//! Application state shared by every handler.

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::db::{DbPool, PooledConn};
use crate::error::ApiError;
use crate::jobs::JobRegistry;
use crate::objects::ObjectRegistry;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    pub jobs: Arc<JobRegistry>,
    /// Every integrable object, registered by the domain crates.
    pub objects: Arc<ObjectRegistry>,
    /// Failed logins per account and address, for the temporary lockout.
    pub logins: Arc<crate::ratelimit::LoginThrottle>,
    /// Turns for segment criteria evaluations (`CRM_CRITERIA_CONCURRENCY`): fewer than the
    /// pool's connections, so previews can never take them all.
    pub criteria_slots: Arc<Slots>,
}

/// A bound on how many requests of one costly kind run at once in this server: a request
/// takes a slot before it takes a database connection and gives it back when its database
/// work has ended. One that finds none free waits up to `wait`, then gets a 503 with
/// `Retry-After`, while other requests and the health checks go on.
pub struct Slots {
    what: &'static str,
    semaphore: Arc<tokio::sync::Semaphore>,
    size: usize,
    wait: std::time::Duration,
}

/// A slot held; dropping it frees it.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Slots {
    pub fn new(what: &'static str, size: usize, wait: std::time::Duration) -> Self {
        let size = size.max(1);
        Slots {
            what,
            semaphore: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
            wait,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A free slot now, if there is one.
    pub fn try_take(&self) -> Option<Slot> {
        self.semaphore.clone().try_acquire_owned().ok().map(Slot)
    }

    /// A slot, waiting up to the configured time for one.
    pub async fn take(&self) -> Result<Slot, ApiError> {
        if let Some(slot) = self.try_take() {
            return Ok(slot);
        }
        let turn = self.semaphore.clone().acquire_owned();
        match actix_web::rt::time::timeout(self.wait, turn).await {
            Ok(Ok(permit)) => Ok(Slot(permit)),
            _ => Err(ApiError::Busy {
                detail: format!(
                    "the server is already running {} {} at once; retry shortly",
                    self.size, self.what
                ),
                retry_after: self.wait.as_secs().max(1),
            }),
        }
    }
}

impl AppState {
    /// Run blocking database work on actix's thread pool with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut PooledConn) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        // The request's idempotency claim (if any) follows its work to the blocking thread.
        let claim = crate::idempotency::current_claim();
        let (out, queries) = actix_web::web::block(move || {
            let before = crate::db::queries_here();
            let out = pool
                .get()
                .map_err(ApiError::from)
                .and_then(|mut conn| crate::idempotency::with_claim(claim, || f(&mut conn)));
            (out, crate::db::queries_here() - before)
        })
        .await?;
        crate::db::add_request_queries(queries);
        out
    }
}
