//! Loyalty programmes (`/loyalty-programs`): rules that turn a member's orders into points,
//! tiers on lifetime points that multiply what an order earns, and rewards to redeem.
//! Members (`/loyalty-members`, `members.rs` of this module) hold a balance that only the
//! ledger (`ledger.rs`) changes.

pub mod ledger;
pub mod members;

use crate::common::{audit_change, required};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::loyalty_programs as lp;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Points an order earns: `points` for every whole `per_amount` minor units of its lines
/// (of one product family's lines when `product_family` is set).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarnRule {
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: i64,
    /// Minor units of the programme's currency (100 = one euro).
    #[schema(minimum = 1, maximum = 1000000000000_i64)]
    pub per_amount: i64,
    /// Only lines of products of this family count (case-insensitive).
    #[schema(min_length = 1, pattern = r"\S")]
    pub product_family: Option<String>,
}

/// A tier: members whose lifetime points reach `min_points` are in it, and their orders
/// earn `multiplier_percent` of the points (150 = half as much again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = LoyaltyTier)]
pub struct Tier {
    /// Distinct within the programme.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// Distinct within the programme.
    #[schema(minimum = 0)]
    pub min_points: i64,
    #[serde(default = "hundred")]
    #[schema(minimum = 0, maximum = 1000, default = 100)]
    pub multiplier_percent: i64,
}

fn hundred() -> i64 {
    100
}

/// A reward members redeem by `code` for `points`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = LoyaltyReward)]
pub struct Reward {
    /// Distinct within the programme.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub code: String,
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    #[schema(minimum = 1, maximum = 1000000000)]
    pub points: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lp)]
