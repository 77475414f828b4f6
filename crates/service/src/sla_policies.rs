//! SLA policies: targets for first response, next response and resolution per priority,
//! for one customer tier (or every tier no other policy names), counted in the business
//! minutes of a calendar. A new ticket takes the policy of its account's tier.

use crate::calendars::{self, Clock};
use crate::common::{audit_change, required};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{business_calendars, sla_policies};
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use validator::Validate;

/// The targets for one priority, in business minutes; an absent one is not measured.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[schema(minimum = 1, maximum = 525600)]
    pub first_response_minutes: Option<i64>,
    #[schema(minimum = 1, maximum = 525600)]
    pub next_response_minutes: Option<i64>,
    #[schema(minimum = 1, maximum = 525600)]
    pub resolution_minutes: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sla_policies)]
struct Row {
    id: String,
    name: String,
    calendar_id: String,
    customer_tier: Option<String>,
    targets: String,
    warn_before_minutes: i32,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// An SLA policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaPolicy {
    pub id: String,
    pub name: String,
    pub calendar_id: String,
    /// The account tier it covers (the account's `tier` custom field); null for every tier
    /// no other policy names.
    pub customer_tier: Option<String>,
    /// Targets by priority: `low`, `normal`, `high`, `urgent`.
    pub targets: BTreeMap<String, Target>,
    /// How long before a due time it counts as an upcoming breach.
    pub warn_before_minutes: i32,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for SlaPolicy {
    fn from(r: Row) -> Self {
        SlaPolicy {
            id: r.id,
            name: r.name,
            calendar_id: r.calendar_id,
            customer_tier: r.customer_tier,
            targets: parse_json(&r.targets),
            warn_before_minutes: r.warn_before_minutes,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A policy as sent. `calendar_id` and `customer_tier` may change; tickets keep the due
/// times they were given.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(format = "uuid")]
    pub calendar_id: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub customer_tier: Option<String>,
    pub targets: Option<BTreeMap<String, Target>>,
    #[validate(range(min = 0, max = 10080))]
    #[schema(minimum = 0, maximum = 10080)]
    pub warn_before_minutes: Option<i32>,
}

pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

fn check_targets(errors: &mut Vec<FieldError>, targets: &BTreeMap<String, Target>) {
    for (p, t) in targets {
        if !PRIORITIES.contains(&p.as_str()) {
            errors.push(FieldError::new(
                &format!("targets.{p}"),
                "unknown_priority",
                "priorities are low, normal, high and urgent",
            ));
        }
        for (f, v) in [
            ("first_response_minutes", t.first_response_minutes),
            ("next_response_minutes", t.next_response_minutes),
            ("resolution_minutes", t.resolution_minutes),
        ] {
            if v.is_some_and(|m| !(1..=525_600).contains(&m)) {
                errors.push(FieldError::new(
                    &format!("targets.{p}.{f}"),
                    "range",
                    "must be 1 to 525600 minutes",
                ));
            }
        }
    }
}

fn check_calendar(c: &mut DbConn, raw: &str) -> ApiResult<String> {
    let id = ids::parse_id(raw)
        .ok_or_else(|| ApiError::field("calendar_id", "invalid", "must be an id"))?;
    let n: i64 = business_calendars::table
        .filter(business_calendars::id.eq(&id))
        .filter(business_calendars::archived_at.is_null())
        .count()
        .get_result(c)?;
    if n == 0 {
        return Err(ApiError::field(
            "calendar_id",
            "not_found",
            "no active business calendar has this id",
        ));
    }
    Ok(id)
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(sla_policies::table, sla_policies::BoxedQuery<'static, MultiBackend>, {
    "name" => sla_policies::name,
    "created_at" => sla_policies::created_at,
    "id" => sla_policies::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<SlaPolicy> {
    sla_policies::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(SlaPolicy::from)
        .ok_or_else(|| ApiError::not_found("SLA policy"))
}

/// The active policy for a customer tier: the one naming the tier, else the one for every
/// tier; with its calendar's clock.
pub fn for_tier(c: &mut DbConn, tier: Option<&str>) -> ApiResult<Option<(SlaPolicy, Clock)>> {
    let rows: Vec<Row> = sla_policies::table
        .filter(sla_policies::archived_at.is_null())
        .order((sla_policies::created_at, sla_policies::id))
        .select(Row::as_select())
        .load(c)?;
    let pick = rows
        .iter()
        .find(|r| r.customer_tier.is_some() && r.customer_tier.as_deref() == tier)
        .or_else(|| rows.iter().find(|r| r.customer_tier.is_none()))
        .cloned();
    pick.map(|r| with_clock(c, SlaPolicy::from(r))).transpose()
}

/// The policy with this id and its calendar's clock.
pub fn policy_clock(c: &mut DbConn, id: &str) -> ApiResult<(SlaPolicy, Clock)> {
    let p = find(c, id)?;
    with_clock(c, p)
}

/// A policy with its calendar's clock.
pub fn with_clock(c: &mut DbConn, p: SlaPolicy) -> ApiResult<(SlaPolicy, Clock)> {
    let cal = calendars::find(c, &p.calendar_id)?;
    Ok((p, Clock::of(&cal)?))
}

fn create(c: &mut DbConn, me: &Principal, input: &SlaPolicyInput) -> ApiResult<SlaPolicy> {
    input.validate()?;
    let mut errors = required(&[
        ("name", input.name.is_none()),
        ("calendar_id", input.calendar_id.is_none()),
        ("targets", input.targets.is_none()),
    ]);
    let targets = input.targets.clone().unwrap_or_default();
    check_targets(&mut errors, &targets);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let calendar = check_calendar(c, input.calendar_id.as_deref().unwrap_or_default())?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(sla_policies::table)
            .values((
                sla_policies::id.eq(&id),
                sla_policies::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                sla_policies::calendar_id.eq(&calendar),
                sla_policies::customer_tier.eq(&input.customer_tier),
                sla_policies::targets.eq(json_text(&targets)),
                sla_policies::warn_before_minutes.eq(input.warn_before_minutes.unwrap_or(60)),
                sla_policies::version.eq(1),
                sla_policies::created_at.eq(&now),
                sla_policies::updated_at.eq(&now),
            ))
            .execute(c)?;
        let p = find(c, &id)?;
        audit_change(c, me, "sla_policy", "created", &id, to_json(&p), &p)?;
        Ok(p)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<SlaPolicy> {
    let input: SlaPolicyInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<SlaPolicies>(c, me, id)?;
        etag::check(expected, before.version)?;
        let targets = input.targets.clone().unwrap_or(before.targets.clone());
        let mut errors = vec![];
        check_targets(&mut errors, &targets);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let calendar = match &input.calendar_id {
            Some(raw) => check_calendar(c, raw)?,
            None => before.calendar_id.clone(),
        };
        let tier = match raw.get("customer_tier") {
            Some(Value::Null) => None,
            Some(_) => input.customer_tier.clone(),
            None => before.customer_tier.clone(),
        };
        let changed = diesel::update(sla_policies::table.find(id))
            .filter(sla_policies::version.eq(before.version))
            .set((
                sla_policies::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                sla_policies::calendar_id.eq(&calendar),
                sla_policies::customer_tier.eq(&tier),
                sla_policies::targets.eq(json_text(&targets)),
                sla_policies::warn_before_minutes.eq(input
                    .warn_before_minutes
                    .unwrap_or(before.warn_before_minutes)),
                sla_policies::version.eq(before.version + 1),
                sla_policies::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "sla_policy", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// SLA policies on the resource kernel: service managers keep them.
pub struct SlaPolicies;

impl Resource for SlaPolicies {
    type Record = SlaPolicy;
    type Input = SlaPolicyInput;
    type Patch = SlaPolicyInput;
    crm_core::resource_paths!("sla-policies");
    const ENTITY: &'static str = "sla_policy";
    const TABLE: &'static str = "sla_policies";
    const TAG: &'static str = "sla";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "calendar_id", "targets"];

    crm_core::record_meta!(SlaPolicy);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<SlaPolicy> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<SlaPolicy>> {
        let mut q = sla_policies::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(sla_policies::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(SlaPolicy::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &SlaPolicyInput) -> ApiResult<SlaPolicy> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<SlaPolicy> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(sla_policies);
}
