//! Listeners on audited changes, across crates: a domain crate reacts to another's records
//! without the other depending on it (sales re-runs territory assignment when an account
//! changes; customers knows nothing of territories). `audit::record` calls the listeners
//! for the changed entity type in the change's own transaction, so what they write commits
//! or rolls back with the change. Installed once at start-up by the gateway.

use crate::db::DbConn;
use crate::error::ApiError;
use std::sync::OnceLock;

/// Called with the entity type, its id and the action (`created`, `updated`, …).
pub type Listener = fn(&mut DbConn, &str, &str, &str) -> Result<(), ApiError>;

/// Each domain's table of listeners.
pub type Listeners = &'static [&'static [(&'static str, Listener)]];

static LISTENERS: OnceLock<Listeners> = OnceLock::new();

/// Install the listeners (every server in a process installs the same tables; the first wins).
pub fn install(listeners: Listeners) {
    let _ = LISTENERS.set(listeners);
}

/// Tell the listeners of `entity_type` about a change.
pub fn changed(
    conn: &mut DbConn,
    entity_type: &str,
    entity_id: &str,
    action: &str,
) -> Result<(), ApiError> {
    let tables = LISTENERS.get().copied().unwrap_or_default();
    for (entity, listener) in tables.iter().flat_map(|t| t.iter()) {
        if *entity == entity_type {
            listener(conn, entity_type, entity_id, action)?;
        }
    }
    Ok(())
}
