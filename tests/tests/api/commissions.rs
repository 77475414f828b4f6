//! Quotas, commission plans and statements, with hand-computed figures: tiers by
//! attainment, a product family's own rate, splits, the accelerator above quota, and what
//! an open deal would add.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[track_caller]
fn created(app: &TestApp, path: &str, body: Value) -> String {
    let res = app.post(path, &app.admin_token, &body);
    assert_eq!(res.status, 201, "{path}: {}", res.text);
    id(&res.json())
}

struct Fixture {
    app: TestApp,
    a: String,
    a_token: String,
    b: String,
    b_token: String,
    account: String,
    pipeline: String,
}

fn fixture() -> Fixture {
    let app = TestApp::start();
    let (a, a_token) = app.user("sales_rep");
    let (b, b_token) = app.user("sales_rep");
    let account = created(&app, "/api/v1/accounts", json!({"name": "Acme"}));
    let pipeline = app.simple_pipeline();
    Fixture {
        app,
        a,
        a_token,
        b,
        b_token,
        account,
        pipeline,
    }
}

impl Fixture {
    fn deal(&self, team: Value, amount: i64, close: &str) -> String {
        created(
            &self.app,
            "/api/v1/opportunities",
            json!({"name": "Deal", "account_id": self.account,
            "pipeline_id": self.pipeline, "currency": "USD", "owner_id": self.a, "team": team,
            "amount": amount, "close_date": close}),
        )
    }