struct Row {
    id: String,
    name: String,
    description: Option<String>,
    currency: String,
    earn_rules: String,
    tiers: String,
    rewards: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A loyalty programme.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoyaltyProgram {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Orders in this currency earn points; others earn none.
    pub currency: String,
    pub earn_rules: Vec<EarnRule>,
    /// Lowest first.
    pub tiers: Vec<Tier>,
    pub rewards: Vec<Reward>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for LoyaltyProgram {
    fn from(r: Row) -> Self {
        LoyaltyProgram {
            id: r.id,
            name: r.name,
            description: r.description,
            currency: r.currency,
            earn_rules: parse_json(&r.earn_rules),
            tiers: parse_json(&r.tiers),
            rewards: parse_json(&r.rewards),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

impl LoyaltyProgram {
    /// The tier lifetime points put a member in.
    pub fn tier_for(&self, lifetime: i64) -> Option<&Tier> {
        self.tiers
            .iter()
            .filter(|t| t.min_points <= lifetime)
            .max_by_key(|t| t.min_points)
    }

    pub fn reward(&self, code: &str) -> Option<&Reward> {
        self.rewards.iter().find(|r| r.code == code)
    }

    /// Points for order lines given as (net minor units, product family), before the tier.
    pub fn points_for(&self, lines: &[(i64, Option<String>)]) -> i64 {
        self.earn_rules
            .iter()
            .map(|rule| {
                let base: i64 = lines
                    .iter()
                    .filter(|(_, family)| match &rule.product_family {
                        Some(f) => family.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(f)),
                        None => true,
                    })
                    .map(|(net, _)| (*net).max(0))
                    .sum();
                base / rule.per_amount.max(1) * rule.points
            })
            .sum()
    }
}

/// A programme as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyProgramInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// ISO 4217 code such as EUR.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[validate(length(max = 50, message = "at most 50 earn rules"))]
    #[schema(max_items = 50)]
    pub earn_rules: Option<Vec<EarnRule>>,
    #[validate(length(max = 20, message = "at most 20 tiers"))]
    #[schema(max_items = 20)]
    pub tiers: Option<Vec<Tier>>,
    #[validate(length(max = 200, message = "at most 200 rewards"))]
    #[schema(max_items = 200)]
    pub rewards: Option<Vec<Reward>>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(lp::table, lp::BoxedQuery<'static, MultiBackend>, {
    "name" => lp::name,
    "created_at" => lp::created_at,
    "id" => lp::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<LoyaltyProgram> {
    lp::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(LoyaltyProgram::from)
        .ok_or_else(|| ApiError::not_found("loyalty program"))
}

/// What a programme must hold together: a currency code, positive rules, distinct tiers
/// and reward codes. The errors name each offending entry.
fn check(p: &LoyaltyProgram) -> ApiResult<()> {
    let mut errors = vec![];
    let mut bad = |field: String, code: &str, message: &str| {
        errors.push(FieldError::new(&field, code, message));
    };
    if !(p.currency.len() == 3 && p.currency.chars().all(|ch| ch.is_ascii_uppercase())) {
        bad(
            "currency".into(),
            "currency",
            "must be an ISO 4217 code such as EUR",
        );
    }
    for (i, r) in p.earn_rules.iter().enumerate() {
        if !(1..=1_000_000).contains(&r.points) {
            bad(format!("earn_rules[{i}].points"), "range", "1 to 1,000,000");
        }
        if !(1..=1_000_000_000_000).contains(&r.per_amount) {
            bad(
                format!("earn_rules[{i}].per_amount"),
                "range",
                "at least 1 minor unit",
            );
        }
        if r.product_family
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            bad(
                format!("earn_rules[{i}].product_family"),
                "length",
                "name a family or leave it out",
            );
        }
    }
    for (i, t) in p.tiers.iter().enumerate() {
        if t.name.trim().is_empty() || t.name.chars().count() > 100 {
            bad(format!("tiers[{i}].name"), "length", "1 to 100 characters");
        }
        if p.tiers.iter().take(i).any(|o| o.name == t.name) {
            bad(format!("tiers[{i}].name"), "duplicate", "tier names differ");
        }
        if t.min_points < 0 || p.tiers.iter().take(i).any(|o| o.min_points == t.min_points) {
            bad(
                format!("tiers[{i}].min_points"),
                "invalid",
                "zero or more, and different for every tier",
            );
        }
        if !(0..=1000).contains(&t.multiplier_percent) {
            bad(
                format!("tiers[{i}].multiplier_percent"),
                "range",
                "0 to 1,000",
            );
        }
    }
    for (i, r) in p.rewards.iter().enumerate() {
        if r.code.trim().is_empty() || r.code.chars().count() > 50 {
            bad(format!("rewards[{i}].code"), "length", "1 to 50 characters");
        }
        if p.rewards.iter().take(i).any(|o| o.code == r.code) {
            bad(
                format!("rewards[{i}].code"),
                "duplicate",
                "reward codes differ",
            );
        }
        if r.name.trim().is_empty() {
            bad(format!("rewards[{i}].name"), "required", "name the reward");
        }
        if !(1..=1_000_000_000).contains(&r.points) {
            bad(
                format!("rewards[{i}].points"),
                "range",
                "1 to 1,000,000,000",
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The programme as it will be stored: what was sent over what it was.
fn merged(input: &LoyaltyProgramInput, raw: &Value, before: LoyaltyProgram) -> LoyaltyProgram {
    let mut tiers = input.tiers.clone().unwrap_or(before.tiers);
    tiers.sort_by_key(|t| t.min_points);
    LoyaltyProgram {
        name: input
            .name
            .as_deref()
            .map(|n| n.trim().to_string())
            .unwrap_or(before.name),
        description: match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description,
        },
        currency: input.currency.clone().unwrap_or(before.currency),
        earn_rules: input.earn_rules.clone().unwrap_or(before.earn_rules),
        tiers,
        rewards: input.rewards.clone().unwrap_or(before.rewards),
        ..before
    }
}

fn create(
    c: &mut DbConn,
    me: &Principal,
    input: &LoyaltyProgramInput,
) -> ApiResult<LoyaltyProgram> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("currency", input.currency.is_none()),
        ("earn_rules", input.earn_rules.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (id, now) = (ids::new_id(), ids::now());
    let blank = LoyaltyProgram {
        id: id.clone(),
        name: String::new(),
        description: None,
        currency: String::new(),
        earn_rules: vec![],
        tiers: vec![],
        rewards: vec![],
        version: 1,
        created_at: now.clone(),
        updated_at: now.clone(),
        archived_at: None,
    };
    let p = merged(input, &Value::Null, blank);
    check(&p)?;
    db::write_tx(c, |c| {
        diesel::insert_into(lp::table)
            .values((
                lp::id.eq(&id),
                lp::name.eq(&p.name),
                lp::description.eq(&p.description),
                lp::currency.eq(&p.currency),
                lp::earn_rules.eq(json_text(&p.earn_rules)),
                lp::tiers.eq(json_text(&p.tiers)),
                lp::rewards.eq(json_text(&p.rewards)),
                lp::version.eq(1),
                lp::created_at.eq(&now),
                lp::updated_at.eq(&now),
            ))
            .execute(c)?;
        let p = find(c, &id)?;
        audit_change(c, me, "loyalty_program", "created", &id, to_json(&p), &p)?;
        Ok(p)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<LoyaltyProgram> {
    let input: LoyaltyProgramInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<LoyaltyPrograms>(c, me, id)?;
        etag::check(expected, before.version)?;
        let p = merged(&input, raw, before.clone());
        check(&p)?;
        let changed = diesel::update(lp::table.find(id))
            .filter(lp::version.eq(before.version))
            .set((
                lp::name.eq(&p.name),
                lp::description.eq(&p.description),
                lp::currency.eq(&p.currency),
                lp::earn_rules.eq(json_text(&p.earn_rules)),
                lp::tiers.eq(json_text(&p.tiers)),
                lp::rewards.eq(json_text(&p.rewards)),
                lp::version.eq(before.version + 1),
                lp::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "loyalty_program", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Loyalty programmes on the resource kernel.
pub struct LoyaltyPrograms;

impl Resource for LoyaltyPrograms {
    type Record = LoyaltyProgram;
    type Input = LoyaltyProgramInput;
    type Patch = LoyaltyProgramInput;
    crm_core::resource_paths!("loyalty-programs");
    const ENTITY: &'static str = "loyalty_program";
    const TABLE: &'static str = "loyalty_programs";
    const TAG: &'static str = "loyalty";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "currency", "earn_rules"];
    const ARCHIVED: &'static str = "Archived: its members earn no more points and redeem nothing";

    crm_core::record_meta!(LoyaltyProgram);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<LoyaltyProgram> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<LoyaltyProgram>> {
        let mut q = lp::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(lp::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(LoyaltyProgram::from).collect(), p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &LoyaltyProgramInput,
    ) -> ApiResult<LoyaltyProgram> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<LoyaltyProgram> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(loyalty_programs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(rules: Vec<EarnRule>) -> LoyaltyProgram {
        LoyaltyProgram {
            id: String::new(),
            name: String::new(),
            description: None,
            currency: "EUR".into(),
            earn_rules: rules,
            tiers: vec![],
            rewards: vec![],
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
            archived_at: None,
        }
    }

    #[test]
    fn whole_amounts_earn_and_family_rules_count_only_their_lines() {
        let p = program(vec![
            EarnRule {
                points: 1,
                per_amount: 100,
                product_family: None,
            },
            EarnRule {
                points: 5,
                per_amount: 1000,
                product_family: Some("Coffee".into()),
            },
        ]);
        let lines = vec![(2_550, Some("coffee".into())), (999, None)];
        // 35.49 € overall → 35 points; 25.50 € of coffee → 2 × 5 points.
        assert_eq!(p.points_for(&lines), 35 + 10);
    }
}
