//! Lead assignment rules: ordered, first match wins, round-robin in turn, recorded on the
//! lead, applied on create (API, batch, import) and on demand; bad rules are 422s.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[track_caller]
fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let res = app.post(path, &app.admin_token, &body);
    assert_eq!(res.status, 201, "{path}: {}", res.text);
    res.json()
}

/// A team with `n` active reps, in the order they joined.
fn team_of(app: &TestApp, name: &str, n: usize) -> (String, Vec<String>) {
    let team = id(&created(app, "/api/v1/teams", json!({"name": name})));
    let reps = (0..n)
        .map(|_| {
            let (rep, _) = app.user("sales_rep");
            let res = app.patch(
                &format!("/api/v1/users/{rep}"),
                &app.admin_token,
                &json!({"team_id": team}),
            );
            assert_eq!(res.status, 200, "{}", res.text);
            rep
        })
        .collect();
    (team, reps)
}

#[test]
fn the_first_matching_rule_assigns_round_robin_in_turn_and_is_recorded_on_the_lead() {
    let app = TestApp::start();
    let (team, reps) = team_of(&app, "Inbound", 3);
    let (dach_rep, _) = app.user("sales_rep");
    // Listed out of order on purpose: position decides, not creation.
    let rr = created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "Everyone else", "position": 100, "assign_to": "team_round_robin", "team_id": team}),
    );
    let dach = created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "DACH mid-market", "position": 10, "assign_to": "user", "user_id": dach_rep,
        "conditions": [
            {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]},
            {"field": "employee_count", "op": "gte", "value": 50},
        ]}),
    );
    let lead = |body: Value| created(&app, "/api/v1/leads", body);

    let big_de = lead(json!({"company": "Müller GmbH", "country": "DE", "employee_count": 400}));
    assert_eq!(big_de["owner_id"], dach_rep.as_str());
    assert_eq!(big_de["assignment"]["rule_id"], id(&dach).as_str());

    // A small German company fails the second condition: the next rule takes it.
    let owners: Vec<String> = [
        json!({"company": "Klein", "country": "DE", "employee_count": 5}),
        json!({"company": "A", "country": "FR"}),
        json!({"company": "B"}),
        json!({"company": "C", "country": "US"}),
    ]
    .into_iter()
    .map(|b| {
        let l = lead(b);
        assert_eq!(l["assignment"]["rule_id"], id(&rr).as_str());
        l["owner_id"].as_str().unwrap_or_default().to_string()
    })
    .collect();
    assert_eq!(
        owners,
        vec![
            reps[0].clone(),
            reps[1].clone(),
            reps[2].clone(),
            reps[0].clone()
        ]
    );

    // An owner given explicitly is kept: rules are for leads nobody claimed.
    let mine = lead(json!({"company": "Mine", "owner_id": dach_rep, "country": "FR"}));
    assert_eq!(mine["owner_id"], dach_rep.as_str());
    assert!(mine["assignment"].is_null());

    // Batch and import are creates too: the round-robin goes on from where it was.
    let batch = app.post(
        "/api/v1/leads/batch",
        &app.admin_token,
        &json!({"items": [{"op": "create", "body": {"company": "D"}}]}),
    );
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(
        batch.json()["results"][0]["record"]["owner_id"],
        reps[1].as_str(),
        "{}",
        batch.text
    );
    let import = app.upload(
        "/api/v1/imports?object=leads",
        "text/csv",
        b"company,country,employee_count\nE,CH,60\nF,GB,60\n",
    );
    assert_eq!(import.status, 202, "{}", import.text);
    let import_id = id(&import.json());
    let start = std::time::Instant::now();
    while app
        .get(&format!("/api/v1/imports/{import_id}"), &app.admin_token)
        .json()["status"]
        != "succeeded"
    {
        assert!(start.elapsed().as_secs() < 30, "import did not finish");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let owner_of = |company: &str| {
        app.get("/api/v1/leads?limit=100", &app.admin_token).json()["data"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["company"] == company).cloned())
            .map(|l| l["owner_id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(owner_of("E"), dach_rep);
    assert_eq!(owner_of("F"), reps[2]);

    // The audit trail says which rule decided.
    let audit = app
        .get(
            &format!("/api/v1/audit-log?entity_id={}", id(&big_de)),
            &app.admin_token,
        )
        .json();
    assert_eq!(
        audit["data"][0]["changes"]["assignment"]["rule_id"],
        id(&dach).as_str(),
        "{audit}"
    );
    let counted = app
        .get(
            &format!("/api/v1/lead-assignment-rules/{}", id(&rr)),
            &app.admin_token,
        )
        .json();
    assert_eq!(counted["assigned_count"], 6);
}

#[test]
fn assigning_on_demand_reruns_the_rules_and_a_lead_no_rule_matches_is_a_422() {
    let app = TestApp::start();
    let (rep, rep_token) = app.user("sales_rep");
    let lead = created(
        &app,
        "/api/v1/leads",
        json!({"company": "Later", "country": "NL"}),
    );
    assert!(
        lead["assignment"].is_null(),
        "no rule yet: the creator keeps it"
    );
    let path = format!("/api/v1/leads/{}/assign", id(&lead));
    let none = app.post(&path, &app.admin_token, &json!({})).problem(422);
    assert_eq!(none["errors"][0]["code"], "no_rule");

    let rule = created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "Benelux", "assign_to": "user", "user_id": rep,
            "conditions": [{"field": "country", "op": "eq", "value": "nl"}]}),
    );
    let res = app.post(&path, &app.admin_token, &json!({}));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["owner_id"], rep.as_str());
    assert_eq!(res.json()["assignment"]["rule_id"], id(&rule).as_str());
    let timeline = app
        .get(
            &format!("/api/v1/leads/{}/timeline?kind=lead.assigned", id(&lead)),
            &app.admin_token,
        )
        .json();
    assert_eq!(
        timeline["data"][0]["data"]["rule_id"],
        id(&rule).as_str(),
        "{timeline}"
    );

    // Reps read rules but only managers and admins write them.
    assert_eq!(
        app.get("/api/v1/lead-assignment-rules", &rep_token).status,
        200
    );
    app.post(
        "/api/v1/lead-assignment-rules",
        &rep_token,
        &json!({"name": "x", "assign_to": "user", "user_id": rep}),
    )
    .problem(403);

    // An inactive rule is skipped.
    let off = app.patch(
        &format!("/api/v1/lead-assignment-rules/{}", id(&rule)),
        &app.admin_token,
        &json!({"active": false}),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    app.post(&path, &app.admin_token, &json!({})).problem(422);
}

