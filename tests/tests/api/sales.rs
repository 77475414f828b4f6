//! Sales: leads and their conversion, pipelines with exit criteria, opportunities moving
//! through them — as a rep and a manager would call the API.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    let id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "not created: {v}");
    id
}

/// A pipeline with the sales methodology in its exit criteria: a deal leaves `qualify`
/// only with an amount and a close date, and `propose` only with a next step.
fn pipeline(app: &TestApp) -> String {
    let res = app.post(
        "/api/v1/pipelines",
        &app.admin_token,
        &json!({"name": "New business", "stages": [
            {"key": "qualify", "name": "Qualify", "probability": 10, "forecast_category": "pipeline",
             "exit_criteria": ["amount", "close_date"]},
            {"key": "propose", "name": "Propose", "probability": 50, "forecast_category": "best_case",
             "exit_criteria": ["next_step"]},
            {"key": "commit", "name": "Commit", "probability": 80, "forecast_category": "commit"},
            {"key": "won", "name": "Closed won", "probability": 100, "forecast_category": "closed_won"},
            {"key": "lost", "name": "Closed lost", "probability": 0, "forecast_category": "closed_lost"},
        ]}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    id(&res.json())
}

fn errors(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["field"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn leads_are_created_qualified_and_listed_by_status() {
    let app = TestApp::start();
    let (rep_id, rep) = app.user("sales_rep");
    let lead = app.post(
        "/api/v1/leads",
        &rep,
        &json!({"first_name": "Grace", "last_name": "Hopper", "company": "Navy Labs",
            "email": "Grace@Navy.example", "phone": "+1 415 555 2671", "source": "web_form", "country": "US"}),
    );
    assert_eq!(lead.status, 201, "{}", lead.text);
    let lead = lead.json();
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["email"], "grace@navy.example");
    assert_eq!(lead["owner_id"], rep_id.as_str());
    assert!(lead["conversion"].is_null());
    // A lead needs something to call it by.
    let p = app
        .post("/api/v1/leads", &rep, &json!({"first_name": "Nobody"}))
        .problem(422);
    assert_eq!(errors(&p), ["last_name"]);
    // Disqualifying takes a reason; conversion is not a status a client sets.
    let url = format!("/api/v1/leads/{}", id(&lead));
    let p = app
        .patch(&url, &rep, &json!({"status": "disqualified"}))
        .problem(422);
    assert_eq!(errors(&p), ["disqualified_reason"]);
    app.patch(&url, &rep, &json!({"status": "converted"}))
        .problem(422);
    // The score is the scoring models' to give: a client cannot set it.
    let p = app
        .patch(&url, &rep, &json!({"status": "qualified", "score": 640}))
        .problem(422);
    assert_eq!(errors(&p), ["score"]);
    let q = app.patch(&url, &rep, &json!({"status": "qualified"}));
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.json()["score"], 0);
    app.post("/api/v1/leads", &rep, &json!({"company": "Other Co"}));
    let listed = app.get("/api/v1/leads?status=qualified", &rep).json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["last_name"], "Hopper");
    app.get("/api/v1/leads?status=hot", &rep).problem(400);
    // Analysts read leads but do not work them.
    let (_, analyst) = app.user("analyst");
    assert_eq!(app.get(&url, &analyst).status, 200);
    app.post("/api/v1/leads", &analyst, &json!({"company": "X"}))
        .problem(403);
}

#[test]
fn converting_a_lead_creates_account_contact_and_opportunity_in_one_go_and_only_once() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let pipeline = pipeline(&app);
    let lead = app
        .post(
            "/api/v1/leads",
            &rep,
            &json!({"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines",
                "email": "ada@engines.example", "phone": "+44 20 7946 0958", "industry": "Computing"}),
        )
        .json();
    let url = format!("/api/v1/leads/{}/convert", id(&lead));
    let before = (
        app.count("accounts"),
        app.count("contacts"),
        app.count("opportunities"),
    );

    // A failure in the last part (an unknown pipeline) leaves nothing behind.
    let p = app
        .post(
            &url,
            &rep,
            &json!({"opportunity": {"pipeline_id": "01900000-0000-7000-8000-000000000000", "currency": "GBP"}}),
        )
        .problem(422);
    assert_eq!(errors(&p), ["opportunity.pipeline_id"]);
    assert_eq!(
        (
            app.count("accounts"),
            app.count("contacts"),
            app.count("opportunities")
        ),
        before
    );

    let done = app.post(
        &url,
        &rep,
        &json!({"contact_role": "decision_maker",
            "opportunity": {"pipeline_id": pipeline, "amount": 1_200_000, "currency": "GBP"}}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let done = done.json();
    assert_eq!(done["account"]["name"], "Analytical Engines");
    assert_eq!(done["account"]["industry"], "Computing");
    assert_eq!(done["contact"]["emails"][0]["email"], "ada@engines.example");
    assert_eq!(
        done["contact"]["accounts"][0]["account_id"],
        done["account"]["id"]
    );
    assert_eq!(done["contact"]["accounts"][0]["role"], "decision_maker");
    let opp = &done["opportunity"];
    assert_eq!(opp["name"], "Analytical Engines deal");
    assert_eq!(opp["stage"], "qualify");
    assert_eq!(opp["primary_contact_id"], done["contact"]["id"]);
    assert_eq!(opp["lead_id"], lead["id"]);
    assert_eq!(done["lead"]["status"], "converted");
    assert_eq!(done["lead"]["conversion"]["opportunity_id"], opp["id"]);

    // A lead with nobody to make a contact of needs an existing contact named.
    let company_only = app
        .post("/api/v1/leads", &rep, &json!({"company": "Faceless"}))
        .json();
    let p = app
        .post(
            &format!("/api/v1/leads/{}/convert", id(&company_only)),
            &rep,
            &json!({}),
        )
        .problem(422);
    assert_eq!(errors(&p), ["contact_id"]);
    let contact_id = done["contact"]["id"].as_str().unwrap_or_default();
    let linked = app.post(
        &format!("/api/v1/leads/{}/convert", id(&company_only)),
        &rep,
        &json!({"contact_id": contact_id}),
    );
    assert_eq!(linked.status, 200, "{}", linked.text);
    assert_eq!(linked.json()["contact"]["id"], contact_id);
    assert_eq!(linked.json()["account"]["name"], "Faceless");

    // Once converted: no second conversion, and no more edits.
    app.post(&url, &rep, &json!({})).problem(409);
    app.patch(
        &format!("/api/v1/leads/{}", id(&lead)),
        &rep,
        &json!({"company": "Renamed"}),
    )
    .problem(409);
    let events = app
        .get("/api/v1/events?types=lead.converted", &app.admin_token)
        .json();
    assert_eq!(events["data"].as_array().map(Vec::len), Some(2), "{events}");
}

#[test]
fn two_conversions_at_once_make_one_customer() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    for round in 0..3 {
        let lead = app
            .post(
                "/api/v1/leads",
                &rep,
                &json!({"company": format!("Race {round}"), "last_name": "R"}),
            )
            .json();
        let url = format!("/api/v1/leads/{}/convert", id(&lead));
        let statuses = app.post_twice_at_once(&url, &rep, &json!({}));
        assert_eq!(statuses, [200, 409], "round {round}");
    }
    assert_eq!(app.count("accounts"), 3);
    assert_eq!(app.count("contacts"), 3);
}

#[test]
fn pipelines_refuse_stages_that_cannot_work() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let stage = |key: &str, p: i32, cat: &str| json!({"key": key, "name": key, "probability": p, "forecast_category": cat});
    let p = app
        .post(
            "/api/v1/pipelines",
            t,
            &json!({"name": "Bad", "stages": [stage("a", 10, "pipeline"), stage("a", 20, "commit"),
                stage("won", 90, "closed_won")]}),
        )
        .problem(422);
    let fields = errors(&p);
    assert!(fields.contains(&"stages[1].key".to_string()), "{fields:?}");
    assert!(
        fields.contains(&"stages[2].probability".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"stages".to_string()),
        "no closed-lost stage: {fields:?}"
    );
    let (_, rep) = app.user("sales_rep");
    app.post(
        "/api/v1/pipelines",
        &rep,
        &json!({"name": "Mine", "stages": []}),
    )
    .problem(403);
    // A stage with open deals in it cannot be dropped.
    let pipeline = pipeline(&app);
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    app.post(
        "/api/v1/opportunities",
        t,
        &json!({"name": "Acme deal", "account_id": id(&acme), "pipeline_id": pipeline, "currency": "EUR"}),
    );
    app.patch(
        &format!("/api/v1/pipelines/{pipeline}"),
        t,
        &json!({"stages": [stage("open", 10, "pipeline"), stage("won", 100, "closed_won"),
            stage("lost", 0, "closed_lost")]}),
    )
    .problem(409);
}

