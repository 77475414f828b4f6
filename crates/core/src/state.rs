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
