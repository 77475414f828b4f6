//! The forecast's projection from history: for every stage of every pipeline, how often the
//! closed deals that passed through it were won, and how long won deals took from entering
//! it to closing. An open deal is projected at its amount × its stage's historical win rate
//! (its stage's probability when no closed deal passed through the stage), and only if its
//! stage's average cycle from today still ends within the period (otherwise it is expected
//! to slip and projects 0).

use chrono::NaiveDate;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::schema::{opportunities, opportunity_stage_history as history};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// What history says about one stage.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct StageHistory {
    pub pipeline_id: String,
    pub stage: String,
    /// Closed deals that were ever in the stage.
    pub closed_deals: i64,
    pub won_deals: i64,
    /// won / closed, to four decimals; null without closed deals.
    pub win_rate: Option<f64>,
    /// Mean days from entering the stage to closing, over its won deals; null without any.
    pub average_days_to_close: Option<f64>,
    /// The unrounded rate the projection uses.
    #[serde(skip)]
    exact_win_rate: Option<f64>,
}

#[derive(Default)]
struct Tally {
    deals: BTreeSet<String>,
    won: BTreeSet<String>,
    days_to_close: Vec<f64>,
}

/// Per (pipeline, stage) history of closed deals, from one query.
pub fn stage_history(c: &mut DbConn) -> ApiResult<BTreeMap<(String, String), StageHistory>> {
    let rows: Vec<(String, String, String, String, String, Option<String>)> = history::table
        .inner_join(opportunities::table)
        .filter(opportunities::status.eq_any(["won", "lost"]))
        .filter(opportunities::archived_at.is_null())
        .select((
            opportunities::id,
            opportunities::pipeline_id,
            history::to_stage,
            opportunities::status,
            history::entered_at,
            opportunities::closed_at,
        ))
        .load(c)?;
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for (deal, pipeline, stage, status, entered, closed) in rows {
        let t = tallies.entry((pipeline, stage)).or_default();
        if !t.deals.insert(deal.clone()) {
            continue; // a deal that re-entered the stage counts once, from its first entry
        }
        if status == "won" {
            t.won.insert(deal);
            if let (Some(a), Some(b)) = (parse(&entered), closed.as_deref().and_then(parse)) {
                t.days_to_close
                    .push((b - a).num_seconds() as f64 / 86_400.0);
            }
        }
    }
    Ok(tallies
        .into_iter()
        .map(|((pipeline, stage), t)| {
            let closed = t.deals.len() as i64;
            let won = t.won.len() as i64;
            let mean = (!t.days_to_close.is_empty())
                .then(|| t.days_to_close.iter().sum::<f64>() / t.days_to_close.len() as f64);
            let h = StageHistory {
                pipeline_id: pipeline.clone(),
                stage: stage.clone(),
                closed_deals: closed,
                won_deals: won,
                win_rate: (closed > 0).then(|| round(won as f64 / closed as f64, 4)),
                average_days_to_close: mean.map(|m| round(m, 1)),
                exact_win_rate: (closed > 0).then(|| won as f64 / closed as f64),
            };
            ((pipeline, stage), h)
        })
        .collect())
}

fn parse(ts: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The share (0–1) of an open deal's amount the projection counts.
pub fn projected_share(
    h: Option<&StageHistory>,
    probability: i32,
    today: NaiveDate,
    period_end: NaiveDate,
) -> f64 {
    let rate = h
        .and_then(|h| h.exact_win_rate)
        .unwrap_or(f64::from(probability) / 100.0);
    let slips = h.and_then(|h| h.average_days_to_close).is_some_and(|days| {
        today + chrono::Duration::seconds((days * 86_400.0) as i64) > period_end
    });
    if slips {
        0.0
    } else {
        rate
    }
}