#[test]
fn a_deal_moves_only_when_the_stage_it_leaves_lets_it_and_keeps_its_history() {
    let app = TestApp::start();
    let (rep_id, rep) = app.user("sales_rep");
    let (other_id, _) = app.user("sales_rep");
    let pipeline = pipeline(&app);
    let acme = app
        .post("/api/v1/accounts", &rep, &json!({"name": "Acme"}))
        .json();
    let opp = app.post(
        "/api/v1/opportunities",
        &rep,
        &json!({"name": "Acme renewal", "account_id": id(&acme), "pipeline_id": pipeline,
            "currency": "EUR", "competitors": ["Globex"]}),
    );
    assert_eq!(opp.status, 201, "{}", opp.text);
    let opp = opp.json();
    assert_eq!(
        (opp["stage"].as_str(), opp["status"].as_str()),
        (Some("qualify"), Some("open"))
    );
    let url = format!("/api/v1/opportunities/{}", id(&opp));
    let stage = format!("{url}/stage");

    // Exit criteria of `qualify`: amount and close date, both named.
    let p = app
        .post(&stage, &rep, &json!({"stage": "propose"}))
        .problem(422);
    assert_eq!(errors(&p), ["amount", "close_date"]);
    // The stage is not a field a PATCH moves.
    app.patch(&url, &rep, &json!({"stage": "won"})).problem(422);
    // Team splits must add up.
    let p = app
        .patch(
            &url,
            &rep,
            &json!({"team": [{"user_id": rep_id, "role": "owner", "split_percent": 70},
                {"user_id": other_id, "role": "sales_engineer", "split_percent": 20}]}),
        )
        .problem(422);
    assert_eq!(errors(&p), ["team"]);
    let filled = app.patch(
        &url,
        &rep,
        &json!({"amount": 5_000_000, "close_date": "2027-03-31",
            "team": [{"user_id": rep_id, "role": "owner", "split_percent": 70},
                {"user_id": other_id, "role": "sales_engineer", "split_percent": 30}]}),
    );
    assert_eq!(filled.status, 200, "{}", filled.text);
    let moved = app.post(&stage, &rep, &json!({"stage": "propose"}));
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json()["stage"], "propose");
    // `propose` wants a next step before the deal may leave it.
    let p = app
        .post(&stage, &rep, &json!({"stage": "won"}))
        .problem(422);
    assert_eq!(errors(&p), ["next_step"]);
    app.patch(&url, &rep, &json!({"next_step": "Send the order form"}));
    app.post(&stage, &rep, &json!({"stage": "nowhere"}))
        .problem(422);
    let won = app.post(
        &stage,
        &rep,
        &json!({"stage": "won", "close_reason": "Best fit"}),
    );
    assert_eq!(won.status, 200, "{}", won.text);
    let won = won.json();
    assert_eq!(won["status"], "won");
    assert!(won["closed_at"].is_string());
    // Closed is closed.
    app.post(
        &stage,
        &rep,
        &json!({"stage": "lost", "close_reason": "changed our mind"}),
    )
    .problem(409);

    let history = app.get(&format!("{url}/stage-history"), &rep).json();
    let moves: Vec<(Value, Value)> = history
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| (h["from_stage"].clone(), h["to_stage"].clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (Value::Null, json!("qualify")),
            (json!("qualify"), json!("propose")),
            (json!("propose"), json!("won"))
        ]
    );
    assert!(history[1]["seconds_in_from_stage"]
        .as_i64()
        .is_some_and(|s| s >= 0));
    let listed = app.get("/api/v1/opportunities?status=won", &rep).json();
    assert_eq!(listed["data"][0]["id"], opp["id"]);
}