    fn win(&self, deal: &str) {
        let res = self.app.post(
            &format!("/api/v1/opportunities/{deal}/stage"),
            &self.app.admin_token,
            &json!({"stage": "won"}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
    }

    fn order(&self, deal: &str, on: &str, lines: Value) {
        created(
            &self.app,
            "/api/v1/orders",
            json!({"account_id": self.account, "opportunity_id": deal,
            "currency": "USD", "ordered_on": on, "lines": lines}),
        );
    }
}

#[test]
fn a_statement_pays_tiers_family_rates_and_splits_line_by_line_and_a_preview_the_accelerator() {
    let f = fixture();
    let app = &f.app;
    let licence = created(
        app,
        "/api/v1/products",
        json!({"sku": "LIC", "name": "Licence", "family": "licenses"}),
    );
    let service = created(
        app,
        "/api/v1/products",
        json!({"sku": "SVC", "name": "Onboarding", "family": "services"}),
    );
    created(
        app,
        "/api/v1/commission-plans",
        json!({"name": "AE 2027", "user_ids": [f.a, f.b],
        "tiers": [{"from_percent": 0, "rate_percent": 5}, {"from_percent": 50, "rate_percent": 8}],
        "family_rates": [{"family": "services", "rate_percent": 2}],
        "accelerator": {"above_percent": 100, "multiplier_percent": 150}}),
    );
    created(
        app,
        "/api/v1/quotas",
        json!({"user_id": f.a, "period": "2027-Q1", "currency": "USD", "amount": 1_000_000}),
    );

    // Deal 1, split 60/40: 2 licences (600,000 net) and onboarding (100,000).
    let d1 = f.deal(
        json!([{"user_id": f.a, "role": "owner", "split_percent": 60},
        {"user_id": f.b, "role": "engineer", "split_percent": 40}]),
        700_000,
        "2027-01-10",
    );
    f.win(&d1);
    f.order(
        &d1,
        "2027-01-10",
        json!([{"product_id": licence, "quantity": 2, "unit_price": 300_000, "tax_rate": 20},
        {"product_id": service, "quantity": 1, "unit_price": 100_000}]),
    );
    // Deal 2, A alone: 2 licences at 10% off = 540,000 net.
    let d2 = f.deal(json!([]), 540_000, "2027-02-20");
    f.win(&d2);
    f.order(&d2, "2027-02-20", json!([{"product_id": licence, "quantity": 2, "unit_price": 300_000, "discount_percent": 10}]));
    // An order of a deal still open earns nothing yet; nor does one outside the quarter.
    let open = f.deal(json!([]), 999_999, "2027-03-01");
    f.order(
        &open,
        "2027-03-01",
        json!([{"product_id": licence, "quantity": 1, "unit_price": 999_999}]),
    );
    f.order(
        &d2,
        "2027-04-02",
        json!([{"product_id": licence, "quantity": 1, "unit_price": 300_000}]),
    );

    let res = app.get("/api/v1/commissions?period=2027-Q1", &f.a_token);
    assert_eq!(res.status, 200, "{}", res.text);
    let s = res.json();
    // 360,000 at 5% = 18,000; 60,000 of services at 2% = 1,200; then 540,000 from
    // 420,000 to 960,000: 80,000 at 5% (4,000) and 460,000 at 8% (36,800).
    let paid: Vec<i64> = s["lines"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| x["commission"].as_i64().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(paid, vec![18_000, 1_200, 40_800], "{s}");
    assert_eq!(s["total_commission"], 60_000);
    assert_eq!(s["credited_revenue"], 960_000);
    assert_eq!(s["attainment_percent"], 96.0);
    assert_eq!(s["lines"][2]["portions"].as_array().map(Vec::len), Some(2));
    assert_eq!(s["lines"][1]["portions"][0]["source"], "family");
    assert!(s["method"].as_str().is_some_and(|m| m.contains("split")));

    // B has no quota: the first tier's rate, and the currency must be named.
    app.get(
        &format!("/api/v1/commissions?period=2027-Q1&user_id={}", f.b),
        &app.admin_token,
    )
    .problem(400);
    let b = app
        .get(
            &format!(
                "/api/v1/commissions?period=2027-Q1&user_id={}&currency=USD",
                f.b
            ),
            &app.admin_token,
        )
        .json();
    assert_eq!(b["total_commission"], 12_000 + 800, "{b}");
    // Reps see only their own statement; a period that isn't one is a 400.
    app.get(
        &format!("/api/v1/commissions?period=2027-Q1&user_id={}", f.a),
        &f.b_token,
    )
    .problem(403);
    app.get("/api/v1/commissions?period=2027-Q5", &f.a_token)
        .problem(400);

    // An open deal of 200,000 closing in March takes A from 96% to 116%: 40,000 at 8%
    // (3,200) and 160,000 above quota at 8% × 1.5 (19,200).
    let next = f.deal(json!([]), 200_000, "2027-03-15");
    let p = app
        .get(
            &format!("/api/v1/opportunities/{next}/commission-preview"),
            &f.a_token,
        )
        .json();
    assert_eq!(p["period"], "2027-Q1", "{p}");
    assert_eq!(p["earners"][0]["commission"], 22_400, "{p}");
    assert_eq!(p["earners"][0]["attainment_before_percent"], 96.0);
    assert_eq!(p["earners"][0]["attainment_after_percent"], 116.0);
    app.get(
        &format!("/api/v1/opportunities/{d1}/commission-preview"),
        &f.a_token,
    )
    .problem(409);
}

#[test]
fn quotas_and_plans_refuse_what_would_make_statements_ambiguous() {
    let f = fixture();
    let app = &f.app;
    let quota = json!({"user_id": f.a, "period": "2027-Q1", "currency": "USD", "amount": 500});
    created(app, "/api/v1/quotas", quota.clone());
    app.post("/api/v1/quotas", &app.admin_token, &quota)
        .problem(409);
    let bad = app
        .post(
            "/api/v1/quotas",
            &app.admin_token,
            &json!({"user_id": f.a, "period": "2027-Q5", "currency": "usd", "amount": 1}),
        )
        .problem(422);
    assert_eq!(bad["errors"].as_array().map(Vec::len), Some(2), "{bad}");
    app.post(
        "/api/v1/quotas",
        &f.a_token,
        &json!({"user_id": f.a, "period": "2027", "currency": "USD", "amount": 1}),
    )
    .problem(403);

    let plan = |users: Value, tiers: Value| {
        app.post(
            "/api/v1/commission-plans",
            &app.admin_token,
            &json!({"name": "P", "user_ids": users, "tiers": tiers}),
        )
    };
    let t = json!([{"from_percent": 0, "rate_percent": 5}]);
    assert_eq!(plan(json!([f.a]), t.clone()).status, 201);
    let taken = plan(json!([f.b, f.a]), t.clone()).problem(422);
    assert_eq!(taken["errors"][0]["field"], "user_ids[1]");
    let p = plan(
        json!([f.b]),
        json!([{"from_percent": 10, "rate_percent": 5}, {"from_percent": 5, "rate_percent": 6}]),
    )
    .problem(422);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        vec!["tiers[0].from_percent", "tiers[1].from_percent"]
    );
    plan(
        json!([f.b]),
        json!([{"from_percent": 0, "rate_percent": 5.125}]),
    )
    .problem(422);
    plan(
        json!([f.b]),
        json!([{"from_percent": 0, "rate_percent": 101}]),
    )
    .problem(422);
    assert_eq!(app.count("commission_plans"), 1);
}

#[test]
fn the_forecast_projects_open_deals_from_stage_win_rates_and_cycle_lengths() {
    let f = fixture();
    let app = &f.app;
    // History: three deals passed through `open`; two were won, one lost.
    for (i, stage) in ["won", "won", "lost"].iter().enumerate() {
        let d = f.deal(json!([]), 1_000, "2025-06-01");
        let body = if *stage == "lost" {
            json!({"stage": "lost", "close_reason": "Price"})
        } else {
            json!({"stage": "won"})
        };
        let res = app.post(
            &format!("/api/v1/opportunities/{d}/stage"),
            &app.admin_token,
            &body,
        );
        assert_eq!(res.status, 200, "deal {i}: {}", res.text);
    }
    let open = f.deal(json!([]), 300_000, "2030-06-01");
    let forecast = || {
        app.get(
            "/api/v1/forecasts?period=2030&group_by=owner",
            &app.admin_token,
        )
        .json()
    };
    let fc = forecast();
    let h = fc["stage_history"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["stage"] == "open").cloned())
        .unwrap_or_default();
    assert_eq!(
        (h["closed_deals"].as_i64(), h["won_deals"].as_i64()),
        (Some(3), Some(2)),
        "{fc}"
    );
    assert_eq!(h["win_rate"], 0.6667);
    // 300,000 × 2/3, and the deals closed within a day: no slip before 2030.
    assert_eq!(fc["rows"][0]["projected"], 200_000, "{fc}");
    assert!(fc["method"]
        .as_str()
        .is_some_and(|m| m.contains("win rate")));

    // Had won deals taken 3,000 days from entering `open`, this one would slip past 2030.
    app.execute(&format!(
        "UPDATE opportunity_stage_history SET entered_at = '2020-01-01T00:00:00.000000Z' WHERE opportunity_id <> '{open}'"
    ));
    let fc = forecast();
    assert_eq!(fc["rows"][0]["projected"], 0, "{fc}");
    assert_eq!(fc["rows"][0]["pipeline"], 300_000);
}

#[test]
fn a_statement_for_a_currency_that_is_no_iso_code_is_a_400() {
    let app = TestApp::start();
    let t = &app.admin_token;
    for bad in ["W", "eur", "EURO", "E1R"] {
        app.get(
            &format!("/api/v1/commissions?period=2027&currency={bad}"),
            t,
        )
        .problem(400);
    }
    let ok = app.get("/api/v1/commissions?period=2027&currency=EUR", t);
    assert_eq!(ok.status, 200, "{}", ok.text);
}
