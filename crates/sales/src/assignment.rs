//! Lead assignment rules: an ordered list (by `position`, then id) of conditions on lead
//! fields, each naming who gets a lead it matches — one user, or the members of a team in
//! turn (round-robin). The first active rule whose conditions all hold decides; the lead
//! records which rule it was (`assignment`), and its audit row and timeline say so.
//! Rules run when a lead is created without an `owner_id` (API, batch, composite, import)
//! and on demand (`POST /leads/{id}/assign`).
//!
//! Round-robin is deterministic: the team's active members ordered by when they joined
//! (`created_at`, then id), and the rule's `assigned_count` says whose turn it is. The
//! counter is bumped with an update that locks the rule's row, so concurrent creates on
//! PostgreSQL take turns instead of handing two leads to the same rep.

use crate::common::{enum_text, record_change};
use crate::leads::{self, LeadRow};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{lead_assignment_rules as rules, leads as lead_rows, teams, users};
use crm_core::{audit, etag, ids, visibility};
use crm_customers::{common, custom_fields};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Who a matching rule hands the lead to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssignTo {
    /// `user_id`.
    User,
    /// The active members of `team_id`, in turn.
    TeamRoundRobin,
    /// The owner of the territory the lead falls in (by country, industry and size).
    TerritoryOwner,
}

/// How a condition compares the lead's field with `value`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (text case-insensitively).
    Eq,
    Ne,
    /// One of `value`, an array.
    In,
    /// At least `value` (numeric fields).
    Gte,
    /// At most `value` (numeric fields).
    Lte,
    /// Text containing `value`, case-insensitively.
    Contains,
    /// The field has a value (`value` true) or has none (`value` false).
    Exists,
}

/// The lead fields a condition may test; `email_domain` is the part after `@`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeadField {
    Country,
    Industry,
    Company,
    JobTitle,
    EmailDomain,
    Source,
    CampaignId,
    EmployeeCount,
    Score,
    /// The lead custom field named by `key` (`/meta/objects/lead/fields`).
    Custom,
}

impl LeadField {
    fn numeric(self) -> bool {
        matches!(self, LeadField::EmployeeCount | LeadField::Score)
    }
}

/// Custom field types compared as numbers (a money field by its amount).
const NUMERIC_CUSTOM: [&str; 2] = ["number", "money"];

/// One test on a lead field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: LeadField,
    /// With `field: custom`, the custom field's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub key: Option<String>,
    pub op: Op,
    /// A string or number; an array for `in`; a boolean for `exists`.
    #[schema(schema_with = condition_value)]
    pub value: Value,
}

/// Values an `in` test lists.
const MAX_IN_VALUES: usize = 200;

