//! Audit log and domain events, written in the caller's transaction with the change itself:
//! either the change, its audit row and its event all commit, or none of them do.

use crate::auth::Principal;
use crate::db::DbConn;
use crate::error::ApiError;
use crate::ids;
use crate::schema::{audit_log, events};
use diesel::prelude::*;
use serde_json::{Map, Value};

/// Who made a change.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<String>,
    pub kind: &'static str,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            id: None,
            kind: "system",
        }
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor {
            id: Some(p.user_id.clone()),
            kind: if p.api_key_id.is_some() {
                "api_key"
            } else {
                "user"
            },
        }
    }
}

/// One change to one record.
pub struct Change<'a> {
    pub actor: &'a Actor,
    /// `created`, `updated`, `archived`, `restored`, …
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    /// Field changes (`{"field": {"from": …, "to": …}}`), or the new record on create.
    pub changes: Value,
    /// The record's state after the change; the event payload.
    pub record: Value,
}

/// Write the audit row and the `<entity>.<action>` event for a change.
pub fn record(conn: &mut DbConn, change: Change<'_>) -> Result<(), ApiError> {
    let now = ids::now();
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(ids::new_id()),
            audit_log::occurred_at.eq(&now),
            audit_log::actor_id.eq(&change.actor.id),
            audit_log::actor_kind.eq(change.actor.kind),
            audit_log::action.eq(change.action),
            audit_log::entity_type.eq(change.entity_type),
            audit_log::entity_id.eq(change.entity_id),
            audit_log::changes.eq(change.changes.to_string()),
        ))
        .execute(conn)?;
    let kind = format!("{}.{}", change.entity_type, change.action);
    let fields: Vec<&str> = change
        .changes
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    crate::timeline::add(
        conn,
        crate::timeline::NewEntry {
            entity_type: change.entity_type,
            entity_id: change.entity_id,
            kind: &kind,
            summary: if change.action == "updated" {
                format!(
                    "{} {}: {}",
                    change.entity_type,
                    change.action,
                    fields.join(", ")
                )
            } else {
                format!("{} {}", change.entity_type, change.action)
            },
            source_type: change.entity_type,
            source_id: change.entity_id,
            actor: change.actor,
            data: change.changes.clone(),
        },
    )?;
    emit(
        conn,
        &kind,
        change.entity_type,
        change.entity_id,
        change.actor,
        &change.record,
    )?;
    crate::hooks::changed(conn, change.entity_type, change.entity_id, change.action)
}

/// Write a domain event without an audit row (for events that change no record).
pub fn emit(
    conn: &mut DbConn,
    event_type: &str,
    entity_type: &str,
    entity_id: &str,
    actor: &Actor,
    payload: &Value,
) -> Result<(), ApiError> {
    // One insert: the feed orders it by its transaction (see `integrations::feed::Position`)
    // and webhooks fan it out after commit (`integrations::webhooks::relay`).
    diesel::insert_into(events::table)
        .values((
            events::id.eq(ids::new_id()),
            events::event_type.eq(event_type),
            events::entity_type.eq(entity_type),
            events::entity_id.eq(entity_id),
            events::actor_id.eq(&actor.id),
            events::occurred_at.eq(ids::now()),
            events::payload.eq(payload.to_string()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The fields that differ between two JSON objects, as `{"field": {"from", "to"}}`.
/// Fields named in `hidden` are reported as changed without their values.
pub fn diff(before: &Value, after: &Value, hidden: &[&str]) -> Value {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for (k, new) in a {
        let old = b.get(k).unwrap_or(&Value::Null);
        if old != new && !matches!(k.as_str(), "version" | "updated_at") {
            let entry = if hidden.contains(&k.as_str()) {
                serde_json::json!({"changed": true})
            } else {
                serde_json::json!({"from": old, "to": new})
            };
            out.insert(k.clone(), entry);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    #[test]
    fn diff_names_only_changed_fields() {
        let d = super::diff(
            &json!({"name": "a", "role": "agent", "version": 1}),
            &json!({"name": "b", "role": "agent", "version": 2}),
            &[],
        );
        assert_eq!(d, json!({"name": {"from": "a", "to": "b"}}));
    }
}
