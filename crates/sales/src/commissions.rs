//! Commission plans and statements. A plan pays its users a rate on the revenue credited to
//! them from won deals' orders: the rate of the attainment tier the revenue falls in (tiers
//! start at a percent of the period's quota), or a product family's own rate for lines of
//! that family, and above the accelerator's attainment every rate is multiplied. Revenue is
//! credited line by line, in order date order, by the deal team's splits (the owner alone
//! without a team), so a line that crosses a tier boundary is paid part at each rate.
//!
//! Arithmetic is exact (integers scaled by 10⁴) and each line's commission is rounded half
//! up to a minor unit once; the statement's total is the sum of its lines.

use crate::common::record_change;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::commission_plans as plans;
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Revenue from `from_percent` of quota attainment up to the next tier earns `rate_percent`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[validate(range(min = 0.0, max = 1000.0))]
    #[schema(minimum = 0, maximum = 1000)]
    pub from_percent: f64,
    #[validate(range(min = 0.0, max = 100.0))]
    #[schema(minimum = 0, maximum = 100)]
    pub rate_percent: f64,
}

/// Lines of products of `family` earn `rate_percent` whatever the tier.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FamilyRate {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub family: String,
    #[validate(range(min = 0.0, max = 100.0))]
    #[schema(minimum = 0, maximum = 100)]
    pub rate_percent: f64,
}

