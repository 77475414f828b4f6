//! Campaign attribution of an opportunity: which campaigns its people met before it closed,
//! and how its amount is credited to them — all to the first touch, all to the last, or
//! split evenly over every touch (linear).

use actix_web::{get, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::extract::path_id;
use crm_core::ids;
use crm_core::respond::ReadProblems;
use crm_core::schema::{campaigns, contact_accounts as ca, leads, touchpoints as tp};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// What one campaign is credited with under one model.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignCredit {
    #[schema(format = "uuid")]
    pub campaign_id: String,
    pub campaign_name: String,
    /// Its touchpoints counted by this model (1 for first and last touch).
    pub touchpoints: i64,
    /// Its share of the opportunity, 0 to 1.
    pub share: f64,
    /// Its part of the amount in minor units; the parts add up to the amount exactly.
    pub amount: i64,
}

/// An opportunity's campaign attribution.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attribution {
    #[schema(format = "uuid")]
    pub opportunity_id: String,
    /// The opportunity's amount in minor units.
    pub amount: i64,
    pub currency: String,
    pub status: String,
    /// Touchpoints up to this instant count: the close, or now while the opportunity is open.
    pub window_end: String,
    /// Campaign touchpoints of the opportunity's people in the window.
    pub touchpoints: i64,
    /// All credit to the campaign of the first touchpoint; empty without touchpoints.
    pub first_touch: Vec<CampaignCredit>,
    /// All credit to the campaign of the last touchpoint.
    pub last_touch: Vec<CampaignCredit>,
    /// Credit split evenly over the touchpoints, summed per campaign, largest first.
    pub linear: Vec<CampaignCredit>,
}

/// A campaign touchpoint: its campaign and when.
type Touch = (String, String);

/// Ids per `IN` list: far below either database's limit on bind parameters.
const CHUNK: usize = 5_000;

/// The campaign touchpoints of the opportunity's people up to `until`, oldest first: its
/// source lead, its primary contact and the contacts of its account, with the leads that
/// were converted into them. The people are resolved first, so each touchpoint query is an
/// index lookup per person.
fn touches(
    c: &mut DbConn,
    opp: &crm_sales::opportunities::OpportunityRow,
    until: &str,
) -> ApiResult<Vec<Touch>> {
    let mut people: Vec<String> = ca::table
        .filter(ca::account_id.eq(&opp.account_id))
        .select(ca::contact_id)
        .load(c)?;
    people.extend(opp.primary_contact_id.clone());
    people.sort();
    people.dedup();
    let mut subjects = people.clone();
    subjects.extend(opp.lead_id.clone());
    for chunk in people.chunks(CHUNK) {
        subjects.extend(
            leads::table
                .filter(leads::converted_contact_id.eq_any(chunk))
                .select(leads::id)
                .load::<String>(c)?,
        );
    }
    subjects.sort();
    subjects.dedup();
    let mut out: Vec<(String, String, String)> = vec![];
    for chunk in subjects.chunks(CHUNK) {
        let rows: Vec<(Option<String>, String, String)> = tp::table
            .filter(tp::subject_id.eq_any(chunk))
            .filter(tp::campaign_id.is_not_null())
            .filter(tp::occurred_at.le(until))
            .select((tp::campaign_id, tp::occurred_at, tp::id))
            .load(c)?;
        out.extend(
            rows.into_iter()
                .filter_map(|(k, at, id)| k.map(|k| (at, id, k))),
        );
    }
    out.sort();
    Ok(out.into_iter().map(|(at, _, k)| (k, at)).collect())
}

/// Split `amount` over campaigns in proportion to their touch counts, in whole minor units
/// that add up to `amount`: the units left over after rounding down go to the largest
/// remainders (ties to the campaign touched first).
pub fn linear(amount: i64, counts: &[(String, i64)]) -> Vec<(String, i64, i64)> {
    let total: i64 = counts.iter().map(|c| c.1).sum();
    if total == 0 {
        return vec![];
    }
    let mut parts: Vec<(String, i64, i64, i128)> = counts
        .iter()
        .map(|(k, n)| {
            let exact = i128::from(amount) * i128::from(*n);
            let floor = exact.div_euclid(i128::from(total));
            (
                k.clone(),
                *n,
                floor as i64,
                exact.rem_euclid(i128::from(total)),
            )
        })
        .collect();
    let left = (amount - parts.iter().map(|p| p.2).sum::<i64>()).max(0) as usize;
    // Rank by remainder, largest first; the sort is stable, so ties keep first-touch order.
    let mut ranked: Vec<(usize, i128)> = parts.iter().map(|p| p.3).enumerate().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let bumped: Vec<usize> = ranked.into_iter().take(left).map(|r| r.0).collect();
    for (i, part) in parts.iter_mut().enumerate() {
        if bumped.contains(&i) {
            part.2 += 1;
        }
    }
    parts.into_iter().map(|(k, n, a, _)| (k, n, a)).collect()
}

