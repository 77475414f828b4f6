//! What the service resources share: audit rows with timeline entries, required fields.

use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use serde::Serialize;
use serde_json::Value;

pub use crm_core::error::required;

/// The audit row and `<entity>.<action>` event of a change.
pub fn audit_change<T: Serialize>(
    c: &mut DbConn,
    me: &Principal,
    entity_type: &str,
    action: &str,
    id: &str,
    changes: Value,
    after: &T,
) -> ApiResult<()> {
    record_as(c, &Actor::from(me), entity_type, action, id, changes, after)
}

/// `audit_change` for an actor that isn't a caller (a scheduled task, a mail gateway).
pub fn record_as<T: Serialize>(
    c: &mut DbConn,
    actor: &Actor,
    entity_type: &str,
    action: &str,
    id: &str,
    changes: Value,
    after: &T,
) -> ApiResult<()> {
    let record = crm_customers::common::to_json(after);
    on_customer_timeline(c, actor, (entity_type, action, id), &record, &changes)?;
    audit::record(
        c,
        Change {
            actor,
            action,
            entity_type,
            entity_id: id,
            changes,
            record,
        },
    )
}

/// Tickets, work orders and warranty claims show on their contact's and account's timeline.
fn on_customer_timeline(
    c: &mut DbConn,
    actor: &Actor,
    (entity_type, action, id): (&str, &str, &str),
    record: &Value,
    changes: &Value,
) -> ApiResult<()> {
    let summary = match entity_type {
        "ticket" => format!(
            "ticket #{} {}: {}",
            record.get("number").cloned().unwrap_or_default(),
            action.replace('_', " "),
            record
                .get("subject")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        "work_order" | "warranty_claim" => {
            format!(
                "{} {}",
                entity_type.replace('_', " "),
                action.replace('_', " ")
            )
        }
        _ => return Ok(()),
    };
    for (kind, field) in [("contact", "contact_id"), ("account", "account_id")] {
        if let Some(owner) = record.get(field).and_then(Value::as_str) {
            crm_core::timeline::add(
                c,
                crm_core::timeline::NewEntry {
                    entity_type: kind,
                    entity_id: owner,
                    kind: &format!("{entity_type}.{action}"),
                    summary: summary.clone(),
                    source_type: entity_type,
                    source_id: id,
                    actor,
                    data: changes.clone(),
                },
            )?;
        }
    }
    Ok(())
}
