//! Upsell and cross-sell: products that accounts buying what this account already has also
//! bought (association rules over purchase history). For each product the account lacks,
//! every product it owns is a possible antecedent X: of the accounts that bought X, how many
//! also bought the candidate Y (confidence = both / X), how common the pair is among all
//! buying accounts (support) and how much more likely Y is with X than without (lift). A
//! candidate needs `min_accounts` accounts with both; it is ranked by its best confidence,
//! then support.

use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::schema::{order_lines, orders, products};
use diesel::dsl::count;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use utoipa::{IntoParams, ToSchema};

const METHOD: &str = "Association rules over orders that are not cancelled: for each product X \
the account owns and product Y it lacks, support = accounts with X and Y / accounts with any \
order; confidence = accounts with X and Y / accounts with X; lift = confidence / (accounts \
with Y / accounts with any order). Candidates need min_accounts accounts with both and are \
ranked by their best confidence, then support.";

/// Why a product is recommended: one owned product it is bought with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rule {
    /// A product the account owns.
    pub antecedent_product_id: String,
    pub accounts_with_both: usize,
    pub accounts_with_antecedent: usize,
    pub support: f64,
    pub confidence: f64,
    pub lift: f64,
}

/// A product to offer, with the evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendation {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    /// The best rule's confidence.
    pub score: f64,
    /// Every owned product the candidate is bought with, best first.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub account_id: String,
    /// What the account already bought.
    pub owned_product_ids: Vec<String>,
    /// Accounts with at least one order: the population the figures are over.
    pub accounts_considered: usize,
    pub recommendations: Vec<Recommendation>,
    pub method: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecommendationParams {
    /// At most this many products (default 10, at most 50).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<usize>,
    /// Accounts that must have bought both products of a rule (default 2).
    #[param(minimum = 1, maximum = 1000)]
    pub min_accounts: Option<usize>,
}

/// Purchase history in the database: order lines of orders that are not cancelled.
struct History {
    /// Accounts with any such order: the population.
    accounts: usize,
    /// Accounts that bought each product.
    buyers: HashMap<String, usize>,
    /// The products of every account that bought one of the owned ones.
    related: BTreeMap<String, BTreeSet<String>>,
}

macro_rules! bought {
    () => {
        order_lines::table
            .inner_join(orders::table)
            .filter(orders::status.ne("cancelled"))
            .filter(orders::archived_at.is_null())
    };
}

fn owned_by(c: &mut DbConn, account: &str) -> ApiResult<BTreeSet<String>> {
    Ok(bought!()
        .filter(order_lines::account_id.eq(account))
        .select(order_lines::product_id)
        .distinct()
        .load::<String>(c)?
        .into_iter()
        .collect())
}

/// Aggregates counted by the database; only the baskets of related accounts are loaded.
fn history(c: &mut DbConn, owned: &BTreeSet<String>) -> ApiResult<History> {
    let accounts: i64 = bought!()
        .select(count(order_lines::account_id).aggregate_distinct())
        .first(c)?;
    let buyers = bought!()
        .group_by(order_lines::product_id)
        .select((
            order_lines::product_id,
            count(order_lines::account_id).aggregate_distinct(),
        ))
        .load::<(String, i64)>(c)?
        .into_iter()
        .map(|(p, n)| (p, usize::try_from(n).unwrap_or(0)))
        .collect();
    let owners = diesel::alias!(order_lines as owners);
    let with_owned = owners
        .filter(
            owners
                .field(order_lines::product_id)
                .eq_any(owned.iter().cloned().collect::<Vec<_>>()),
        )
        .select(owners.field(order_lines::account_id));
    let mut related: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (account, product) in bought!()
        .filter(order_lines::account_id.eq_any(with_owned))
        .select((order_lines::account_id, order_lines::product_id))
        .distinct()
        .load::<(String, String)>(c)?
    {
        related.entry(account).or_default().insert(product);
    }
    Ok(History {
        accounts: usize::try_from(accounts).unwrap_or(0),
        buyers,
        related,
    })
}