fn credits(
    c: &mut DbConn,
    amount: i64,
    touches: &[Touch],
) -> ApiResult<(
    Vec<CampaignCredit>,
    Vec<CampaignCredit>,
    Vec<CampaignCredit>,
)> {
    // Campaigns in order of their first touch, with their touch counts.
    let mut counts: Vec<(String, i64)> = vec![];
    for (k, _) in touches {
        match counts.iter_mut().find(|(id, _)| id == k) {
            Some(entry) => entry.1 += 1,
            None => counts.push((k.clone(), 1)),
        }
    }
    let ids: Vec<&String> = counts.iter().map(|c| &c.0).collect();
    let names: Vec<(String, String)> = campaigns::table
        .filter(campaigns::id.eq_any(ids))
        .select((campaigns::id, campaigns::name))
        .load(c)?;
    let credit = |k: &str, touchpoints: i64, share: f64, amount: i64| CampaignCredit {
        campaign_id: k.to_string(),
        campaign_name: names
            .iter()
            .find(|n| n.0 == k)
            .map(|n| n.1.clone())
            .unwrap_or_default(),
        touchpoints,
        share,
        amount,
    };
    let whole = |t: Option<&Touch>| {
        t.map(|(k, _)| vec![credit(k, 1, 1.0, amount)])
            .unwrap_or_default()
    };
    let total = touches.len() as f64;
    let mut split: Vec<CampaignCredit> = linear(amount, &counts)
        .into_iter()
        .map(|(k, n, a)| credit(&k, n, n as f64 / total, a))
        .collect();
    split.sort_by_key(|c| std::cmp::Reverse(c.amount));
    Ok((whole(touches.first()), whole(touches.last()), split))
}

fn attribution(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Attribution> {
    let opp = crm_sales::opportunities::find(c, me, id)?;
    let window_end = opp.closed_at.clone().unwrap_or_else(ids::now);
    let touches = touches(c, &opp, &window_end)?;
    let (first_touch, last_touch, linear) = credits(c, opp.amount, &touches)?;
    Ok(Attribution {
        opportunity_id: opp.id,
        amount: opp.amount,
        currency: opp.currency,
        status: opp.status,
        window_end,
        touchpoints: touches.len() as i64,
        first_touch,
        last_touch,
        linear,
    })
}

/// An opportunity's campaign attribution
///
/// The campaigns the opportunity's people met before it closed (or until now while it is
/// open) — through its source lead, its primary contact and its account's contacts: form
/// submissions on a campaign's form, campaign responses, email clicks and social messages
/// about a campaign (meetings have no campaign and count in journeys only). The amount goes
/// wholly to the first touch's campaign, wholly to the last's, and split evenly over all
/// touches (linear), in minor units that add up to the amount. Everyone inside the company
/// who sees the opportunity (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/opportunities/{id}/attribution", tag = "journeys", operation_id = "get_opportunity_attribution",
    params(("id" = String, Path, format = "uuid", description = "Opportunity id")),
    responses((status = 200, description = "The attribution", body = Attribution), ReadProblems))]
#[get("/opportunities/{id}/attribution")]
pub async fn get_attribution(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let out = state.db(move |c| attribution(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::linear;

    fn amounts(parts: Vec<(String, i64, i64)>) -> Vec<i64> {
        parts.into_iter().map(|p| p.2).collect()
    }

    #[test]
    fn linear_parts_add_up_to_the_amount() {
        let counts = vec![
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("c".to_string(), 1),
        ];
        // 33.33 each: the unit left over goes to the campaign touched first.
        assert_eq!(amounts(linear(100, &counts)), [34, 33, 33]);
        assert_eq!(
            amounts(linear(1000, &[("a".into(), 2), ("b".into(), 1)])),
            [667, 333]
        );
        assert_eq!(amounts(linear(2, &counts)), [1, 1, 0]);
        assert!(linear(5, &[]).is_empty());
    }
}
