//! A list page costs a constant number of database statements, never one per row. The
//! server counts the statements each request runs (`crm_db_queries_total` by route, on
//! `/metrics`), so these tests read what a page really cost.

use crm_core::jobs::JobRegistry;
use crm_tests::TestApp;
use serde_json::{json, Value};

/// Statements run so far for `GET <route>`.
fn queries_so_far(app: &TestApp, route: &str) -> u64 {
    let metrics = app.send("GET", "/metrics", None, &[], None);
    let label = format!("route=\"{route}\"");
    metrics
        .text
        .lines()
        .filter(|l| l.starts_with("crm_db_queries_total{") && l.contains("method=\"GET\""))
        .filter(|l| l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// What one page of `limit` rows costs, and how many rows it had.
fn page_cost(app: &TestApp, route: &str, limit: usize) -> (u64, usize) {
    let before = queries_so_far(app, route);
    let page = app.get(&format!("{route}?limit={limit}"), &app.admin_token);
    assert_eq!(page.status, 200, "{}", page.text);
    let rows = page.json()["data"].as_array().map_or(0, Vec::len);
    (queries_so_far(app, route) - before, rows)
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn every_list_page_costs_the_same_number_of_queries_for_5_rows_as_for_40() {
    // No job workers: only requests touch the database.
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let t = &app.admin_token;
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let component = app
        .post(
            "/api/v1/products",
            t,
            &json!({"sku": "PART", "name": "Part"}),
        )
        .json();
    for n in 1..40 {
        app.post(
            "/api/v1/accounts",
            t,
            &json!({"name": format!("Account {n}")}),
        );
    }
    for n in 0..40 {
        let contact = app
            .post(
                "/api/v1/contacts",
                t,
                &json!({"first_name": format!("Person {n}"),
                    "emails": [{"email": format!("p{n}@example.org")}, {"email": format!("p{n}@work.example")}],
                    "phones": [{"number": format!("+1 415 555 {:04}", 1000 + n)}],
                    "accounts": [{"account_id": id(&acme), "role": "buyer"}],
                    "consents": {"email": {"status": "granted", "source": "web_form"}}}),
            )
            .json();
        app.post(
            "/api/v1/activities",
            t,
            &json!({"kind": "call", "subject": format!("Call {n}"),
                "links": [{"entity_type": "contact", "entity_id": id(&contact)}]}),
        );
        let household = app
            .post(
                "/api/v1/households",
                t,
                &json!({"name": format!("Home {n}")}),
            )
            .json();
        app.patch(
            &format!("/api/v1/contacts/{}", id(&contact)),
            t,
            &json!({"household_id": id(&household)}),
        );
        app.post(
            "/api/v1/products",
            t,
            &json!({"sku": format!("KIT-{n}"), "name": "Kit",
                "components": [{"product_id": id(&component), "quantity": 2}]}),
        );
        app.post(
            "/api/v1/price-books",
            t,
            &json!({"name": format!("Book {n}"),
                "prices": [{"product_id": id(&component), "currency": "EUR", "unit_price": 100}]}),
        );
    }
    let pipeline = app.simple_pipeline();
    let me = app.get("/api/v1/users/me", t).json();
    for n in 0..40 {
        app.post(
            "/api/v1/leads",
            t,
            &json!({"last_name": format!("Lead {n}"), "email": format!("l{n}@example.org")}),
        );
        app.post(
            "/api/v1/opportunities",
            t,
            &json!({"name": format!("Deal {n}"), "account_id": id(&acme), "pipeline_id": pipeline,
                "currency": "EUR", "team": [{"user_id": me["id"], "role": "owner", "split_percent": 100}]}),
        );
    }
    for route in [
        "/api/v1/leads",
        "/api/v1/opportunities",
        "/api/v1/contacts",
        "/api/v1/accounts",
        "/api/v1/activities",
        "/api/v1/households",
        "/api/v1/products",
        "/api/v1/price-books",
    ] {
        let (small, five) = page_cost(&app, route, 5);
        let (large, forty) = page_cost(&app, route, 40);
        assert_eq!((five, forty), (5, 40), "{route} has the rows");
        assert_eq!(
            small, large,
            "{route}: 5 rows cost {small} queries, 40 cost {large}"
        );
        assert!(large <= 10, "{route}: a page costs {large} queries");
    }
}
