//! What the marketing resources share: audit rows, required fields, the contact summary
//! their member lists show.

use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::schema::{contact_emails as ce, contacts};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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

/// A contact in a segment, list or campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberContact {
    #[schema(format = "uuid")]
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    /// The primary email, if the contact has one.
    pub email: Option<String>,
    pub lifecycle_stage: String,
    pub created_at: String,
}

/// The summaries of these contacts, in the order given: two queries for any number.
pub fn summaries(
    c: &mut DbConn,
    rows: Vec<(String, String, String, String, String)>,
) -> ApiResult<Vec<MemberContact>> {
    let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    let emails: Vec<(String, String)> = ce::table
        .filter(ce::contact_id.eq_any(ids))
        .filter(ce::is_primary.eq(true))
        .select((ce::contact_id, ce::email))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, first_name, last_name, lifecycle_stage, created_at)| MemberContact {
                email: emails.iter().find(|e| e.0 == id).map(|e| e.1.clone()),
                id,
                first_name,
                last_name,
                lifecycle_stage,
                created_at,
            },
        )
        .collect())
}

/// The columns `summaries` reads.
pub type SummaryColumns = (
    contacts::id,
    contacts::first_name,
    contacts::last_name,
    contacts::lifecycle_stage,
    contacts::created_at,
);

pub const SUMMARY: SummaryColumns = (
    contacts::id,
    contacts::first_name,
    contacts::last_name,
    contacts::lifecycle_stage,
    contacts::created_at,
);

/// Values an `in` test lists, at most.
pub const MAX_IN_VALUES: usize = 200;

/// What an automation's test compares a field with (`AutomationMatch.value`) in the spec: a
/// string, number or boolean, a list of them for `in`, or nothing (`exists`).
pub fn test_value() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let scalar = || {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
    };
    OneOfBuilder::new()
        .description(Some(
            "A string, number or boolean; a list of them (at most 200) for `in`; null or left \
             out where the op takes no value.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ArrayBuilder::new()
                .items(scalar())
                .max_items(Some(MAX_IN_VALUES)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// A value a `set_field` step writes, in the spec: a string, number or boolean, or null.
pub fn field_value() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .description(Some(
            "The value written (`customer` for `lifecycle_stage`); null clears the field.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// What a scoring rule compares an attribute with, in the spec: a string, a number (`gte`,
/// `lte`, `eq`), or a list of strings for `in`.
pub fn rule_value() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .description(Some(
            "For attributes: a number for `gte` and `lte` (and `eq` on numbers), a list of \
             strings (at most 200) for `in`, a string otherwise.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .max_items(Some(MAX_IN_VALUES)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}
