//! Commission statements (`GET /commissions`) and what an open deal would earn
//! (`GET /opportunities/{id}/commission-preview`), computed with the rep's plan
//! (`crate::commissions`) and quota (`crate::quotas`).

use crate::commissions::{CommissionPlan, PlanRow};
use crate::forecasts::period_bounds;
use crate::opportunities::{Opportunity, OpportunityRow};
use crate::orders::{Order, OrderRow};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::{ApiError, ApiResult};
use crm_core::schema::{commission_plans as plans, opportunities, orders, products};
use crm_core::visibility;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

const METHOD: &str = "Revenue is credited from orders of won deals dated in the period, in the \
statement's currency, line by line in order date order: each line's net amount times the \
user's split of the deal (the owner alone without a team), rounded half up. Each credited \
amount is paid at the rate of the attainment tier it falls in (a line crossing a tier \
boundary is paid part at each rate), or at its product family's rate, and the part above the \
accelerator's attainment is multiplied. Without a quota every line earns the first tier's \
rate. Each line's commission is rounded half up to a minor unit.";

/// Scale of exact revenue arithmetic: amounts ×10⁴, so boundaries at percents with two
/// decimals of a quota are integers.
const SCALE: i128 = 10_000;

/// One part of a credited line paid at one rate.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Portion {
    /// Credited revenue in this part, in minor units (rounded for display).
    pub amount: i64,
    pub rate_percent: f64,
    /// 100 below the accelerator, its multiplier above.
    pub multiplier_percent: i32,
    /// `tier` (which tier index) or `family`.
    pub source: String,
}

/// One credited order line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatementLine {
    /// Null for an open deal's preview line.
    pub order_id: Option<String>,
    pub opportunity_id: String,
    /// Index of the line in its order.
    pub line: usize,
    pub product_id: Option<String>,
    pub family: Option<String>,
    pub net: i64,
    pub split_percent: i32,
    pub credited: i64,
    /// Attainment before this line, in percent of quota (null without a quota).
    pub attainment_before_percent: Option<f64>,
    pub portions: Vec<Portion>,
    pub commission: i64,
}

/// A user's commission statement for a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Statement {
    pub user_id: String,
    pub period: String,
    pub currency: String,
    /// The plan applied; null when the user is on none (nothing is earned).
    pub plan_id: Option<String>,
    pub quota: Option<i64>,
    pub credited_revenue: i64,
    pub attainment_percent: Option<f64>,
    pub lines: Vec<StatementLine>,
    pub total_commission: i64,
    pub method: String,
}

/// A line to credit: its deal, product family, net and the user's split.
struct Credit {
    order_id: Option<String>,
    opportunity_id: String,
    line: usize,
    product_id: Option<String>,
    family: Option<String>,
    net: i64,
    split: i32,
}

fn bp(p: f64) -> i128 {
    (p * 100.0).round() as i128
}

fn half_up(n: i128, d: i128) -> i64 {
    i64::try_from((2 * n + d).div_euclid(2 * d)).unwrap_or(i64::MAX)
}

/// The split of `user` in a deal, in percent (the owner alone has 100).
fn split_of(o: &Opportunity, user: &str) -> Option<i32> {
    if o.team.is_empty() {
        return (o.owner_id.as_deref() == Some(user)).then_some(100);
    }
    o.team
        .iter()
        .find(|m| m.user_id == user)
        .map(|m| m.split_percent)
}

/// Pay `credits` in order under `plan` against `quota`.
fn pay(
    plan: Option<&CommissionPlan>,
    quota: Option<i64>,
    credits: Vec<Credit>,
) -> (Vec<StatementLine>, i64) {
    let mut cum: i128 = 0; // scaled credited revenue so far
    let mut lines = vec![];
    let q = quota.filter(|q| *q > 0).map(i128::from);
    for c in credits {
        let credited = half_up(i128::from(c.net) * i128::from(c.split), 100);
        let amount = i128::from(credited) * SCALE;
        let before = cum;
        let portions = plan
            .map(|p| portions(p, q, &c, before, amount))
            .unwrap_or_default();
        let numerator: i128 = portions
            .iter()
            .map(|(a, rate, mult, _)| a * rate * i128::from(*mult))
            .sum();
        let commission = half_up(numerator, SCALE * 10_000 * 100);
        cum += amount;
        lines.push(StatementLine {
            order_id: c.order_id,
            opportunity_id: c.opportunity_id,
            line: c.line,
            product_id: c.product_id,
            family: c.family,
            net: c.net,
            split_percent: c.split,
            credited,
            attainment_before_percent: q.map(|q| percent(before, q)),
            portions: portions
                .into_iter()
                .map(|(a, rate, mult, source)| Portion {
                    amount: half_up(a, SCALE),
                    rate_percent: rate as f64 / 100.0,
                    multiplier_percent: mult,
                    source,
                })
                .collect(),
            commission,
        });
    }
    let total = lines.iter().map(|l| l.commission).sum();
    (lines, total)
}