#[test]
fn rules_naming_missing_users_or_teams_or_malformed_conditions_are_refused() {
    let app = TestApp::start();
    let nobody = "01890000-0000-7000-8000-000000000000";
    let post = |body: Value| app.post("/api/v1/lead-assignment-rules", &app.admin_token, &body);
    let field_of = |p: Value| {
        p["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    assert_eq!(
        field_of(post(json!({"name": "x", "assign_to": "user", "user_id": nobody})).problem(422)),
        "user_id"
    );
    assert_eq!(
        field_of(post(json!({"name": "x", "assign_to": "user"})).problem(422)),
        "user_id"
    );
    assert_eq!(
        field_of(
            post(json!({"name": "x", "assign_to": "team_round_robin", "team_id": nobody}))
                .problem(422)
        ),
        "team_id"
    );
    let empty = id(&created(&app, "/api/v1/teams", json!({"name": "Empty"})));
    let p =
        post(json!({"name": "x", "assign_to": "team_round_robin", "team_id": empty})).problem(422);
    assert_eq!(p["errors"][0]["code"], "empty");
    // A field rules can't test is refused by the schema.
    post(json!({"name": "x", "assign_to": "user", "user_id": nobody,
        "conditions": [{"field": "shoe_size", "op": "eq", "value": "44"}]}))
    .problem(422);
    let (rep, _) = app.user("sales_rep");
    let bad = post(
        json!({"name": "x", "assign_to": "user", "user_id": rep, "conditions": [
            {"field": "country", "op": "eq", "value": "DE"},
            {"field": "score", "op": "contains", "value": "9"},
            {"field": "country", "op": "in", "value": []},
            {"field": "employee_count", "op": "gte", "value": "fifty"},
        ]}),
    )
    .problem(422);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        vec![
            "conditions[1].value",
            "conditions[2].value",
            "conditions[3].value"
        ]
    );
    assert_eq!(app.count("lead_assignment_rules"), 0);
}