/// Above `above_percent` of quota, commissions are multiplied by `multiplier_percent` / 100.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    #[validate(range(min = 0.0, max = 1000.0))]
    #[schema(minimum = 0, maximum = 1000)]
    pub above_percent: f64,
    #[validate(range(min = 100, max = 1000))]
    #[schema(minimum = 100, maximum = 1000)]
    pub multiplier_percent: i32,
}

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = plans)]
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub user_ids: String,
    pub tiers: String,
    pub family_rates: String,
    pub accelerator: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A commission plan.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommissionPlan {
    pub id: String,
    pub name: String,
    /// The users it pays; a user is on at most one active plan.
    pub user_ids: Vec<String>,
    /// Ascending; the first starts at 0.
    pub tiers: Vec<Tier>,
    pub family_rates: Vec<FamilyRate>,
    pub accelerator: Option<Accelerator>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<PlanRow> for CommissionPlan {
    fn from(r: PlanRow) -> Self {
        CommissionPlan {
            id: r.id,
            name: r.name,
            user_ids: common::parse_json(&r.user_ids),
            tiers: common::parse_json(&r.tiers),
            family_rates: common::parse_json(&r.family_rates),
            accelerator: r.accelerator.and_then(|a| serde_json::from_str(&a).ok()),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A plan as sent. Percentages take at most two decimals.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionPlanInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_items = 500, value_type = Option<Vec<String>>)]
    pub user_ids: Option<Vec<String>>,
    #[validate(length(min = 1, max = 20), nested)]
    #[schema(min_items = 1, max_items = 20)]
    pub tiers: Option<Vec<Tier>>,
    #[validate(length(max = 50), nested)]
    #[schema(max_items = 50)]
    pub family_rates: Option<Vec<FamilyRate>>,
    #[validate(nested)]
    pub accelerator: Option<Accelerator>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(plans::table, plans::BoxedQuery<'static, MultiBackend>, {
    "name" => plans::name,
    "created_at" => plans::created_at,
    "id" => plans::id,
});

pub fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<CommissionPlan> {
    visibility::check_sees(me, "commission_plan")?;
    plans::table
        .find(id)
        .select(PlanRow::as_select())
        .first(c)
        .optional()?
        .map(CommissionPlan::from)
        .ok_or_else(|| ApiError::not_found("commission plan"))
}

/// Basis points of a percentage with at most two decimals.
fn bp(percent: f64) -> Option<i64> {
    let scaled = percent * 100.0;
    ((scaled - scaled.round()).abs() < 1e-6).then_some(scaled.round() as i64)
}

fn check_plan(p: &CommissionPlan) -> Vec<FieldError> {
    let mut errors = vec![];
    let mut last: Option<i64> = None;
    for (i, t) in p.tiers.iter().enumerate() {
        let (from, rate) = (bp(t.from_percent), bp(t.rate_percent));
        if from.is_none() || rate.is_none() {
            errors.push(FieldError::new(
                &format!("tiers[{i}]"),
                "precision",
                "percentages take at most two decimals",
            ));
        }
        if i == 0 && from != Some(0) {
            errors.push(FieldError::new(
                "tiers[0].from_percent",
                "start",
                "the first tier starts at 0",
            ));
        }
        if last.is_some_and(|l| from.is_some_and(|f| f <= l)) {
            errors.push(FieldError::new(
                &format!("tiers[{i}].from_percent"),
                "order",
                "tiers ascend",
            ));
        }
        last = from;
    }
    for (i, f) in p.family_rates.iter().enumerate() {
        if bp(f.rate_percent).is_none() {
            errors.push(FieldError::new(
                &format!("family_rates[{i}].rate_percent"),
                "precision",
                "at most two decimals",
            ));
        }
    }
    if p.accelerator
        .as_ref()
        .is_some_and(|a| bp(a.above_percent).is_none())
    {
        errors.push(FieldError::new(
            "accelerator.above_percent",
            "precision",
            "at most two decimals",
        ));
    }
    errors
}

/// Active users not on another active plan. The plans' users are a JSON list, which no
/// unique index can see into, so writes naming a user take turns on it (in sorted order, so
/// two plans naming the same users cannot deadlock) until they commit: a second plan written
/// at the same time then sees the first and is refused.
fn check_users(c: &mut DbConn, id: &str, users: &[String]) -> ApiResult<()> {
    let mut turns: Vec<&String> = users.iter().collect();
    turns.sort_unstable();
    turns.dedup();
    for u in turns {
        db::lock_key(c, &format!("commission_plans:user:{u}"))?;
    }
    let others: Vec<PlanRow> = plans::table
        .filter(plans::archived_at.is_null())
        .filter(plans::id.ne(id))
        .select(PlanRow::as_select())
        .load(c)?;
    for (i, u) in users.iter().enumerate() {
        let field = format!("user_ids[{i}]");
        common::check_active_user(c, u, &field)?;
        if others
            .iter()
            .any(|p| common::parse_json::<Vec<String>>(&p.user_ids).contains(u))
        {
            return Err(common::invalid(
                &field,
                "plan",
                "the user is on another active plan",
            ));
        }
    }
    Ok(())
}

fn write_plan(c: &mut DbConn, p: &CommissionPlan, insert: bool, old_version: i32) -> ApiResult<()> {
    let values = (
        plans::name.eq(&p.name),
        plans::user_ids.eq(common::json_text(&p.user_ids)),
        plans::tiers.eq(common::json_text(&p.tiers)),
        plans::family_rates.eq(common::json_text(&p.family_rates)),
        plans::accelerator.eq(p.accelerator.as_ref().map(common::json_text)),
        plans::version.eq(p.version),
        plans::updated_at.eq(&p.updated_at),
    );
    if insert {
        diesel::insert_into(plans::table)
            .values((
                plans::id.eq(&p.id),
                plans::created_at.eq(&p.created_at),
                values,
            ))
            .execute(c)?;
    } else {
        let n = diesel::update(
            plans::table
                .find(&p.id)
                .filter(plans::version.eq(old_version)),
        )
        .set(values)
        .execute(c)?;
        resource::changed_one(n)?;
    }
    Ok(())
}

pub fn create_plan(
    c: &mut DbConn,
    me: &Principal,
    input: &CommissionPlanInput,
) -> ApiResult<CommissionPlan> {
    input.validate()?;
    let now = ids::now();
    let plan = CommissionPlan {
        id: ids::new_id(),
        name: input
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string(),
        user_ids: crate::common::user_ids(
            "user_ids",
            input.user_ids.as_deref().unwrap_or_default(),
        )?,
        tiers: input.tiers.clone().unwrap_or_default(),
        family_rates: input.family_rates.clone().unwrap_or_default(),
        accelerator: input.accelerator.clone(),
        version: 1,
        created_at: now.clone(),
        updated_at: now,
        archived_at: None,
    };
    let mut errors = check_plan(&plan);
    if plan.name.is_empty() {
        errors.push(FieldError::new("name", "required", "is required"));
    }
    if plan.tiers.is_empty() {
        errors.push(FieldError::new("tiers", "required", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        check_users(c, &plan.id, &plan.user_ids)?;
        write_plan(c, &plan, true, 0)?;
        let p = find(c, me, &plan.id)?;
        record_change(
            c,
            me,
            "commission_plan",
            "created",
            &p.id,
            common::to_json(&p),
            &p,
        )?;
        Ok(p)
    })
}

pub fn update_plan(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<CommissionPlan> {
    let input: CommissionPlanInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<CommissionPlans>(c, me, id)?;
        etag::check(expected, before.version)?;
        let next = CommissionPlan {
            name: input
                .name
                .as_deref()
                .map(str::trim)
                .map(str::to_string)
                .unwrap_or(before.name.clone()),
            user_ids: match &input.user_ids {
                Some(u) => crate::common::user_ids("user_ids", u)?,
                None => before.user_ids.clone(),
            },
            tiers: input.tiers.clone().unwrap_or(before.tiers.clone()),
            family_rates: input
                .family_rates
                .clone()
                .unwrap_or(before.family_rates.clone()),
            accelerator: if raw.get("accelerator").is_some_and(Value::is_null) {
                None
            } else {
                input.accelerator.clone().or(before.accelerator.clone())
            },
            version: before.version + 1,
            updated_at: ids::now(),
            ..before.clone()
        };
        let errors = check_plan(&next);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        check_users(c, id, &next.user_ids)?;
        write_plan(c, &next, false, before.version)?;
        let after = find(c, me, id)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "commission_plan", "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(
    c: &mut DbConn,
    me: &Principal,
    p: &ListParams,
) -> ApiResult<Page<CommissionPlan>> {
    let mut q = crm_core::visible!(plans::table.into_boxed::<MultiBackend>(), me, plans::id);
    if !p.include_archived {
        q = q.filter(plans::archived_at.is_null());
    }
    let rows: Vec<PlanRow> = apply_sort(q, p)?.select(PlanRow::as_select()).load(c)?;
    list::page(rows.into_iter().map(CommissionPlan::from).collect(), p)
}

/// Commission plans on the resource kernel: sales roles read them; managers write them.
pub struct CommissionPlans;

impl Resource for CommissionPlans {
    type Record = CommissionPlan;
    type Input = CommissionPlanInput;
    type Patch = CommissionPlanInput;
    crm_core::resource_paths!("commission-plans");
    const ENTITY: &'static str = "commission_plan";
    const TABLE: &'static str = "commission_plans";
    const TAG: &'static str = "commissions";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "tiers"];

    crm_core::record_meta!(CommissionPlan);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<CommissionPlan> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<CommissionPlan>> {
        load_page(c, me, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &CommissionPlanInput,
    ) -> ApiResult<CommissionPlan> {
        create_plan(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<CommissionPlan> {
        update_plan(c, me, id, expected, patch)
    }

    /// Restoring a plan whose users have since joined another is refused (422).
    fn before_archive(
        c: &mut DbConn,
        _me: &Principal,
        p: &CommissionPlan,
        archiving: bool,
    ) -> ApiResult<()> {
        if archiving {
            Ok(())
        } else {
            check_users(c, &p.id, &p.user_ids)
        }
    }

    crm_core::archive_stamp!(commission_plans);
}
