//! The sales side of `crm seed`. At scale 1: 50 products in five families, one pipeline,
//! 200,000 leads, 200,000 opportunities with one to five line items (a quarter won, with a
//! stage history), and 200,000 orders of five lines each — 1,000,000 order lines, a quarter
//! of the orders closing a won deal, the rest pushed by an ERP.

use super::{Gen, CHUNK, FIRST, INDUSTRIES, LAST};
use chrono::{Duration, NaiveDate};
use crm_core::db::DbConn;
use crm_core::schema::{
    leads, opportunities, opportunity_stage_history as history, order_lines, orders, pipelines,
    products,
};
use crm_sales::pricing::Line;
use diesel::prelude::*;
use rand::Rng;

const FAMILIES: [&str; 5] = ["licences", "services", "hardware", "support", "training"];
const SOURCES: [&str; 7] = [
    "web_form",
    "import",
    "event",
    "referral",
    "partner",
    "campaign",
    "cold_call",
];
const COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "NO", "SE", "NL", "ES"];
/// Stage key, probability, forecast category, share of deals in it (percent).
const STAGES: [(&str, i32, &str, u32); 5] = [
    ("qualify", 10, "pipeline", 30),
    ("propose", 40, "best_case", 20),
    ("commit", 75, "commit", 10),
    ("won", 100, "closed_won", 25),
    ("lost", 0, "closed_lost", 15),
];

/// What was written.
#[derive(Default)]
pub struct SalesSeeded {
    pub leads: usize,
    pub opportunities: usize,
    pub orders: usize,
    pub order_lines: usize,
}

/// A product: id, sku, name, unit price in cents.
type Product = (String, String, String, i64);

pub(super) fn seed_sales(
    conn: &mut DbConn,
    gen: &mut Gen,
    reps: &[String],
    accounts: &[String],
    scale: f64,
) -> QueryResult<SalesSeeded> {
    let catalogue = seed_products(conn, gen)?;
    let pipeline = seed_pipeline(conn, gen)?;
    let n = ((200_000.0 * scale) as usize).max(20);
    let leads = seed_leads(conn, gen, reps, n)?;
    let won = seed_opportunities(conn, gen, (reps, accounts), &catalogue, &pipeline, n)?;
    let (orders, order_lines) = seed_orders(conn, gen, accounts, &catalogue, won, n)?;
    Ok(SalesSeeded {
        leads,
        opportunities: n,
        orders,
        order_lines,
    })
}

fn seed_products(conn: &mut DbConn, gen: &mut Gen) -> QueryResult<Vec<Product>> {
    let (mut rows, mut out) = (vec![], vec![]);
    for (f, family) in FAMILIES.iter().enumerate() {
        for k in 0..10 {
            let (id, at) = gen.id_and_time();
            let sku = format!("{}-{k:02}", family.to_uppercase());
            let name = format!("{} {k}", family);
            let price = gen.rng.random_range(10..500i64) * 100 * (f as i64 + 1);
            rows.push((
                products::id.eq(id.clone()),
                products::sku.eq(sku.clone()),
                products::name.eq(name.clone()),
                products::family.eq(Some(*family)),
                products::active.eq(true),
                products::unit.eq("each"),
                products::warranty_months.eq(Some(12)),
                products::version.eq(1),
                products::created_at.eq(at.clone()),
                products::updated_at.eq(at),
            ));
            out.push((id, sku, name, price));
        }
    }
    insert_rows!(conn, products::table, &rows)?;
    Ok(out)
}

fn seed_pipeline(conn: &mut DbConn, gen: &mut Gen) -> QueryResult<String> {
    let (id, at) = gen.id_and_time();
    let stages: Vec<serde_json::Value> = STAGES
        .iter()
        .map(|(key, p, cat, _)| {
            serde_json::json!({"key": key, "name": key, "probability": p,
                "forecast_category": cat, "exit_criteria": []})
        })
        .collect();
    insert_rows!(
        conn,
        pipelines::table,
        &vec![(
            pipelines::id.eq(id.clone()),
            pipelines::name.eq("New business"),
            pipelines::stages.eq(serde_json::Value::from(stages).to_string()),
            pipelines::version.eq(1),
            pipelines::created_at.eq(at.clone()),
            pipelines::updated_at.eq(at),
        )]
    )?;
    Ok(id)
}

