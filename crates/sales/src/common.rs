//! What the sales resources share: who may edit a rep's records, enum filters, audit rows.

use crm_core::access::{Ownership, Permission};
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use serde::Serialize;

/// Who may change a lead or an opportunity: its owner, the owner's team, or a manager.
pub const EDITS: Ownership = Ownership::OwnerOrTeamEdits(Permission::SalesManage);

pub use crm_core::list::{enum_filter, enum_from, enum_text};

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
    let record = crm_customers::common::to_json(after);
    let account = record
        .get("account_id")
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let actor = Actor::from(me);
    if let Some(account) = account.filter(|_| ON_ACCOUNT_TIMELINE.contains(&entity_type)) {
        on_account_timeline(c, &actor, &account, (entity_type, action, id), &changes)?;
    }
    audit::record(
        c,
        Change {
            actor: &actor,
            action,
            entity_type,
            entity_id: id,
            changes,
            record,
        },
    )
}

/// Sales records whose changes also show on their account's timeline.
const ON_ACCOUNT_TIMELINE: &[&str] = &["opportunity", "quote", "order"];

/// An entry on the account's timeline for a change to one of its deals, quotes or orders.
fn on_account_timeline(
    c: &mut DbConn,
    actor: &Actor,
    account: &str,
    (entity_type, action, id): (&str, &str, &str),
    changes: &serde_json::Value,
) -> ApiResult<()> {
    crm_core::timeline::add(
        c,
        crm_core::timeline::NewEntry {
            entity_type: "account",
            entity_id: account,
            kind: &format!("{entity_type}.{action}"),
            summary: format!("{entity_type} {action}"),
            source_type: entity_type,
            source_id: id,
            actor,
            data: changes.clone(),
        },
    )
}

/// An optional id field of an input; a malformed one is a 422 naming `field`.
pub fn id_or_422(field: &str, raw: &Option<String>) -> ApiResult<Option<String>> {
    raw.as_deref()
        .map(|r| {
            crm_core::ids::parse_id(r)
                .ok_or_else(|| crm_customers::common::invalid(field, "invalid", "must be an id"))
        })
        .transpose()
}

/// A list of user ids; a malformed one is a 422 naming `field[i]`.
pub fn user_ids(field: &str, raw: &[String]) -> ApiResult<Vec<String>> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            crm_core::ids::parse_id(r).ok_or_else(|| {
                crm_customers::common::invalid(
                    &format!("{field}[{i}]"),
                    "invalid",
                    "must be a user id",
                )
            })
        })
        .collect()
}
