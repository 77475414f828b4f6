//! Forecasts: what will close in a period, by owner or team, from the opportunities whose
//! close date falls in it and the forecast category and probability of their stages. Team
//! selling is honoured: a deal with a team credits each member their split.

use crate::opportunities::{Opportunity, OpportunityRow};
use crate::pipelines::{ForecastCategory, Pipeline, PipelineRow};
use actix_web::{get, web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::{ApiError, ApiResult};
use crm_core::respond::ListProblems;
use crm_core::schema::{account_territories, opportunities, pipelines, users};
use crm_core::state::AppState;
use crm_core::visibility;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};

/// How the figures are computed, stated in every answer.
pub const METHOD: &str = "Deals whose close_date falls in the period, not archived. closed_won: \
won deals; commit: open deals in commit stages; best_case: open deals in commit or best-case \
stages; pipeline: every open deal; weighted_pipeline: each open deal's amount times its \
stage's probability, summed, divided by 100 and rounded half up. A deal with a team credits \
each member amount × split_percent / 100 (rounded down, the remainder to the first member); \
one without credits its owner. Amounts are per currency, in minor units. projected: closed_won plus each open deal's amount times its stage's historical win rate (closed deals that passed through the stage, won over closed; the stage probability without history), counting only deals whose stage's average days from entry to a won close, from today, end within the period; rounded half up. The history behind it is in stage_history.";

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Owner,
    Team,
    /// The territory of the deal's account (`GET /accounts/{id}/territory`).
    Territory,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// `2026-Q4`, `2026-11` or `2026`.
    #[param(pattern = "^[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$")]
    pub period: String,
    /// `owner` (the default), `team` or `territory`.
    #[param(inline)]
    pub group_by: Option<GroupBy>,
    /// Only this pipeline's deals.
    #[param(format = "uuid")]
    pub pipeline_id: Option<String>,
}

/// One group's figures in one currency.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct ForecastRow {
    /// The user (`group_by=owner`), team (`group_by=team`) or territory
    /// (`group_by=territory`); null for deals without one.
    pub group_id: Option<String>,
    pub currency: String,
    pub closed_won: i64,
    pub commit: i64,
    pub best_case: i64,
    pub pipeline: i64,
    pub weighted_pipeline: i64,
    /// Deals credited to the group, in whole or in part.
    pub deals: i64,
    /// closed_won plus the open deals projected from history (see `method`).
    pub projected: i64,
    /// The period's quota in this currency: the user's (`owner`), or the sum of its members'
    /// (`team`); null without one, and for territories.
    pub quota: Option<i64>,
    /// `closed_won` as a percent of `quota`, rounded half up to two decimals.
    pub attainment_percent: Option<f64>,
    #[serde(skip)]
    weighted_hundredths: i64,
    #[serde(skip)]
    projected_open: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Forecast {
    pub period: String,
    #[schema(format = Date)]
    pub starts_on: String,
    #[schema(format = Date)]
    pub ends_on: String,
    /// `owner`, `team` or `territory`.
    pub group_by: String,
    pub method: String,
    /// Win rates and cycle lengths per stage, from closed deals: what `projected` rests on.
    pub stage_history: Vec<crate::projection::StageHistory>,
    /// By group, then currency.
    pub rows: Vec<ForecastRow>,
}

/// The first and last day of a period, or a 400.
pub fn period_bounds(period: &str) -> ApiResult<(NaiveDate, NaiveDate)> {
    let bad = || {
        ApiError::BadRequest(format!(
            "{period:?} is not a period: say 2026-Q4, 2026-11 or 2026"
        ))
    };
    if !period.is_ascii() {
        return Err(bad());
    }
    let (year, rest) = period.split_at(period.len().min(4));
    if year.len() != 4 || !year.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i32 = year.parse().map_err(|_| bad())?;
    let (first, months) = match rest {
        "" => (1, 12),
        r if r.starts_with("-Q") => {
            let q: u32 = r
                .get(2..)
                .and_then(|q| q.parse().ok())
                .filter(|q| (1..=4).contains(q))
                .ok_or_else(bad)?;
            (3 * q - 2, 3)
        }
        r if r.starts_with('-') && r.len() == 3 => {
            let m: u32 = r
                .get(1..)
                .and_then(|m| m.parse().ok())
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?;
            (m, 1)
        }
        _ => return Err(bad()),
    };
    let start = NaiveDate::from_ymd_opt(year, first, 1).ok_or_else(bad)?;
    let after = start
        .checked_add_months(chrono::Months::new(months))
        .ok_or_else(bad)?;
    let end = after.pred_opt().ok_or_else(bad)?;
    debug_assert_eq!(start.year(), end.year());
    Ok((start, end))
}