fn seed_leads(conn: &mut DbConn, gen: &mut Gen, reps: &[String], n: usize) -> QueryResult<usize> {
    let mut rows = vec![];
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let (first, last) = (gen.pick(&FIRST), gen.pick(&LAST));
        // Area code 808 is not among the contacts', so leads' numbers are their own.
        let e164 = format!("+1808{}{:04}", 200 + (i / 10_000) % 800, i % 10_000);
        let status = gen.pick(&[
            "new",
            "new",
            "working",
            "nurturing",
            "qualified",
            "disqualified",
        ]);
        rows.push((
            (
                leads::id.eq(id),
                leads::first_name.eq(Some(first)),
                leads::last_name.eq(Some(last)),
                leads::company.eq(Some(format!("{last} {} {i}", gen.pick(&INDUSTRIES)))),
                leads::email.eq(Some(
                    format!("{first}.{last}{i}@lead{}.example", i % 991).to_lowercase(),
                )),
                leads::phone.eq(Some(e164.clone())),
                leads::phone_e164.eq(Some(e164)),
                leads::country.eq(Some(gen.pick(&COUNTRIES))),
                leads::industry.eq(Some(gen.pick(&INDUSTRIES))),
                leads::employee_count.eq(Some(gen.rng.random_range(1..20_000i64))),
                leads::source.eq(gen.pick(&SOURCES)),
            ),
            (
                leads::status.eq(status),
                leads::disqualified_reason.eq((status == "disqualified").then_some("no budget")),
                leads::score.eq(gen.rng.random_range(0..1000)),
                leads::owner_id.eq(reps.get(gen.skewed(reps.len(), 2)).cloned()),
                leads::version.eq(1),
                leads::created_at.eq(at.clone()),
                leads::updated_at.eq(at),
            ),
        ));
        if rows.len() >= CHUNK || i + 1 == n {
            insert_rows!(conn, leads::table, &rows)?;
            rows.clear();
        }
    }
    Ok(n)
}

/// `count` lines of random products at list price, some with a discount, all taxed 20%.
fn lines_of(gen: &mut Gen, catalogue: &[Product], count: usize) -> Vec<Line> {
    (0..count)
        .filter_map(|_| {
            let (id, sku, name, price) = catalogue.get(gen.skewed(catalogue.len(), 2))?.clone();
            let quantity = gen.rng.random_range(1..20i64);
            let gross = quantity * price;
            let percent = [0.0, 0.0, 5.0, 10.0]
                .get(gen.rng.random_range(0..4usize))
                .copied()
                .unwrap_or(0.0);
            let discount = (gross as f64 * percent / 100.0).round() as i64;
            let net = gross - discount;
            let tax = (net as f64 * 0.2).round() as i64;
            Some(Line {
                product_id: id,
                sku,
                name,
                quantity,
                unit_price: price,
                discount_percent: (percent > 0.0).then_some(percent),
                tax_rate: 20.0,
                gross,
                discount,
                net,
                tax,
                total: net + tax,
            })
        })
        .collect()
}

/// A won deal: its account and lines, which its order repeats.
type Won = (String, String, Vec<Line>, String);

fn day(base: NaiveDate, days: i64) -> String {
    (base + Duration::days(days)).format("%Y-%m-%d").to_string()
}

fn seed_opportunities(
    conn: &mut DbConn,
    gen: &mut Gen,
    (reps, accounts): (&[String], &[String]),
    catalogue: &[Product],
    pipeline: &str,
    n: usize,
) -> QueryResult<Vec<Won>> {
    let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let (mut rows, mut steps, mut won) = (vec![], vec![], vec![]);
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let roll = gen.rng.random_range(0..100u32);
        let mut acc = 0;
        let &(stage, _, category, _) = STAGES
            .iter()
            .find(|s| {
                acc += s.3;
                roll < acc
            })
            .unwrap_or(&STAGES[0]);
        let status = match category {
            "closed_won" => "won",
            "closed_lost" => "lost",
            _ => "open",
        };
        let closed = status != "open";
        let count = if status == "won" {
            5
        } else {
            gen.rng.random_range(1..=5)
        };
        let lines = lines_of(gen, catalogue, count);
        let amount: i64 = lines.iter().map(|l| l.net).sum();
        let account = accounts
            .get(gen.skewed(accounts.len(), 3))
            .cloned()
            .unwrap_or_default();
        let close_date = day(base, gen.rng.random_range(0..540));
        let (step_id, _) = gen.id_and_time();
        steps.push((
            history::id.eq(step_id),
            history::opportunity_id.eq(id.clone()),
            history::from_stage.eq(None::<String>),
            history::to_stage.eq(if closed { "qualify" } else { stage }),
            history::entered_at.eq(at.clone()),
            history::seconds_in_from_stage.eq(None::<i64>),
        ));
        if closed {
            let (step_id, _) = gen.id_and_time();
            steps.push((
                history::id.eq(step_id),
                history::opportunity_id.eq(id.clone()),
                history::from_stage.eq(Some("qualify".to_string())),
                history::to_stage.eq(stage),
                history::entered_at.eq(at.clone()),
                history::seconds_in_from_stage.eq(Some(gen.rng.random_range(1..90i64) * 86_400)),
            ));
        }
        if status == "won" {
            won.push((
                id.clone(),
                account.clone(),
                lines.clone(),
                close_date.clone(),
            ));
        }
        rows.push((
            (
                opportunities::id.eq(id),
                opportunities::name.eq(format!("{} deal {i}", gen.pick(&FAMILIES))),
                opportunities::account_id.eq(account),
                opportunities::pipeline_id.eq(pipeline),
                opportunities::stage.eq(stage),
                opportunities::stage_entered_at.eq(at.clone()),
                opportunities::status.eq(status),
                opportunities::amount.eq(amount),
                opportunities::currency.eq("USD"),
                opportunities::close_date.eq(Some(close_date)),
                opportunities::owner_id.eq(reps.get(gen.skewed(reps.len(), 2)).cloned()),
            ),
            (
                opportunities::competitors.eq("[]"),
                opportunities::team.eq("[]"),
                opportunities::closed_at.eq(closed.then(|| at.clone())),
                opportunities::close_reason.eq(closed.then_some("seeded")),
                opportunities::lines.eq(serde_json::to_string(&lines).unwrap_or_default()),
                opportunities::version.eq(1),
                opportunities::created_at.eq(at.clone()),
                opportunities::updated_at.eq(at),
            ),
        ));
        if rows.len() >= CHUNK || i + 1 == n {
            conn.transaction(|c| {
                insert_rows!(c, opportunities::table, &rows)?;
                for batch in steps.chunks(CHUNK) {
                    insert_rows!(c, history::table, batch)?;
                }
                QueryResult::Ok(())
            })?;
            rows.clear();
            steps.clear();
        }
    }
    Ok(won)
}

