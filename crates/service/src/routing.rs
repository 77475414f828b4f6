//! Routing rules: ordered conditions on a new ticket (category, product, customer tier,
//! language, channel) naming the queue it goes to. The lowest position that matches wins
//! (then the oldest rule); each listed condition must hold, an absent one always does.

use crate::common::{audit_change, required};
use crate::queues;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::routing_rules;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// What a ticket must be for a rule to route it; each list is "any of" (at most 50).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Validate)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 values"))]
    #[schema(max_items = 50)]
    pub categories: Vec<String>,
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 values"))]
    #[schema(max_items = 50)]
    pub product_ids: Vec<String>,
    /// The account's `tier` custom field.
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 values"))]
    #[schema(max_items = 50)]
    pub customer_tiers: Vec<String>,
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 values"))]
    #[schema(max_items = 50)]
    pub languages: Vec<String>,
    /// `email`, `web`, `phone`, `chat`, `social`, `api`.
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 values"))]
    #[schema(max_items = 50)]
    pub channels: Vec<String>,
}

/// What routing knows of a new ticket.
pub struct Facts<'a> {
    pub category: Option<&'a str>,
    pub product_id: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub language: Option<&'a str>,
    pub channel: &'a str,
}

fn any_of(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
}

impl Conditions {
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        any_of(&self.categories, f.category)
            && any_of(&self.product_ids, f.product_id)
            && any_of(&self.customer_tiers, f.tier)
            && any_of(&self.languages, f.language)
            && any_of(&self.channels, Some(f.channel))
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = routing_rules)]
struct Row {
    id: String,
    name: String,
    position: i32,
    conditions: String,
    queue_id: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A routing rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutingRule {
    pub id: String,
    pub name: String,
    pub position: i32,
    pub conditions: Conditions,
    pub queue_id: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for RoutingRule {
    fn from(r: Row) -> Self {
        RoutingRule {
            id: r.id,
            name: r.name,
            position: r.position,
            conditions: parse_json(&r.conditions),
            queue_id: r.queue_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A rule as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRuleInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(range(min = 0, max = 1000000))]
    #[schema(minimum = 0, maximum = 1000000)]
    pub position: Option<i32>,
    #[validate(nested)]
    pub conditions: Option<Conditions>,
    #[schema(format = "uuid")]
    pub queue_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["position", "created_at"],
    default_sort: "position",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(routing_rules::table, routing_rules::BoxedQuery<'static, MultiBackend>, {
    "position" => routing_rules::position,
    "created_at" => routing_rules::created_at,
    "id" => routing_rules::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<RoutingRule> {
    routing_rules::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(RoutingRule::from)
        .ok_or_else(|| ApiError::not_found("routing rule"))
}

/// The queue the first matching rule names, with the rule.
pub fn route(c: &mut DbConn, facts: &Facts<'_>) -> ApiResult<Option<RoutingRule>> {
    let rows: Vec<Row> = routing_rules::table
        .filter(routing_rules::archived_at.is_null())
        .order((
            routing_rules::position,
            routing_rules::created_at,
            routing_rules::id,
        ))
        .select(Row::as_select())
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(RoutingRule::from)
        .find(|r| r.conditions.matches(facts)))
}

fn create(c: &mut DbConn, me: &Principal, input: &RoutingRuleInput) -> ApiResult<RoutingRule> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("queue_id", input.queue_id.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let queue = queues::active(c, "queue_id", input.queue_id.as_deref().unwrap_or_default())?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(routing_rules::table)
            .values((
                routing_rules::id.eq(&id),
                routing_rules::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                routing_rules::position.eq(input.position.unwrap_or(100)),
                routing_rules::conditions
                    .eq(json_text(&input.conditions.clone().unwrap_or_default())),
                routing_rules::queue_id.eq(&queue.id),
                routing_rules::version.eq(1),
                routing_rules::created_at.eq(&now),
                routing_rules::updated_at.eq(&now),
            ))
            .execute(c)?;
        let r = find(c, &id)?;
        audit_change(c, me, "routing_rule", "created", &id, to_json(&r), &r)?;
        Ok(r)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<RoutingRule> {
    let input: RoutingRuleInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<RoutingRules>(c, me, id)?;
        etag::check(expected, before.version)?;
        let queue = match &input.queue_id {
            Some(q) => queues::active(c, "queue_id", q)?.id,
            None => before.queue_id.clone(),
        };
        let conditions = input
            .conditions
            .clone()
            .unwrap_or(before.conditions.clone());
        let changed = diesel::update(routing_rules::table.find(id))
            .filter(routing_rules::version.eq(before.version))
            .set((
                routing_rules::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                routing_rules::position.eq(input.position.unwrap_or(before.position)),
                routing_rules::conditions.eq(json_text(&conditions)),
                routing_rules::queue_id.eq(&queue),
                routing_rules::version.eq(before.version + 1),
                routing_rules::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "routing_rule", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Routing rules on the resource kernel: service managers keep them.
pub struct RoutingRules;

impl Resource for RoutingRules {
    type Record = RoutingRule;
    type Input = RoutingRuleInput;
    type Patch = RoutingRuleInput;
    crm_core::resource_paths!("routing-rules");
    const ENTITY: &'static str = "routing_rule";
    const TABLE: &'static str = "routing_rules";
    const TAG: &'static str = "queues";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "queue_id"];

    crm_core::record_meta!(RoutingRule);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<RoutingRule> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<RoutingRule>> {
        let mut q = routing_rules::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(routing_rules::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(RoutingRule::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &RoutingRuleInput) -> ApiResult<RoutingRule> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<RoutingRule> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(routing_rules);
}