#[test]
fn an_erp_pushes_the_same_deal_again_and_again_but_cannot_move_it_by_upsert() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let pipeline = pipeline(&app);
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let body = json!({"name": "ERP deal", "account_id": id(&acme), "pipeline_id": pipeline,
        "stage": "propose", "currency": "EUR", "amount": 900});
    let url = "/api/v1/opportunities/external/erp/OPP-1";
    let first = app.send("PUT", url, Some(t), &[], Some(&body.to_string()));
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app.send("PUT", url, Some(t), &[], Some(&body.to_string()));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let mut moved = body.clone();
    moved["stage"] = json!("won");
    let p = app
        .send("PUT", url, Some(t), &[], Some(&moved.to_string()))
        .problem(422);
    assert_eq!(errors(&p), ["stage"]);
    assert_eq!(app.count("opportunities"), 1);
}

#[test]
fn losing_a_deal_needs_a_reason_and_only_the_owner_side_may_move_it() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let (_, stranger) = app.user("sales_rep");
    let pipeline = pipeline(&app);
    let acme = app
        .post("/api/v1/accounts", &rep, &json!({"name": "Acme"}))
        .json();
    let opp = app
        .post(
            "/api/v1/opportunities",
            &rep,
            &json!({"name": "Acme", "account_id": id(&acme), "pipeline_id": pipeline, "currency": "EUR",
                "stage": "commit"}),
        )
        .json();
    let stage = format!("/api/v1/opportunities/{}/stage", id(&opp));
    app.post(
        &stage,
        &stranger,
        &json!({"stage": "lost", "close_reason": "x"}),
    )
    .problem(403);
    let p = app
        .post(&stage, &rep, &json!({"stage": "lost"}))
        .problem(422);
    assert_eq!(errors(&p), ["close_reason"]);
    let lost = app.post(
        &stage,
        &rep,
        &json!({"stage": "lost", "close_reason": "Budget cut"}),
    );
    assert_eq!(lost.json()["status"], "lost", "{}", lost.text);
    assert_eq!(lost.json()["close_reason"], "Budget cut");
}