/// `Condition::value` in the spec: a scalar, a list of scalars, or a boolean.
fn condition_value() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let scalar = || {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Number))
    };
    OneOfBuilder::new()
        .description(Some(
            "A string or number; a non-empty array of them (at most 200) for `in`; a boolean for `exists`.",
        ))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ArrayBuilder::new()
                .items(scalar())
                .min_items(Some(1))
                .max_items(Some(MAX_IN_VALUES)),
        )
        .build()
        .into()
}

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = rules)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub position: i32,
    pub conditions: String,
    pub assign_to: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub territory_id: Option<String>,
    pub assigned_count: i32,
    pub active: bool,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A lead assignment rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentRule {
    pub id: String,
    pub name: String,
    /// Rules are tried in ascending position (then id); the first match wins.
    pub position: i32,
    /// All must hold; none matches every lead.
    pub conditions: Vec<Condition>,
    pub assign_to: AssignTo,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// Leads this rule has assigned; for round-robin, whose turn is next.
    pub assigned_count: i32,
    /// An inactive rule is skipped.
    pub active: bool,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<RuleRow> for AssignmentRule {
    fn from(r: RuleRow) -> Self {
        AssignmentRule {
            id: r.id,
            name: r.name,
            position: r.position,
            conditions: common::parse_json(&r.conditions),
            assign_to: crate::common::enum_from(&r.assign_to, AssignTo::User),
            user_id: r.user_id,
            team_id: r.team_id,
            assigned_count: r.assigned_count,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A rule as sent. `user` rules need `user_id`, `team_round_robin` rules `team_id`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRuleInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// After the last rule when not given.
    #[validate(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub position: Option<i32>,
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub conditions: Option<Vec<Condition>>,
    pub assign_to: Option<AssignTo>,
    #[schema(format = "uuid")]
    pub user_id: Option<String>,
    #[schema(format = "uuid")]
    pub team_id: Option<String>,
    /// `true` when not given.
    pub active: Option<bool>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["position", "created_at"],
    default_sort: "position",
    filters: &[Filter::of::<AssignTo>(
        "assign_to",
        "user or team_round_robin",
    )],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(rules::table, rules::BoxedQuery<'static, MultiBackend>, {
    "position" => rules::position,
    "created_at" => rules::created_at,
    "id" => rules::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AssignmentRule> {
    visibility::check_sees(me, "lead_assignment_rule")?;
    rules::table
        .find(id)
        .select(RuleRow::as_select())
        .first(conn)
        .optional()?
        .map(AssignmentRule::from)
        .ok_or_else(|| ApiError::not_found("lead assignment rule"))
}

/// Whether a condition's field is numeric; an error naming `key` when a custom field is
/// missing or unknown, or a key is given for a standard field.
fn field_kind(
    c: &Condition,
    custom: &[custom_fields::FieldDef],
    at: &dyn Fn(&str) -> String,
) -> Result<bool, FieldError> {
    match (c.field, &c.key) {
        (LeadField::Custom, Some(key)) => custom
            .iter()
            .find(|d| &d.key == key)
            .map(|d| NUMERIC_CUSTOM.contains(&d.field_type.as_str()))
            .ok_or_else(|| {
                FieldError::new(
                    &at("key"),
                    "unknown_field",
                    format!("no lead custom field {key:?}"),
                )
            }),
        (LeadField::Custom, None) => Err(FieldError::new(
            &at("key"),
            "required",
            "a custom condition names the field's key",
        )),
        (_, Some(_)) => Err(FieldError::new(
            &at("key"),
            "invalid",
            "only a custom condition has a key",
        )),
        (field, None) => Ok(field.numeric()),
    }
}

fn check_conditions(conn: &mut DbConn, conditions: &[Condition]) -> ApiResult<Vec<FieldError>> {
    let custom = if conditions.iter().any(|c| c.field == LeadField::Custom) {
        custom_fields::defs(conn, "lead")?
    } else {
        vec![]
    };
    let mut errors = vec![];
    for (i, c) in conditions.iter().enumerate() {
        let at = |f: &str| format!("conditions[{i}].{f}");
        let numeric = match field_kind(c, &custom, &at) {
            Ok(numeric) => numeric,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let scalar_ok = |v: &Value| {
            if numeric {
                v.is_number()
            } else {
                v.is_string() || (c.field == LeadField::Custom && v.is_boolean())
            }
        };
        let (ok, wants) = match c.op {
            Op::Exists => (c.value.is_boolean(), "true or false"),
            Op::In => (
                c.value.as_array().is_some_and(|a| {
                    !a.is_empty() && a.len() <= MAX_IN_VALUES && a.iter().all(scalar_ok)
                }),
                if numeric {
                    "a non-empty array of at most 200 numbers"
                } else {
                    "a non-empty array of at most 200 strings"
                },
            ),
            Op::Gte | Op::Lte => (
                numeric && c.value.is_number(),
                "a number, on employee_count, score or a number field",
            ),
            Op::Contains => (!numeric && c.value.is_string(), "a string, on a text field"),
            Op::Eq | Op::Ne => (
                scalar_ok(&c.value),
                if numeric { "a number" } else { "a string" },
            ),
        };
        if !ok {
            errors.push(FieldError::new(
                &at("value"),
                "type",
                format!("must be {wants}"),
            ));
        }
    }
    Ok(errors)
}

/// The target as it would be stored, checked: the user active, the team existing with an
/// active member (422 naming the field otherwise).
fn check_target(c: &mut DbConn, rule: &RuleRow) -> ApiResult<()> {
    match crate::common::enum_from(&rule.assign_to, AssignTo::User) {
        AssignTo::User => match &rule.user_id {
            Some(id) => common::check_active_user(c, id, "user_id"),
            None => Err(common::invalid(
                "user_id",
                "required",
                "a user rule names the user",
            )),
        },
        AssignTo::TeamRoundRobin => {
            let Some(team) = &rule.team_id else {
                return Err(common::invalid(
                    "team_id",
                    "required",
                    "a round-robin rule names the team",
                ));
            };
            let exists: i64 = teams::table
                .find(team)
                .filter(teams::archived_at.is_null())
                .count()
                .get_result(c)?;
            if exists == 0 {
                return Err(common::invalid("team_id", "reference", "no such team"));
            }
            if team_members(c, team)?.is_empty() {
                return Err(common::invalid(
                    "team_id",
                    "empty",
                    "the team has no active member to assign to",
                ));
            }
            Ok(())
        }
        AssignTo::TerritoryOwner => Ok(()),
    }
}

fn team_members(c: &mut DbConn, team: &str) -> ApiResult<Vec<String>> {
    Ok(users::table
        .filter(users::team_id.eq(team))
        .filter(users::active.eq(true))
        .filter(users::archived_at.is_null())
        .order((users::created_at.asc(), users::id.asc()))
        .select(users::id)
        .load(c)?)
}

pub fn create_rule(
    c: &mut DbConn,
    me: &Principal,
    input: &AssignmentRuleInput,
) -> ApiResult<AssignmentRule> {
    input.validate()?;
    let conditions = input.conditions.clone().unwrap_or_default();
    let mut errors = check_conditions(c, &conditions)?;
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_none() {
        errors.push(FieldError::new("name", "required", "is required"));
    }
    if input.assign_to.is_none() {
        errors.push(FieldError::new("assign_to", "required", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let last: Option<i32> = rules::table
            .filter(rules::archived_at.is_null())
            .select(diesel::dsl::max(rules::position))
            .first(c)?;
        let now = ids::now();
        let row = RuleRow {
            id: ids::new_id(),
            name: name.unwrap_or_default().to_string(),
            position: input
                .position
                .unwrap_or(last.map_or(10, |p| p.saturating_add(10))),
            conditions: common::json_text(&conditions),
            assign_to: enum_text(input.assign_to.unwrap_or(AssignTo::User)),
            user_id: crate::common::id_or_422("user_id", &input.user_id)?,
            team_id: crate::common::id_or_422("team_id", &input.team_id)?,
            territory_id: None,
            assigned_count: 0,
            active: input.active.unwrap_or(true),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            archived_at: None,
        };
        check_target(c, &row)?;
        diesel::insert_into(rules::table)
            .values((
                rules::id.eq(&row.id),
                rules::name.eq(&row.name),
                rules::position.eq(row.position),
                rules::conditions.eq(&row.conditions),
                rules::assign_to.eq(&row.assign_to),
                rules::user_id.eq(&row.user_id),
                rules::team_id.eq(&row.team_id),
                rules::assigned_count.eq(0),
                rules::active.eq(row.active),
                rules::version.eq(1),
                rules::created_at.eq(&row.created_at),
                rules::updated_at.eq(&row.updated_at),
            ))
            .execute(c)?;
        let rule = find(c, me, &row.id)?;
        record_change(
            c,
            me,
            "lead_assignment_rule",
            "created",
            &rule.id,
            common::to_json(&rule),
            &rule,
        )?;
        Ok(rule)
    })
}

pub fn update_rule(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<AssignmentRule> {
    let input: AssignmentRuleInput = crm_core::objects::input(raw)?;
    input.validate()?;
    let errors = match input.conditions.as_deref() {
        Some(conditions) => check_conditions(c, conditions)?,
        None => vec![],
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<AssignmentRules>(c, me, id)?;
        etag::check(expected, before.version)?;
        let row: RuleRow = rules::table
            .find(id)
            .select(RuleRow::as_select())
            .first(c)?;
        let cleared = |f: &str| raw.get(f).is_some_and(Value::is_null);
        let pick = |f: &str, new: Option<String>, old: &Option<String>| {
            if cleared(f) {
                None
            } else {
                new.or(old.clone())
            }
        };
        let next = RuleRow {
            name: input
                .name
                .as_deref()
                .map(str::trim)
                .map(str::to_string)
                .unwrap_or(row.name.clone()),
            position: input.position.unwrap_or(row.position),
            conditions: input
                .conditions
                .as_ref()
                .map(common::json_text)
                .unwrap_or(row.conditions.clone()),
            assign_to: input
                .assign_to
                .map(enum_text)
                .unwrap_or(row.assign_to.clone()),
            user_id: pick(
                "user_id",
                crate::common::id_or_422("user_id", &input.user_id)?,
                &row.user_id,
            ),
            team_id: pick(
                "team_id",
                crate::common::id_or_422("team_id", &input.team_id)?,
                &row.team_id,
            ),
            active: input.active.unwrap_or(row.active),
            ..row.clone()
        };
        check_target(c, &next)?;
        let changed = diesel::update(rules::table.find(id))
            .filter(rules::version.eq(row.version))
            .set((
                rules::name.eq(&next.name),
                rules::position.eq(next.position),
                rules::conditions.eq(&next.conditions),
                rules::assign_to.eq(&next.assign_to),
                rules::user_id.eq(&next.user_id),
                rules::team_id.eq(&next.team_id),
                rules::active.eq(next.active),
                rules::version.eq(row.version + 1),
                rules::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(
            c,
            me,
            "lead_assignment_rule",
            "updated",
            id,
            changes,
            &after,
        )?;
        Ok(after)
    })
}

pub fn load_page(
    c: &mut DbConn,
    me: &Principal,
    p: &ListParams,
) -> ApiResult<Page<AssignmentRule>> {
    let mut q = crm_core::visible!(rules::table.into_boxed::<MultiBackend>(), me, rules::id);
    if !p.include_archived {
        q = q.filter(rules::archived_at.is_null());
    }
    if let Some(v) = crate::common::enum_filter::<AssignTo>(p, "assign_to")? {
        q = q.filter(rules::assign_to.eq(enum_text(v)));
    }
    let rows: Vec<RuleRow> = apply_sort(q, p)?.select(RuleRow::as_select()).load(c)?;
    list::page(rows.into_iter().map(AssignmentRule::from).collect(), p)
}

/// The lead's value for a condition's field, as JSON (null when it has none).
fn field_of(lead: &LeadRow, cond: &Condition) -> Value {
    let text = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    match cond.field {
        LeadField::Country => text(&lead.country),
        LeadField::Industry => text(&lead.industry),
        LeadField::Company => text(&lead.company),
        LeadField::JobTitle => text(&lead.job_title),
        LeadField::EmailDomain => text(
            &lead
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_string()),
        ),
        LeadField::Source => Value::String(lead.source.clone()),
        LeadField::CampaignId => text(&lead.campaign_id),
        LeadField::EmployeeCount => lead.employee_count.map(Value::from).unwrap_or(Value::Null),
        LeadField::Score => Value::from(lead.score),
        LeadField::Custom => {
            let custom: serde_json::Map<String, Value> = common::parse_json(&lead.custom);
            match custom.get(cond.key.as_deref().unwrap_or_default()) {
                // A money value compares by its amount.
                Some(Value::Object(money)) => money.get("amount").cloned().unwrap_or(Value::Null),
                Some(v) => v.clone(),
                None => Value::Null,
            }
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

fn holds(c: &Condition, lead: &LeadRow) -> bool {
    let v = field_of(lead, c);
    let num = |x: &Value| x.as_f64();
    match c.op {
        Op::Exists => c.value.as_bool() == Some(!v.is_null()),
        Op::Eq => same(&v, &c.value),
        Op::Ne => !v.is_null() && !same(&v, &c.value),
        Op::In => c
            .value
            .as_array()
            .is_some_and(|a| a.iter().any(|x| same(&v, x))),
        Op::Gte => matches!((num(&v), num(&c.value)), (Some(x), Some(y)) if x >= y),
        Op::Lte => matches!((num(&v), num(&c.value)), (Some(x), Some(y)) if x <= y),
        Op::Contains => match (&v, c.value.as_str()) {
            (Value::String(x), Some(y)) => x.to_lowercase().contains(&y.to_lowercase()),
            // A multi-picklist contains an option.
            (Value::Array(options), Some(_)) => options.iter().any(|o| same(o, &c.value)),
            _ => false,
        },
    }
}

/// Who the first matching active rule gives `lead` to, and that rule's id; `None` when no
/// rule matches. Takes the round-robin turn (in the caller's transaction).
pub fn decide(c: &mut DbConn, lead: &LeadRow) -> ApiResult<Option<(String, String)>> {
    let active: Vec<RuleRow> = rules::table
        .filter(rules::active.eq(true))
        .filter(rules::archived_at.is_null())
        .order((rules::position.asc(), rules::id.asc()))
        .select(RuleRow::as_select())
        .load(c)?;
    for rule in active {
        let conditions: Vec<Condition> = common::parse_json(&rule.conditions);
        if !conditions.iter().all(|k| holds(k, lead)) {
            continue;
        }
        if let Some(owner) = target(c, &rule, lead)? {
            return Ok(Some((owner, rule.id)));
        }
    }
    Ok(None)
}

/// The rule's assignee now; `None` when it has nobody to give the lead to (its user left,
/// its team emptied), so the next rule is tried.
fn target(c: &mut DbConn, rule: &RuleRow, lead: &LeadRow) -> ApiResult<Option<String>> {
    let turn = |c: &mut DbConn| -> ApiResult<i32> {
        // The update locks the rule's row: concurrent assignments take turns.
        diesel::update(rules::table.find(&rule.id))
            .set(rules::assigned_count.eq(rules::assigned_count + 1))
            .execute(c)?;
        Ok(rules::table
            .find(&rule.id)
            .select(rules::assigned_count)
            .first::<i32>(c)?
            - 1)
    };
    match crate::common::enum_from(&rule.assign_to, AssignTo::User) {
        AssignTo::User => {
            let Some(user) = &rule.user_id else {
                return Ok(None);
            };
            if common::check_active_user(c, user, "user_id").is_err() {
                return Ok(None);
            }
            turn(c)?;
            Ok(Some(user.clone()))
        }
        AssignTo::TeamRoundRobin => {
            let members = match &rule.team_id {
                Some(team) => team_members(c, team)?,
                None => vec![],
            };
            if members.is_empty() {
                return Ok(None);
            }
            let n = turn(c)?;
            let i = usize::try_from(n).unwrap_or(0) % members.len();
            Ok(members.get(i).cloned())
        }
        AssignTo::TerritoryOwner => {
            let owner = crate::territories::for_lead(c, lead)?.and_then(|t| t.owner_id);
            match owner {
                Some(o) if common::check_active_user(c, &o, "owner_id").is_ok() => {
                    turn(c)?;
                    Ok(Some(o))
                }
                _ => Ok(None),
            }
        }
    }
}

/// Give the lead to whoever the rules say (on demand): its owner and `assignment` change,
/// audited as `lead.assigned` naming the rule. 422 when no rule matches; 409 once converted.
pub fn assign_lead(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<leads::Lead> {
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<leads::Leads>(c, me, id)?;
        if before.conversion.is_some() {
            return Err(ApiError::Conflict(
                "the lead is converted and no longer changes".into(),
            ));
        }
        let row = leads::find(c, me, id)?;
        let Some((owner, rule)) = decide(c, &row)? else {
            return Err(common::invalid(
                "id",
                "no_rule",
                "no active assignment rule matches this lead",
            ));
        };
        let now = ids::now();
        diesel::update(lead_rows::table.find(id))
            .set((
                lead_rows::owner_id.eq(&owner),
                lead_rows::assignment_rule_id.eq(&rule),
                lead_rows::assigned_at.eq(&now),
                lead_rows::version.eq(row.version + 1),
                lead_rows::updated_at.eq(&now),
            ))
            .execute(c)?;
        let after = leads::load(c, me, id)?;
        let changes = serde_json::json!({
            "owner_id": {"from": row.owner_id, "to": owner},
            "rule_id": rule,
        });
        record_change(c, me, "lead", "assigned", id, changes, &after)?;
        Ok(after)
    })
}

/// Lead assignment rules on the resource kernel: sales roles read them; managers and admins
/// write them.
pub struct AssignmentRules;

impl Resource for AssignmentRules {
    type Record = AssignmentRule;
    type Input = AssignmentRuleInput;
    type Patch = AssignmentRuleInput;
    crm_core::resource_paths!("lead-assignment-rules");
    const ENTITY: &'static str = "lead_assignment_rule";
    const TABLE: &'static str = "lead_assignment_rules";
    const TAG: &'static str = "leads";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "assign_to"];

    crm_core::record_meta!(AssignmentRule);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AssignmentRule> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<AssignmentRule>> {
        load_page(c, me, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &AssignmentRuleInput,
    ) -> ApiResult<AssignmentRule> {
        create_rule(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<AssignmentRule> {
        update_rule(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(lead_assignment_rules);
}

/// Assign a lead by the rules.
///
/// Runs the lead assignment rules on the lead now, whatever its owner: the first active rule
/// that matches gives it its owner (a round-robin rule takes its next turn), and the lead
/// records the rule in `assignment`, audited as `lead.assigned`. 422 when no rule matches; 409
/// for a converted lead. Needs `SalesWrite` and the right to change the lead.
#[utoipa::path(post, path = "/api/v1/leads/{id}/assign", tag = "leads",
    params(("id" = String, Path, format = "uuid", description = "Lead id")),
    responses((status = 200, description = "The lead with its new owner and the rule that chose it", body = leads::Lead), crm_core::respond::WriteProblems))]
#[actix_web::post("/leads/{id}/assign")]
pub async fn assign(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    id: actix_web::web::Path<String>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesWrite)?;
    let id = crm_core::extract::path_id(&id)?;
    let lead = state.db(move |c| assign_lead(c, &me, &id)).await?;
    Ok(actix_web::HttpResponse::Ok()
        .insert_header(("ETag", etag::format(lead.version)))
        .json(lead))
}