fn rules_for(
    owned: &BTreeSet<String>,
    h: &History,
    min_accounts: usize,
) -> BTreeMap<String, Vec<Rule>> {
    let n = h.accounts.max(1) as f64;
    let mut pairs: HashMap<(&str, &str), usize> = HashMap::new();
    for basket in h.related.values() {
        for x in basket.iter().filter(|p| owned.contains(*p)) {
            for y in basket.iter().filter(|p| !owned.contains(*p)) {
                *pairs.entry((x.as_str(), y.as_str())).or_default() += 1;
            }
        }
    }
    let mut out: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    for ((x, y), both) in pairs.into_iter().filter(|(_, both)| *both >= min_accounts) {
        let with_x = h.buyers.get(x).copied().unwrap_or(1).max(1);
        let with_y = h.buyers.get(y).copied().unwrap_or(1).max(1);
        let confidence = both as f64 / with_x as f64;
        out.entry(y.to_string()).or_default().push(Rule {
            antecedent_product_id: x.to_string(),
            accounts_with_both: both,
            accounts_with_antecedent: with_x,
            support: round4(both as f64 / n),
            confidence: round4(confidence),
            lift: round4(confidence / (with_y as f64 / n)),
        });
    }
    for rules in out.values_mut() {
        rules.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(b.support.total_cmp(&a.support))
                .then(a.antecedent_product_id.cmp(&b.antecedent_product_id))
        });
    }
    out
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub fn recommend(
    c: &mut DbConn,
    me: &Principal,
    account: &str,
    p: &RecommendationParams,
) -> ApiResult<Recommendations> {
    crm_customers::accounts::find(c, me, account)?;
    let owned = owned_by(c, account)?;
    let history = history(c, &owned)?;
    let rules = rules_for(&owned, &history, p.min_accounts.unwrap_or(2).max(1));
    let names: HashMap<String, (String, String)> = products::table
        .filter(products::id.eq_any(rules.keys()))
        .select((products::id, products::sku, products::name))
        .load::<(String, String, String)>(c)?
        .into_iter()
        .map(|(id, sku, name)| (id, (sku, name)))
        .collect();
    let mut recs: Vec<Recommendation> = rules
        .into_iter()
        .filter_map(|(product, rules)| {
            let (sku, name) = names.get(&product)?.clone();
            Some(Recommendation {
                score: rules.first().map_or(0.0, |r| r.confidence),
                product_id: product,
                sku,
                name,
                rules,
            })
        })
        .collect();
    let support = |r: &Recommendation| r.rules.first().map_or(0.0, |x| x.support);
    recs.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(support(b).total_cmp(&support(a)))
            .then(a.product_id.cmp(&b.product_id))
    });
    recs.truncate(p.limit.unwrap_or(10));
    Ok(Recommendations {
        account_id: account.to_string(),
        owned_product_ids: owned.into_iter().collect(),
        accounts_considered: history.accounts,
        recommendations: recs,
        method: METHOD.into(),
    })
}

/// Recommend products to an account.
///
/// Upsell and cross-sell: products that accounts buying what this account already has also
/// bought, each with the evidence — which owned products it goes with, how many accounts bought
/// both, support, confidence and lift — best first; the response states the method. An account
/// without orders gets none. Needs `SalesRead` and sight of the account.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/recommendations", tag = "orders",
    params(("id" = String, Path, format = "uuid", description = "Account id"), RecommendationParams),
    responses((status = 200, description = "Products to offer, with the evidence", body = Recommendations), crm_core::respond::ReadProblems))]
#[actix_web::get("/accounts/{id}/recommendations")]
pub async fn get_recommendations(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    id: actix_web::web::Path<String>,
    query: actix_web::web::Query<RecommendationParams>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = crm_core::extract::path_id(&id)?;
    let p = query.into_inner();
    if p.limit.is_some_and(|l| !(1..=50).contains(&l)) {
        return Err(crm_core::error::ApiError::BadRequest(
            "limit is 1 to 50".into(),
        ));
    }
    if p.min_accounts.is_some_and(|m| !(1..=1000).contains(&m)) {
        return Err(crm_core::error::ApiError::BadRequest(
            "min_accounts is 1 to 1000".into(),
        ));
    }
    let out = state.db(move |c| recommend(c, &me, &id, &p)).await?;
    Ok(actix_web::HttpResponse::Ok().json(out))
}
