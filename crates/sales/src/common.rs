//! What the sales resources share: who may edit a rep's records, enum filters, audit rows.

use crm_core::access::{Ownership, Permission};
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::{ApiError, ApiResult};
use crm_core::list::ListParams;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Who may change a lead or an opportunity: its owner, the owner's team, or a manager.
pub const EDITS: Ownership = Ownership::OwnerOrTeamEdits(Permission::SalesManage);

/// A list filter whose values are an enum's (`status=qualified`); another value is a 400.
pub fn enum_filter<T: DeserializeOwned>(p: &ListParams, name: &str) -> ApiResult<Option<T>> {
    p.filter(name)
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string()))
                .map_err(|_| ApiError::BadRequest(format!("{v:?} is not a {name}")))
        })
        .transpose()
}

/// The audit row and event of a change to a sales record.
pub fn record_change<T: Serialize>(
    c: &mut DbConn,
    me: &Principal,
    entity_type: &str,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &T,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type,
            entity_id: id,
            changes,
            record: crm_customers::common::to_json(after),
        },
    )
}