/// Attainment in percent, to two decimals.
fn percent(scaled: i128, quota: i128) -> f64 {
    ((scaled as f64 / SCALE as f64) * 10_000.0 / quota as f64).round() / 100.0
}

/// The parts of a credited amount (scaled, starting at `before`) at each rate and multiplier.
fn portions(
    p: &CommissionPlan,
    quota: Option<i128>,
    c: &Credit,
    before: i128,
    amount: i128,
) -> Vec<(i128, i128, i32, String)> {
    let family_rate = c
        .family
        .as_deref()
        .and_then(|f| {
            p.family_rates
                .iter()
                .find(|r| r.family.eq_ignore_ascii_case(f))
        })
        .map(|r| bp(r.rate_percent));
    let Some(q) = quota else {
        let rate = family_rate.unwrap_or_else(|| p.tiers.first().map_or(0, |t| bp(t.rate_percent)));
        let source = if family_rate.is_some() {
            "family".to_string()
        } else {
            "tier 0".to_string()
        };
        return vec![(amount, rate, 100, source)];
    };
    // Boundaries (scaled revenue) where the rate or the multiplier changes.
    let at = |percent: f64| q * bp(percent); // q × percent/100 × SCALE = q × bp
    let mut cuts: Vec<i128> = p.tiers.iter().skip(1).map(|t| at(t.from_percent)).collect();
    if let Some(a) = &p.accelerator {
        cuts.push(at(a.above_percent));
    }
    cuts.retain(|x| *x > before && *x < before + amount);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = vec![];
    let mut start = before;
    for end in cuts.into_iter().chain(std::iter::once(before + amount)) {
        let tier = p
            .tiers
            .iter()
            .rposition(|t| at(t.from_percent) <= start)
            .unwrap_or(0);
        let (rate, source) = match family_rate {
            Some(r) => (r, "family".to_string()),
            None => (
                p.tiers.get(tier).map_or(0, |t| bp(t.rate_percent)),
                format!("tier {tier}"),
            ),
        };
        let mult = match &p.accelerator {
            Some(a) if start >= at(a.above_percent) => a.multiplier_percent,
            _ => 100,
        };
        if end > start {
            out.push((end - start, rate, mult, source));
        }
        start = end;
    }
    out
}

fn plan_of(c: &mut DbConn, user: &str) -> ApiResult<Option<CommissionPlan>> {
    let rows: Vec<PlanRow> = plans::table
        .filter(plans::archived_at.is_null())
        .order(plans::id.asc())
        .select(PlanRow::as_select())
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(CommissionPlan::from)
        .find(|p| p.user_ids.iter().any(|u| u == user)))
}

/// The user's credited order lines of won deals in the period and currency, in order.
fn credits(c: &mut DbConn, user: &str, period: &str, currency: &str) -> ApiResult<Vec<Credit>> {
    let (start, end) = period_bounds(period)?;
    let (from, to) = (
        start.format("%Y-%m-%d").to_string(),
        end.format("%Y-%m-%d").to_string(),
    );
    let won: Vec<Order> = orders::table
        .inner_join(
            opportunities::table.on(orders::opportunity_id.eq(opportunities::id.nullable())),
        )
        .filter(opportunities::status.eq("won"))
        .filter(orders::ordered_on.ge(&from))
        .filter(orders::ordered_on.le(&to))
        .filter(orders::currency.eq(currency))
        .filter(orders::status.ne("cancelled"))
        .filter(orders::archived_at.is_null())
        .order((orders::ordered_on.asc(), orders::id.asc()))
        .select(orders::all_columns)
        .load::<OrderRow>(c)?
        .into_iter()
        .map(Order::from)
        .collect();
    let deal_ids: Vec<String> = won
        .iter()
        .filter_map(|o| o.opportunity_id.clone())
        .collect();
    let deals: HashMap<String, Opportunity> = opportunities::table
        .filter(opportunities::id.eq_any(&deal_ids))
        .load::<OpportunityRow>(c)?
        .into_iter()
        .map(|r| (r.id.clone(), Opportunity::from(r)))
        .collect();
    let product_ids: Vec<&str> = won
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| l.product_id.as_str()))
        .collect();
    let families: HashMap<String, Option<String>> = products::table
        .filter(products::id.eq_any(product_ids))
        .select((products::id, products::family))
        .load(c)?
        .into_iter()
        .collect();
    let mut out = vec![];
    for order in won {
        let Some(deal) = order.opportunity_id.as_ref().and_then(|d| deals.get(d)) else {
            continue;
        };
        let Some(split) = split_of(deal, user) else {
            continue;
        };
        for (i, line) in order.lines.iter().enumerate() {
            out.push(Credit {
                order_id: Some(order.id.clone()),
                opportunity_id: deal.id.clone(),
                line: i,
                product_id: Some(line.product_id.clone()),
                family: families.get(&line.product_id).cloned().flatten(),
                net: line.net,
                split,
            });
        }
    }
    Ok(out)
}

