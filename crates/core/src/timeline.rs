//! The customer timeline: one table every domain writes entries to (in the transaction
//! of the change), so the customers crate shows a ticket or an opportunity without
//! importing the service or sales crates. Audited changes land here automatically.

use crate::audit::Actor;
use crate::db::{DbConn, MultiBackend};
use crate::error::ApiError;
use crate::ids;
use crate::list::{self, Filter, ListParams, ListSpec, Page};
use crate::schema::timeline_entries as te;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One thing that happened to a customer record.
#[derive(Debug, Queryable, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub occurred_at: String,
    /// `activity.call`, `contact.updated`, `ticket.created`, …
    pub kind: String,
    pub summary: String,
    /// The record the entry is about (an activity, the contact itself, a ticket…).
    pub source_type: String,
    pub source_id: String,
    pub actor_id: Option<String>,
    /// Details: the field changes, or the activity's subject and outcome.
    #[schema(value_type = Object)]
    #[serde(serialize_with = "raw_json")]
    pub data: String,
}

fn raw_json<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    serde_json::from_str::<Value>(raw)
        .unwrap_or_default()
        .serialize(s)
}

pub struct NewEntry<'a> {
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub kind: &'a str,
    pub summary: String,
    pub source_type: &'a str,
    pub source_id: &'a str,
    pub actor: &'a Actor,
    pub data: Value,
}

pub fn add(conn: &mut DbConn, e: NewEntry<'_>) -> Result<(), ApiError> {
    diesel::insert_into(te::table)
        .values((
            te::id.eq(ids::new_id()),
            te::entity_type.eq(e.entity_type),
            te::entity_id.eq(e.entity_id),
            te::occurred_at.eq(ids::now()),
            te::kind.eq(e.kind),
            te::summary.eq(e.summary),
            te::source_type.eq(e.source_type),
            te::source_id.eq(e.source_id),
            te::actor_id.eq(&e.actor.id),
            te::data.eq(e.data.to_string()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Move a merged record's history to the survivor.
pub fn move_entries(
    conn: &mut DbConn,
    entity_type: &str,
    from: &str,
    to: &str,
) -> Result<(), ApiError> {
    diesel::update(
        te::table
            .filter(te::entity_type.eq(entity_type))
            .filter(te::entity_id.eq(from)),
    )
    .set(te::entity_id.eq(to))
    .execute(conn)?;
    Ok(())
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["occurred_at"],
    default_sort: "-occurred_at",
    filters: &[Filter::text(
        "kind",
        "Only entries of this kind, e.g. activity.call",
    )],
    search: None,
    null_sorts_as: &[],
};

crate::sortable!(te::table, te::BoxedQuery<'static, MultiBackend>, {
    "occurred_at" => te::occurred_at,
    "id" => te::id,
});

/// A page of one record's timeline, newest first by default.
pub fn page(
    conn: &mut DbConn,
    entity_type: &str,
    entity_id: &str,
    p: &ListParams,
) -> Result<Page<TimelineEntry>, ApiError> {
    let mut q = te::table
        .filter(te::entity_type.eq(entity_type.to_string()))
        .filter(te::entity_id.eq(entity_id.to_string()))
        .into_boxed::<MultiBackend>();
    if let Some(kind) = p.filter("kind") {
        q = q.filter(te::kind.eq(kind.to_string()));
    }
    let rows: Vec<TimelineEntry> = apply_sort(q, p)?.load(conn)?;
    list::page(rows, p)
}