#[test]
fn a_lead_finds_the_leads_and_contacts_it_may_duplicate() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let t = &app.admin_token;
    let ada = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "Ada", "last_name": "Lovelace",
                "phones": [{"number": "+44 20 7946 0958"}]}),
        )
        .json();
    let earlier = app
        .post(
            "/api/v1/leads",
            &rep,
            &json!({"last_name": "L", "email": "ada@engines.example"}),
        )
        .json();
    app.post(
        "/api/v1/leads",
        &rep,
        &json!({"last_name": "Unrelated", "email": "x@y.example"}),
    );
    let lead = app
        .post(
            "/api/v1/leads",
            &rep,
            &json!({"last_name": "Lovelace", "email": "ADA@Engines.example", "phone": "+442079460958"}),
        )
        .json();
    let found = app.get(&format!("/api/v1/leads/{}/duplicates", id(&lead)), &rep);
    assert_eq!(found.status, 200, "{}", found.text);
    let found = found.json();
    assert_eq!(found["leads"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["leads"][0]["lead"]["id"], earlier["id"]);
    assert_eq!(found["leads"][0]["reasons"], json!(["same_email"]));
    assert_eq!(
        found["contacts"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    assert_eq!(found["contacts"][0]["contact_id"], ada["id"]);
    assert_eq!(found["contacts"][0]["reasons"], json!(["same_phone"]));
}

#[test]
fn a_lead_has_several_emails_and_phones_and_each_finds_duplicates_and_reaches_the_contact() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let both = app
        .post(
            "/api/v1/leads",
            &rep,
            &json!({"last_name": "Hopper", "email": "g@x.example", "emails": [{"email": "g@y.example"}]}),
        )
        .problem(422);
    assert_eq!(errors(&both), ["email"]);
    let grace = app.post(
        "/api/v1/leads",
        &rep,
        &json!({"last_name": "Hopper", "company": "Navy",
            "emails": [{"email": "grace@navy.example", "label": "work"},
                       {"email": "Grace@Home.example", "label": "home", "primary": true}],
            // A scanned badge: the second number doesn't parse, and is kept as written.
            "phones": [{"number": "+1 212 555 0100", "primary": true}, {"number": "ext. 42"}]}),
    );
    assert_eq!(grace.status, 201, "{}", grace.text);
    let grace = grace.json();
    assert_eq!(
        (&grace["email"], &grace["phone"]),
        (&json!("grace@home.example"), &json!("+1 212 555 0100"))
    );
    assert_eq!(
        grace["emails"][0]["email"], "grace@home.example",
        "the primary first"
    );
    assert_eq!(grace["emails"][1]["label"], "work");
    assert_eq!(grace["phones"][0]["e164"], "+12125550100");
    assert_eq!(grace["phones"][1]["e164"], "ext. 42");

    // The work address (not the primary one) finds her, in the list and as a duplicate.
    let listed = app
        .get("/api/v1/leads?email=GRACE@navy.example", &rep)
        .json();
    assert_eq!(listed["data"][0]["id"], grace["id"], "{listed}");
    assert_eq!(
        listed["data"][0]["emails"].as_array().map(Vec::len),
        Some(2)
    );
    let again = app
        .post(
            "/api/v1/leads",
            &rep,
            &json!({"last_name": "H", "email": "grace@navy.example"}),
        )
        .json();
    let found = app
        .get(&format!("/api/v1/leads/{}/duplicates", id(&again)), &rep)
        .json();
    assert_eq!(found["leads"][0]["lead"]["id"], grace["id"], "{found}");
    assert_eq!(found["leads"][0]["reasons"], json!(["same_email"]));

    // `email` on a PATCH is a list of one.
    let url = format!("/api/v1/leads/{}", id(&again));
    let one = app
        .patch(&url, &rep, &json!({"email": "h@elsewhere.example"}))
        .json();
    assert_eq!(
        one["emails"],
        json!([{"email": "h@elsewhere.example", "label": null, "primary": true}])
    );
    let none = app
        .patch(&url, &rep, &json!({"phones": null, "emails": []}))
        .json();
    assert_eq!(
        (none["emails"].as_array().map(Vec::len), &none["email"]),
        (Some(0), &Value::Null)
    );

    // Converting Grace makes a contact with both emails and the number that parses.
    let done = app.post(
        &format!("/api/v1/leads/{}/convert", id(&grace)),
        &rep,
        &json!({}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let contact_id = done.json()["contact"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let contact = app
        .get(&format!("/api/v1/contacts/{contact_id}"), &rep)
        .json();
    let emails: Vec<&str> = contact["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        ["grace@home.example", "grace@navy.example"],
        "{contact}"
    );
    assert_eq!(
        contact["phones"].as_array().map(Vec::len),
        Some(1),
        "{contact}"
    );
}

#[test]
fn the_forecast_adds_up_by_owner_and_team_with_splits_and_weights() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (a, _) = app.user("sales_rep");
    let (b, _) = app.user("sales_rep");
    let team = app
        .post("/api/v1/teams", t, &json!({"name": "East"}))
        .json();
    let moved = app.patch(
        &format!("/api/v1/users/{a}"),
        t,
        &json!({"team_id": id(&team)}),
    );
    assert_eq!(moved.status, 200, "{}", moved.text);
    let pipeline = pipeline(&app);
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let deal = |owner: &str, stage: &str, amount: i64, currency: &str, close: &str, team: Value| {
        let res = app.post(
            "/api/v1/opportunities",
            t,
            &json!({"name": "Deal", "account_id": id(&acme), "pipeline_id": pipeline, "owner_id": owner,
                "stage": stage, "amount": amount, "currency": currency, "close_date": close, "team": team}),
        );
        assert_eq!(res.status, 201, "{}", res.text);
    };
    deal(&a, "qualify", 1000, "EUR", "2027-01-15", json!([]));
    deal(&a, "propose", 2001, "EUR", "2027-02-01", json!([]));
    deal(
        &b,
        "commit",
        3000,
        "EUR",
        "2027-03-31",
        json!([{"user_id": a, "role": "owner", "split_percent": 70},
               {"user_id": b, "role": "support", "split_percent": 30}]),
    );
    deal(&a, "won", 5000, "EUR", "2027-01-02", json!([]));
    deal(&b, "lost", 7000, "EUR", "2027-02-02", json!([]));
    deal(&a, "qualify", 999, "EUR", "2027-04-01", json!([])); // next quarter
    deal(&a, "qualify", 500, "USD", "2027-03-01", json!([]));

    let f = app.get("/api/v1/forecasts?period=2027-Q1", t);
    assert_eq!(f.status, 200, "{}", f.text);
    let f = f.json();
    assert_eq!(
        (f["starts_on"].as_str(), f["ends_on"].as_str()),
        (Some("2027-01-01"), Some("2027-03-31"))
    );
    assert!(f["method"]
        .as_str()
        .is_some_and(|m| m.contains("probability")));
    let row = |group: &str, currency: &str| {
        f["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["group_id"] == group && r["currency"] == currency)
            .cloned()
            .unwrap_or_else(|| panic!("no row {group} {currency}: {f}"))
    };
    let figures = |r: Value| {
        [
            "closed_won",
            "commit",
            "best_case",
            "pipeline",
            "weighted_pipeline",
            "deals",
        ]
        .map(|k| r[k].as_i64().unwrap_or(-1))
    };
    // a: won 5000; commit 70% of 3000; best case 2001 + 2100; pipeline 1000 + 2001 + 2100;
    // weighted (1000×10 + 2001×50 + 2100×80) / 100 = 2780.5, rounded half up.
    assert_eq!(figures(row(&a, "EUR")), [5000, 2100, 4101, 5101, 2781, 4]);
    // b: 30% of the commit deal (900, weighted 720), and the lost deal counts for nothing.
    assert_eq!(figures(row(&b, "EUR")), [0, 900, 900, 900, 720, 2]);
    assert_eq!(figures(row(&a, "USD")), [0, 0, 0, 500, 50, 1]);

    let by_team = app
        .get("/api/v1/forecasts?period=2027-Q1&group_by=team", t)
        .json();
    let east = by_team["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["group_id"] == team["id"] && r["currency"] == "EUR")
        .cloned()
        .unwrap_or_default();
    assert_eq!(east["pipeline"], 5101, "{by_team}");
    for bad in ["2027-Q5", "2027-13", "Q1", "2027-1"] {
        app.get(&format!("/api/v1/forecasts?period={bad}"), t)
            .problem(400);
    }
}

#[test]
fn a_quote_is_priced_by_the_server_and_accepting_it_creates_the_order() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (_, rep) = app.user("sales_rep");
    let pipeline = pipeline(&app);
    let product = |sku: &str, components: Value| {
        let res = app.post(
            "/api/v1/products",
            t,
            &json!({"sku": sku, "name": sku, "components": components}),
        );
        assert_eq!(res.status, 201, "{}", res.text);
        id(&res.json())
    };
    let seat = product("SEAT", json!([]));
    let onboarding = product("ONBOARD", json!([]));
    let kit = product(
        "KIT",
        json!([{"product_id": seat, "quantity": 2}, {"product_id": onboarding, "quantity": 1}]),
    );
    let usd_only = product("USD-ONLY", json!([]));
    let book = app
        .post(
            "/api/v1/price-books",
            t,
            &json!({"name": "2027", "prices": [
                {"product_id": seat, "currency": "EUR", "unit_price": 1999},
                {"product_id": onboarding, "currency": "EUR", "unit_price": 50000},
                {"product_id": usd_only, "currency": "USD", "unit_price": 100}]}),
        )
        .json();
    let acme = app
        .post("/api/v1/accounts", &rep, &json!({"name": "Acme"}))
        .json();
    let deal = app
        .post(
            "/api/v1/opportunities",
            &rep,
            &json!({"name": "Acme seats", "account_id": id(&acme), "pipeline_id": pipeline, "currency": "EUR"}),
        )
        .json();
    let quote = |lines: Value| {
        app.post(
            "/api/v1/quotes",
            &rep,
            &json!({"opportunity_id": id(&deal), "price_book_id": id(&book), "lines": lines,
                "valid_until": "2027-01-31", "notes": "Prices <b>firm</b> for 30 days"}),
        )
    };
    // A product with no EUR price, a negative quantity, a discount over 100%.
    for (bad, field) in [
        (
            json!([{"product_id": usd_only, "quantity": 1}]),
            "lines[0].product_id",
        ),
        (
            json!([{"product_id": seat, "quantity": -2}]),
            "lines[0].quantity",
        ),
        (
            json!([{"product_id": seat, "quantity": 1, "discount_percent": 120}]),
            "lines[0].discount_percent",
        ),
    ] {
        let p = quote(bad).problem(422);
        assert_eq!(errors(&p), [field], "{p}");
    }
    assert_eq!(app.count("quotes"), 0);

    let q = quote(json!([
        // 3 × 19.99 = 59.97; 12.5% off 7.50 (7.49625 half up); 20% tax on 52.47 = 10.49.
        {"product_id": seat, "quantity": 3, "discount_percent": 12.5, "tax_rate": 20},
        // The kit has no price of its own: 2 × 19.99 + 500.00 = 539.98; 5.00 off; 7% tax 37.45.
        {"product_id": kit, "quantity": 1, "discount_amount": 500, "tax_rate": 7},
    ]));
    assert_eq!(q.status, 201, "{}", q.text);
    let q = q.json();
    let l0 = &q["lines"][0];
    assert_eq!(
        [
            &l0["gross"],
            &l0["discount"],
            &l0["net"],
            &l0["tax"],
            &l0["total"]
        ],
        [5997, 750, 5247, 1049, 6296]
    );
    let l1 = &q["lines"][1];
    assert_eq!(
        [&l1["unit_price"], &l1["net"], &l1["tax"], &l1["total"]],
        [53998, 53498, 3745, 57243]
    );
    assert_eq!(
        [
            &q["subtotal"],
            &q["discount_total"],
            &q["tax_total"],
            &q["total"]
        ],
        [59995, 1250, 4794, 63539]
    );
    let url = format!("/api/v1/quotes/{}", id(&q));
    let html = app.get(&format!("{url}/document"), &rep);
    assert_eq!(html.status, 200);
    assert!(html
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(
        html.text.contains("635.39") && html.text.contains("Acme"),
        "{}",
        html.text
    );
    assert!(html.text.contains("&lt;b&gt;firm") && !html.text.contains("<b>firm"));

    let status = format!("{url}/status");
    app.post(&status, &rep, &json!({"status": "accepted"}))
        .problem(409);
    let sent = app.post(&status, &rep, &json!({"status": "sent"}));
    assert_eq!(sent.json()["status"], "sent", "{}", sent.text);
    app.patch(&url, &rep, &json!({"notes": "changed"}))
        .problem(409);
    let accepted = app.post(&status, &rep, &json!({"status": "accepted"}));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let order_id = accepted.json()["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let order = app.get(&format!("/api/v1/orders/{order_id}"), &rep).json();
    assert_eq!(order["quote_id"], q["id"]);
    assert_eq!(order["total"], 63539);
    assert_eq!(order["lines"], q["lines"]);
    assert_eq!(order["account_id"], acme["id"]);
    app.post(&status, &rep, &json!({"status": "rejected"}))
        .problem(409);
    let listed = app
        .get(&format!("/api/v1/orders?account_id={}", id(&acme)), &rep)
        .json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

#[test]
fn an_erp_pushes_orders_by_its_key_and_cannot_rewrite_what_was_bought() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let widget = app
        .post(
            "/api/v1/products",
            t,
            &json!({"sku": "W", "name": "Widget"}),
        )
        .json();
    let body = json!({"account_id": id(&acme), "currency": "EUR", "ordered_on": "2026-11-30",
        "lines": [{"product_id": id(&widget), "quantity": 4, "unit_price": 250, "tax_rate": 10}]});
    let url = "/api/v1/orders/external/erp/SO-1";
    let first = app.send("PUT", url, Some(t), &[], Some(&body.to_string()));
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json()["total"], 1100);
    let mut shipped = body.clone();
    shipped["status"] = json!("fulfilled");
    let again = app.send("PUT", url, Some(t), &[], Some(&shipped.to_string()));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["status"], "fulfilled");
    let mut rewritten = body.clone();
    rewritten["lines"][0]["quantity"] = json!(40);
    let p = app
        .send("PUT", url, Some(t), &[], Some(&rewritten.to_string()))
        .problem(422);
    assert_eq!(errors(&p), ["lines"]);
    // A line without a price needs a price book to take one from.
    let p = app
        .post(
            "/api/v1/orders",
            t,
            &json!({"account_id": id(&acme), "currency": "EUR", "ordered_on": "2026-11-30",
                "lines": [{"product_id": id(&widget), "quantity": 1}]}),
        )
        .problem(422);
    assert_eq!(errors(&p), ["lines[0].unit_price"]);
    assert_eq!(app.count("orders"), 1);
}

/// An ERP that pushes the same order or quote again (its lines as input, not as stored)
/// writes nothing: no version, no audit row, no event for webhooks.
#[test]
fn re_pushing_an_unchanged_order_or_quote_writes_nothing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let widget = app
        .post(
            "/api/v1/products",
            t,
            &json!({"sku": "W", "name": "Widget"}),
        )
        .json();
    let book = app
        .post(
            "/api/v1/price-books",
            t,
            &json!({"name": "List", "prices": [{"product_id": id(&widget), "currency": "EUR", "unit_price": 250}]}),
        )
        .json();
    let deal = app
        .post(
            "/api/v1/opportunities",
            t,
            &json!({"name": "Widgets", "account_id": id(&acme), "pipeline_id": app.simple_pipeline(), "currency": "EUR"}),
        )
        .json();
    let order = json!({"account_id": id(&acme), "currency": "EUR", "ordered_on": "2026-11-30",
        "notes": "by the ERP",
        "lines": [{"product_id": id(&widget), "quantity": 4, "unit_price": 250, "tax_rate": 10}]});
    let quote = json!({"opportunity_id": id(&deal), "price_book_id": id(&book),
        "valid_until": "2026-12-31", "lines": [{"product_id": id(&widget), "quantity": 2}]});
    for (url, body) in [
        ("/api/v1/orders/external/erp/SO-1", order),
        ("/api/v1/quotes/external/erp/Q-1", quote),
    ] {
        let first = app.put(url, t, &body);
        assert_eq!(first.status, 201, "{}", first.text);
        let (events, audit) = (app.count("events"), app.count("audit_log"));
        let again = app.put(url, t, &body);
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.json()["version"], 1, "{}", again.text);
        assert_eq!(
            again.json(),
            first.json(),
            "answered with the record as stored"
        );
        assert_eq!(
            (app.count("events"), app.count("audit_log")),
            (events, audit),
            "{url}: an unchanged push wrote an event or an audit row"
        );
        // Through a batch upsert too.
        let (_, source_key) = url.rsplit_once("/erp/").unwrap_or_default();
        let collection = url.split('/').nth(3).unwrap_or_default();
        let batch = app
            .post(
                &format!("/api/v1/{collection}/batch"),
                t,
                &json!({"items": [{"op": "upsert", "external_source": "erp", "external_id": source_key, "body": body}]}),
            )
            .json();
        assert_eq!(batch["results"][0]["status"], 200, "{batch}");
        assert_eq!(app.count("events"), events, "{url} by batch");
        // A real change still writes.
        let mut changed = body.clone();
        changed["notes"] = json!("changed");
        let res = app.put(url, t, &changed);
        assert_eq!(res.json()["version"], 2, "{}", res.text);
        assert_eq!(app.count("events"), events + 1);
    }
}