fn statement(
    c: &mut DbConn,
    user: &str,
    period: &str,
    currency: &str,
    extra: Vec<Credit>,
) -> ApiResult<Statement> {
    let plan = plan_of(c, user)?;
    let quota = crate::quotas::of(c, user, period, currency)?;
    let mut all = credits(c, user, period, currency)?;
    all.extend(extra);
    let (lines, total) = pay(plan.as_ref(), quota, all);
    let credited: i64 = lines.iter().map(|l| l.credited).sum();
    Ok(Statement {
        user_id: user.to_string(),
        period: period.to_string(),
        currency: currency.to_string(),
        plan_id: plan.map(|p| p.id),
        quota,
        credited_revenue: credited,
        attainment_percent: quota
            .filter(|q| *q > 0)
            .map(|q| credited as f64 * 100.0 / q as f64),
        lines,
        total_commission: total,
        method: METHOD.into(),
    })
}

/// The currency of a statement: the one asked for, else the user's quota's in the period.
fn currency_for(
    c: &mut DbConn,
    user: &str,
    period: &str,
    asked: Option<&str>,
) -> ApiResult<String> {
    if let Some(cur) = asked {
        return Ok(cur.to_string());
    }
    crate::quotas::of_period(c, period)?
        .into_iter()
        .find(|(u, _, _)| u == user)
        .map(|(_, cur, _)| cur)
        .ok_or_else(|| {
            ApiError::BadRequest("the user has no quota in the period: say currency=".into())
        })
}

/// Who asks: reps see their own statement; managers anyone's.
fn may_see(me: &Principal, user: &str) -> ApiResult<()> {
    if user == me.user_id || crm_core::auth::role_may(me, Permission::SalesManage) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only managers see other users' commissions".into(),
        ))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementParams {
    /// Whose statement; yourself when not given.
    #[param(format = "uuid")]
    pub user_id: Option<String>,
    /// `2027`, `2027-Q1` or `2027-01`.
    #[param(pattern = "^[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$")]
    pub period: String,
    /// The quota's currency when not given.
    #[param(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

/// Compute a commission statement.
///
/// The user's commission for the period from won deals' orders, line by line: each line's net,
/// the user's split, the credited amount, the attainment before it, the parts paid at each tier
/// or family rate and accelerator, and the line's commission; the response states the method.
/// Reps see their own; managers anyone's (403 otherwise). A malformed period or currency is a
/// 400. Needs
/// `SalesRead`.
#[utoipa::path(get, path = "/api/v1/commissions", tag = "commissions",
    params(StatementParams),
    responses((status = 200, description = "The statement", body = Statement), crm_core::respond::ReadProblems))]
#[actix_web::get("/commissions")]
pub async fn get_statement(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    query: actix_web::web::Query<StatementParams>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesRead)?;
    let p = query.into_inner();
    let user = match &p.user_id {
        Some(raw) => crm_core::ids::parse_id(raw)
            .ok_or_else(|| ApiError::BadRequest("user_id must be a UUID".into()))?,
        None => me.user_id.clone(),
    };
    may_see(&me, &user)?;
    period_bounds(&p.period)?;
    if let Some(code) = &p.currency {
        crm_core::list::currency_param("currency", code)?;
    }
    let out = state
        .db(move |c| {
            visibility::check_sees(&me, "commission")?;
            let currency = currency_for(c, &user, &p.period, p.currency.as_deref())?;
            statement(c, &user, &p.period, &currency, vec![])
        })
        .await?;
    Ok(actix_web::HttpResponse::Ok().json(out))
}

/// What one credited user would earn if the deal closed as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewEarner {
    pub user_id: String,
    pub split_percent: i32,
    pub credited: i64,
    /// Commission the deal adds to the user's statement for the period.
    pub commission: i64,
    pub attainment_before_percent: Option<f64>,
    pub attainment_after_percent: Option<f64>,
    pub plan_id: Option<String>,
}

/// An open deal's commission preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommissionPreview {
    pub opportunity_id: String,
    /// The quarter of the deal's close date.
    pub period: String,
    pub currency: String,
    pub amount: i64,
    pub earners: Vec<PreviewEarner>,
    pub method: String,
}

