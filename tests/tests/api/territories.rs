//! Territories: accounts land in the deepest matching territory, move when they change,
//! keep their history, realign on demand; leads go to their territory's owner.

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

fn territory_of(app: &TestApp, account: &str) -> Value {
    let res = app.get(
        &format!("/api/v1/accounts/{account}/territory"),
        &app.admin_token,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()
}

#[test]
fn accounts_land_in_the_deepest_matching_territory_and_move_when_they_change() {
    let app = TestApp::start();
    let (emea_owner, _) = app.user("sales_rep");
    let (uk_owner, _) = app.user("sales_rep");
    let emea = created(
        &app,
        "/api/v1/territories",
        json!({"name": "EMEA", "owner_id": emea_owner,
        "rules": {"countries": ["GB", "DE", "FR"]}}),
    );
    let london = created(
        &app,
        "/api/v1/territories",
        json!({"name": "London enterprise", "parent_id": emea,
        "owner_id": uk_owner, "member_ids": [uk_owner],
        "rules": {"countries": ["GB"], "postcode_from": "E1", "postcode_to": "N9", "min_employees": 500}}),
    );
    // A child's rules only count with its parent's: a US account can't fall in "Anywhere big".
    created(
        &app,
        "/api/v1/territories",
        json!({"name": "Anywhere big", "parent_id": emea, "position": 200,
        "rules": {"min_employees": 10000}}),
    );

    let big = created(
        &app,
        "/api/v1/accounts",
        json!({"name": "Big London", "employee_count": 800,
        "billing_address": {"postal_code": "ec2a 4ny", "country": "GB"}}),
    );
    assert_eq!(territory_of(&app, &big)["territory"]["id"], london.as_str());
    let small = created(
        &app,
        "/api/v1/accounts",
        json!({"name": "Small London", "employee_count": 20,
        "billing_address": {"postal_code": "EC2A 4NY", "country": "GB"}}),
    );
    assert_eq!(territory_of(&app, &small)["territory"]["id"], emea.as_str());
    let us = created(
        &app,
        "/api/v1/accounts",
        json!({"name": "Boston", "employee_count": 50000,
        "billing_address": {"country": "US"}}),
    );
    assert!(territory_of(&app, &us)["territory"].is_null());

    // The small account grows: it moves, and its history says from where and why.
    let res = app.patch(
        &format!("/api/v1/accounts/{small}"),
        &app.admin_token,
        &json!({"employee_count": 900}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let t = territory_of(&app, &small);
    assert_eq!(t["territory"]["id"], london.as_str());
    let h = &t["history"];
    assert_eq!(h.as_array().map(Vec::len), Some(2), "{t}");
    assert_eq!(h[0]["previous_territory_id"], emea.as_str());
    assert_eq!(h[0]["reason"], "account_changed");
    assert_eq!(h[1]["reason"], "account_created");
    let timeline = app
        .get(
            &format!("/api/v1/accounts/{small}/timeline?kind=account.territory_changed"),
            &app.admin_token,
        )
        .json();
    assert_eq!(
        timeline["data"].as_array().map(Vec::len),
        Some(2),
        "{timeline}"
    );

    // New rules apply to existing accounts on realignment.
    let americas = created(
        &app,
        "/api/v1/territories",
        json!({"name": "Americas", "rules": {"countries": ["US", "CA"]}}),
    );
    assert!(territory_of(&app, &us)["territory"].is_null());
    let run = app.post("/api/v1/territories/realign", &app.admin_token, &json!({}));
    assert_eq!(run.status, 202, "{}", run.text);
    let job = run.json()["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let start = std::time::Instant::now();
    while app
        .get(&format!("/api/v1/jobs/{job}"), &app.admin_token)
        .json()["status"]
        != "succeeded"
    {
        assert!(start.elapsed().as_secs() < 30, "realignment did not finish");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let t = territory_of(&app, &us);
    assert_eq!(t["territory"]["id"], americas.as_str());
    assert_eq!(t["history"][0]["reason"], "realign");
    // Nobody else moved.
    assert_eq!(
        territory_of(&app, &big)["history"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_territory_owner_rule_gives_leads_to_their_territorys_owner() {
    let app = TestApp::start();
    let (de_owner, _) = app.user("sales_rep");
    created(
        &app,
        "/api/v1/territories",
        json!({"name": "DACH", "owner_id": de_owner,
        "rules": {"countries": ["DE", "AT", "CH"]}}),
    );
    created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "By territory", "assign_to": "territory_owner"}),
    );
    let lead = app
        .post(
            "/api/v1/leads",
            &app.admin_token,
            &json!({"company": "Wien AG", "country": "AT"}),
        )
        .json();
    assert_eq!(lead["owner_id"], de_owner.as_str(), "{lead}");
    // No territory matches: the rule passes, and the creator keeps the lead.
    let other = app
        .post(
            "/api/v1/leads",
            &app.admin_token,
            &json!({"company": "Lyon SA", "country": "FR"}),
        )
        .json();
    assert!(other["assignment"].is_null(), "{other}");
}

#[test]
fn bad_territories_are_refused_naming_the_field() {
    let app = TestApp::start();
    let nobody = "01890000-0000-7000-8000-000000000000";
    let post = |body: Value| app.post("/api/v1/territories", &app.admin_token, &body);
    let field = |p: Value| {
        p["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        field(post(json!({"name": "x", "parent_id": nobody})).problem(422)),
        "parent_id"
    );
    assert_eq!(
        field(post(json!({"name": "x", "owner_id": nobody})).problem(422)),
        "owner_id"
    );
    assert_eq!(
        field(post(json!({"name": "x", "member_ids": [nobody]})).problem(422)),
        "member_ids[0]"
    );
    assert_eq!(
        field(post(json!({"name": "x", "rules": {"countries": ["gb"]}})).problem(422)),
        "rules.countries[0]"
    );
    assert_eq!(
        field(
            post(json!({"name": "x", "rules": {"min_employees": 10, "max_employees": 5}}))
                .problem(422)
        ),
        "rules.max_employees"
    );
    let root = created(&app, "/api/v1/territories", json!({"name": "Root"}));
    let child = created(
        &app,
        "/api/v1/territories",
        json!({"name": "Child", "parent_id": root}),
    );
    let cycle = app.patch(
        &format!("/api/v1/territories/{root}"),
        &app.admin_token,
        &json!({"parent_id": child}),
    );
    assert_eq!(field(cycle.problem(422)), "parent_id");
    let (_, rep) = app.user("sales_rep");
    app.post("/api/v1/territories", &rep, &json!({"name": "Mine"}))
        .problem(403);
    assert_eq!(app.get("/api/v1/territories", &rep).status, 200);
}
