//! Upsell and cross-sell recommendations with their evidence, hand-computed.

use crm_tests::TestApp;
use serde_json::{json, Value};

#[track_caller]
fn created(app: &TestApp, path: &str, body: Value) -> String {
    let res = app.post(path, &app.admin_token, &body);
    assert_eq!(res.status, 201, "{path}: {}", res.text);
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn products_bought_with_what_the_account_has_come_with_support_confidence_and_lift() {
    let app = TestApp::start();
    let product = |sku: &str| created(&app, "/api/v1/products", json!({"sku": sku, "name": sku}));
    let (p, q, r, s) = (
        product("CRM"),
        product("SUPPORT"),
        product("TRAINING"),
        product("OTHER"),
    );
    let buyer = |name: &str, bought: &[&String]| {
        let account = created(&app, "/api/v1/accounts", json!({"name": name}));
        let lines: Vec<Value> = bought
            .iter()
            .map(|id| json!({"product_id": id, "quantity": 1, "unit_price": 100}))
            .collect();
        created(
            &app,
            "/api/v1/orders",
            json!({"account_id": account, "currency": "EUR",
            "ordered_on": "2026-11-02", "lines": lines}),
        );
        account
    };
    let target = buyer("Target", &[&p]);
    buyer("A1", &[&p, &q]);
    buyer("A2", &[&p, &q, &r]);
    buyer("A3", &[&p, &q]);
    buyer("A4", &[&s, &q]);
    let none = created(&app, "/api/v1/accounts", json!({"name": "No orders"}));

    let res = app.get(
        &format!("/api/v1/accounts/{target}/recommendations"),
        &app.admin_token,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["accounts_considered"], 5);
    assert_eq!(body["owned_product_ids"], json!([p]));
    // Only SUPPORT has two accounts buying it with CRM: 3 of the 4 CRM buyers (0.75), 3 of
    // 5 accounts (0.6), and SUPPORT is bought by 4 of 5: lift 0.75 / 0.8.
    let recs = body["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(recs.len(), 1, "{body}");
    assert_eq!(recs[0]["sku"], "SUPPORT");
    let rule = &recs[0]["rules"][0];
    assert_eq!(rule["antecedent_product_id"], p.as_str());
    assert_eq!(
        (
            rule["accounts_with_both"].as_u64(),
            rule["accounts_with_antecedent"].as_u64()
        ),
        (Some(3), Some(4))
    );
    assert_eq!(
        (
            rule["support"].as_f64(),
            rule["confidence"].as_f64(),
            rule["lift"].as_f64()
        ),
        (Some(0.6), Some(0.75), Some(0.9375))
    );

    // One account is enough evidence when asked: TRAINING joins, ranked below.
    let loose = app
        .get(
            &format!("/api/v1/accounts/{target}/recommendations?min_accounts=1"),
            &app.admin_token,
        )
        .json();
    let skus: Vec<&str> = loose["recommendations"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["sku"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(skus, vec!["SUPPORT", "TRAINING"], "{loose}");
    assert_eq!(loose["recommendations"][1]["rules"][0]["lift"], 1.25);

    let empty = app
        .get(
            &format!("/api/v1/accounts/{none}/recommendations"),
            &app.admin_token,
        )
        .json();
    assert_eq!(empty["recommendations"], json!([]));
    app.get(
        "/api/v1/accounts/01890000-0000-7000-8000-000000000000/recommendations",
        &app.admin_token,
    )
    .problem(404);
}