/// `n` orders of five lines: first one per won deal, then ERP orders of random accounts.
fn seed_orders(
    conn: &mut DbConn,
    gen: &mut Gen,
    accounts: &[String],
    catalogue: &[Product],
    won: Vec<Won>,
    n: usize,
) -> QueryResult<(usize, usize)> {
    let base = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let mut won = won.into_iter();
    let (mut rows, mut line_rows, mut written) = (vec![], vec![], 0);
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let (opportunity, account, lines, ordered_on) = match won.next() {
            Some((opp, account, lines, close)) => (Some(opp), account, lines, close),
            None => (
                None,
                accounts
                    .get(gen.skewed(accounts.len(), 3))
                    .cloned()
                    .unwrap_or_default(),
                lines_of(gen, catalogue, 5),
                day(base, gen.rng.random_range(0..700)),
            ),
        };
        let sum = |f: fn(&Line) -> i64| lines.iter().map(f).sum::<i64>();
        for (no, l) in (0..).zip(&lines) {
            line_rows.push((
                order_lines::order_id.eq(id.clone()),
                order_lines::line_no.eq(no),
                order_lines::account_id.eq(account.clone()),
                order_lines::product_id.eq(l.product_id.clone()),
                order_lines::quantity.eq(l.quantity),
                order_lines::net.eq(l.net),
                order_lines::currency.eq("USD"),
                order_lines::ordered_on.eq(ordered_on.clone()),
            ));
        }
        written += lines.len();
        let external = opportunity.is_none().then(|| format!("SO-{i}"));
        rows.push((
            (
                orders::id.eq(id),
                orders::account_id.eq(account),
                orders::opportunity_id.eq(opportunity),
                orders::currency.eq("USD"),
                orders::ordered_on.eq(ordered_on),
                orders::status.eq(gen.pick(&["fulfilled", "fulfilled", "fulfilled", "open"])),
                orders::subtotal.eq(sum(|l| l.gross)),
                orders::discount_total.eq(sum(|l| l.discount)),
                orders::tax_total.eq(sum(|l| l.tax)),
                orders::total.eq(sum(|l| l.total)),
                orders::lines.eq(serde_json::to_string(&lines).unwrap_or_default()),
            ),
            (
                orders::external_source.eq(external.as_ref().map(|_| "erp")),
                orders::external_id.eq(external),
                orders::version.eq(1),
                orders::created_at.eq(at.clone()),
                orders::updated_at.eq(at),
            ),
        ));
        if rows.len() >= CHUNK || i + 1 == n {
            conn.transaction(|c| {
                insert_rows!(c, orders::table, &rows)?;
                for batch in line_rows.chunks(CHUNK) {
                    insert_rows!(c, order_lines::table, batch)?;
                }
                QueryResult::Ok(())
            })?;
            rows.clear();
            line_rows.clear();
            if (i + 1) % 100_000 == 0 {
                eprintln!("  {} orders", i + 1);
            }
        }
    }
    Ok((n, written))
}