#[test]
fn rules_test_lead_custom_fields_which_leads_take_and_filter_on() {
    let app = TestApp::start();
    let (key_rep, _) = app.user("sales_rep");
    created(
        &app,
        "/api/v1/meta/objects/lead/fields",
        json!({"key": "tier", "label": "Tier", "field_type": "picklist", "options": ["gold", "silver"]}),
    );
    created(
        &app,
        "/api/v1/meta/objects/lead/fields",
        json!({"key": "seats", "label": "Seats", "field_type": "number"}),
    );
    // A custom condition names a field that exists, with a value of its type.
    for (bad, field) in [
        (
            json!({"field": "custom", "key": "nope", "op": "eq", "value": "x"}),
            "conditions[0].key",
        ),
        (
            json!({"field": "custom", "op": "eq", "value": "x"}),
            "conditions[0].key",
        ),
        (
            json!({"field": "country", "key": "tier", "op": "eq", "value": "x"}),
            "conditions[0].key",
        ),
        (
            json!({"field": "custom", "key": "seats", "op": "gte", "value": "many"}),
            "conditions[0].value",
        ),
    ] {
        let p = app
            .post(
                "/api/v1/lead-assignment-rules",
                &app.admin_token,
                &json!({"name": "Bad", "assign_to": "user", "user_id": key_rep, "conditions": [bad]}),
            )
            .problem(422);
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let rule = created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "Gold, 100 seats and up", "assign_to": "user", "user_id": key_rep, "conditions": [
            {"field": "custom", "key": "tier", "op": "eq", "value": "GOLD"},
            {"field": "custom", "key": "seats", "op": "gte", "value": 100}]}),
    );
    let gold = created(
        &app,
        "/api/v1/leads",
        json!({"company": "Big", "custom": {"tier": "gold", "seats": 250}}),
    );
    assert_eq!(gold["owner_id"], key_rep.as_str(), "{gold}");
    assert_eq!(gold["assignment"]["rule_id"], rule["id"]);
    assert_eq!(gold["custom"], json!({"tier": "gold", "seats": 250}));
    let small = created(
        &app,
        "/api/v1/leads",
        json!({"company": "Small", "custom": {"tier": "gold", "seats": 5}}),
    );
    assert!(small["assignment"].is_null(), "{small}");
    // Custom values are checked like an account's, and filter the list.
    let p = app
        .post(
            "/api/v1/leads",
            &app.admin_token,
            &json!({"company": "X", "custom": {"tier": "bronze"}}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "custom.tier", "{p}");
    let listed = app
        .get("/api/v1/leads?custom.tier=gold&limit=10", &app.admin_token)
        .json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2), "{listed}");
}

#[test]
fn an_in_test_lists_at_most_200_values() {
    let app = TestApp::start();
    let (rep, _) = app.user("sales_rep");
    let rule = |n: usize| {
        let countries: Vec<String> = (0..n).map(|i| format!("C{i}")).collect();
        app.post(
            "/api/v1/lead-assignment-rules",
            &app.admin_token,
            &json!({"name": "Everywhere", "assign_to": "user", "user_id": rep,
                "conditions": [{"field": "country", "op": "in", "value": countries}]}),
        )
    };
    let p = rule(201).problem(422);
    assert_eq!(p["errors"][0]["field"], "conditions[0].value", "{p}");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 200"),
        "{p}"
    );
    assert_eq!(rule(200).status, 201);
}