/// Who is credited how much of a deal: (user, amount).
fn credits(o: &Opportunity) -> Vec<(Option<String>, i64)> {
    if o.team.is_empty() {
        return vec![(o.owner_id.clone(), o.amount)];
    }
    let mut out: Vec<(Option<String>, i64)> = o
        .team
        .iter()
        .map(|m| {
            (
                Some(m.user_id.clone()),
                o.amount * i64::from(m.split_percent) / 100,
            )
        })
        .collect();
    let given: i64 = out.iter().map(|(_, a)| a).sum();
    if let Some(first) = out.first_mut() {
        first.1 += o.amount - given;
    }
    out
}

pub fn forecast(c: &mut DbConn, me: &Principal, p: &ForecastParams) -> ApiResult<Forecast> {
    visibility::check_sees(me, "forecast")?;
    let (start, end) = period_bounds(&p.period)?;
    let (from, to) = (
        start.format("%Y-%m-%d").to_string(),
        end.format("%Y-%m-%d").to_string(),
    );
    let mut q = opportunities::table
        .filter(opportunities::archived_at.is_null())
        .filter(opportunities::close_date.ge(&from))
        .filter(opportunities::close_date.le(&to))
        .into_boxed();
    if let Some(raw) = &p.pipeline_id {
        let id = crm_core::ids::parse_id(raw)
            .ok_or_else(|| ApiError::BadRequest("pipeline_id must be a UUID".into()))?;
        q = q.filter(opportunities::pipeline_id.eq(id));
    }
    let deals: Vec<Opportunity> = q
        .load::<OpportunityRow>(c)?
        .into_iter()
        .map(Opportunity::from)
        .collect();
    let stages: HashMap<(String, String), (ForecastCategory, i32)> = pipelines::table
        .load::<PipelineRow>(c)?
        .into_iter()
        .map(Pipeline::from)
        .flat_map(|p| {
            let id = p.id.clone();
            p.stages
                .into_iter()
                .map(move |s| ((id.clone(), s.key), (s.forecast_category, s.probability)))
        })
        .collect();
    let group_by = p.group_by.unwrap_or(GroupBy::Owner);
    let teams: HashMap<String, Option<String>> = if group_by == GroupBy::Team {
        users::table
            .select((users::id, users::team_id))
            .load(c)?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let territories: HashMap<String, String> = if group_by == GroupBy::Territory {
        let accounts: Vec<&str> = deals.iter().map(|d| d.account_id.as_str()).collect();
        account_territories::table
            .filter(account_territories::account_id.eq_any(accounts))
            .select((
                account_territories::account_id,
                account_territories::territory_id,
            ))
            .load(c)?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let history = crate::projection::stage_history(c)?;
    let today = chrono::Utc::now().date_naive();
    let mut rows: BTreeMap<(Option<String>, String), ForecastRow> = BTreeMap::new();
    for deal in &deals {
        let (category, probability) = stages
            .get(&(deal.pipeline_id.clone(), deal.stage.clone()))
            .copied()
            .unwrap_or((ForecastCategory::Pipeline, 0));
        for (user, amount) in credits(deal) {
            let group = match group_by {
                GroupBy::Owner => user,
                GroupBy::Team => user.and_then(|u| teams.get(&u).cloned().flatten()),
                GroupBy::Territory => territories.get(&deal.account_id).cloned(),
            };
            let row = rows
                .entry((group.clone(), deal.currency.clone()))
                .or_insert_with(|| ForecastRow {
                    group_id: group,
                    currency: deal.currency.clone(),
                    ..Default::default()
                });
            add(row, category, probability, amount);
            if deal.status == crate::opportunities::OpportunityStatus::Open {
                let h = history.get(&(deal.pipeline_id.clone(), deal.stage.clone()));
                row.projected_open +=
                    amount as f64 * crate::projection::projected_share(h, probability, today, end);
            }
        }
    }
    let quotas = quotas_by_group(c, &p.period, group_by, &teams)?;
    let rows = rows
        .into_values()
        .map(|mut r| {
            r.weighted_pipeline = (r.weighted_hundredths + 50) / 100;
            r.projected = r.closed_won + (r.projected_open + 0.5).floor() as i64;
            r.quota = r
                .group_id
                .as_ref()
                .and_then(|g| quotas.get(&(g.clone(), r.currency.clone())).copied());
            r.attainment_percent = r.quota.filter(|q| *q > 0).map(|q| {
                let hundredths =
                    (i128::from(r.closed_won) * 10_000 * 2 + i128::from(q)) / (2 * i128::from(q));
                hundredths as f64 / 100.0
            });
            r
        })
        .collect();
    Ok(Forecast {
        period: p.period.clone(),
        starts_on: from,
        ends_on: to,
        group_by: match group_by {
            GroupBy::Owner => "owner",
            GroupBy::Team => "team",
            GroupBy::Territory => "territory",
        }
        .into(),
        method: METHOD.into(),
        rows,
        stage_history: history.into_values().collect(),
    })
}

/// The period's quotas summed per group and currency.
fn quotas_by_group(
    c: &mut DbConn,
    period: &str,
    group_by: GroupBy,
    teams: &HashMap<String, Option<String>>,
) -> ApiResult<HashMap<(String, String), i64>> {
    let mut out = HashMap::new();
    for (user, currency, amount) in crate::quotas::of_period(c, period)? {
        let group = match group_by {
            GroupBy::Owner => Some(user),
            GroupBy::Team => teams.get(&user).cloned().flatten(),
            GroupBy::Territory => None,
        };
        if let Some(g) = group {
            *out.entry((g, currency)).or_insert(0) += amount;
        }
    }
    Ok(out)
}

fn add(row: &mut ForecastRow, category: ForecastCategory, probability: i32, amount: i64) {
    row.deals += 1;
    match category {
        ForecastCategory::ClosedWon => row.closed_won += amount,
        ForecastCategory::ClosedLost => {}
        open => {
            row.pipeline += amount;
            row.weighted_hundredths += amount * i64::from(probability);
            if matches!(open, ForecastCategory::Commit | ForecastCategory::BestCase) {
                row.best_case += amount;
            }
            if open == ForecastCategory::Commit {
                row.commit += amount;
            }
        }
    }
}

/// Forecast a period by owner or team.
///
/// From the opportunities whose `close_date` falls in the period: closed won, commit, best case,
/// pipeline and weighted pipeline, per group and currency, with the method stated in `method`.
/// Team splits share a deal's credit among its team. A period that is not `YYYY`, `YYYY-Qn` or
/// `YYYY-MM` is a 400. Needs `SalesRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/forecasts", tag = "opportunities",
    params(ForecastParams),
    responses((status = 200, description = "The forecast", body = Forecast), ListProblems))]
#[get("/forecasts")]
pub async fn get_forecast(
    state: web::Data<AppState>,
    me: Principal,
    params: web::Query<ForecastParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesRead)?;
    let p = params.into_inner();
    let f = state.db(move |c| forecast(c, &me, &p)).await?;
    Ok(HttpResponse::Ok().json(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_quarters_months_or_years() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let b = |p: &str| period_bounds(p).ok();
        assert_eq!(b("2026-Q4"), day("2026-10-01").zip(day("2026-12-31")));
        assert_eq!(b("2028-02"), day("2028-02-01").zip(day("2028-02-29")));
        assert_eq!(b("2026"), day("2026-01-01").zip(day("2026-12-31")));
        for bad in [
            "2026-Q5", "2026-13", "26-Q1", "2026Q1", "", "2026-1", "0", "+202",
        ] {
            assert!(period_bounds(bad).is_err(), "{bad}");
        }
    }
}
