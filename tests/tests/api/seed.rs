//! `crm seed`: the same seed gives the same data, and the data answers the API's lists,
//! searches and lookups like data people entered.

use crm_tests::TestApp;

fn seeded() -> TestApp {
    let app = TestApp::start();
    let done =
        crm_gateway::seed::seed(&app.state.pool, 0.0005, 7).unwrap_or_else(|e| panic!("seed: {e}"));
    assert_eq!(
        (done.accounts, done.contacts, done.activities),
        (50, 500, 1500)
    );
    let sales = &done.sales;
    assert_eq!(
        (
            sales.leads,
            sales.opportunities,
            sales.orders,
            sales.order_lines
        ),
        (100, 100, 100, 500)
    );
    assert_eq!(done.tickets, 250);
    let m = &done.marketing;
    assert_eq!((m.campaigns, m.members, m.consents), (20, 100, 250));
    // Each seeded click and response is one touchpoint.
    assert!(m.touchpoints > 0);
    assert_eq!(
        app.count("touchpoints") as usize,
        m.touchpoints,
        "touchpoints"
    );
    assert_eq!(
        app.count("campaign_members WHERE clicked_at IS NOT NULL")
            + app.count("campaign_members WHERE responded_at IS NOT NULL"),
        app.count("touchpoints")
    );
    app
}

#[test]
fn seeded_campaigns_answer_metrics_and_segments_count_the_seeded_consents() {
    let app = seeded();
    let preview = app.post(
        "/api/v1/segments/preview",
        &app.admin_token,
        &serde_json::json!({"criteria": {"field": "consent.email", "op": "eq", "value": "granted"}}),
    );
    assert_eq!(preview.status, 200, "{}", preview.text);
    let expected = app.count("contact_consents WHERE status = 'granted'");
    assert!(
        expected > 150,
        "most seeded consents are granted: {expected}"
    );
    assert_eq!(preview.json()["count"], expected);
    let campaigns = app
        .get("/api/v1/campaigns?limit=1", &app.admin_token)
        .json();
    let id = campaigns["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let m = app
        .get(&format!("/api/v1/campaigns/{id}/metrics"), &app.admin_token)
        .json();
    assert_eq!(m["members"], 5, "{m}");
    assert!(
        m["reached"].as_i64().unwrap_or(0) >= m["opened"].as_i64().unwrap_or(0),
        "{m}"
    );
}

#[test]
fn seeded_data_is_deterministic_and_behaves_like_real_data() {
    let (a, b) = (seeded(), seeded());
    let page = |app: &TestApp| {
        app.get("/api/v1/contacts?limit=20", &app.admin_token)
            .json()
    };
    let (first, second) = (page(&a), page(&b));
    assert_eq!(
        first["data"], second["data"],
        "same seed, same records and ids"
    );
    assert_eq!(a.count("contact_emails"), 500);

    let t = &a.admin_token;
    let contact = &first["data"][0];
    let e164 = contact["phones"][0]["e164"].as_str().unwrap_or_default();
    // Found by the phone as a person would type it, and by a word of the name.
    let written = format!("({}) {}-{}", &e164[2..5], &e164[5..8], &e164[8..]);
    let by_phone = a
        .get(
            &format!("/api/v1/contacts?phone={}", urlencode(&written)),
            t,
        )
        .json();
    assert_eq!(by_phone["data"][0]["id"], contact["id"], "{by_phone}");
    let name = contact["last_name"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let found = a
        .get(&format!("/api/v1/contacts?q={name}&limit=200"), t)
        .json();
    assert!(found["data"].as_array().is_some_and(|d| !d.is_empty()));
    // A few accounts hold many contacts (skewed like real books).
    let account = contact["accounts"][0]["account_id"]
        .as_str()
        .unwrap_or_default();
    let of_account = a
        .get(
            &format!("/api/v1/contacts?account_id={account}&limit=200"),
            t,
        )
        .json();
    assert!(of_account["data"].as_array().is_some_and(|d| !d.is_empty()));
    let timeline = a.get(
        &format!(
            "/api/v1/contacts/{}/timeline",
            contact["id"].as_str().unwrap_or("")
        ),
        t,
    );
    assert_eq!(timeline.status, 200, "{}", timeline.text);
}

#[test]
fn seeded_sales_data_answers_the_sales_questions() {
    let app = seeded();
    let t = &app.admin_token;
    assert_eq!(app.count("order_lines"), 500);
    let new = app.get("/api/v1/leads?status=new&limit=200", t).json();
    let leads = new["data"].as_array().cloned().unwrap_or_default();
    assert!(!leads.is_empty() && leads.iter().all(|l| l["status"] == "new"));
    let pipeline = app.get("/api/v1/pipelines", t).json();
    let pipeline = pipeline["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let column = app
        .get(
            &format!(
                "/api/v1/opportunities?pipeline_id={pipeline}&stage=propose&sort=-amount&limit=200"
            ),
            t,
        )
        .json();
    let amounts: Vec<i64> = column["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let lines: i64 = o["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["net"].as_i64())
                .sum();
            assert_eq!(
                o["amount"].as_i64(),
                Some(lines),
                "a deal is worth its lines"
            );
            lines
        })
        .collect();
    assert!(
        !amounts.is_empty() && amounts.windows(2).all(|w| w[0] >= w[1]),
        "{amounts:?}"
    );
    let forecast = app.get("/api/v1/forecasts?period=2026-Q4&group_by=owner", t);
    assert_eq!(forecast.status, 200, "{}", forecast.text);
    // The busiest account has orders and gets recommendations from the others' baskets.
    let orders = app.get("/api/v1/orders?limit=1", t).json();
    let account = orders["data"][0]["account_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let recs = app
        .get(
            &format!("/api/v1/accounts/{account}/recommendations?min_accounts=1"),
            t,
        )
        .json();
    assert!(
        recs["accounts_considered"].as_i64().is_some_and(|n| n > 1),
        "{recs}"
    );
    assert!(
        recs["owned_product_ids"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{recs}"
    );
}

#[test]
fn seeded_tickets_fill_a_queue_agents_pull_from() {
    let app = seeded();
    let t = &app.admin_token;
    let queue = app.get("/api/v1/queues", t).json();
    let q = &queue["data"][0];
    let agent = q["members"][0]["user_id"].as_str().unwrap_or_default();
    let open = app
        .get(
            &format!("/api/v1/tickets?assignee_id={agent}&unsolved=true&limit=200"),
            t,
        )
        .json();
    let rows = open["data"].as_array().cloned().unwrap_or_default();
    assert!(
        !rows.is_empty()
            && rows.iter().all(|r| r["assignee_id"] == agent
                && r["status"] != "solved"
                && r["status"] != "closed")
    );
    // The next number continues after the seeded ones.
    let made = app.post(
        "/api/v1/tickets",
        t,
        &serde_json::json!({"subject": "After the seed"}),
    );
    assert_eq!(made.json()["number"], 1251);
    // A seeded contact's number finds them with their tickets.
    let contact = app.get("/api/v1/contacts?limit=1", t).json();
    let e164 = contact["data"][0]["phones"][0]["e164"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let found = app.get(
        &format!("/api/v1/caller-lookup?phone={}", urlencode(&e164)),
        t,
    );
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json()["contacts"][0]["id"], contact["data"][0]["id"]);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