/// Preview an open deal's commission.
///
/// What each credited member (the owner alone without a team) would earn if the deal closed
/// at its amount in the quarter of its close date: the deal is added as one more line after the
/// period's won orders, so tiers and accelerators apply as they would. A deal without an amount
/// or a close date is a 422 naming the field; a closed one a 409. Needs `SalesRead`; managers
/// see every earner, a rep only themselves.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}/commission-preview", tag = "commissions",
    params(("id" = String, Path, format = "uuid", description = "Opportunity id")),
    responses((status = 200, description = "What the deal would earn", body = CommissionPreview), crm_core::respond::ReadProblems))]
#[actix_web::get("/opportunities/{id}/commission-preview")]
pub async fn preview(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    id: actix_web::web::Path<String>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = crm_core::extract::path_id(&id)?;
    let out = state.db(move |c| preview_deal(c, &me, &id)).await?;
    Ok(actix_web::HttpResponse::Ok().json(out))
}

fn preview_deal(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<CommissionPreview> {
    let deal: Opportunity = crate::opportunities::find(c, me, id)?.into();
    if deal.status != crate::opportunities::OpportunityStatus::Open {
        return Err(ApiError::Conflict(
            "the deal is closed: see GET /commissions".into(),
        ));
    }
    let close = deal
        .close_date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            crm_customers::common::invalid("close_date", "required", "the deal needs a close date")
        })?;
    if deal.amount <= 0 {
        return Err(crm_customers::common::invalid(
            "amount",
            "required",
            "the deal needs an amount",
        ));
    }
    use chrono::Datelike;
    let period = format!("{}-Q{}", close.year(), close.month0() / 3 + 1);
    let mut earners = vec![];
    let users: Vec<String> = if deal.team.is_empty() {
        deal.owner_id.iter().cloned().collect()
    } else {
        deal.team.iter().map(|m| m.user_id.clone()).collect()
    };
    let sees_all = crm_core::auth::role_may(me, Permission::SalesManage);
    for user in users.into_iter().filter(|u| sees_all || *u == me.user_id) {
        let Some(split) = split_of(&deal, &user) else {
            continue;
        };
        let line = Credit {
            order_id: None,
            opportunity_id: deal.id.clone(),
            line: 0,
            product_id: None,
            family: None,
            net: deal.amount,
            split,
        };
        let s = statement(c, &user, &period, &deal.currency, vec![line])?;
        let Some(last) = s.lines.last() else { continue };
        earners.push(PreviewEarner {
            user_id: user,
            split_percent: split,
            credited: last.credited,
            commission: last.commission,
            attainment_before_percent: last.attainment_before_percent,
            attainment_after_percent: s.attainment_percent,
            plan_id: s.plan_id,
        });
    }
    Ok(CommissionPreview {
        opportunity_id: deal.id,
        period,
        currency: deal.currency,
        amount: deal.amount,
        earners,
        method: METHOD.into(),
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::commissions::{Accelerator, Tier};

    fn plan() -> CommissionPlan {
        CommissionPlan {
            id: "p".into(),
            name: "AE".into(),
            user_ids: vec![],
            tiers: vec![
                Tier {
                    from_percent: 0.0,
                    rate_percent: 5.0,
                },
                Tier {
                    from_percent: 50.0,
                    rate_percent: 8.0,
                },
            ],
            family_rates: vec![],
            accelerator: Some(Accelerator {
                above_percent: 100.0,
                multiplier_percent: 150,
            }),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
            archived_at: None,
        }
    }

    fn credit(net: i64, split: i32) -> Credit {
        Credit {
            order_id: None,
            opportunity_id: "o".into(),
            line: 0,
            product_id: None,
            family: None,
            net,
            split,
        }
    }

    #[test]
    fn a_line_crossing_tiers_and_the_accelerator_is_paid_part_at_each_rate() {
        // Quota 1000.00: 400 at 5% = 20; then 300 of which 100 at 5% and 200 at 8% = 21;
        // then 500: 300 at 8% (24) and 200 at 8% × 1.5 (24) = 48.
        let (lines, total) = pay(
            Some(&plan()),
            Some(100_000),
            vec![
                credit(40_000, 100),
                credit(30_000, 100),
                credit(50_000, 100),
            ],
        );
        let paid: Vec<i64> = lines.iter().map(|l| l.commission).collect();
        assert_eq!(paid, vec![2_000, 2_100, 4_800]);
        assert_eq!(total, 8_900);
        assert_eq!(lines[2].portions.len(), 2);
    }

    #[test]
    fn splits_credit_a_share_rounded_half_up() {
        // 333 × 50% = 166.5 → 167 credited; 167 × 5% = 8.35 → 8.
        let (lines, _) = pay(Some(&plan()), None, vec![credit(333, 50)]);
        assert_eq!((lines[0].credited, lines[0].commission), (167, 8));
    }
}
