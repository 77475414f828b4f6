//! Customers: hierarchy, phones, search, duplicates, merges, GDPR, visibility, to-do lists.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(id)
        .collect()
}

#[track_caller]
fn created(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let res = app.post(path, token, &body);
    assert_eq!(res.status, 201, "POST {path}: {}", res.text);
    res.json()
}

#[test]
fn account_hierarchy_is_a_tree_and_a_cycle_is_422() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let group = created(&app, "/api/v1/accounts", t, json!({"name": "Acme Group"}));
    let emea = created(
        &app,
        "/api/v1/accounts",
        t,
        json!({"name": "Acme EMEA", "parent_id": id(&group)}),
    );
    let france = created(
        &app,
        "/api/v1/accounts",
        t,
        json!({"name": "Acme France", "parent_id": id(&emea)}),
    );
    created(
        &app,
        "/api/v1/accounts",
        t,
        json!({"name": "Acme Americas", "parent_id": id(&group)}),
    );

    let tree = app
        .get(&format!("/api/v1/accounts/{}/hierarchy", id(&france)), t)
        .json();
    assert_eq!(tree["name"], "Acme Group");
    let children: Vec<&str> = tree["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(children, vec!["Acme Americas", "Acme EMEA"]);
    assert_eq!(tree["children"][1]["children"][0]["name"], "Acme France");

    let p = app
        .patch(
            &format!("/api/v1/accounts/{}", id(&group)),
            t,
            &json!({"parent_id": id(&france)}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "parent_id");
    assert_eq!(p["errors"][0]["code"], "cycle");
    app.patch(
        &format!("/api/v1/accounts/{}", id(&group)),
        t,
        &json!({"parent_id": id(&group)}),
    )
    .problem(422);
    assert!(app
        .get(&format!("/api/v1/accounts/{}", id(&group)), t)
        .json()["parent_id"]
        .is_null());
}

#[test]
fn a_phone_is_found_by_any_written_form() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let c = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({
            "first_name": "Grace", "last_name": "Hopper",
            "phones": [{"number": "+44 20 7946 0958", "label": "work"}, {"number": "(415) 555-2671", "label": "mobile", "primary": true}]
        }),
    );
    assert_eq!(c["phones"][0]["e164"], "+14155552671");
    assert_eq!(c["phones"][0]["primary"], true);
    for written in [
        "%2B442079460958",
        "%2B44%2020%207946%200958",
        "%2B44-20-7946-0958",
        "415.555.2671",
        "%2B1%20(415)%20555%202671",
    ] {
        let found = app
            .get(&format!("/api/v1/contacts?phone={written}"), t)
            .json();
        assert_eq!(ids(&found), vec![id(&c)], "lookup by {written}");
    }
    assert_eq!(
        ids(&app.get("/api/v1/contacts?phone=%2B442079460000", t).json()),
        Vec::<String>::new()
    );
}

#[test]
fn invalid_contacts_are_422_with_the_field_and_write_nothing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let before = (
        app.count("contacts"),
        app.count("contact_emails"),
        app.count("audit_log"),
    );
    let p = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "emails": [{"email": "not-an-email"}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "emails[0].email");
    let p = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "phones": [{"number": "12345"}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "phones[0].number");
    let p = app
        .post("/api/v1/contacts", t, &json!({"first_name": "A", "accounts": [{"account_id": "01900000-0000-7000-8000-000000000001", "role": "buyer"}]}))
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "accounts[0].account_id");
    let p = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "accounts": [{"account_id": "x", "role": "chief"}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "invalid_type");
    app.post("/api/v1/contacts", t, &json!({"job_title": "Nameless"}))
        .problem(422);
    assert_eq!(
        (
            app.count("contacts"),
            app.count("contact_emails"),
            app.count("audit_log")
        ),
        before
    );
}

#[test]
fn search_finds_by_name_email_domain_phone_and_company() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = created(
        &app,
        "/api/v1/accounts",
        t,
        json!({"name": "Analytical Engines Ltd", "domain": "analytical.io"}),
    );
    let ada = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({
            "first_name": "Ada", "last_name": "Lovelace", "emails": [{"email": "ada@analytical.io"}],
            "phones": [{"number": "+44 20 7946 0958"}], "accounts": [{"account_id": id(&acme), "role": "decision_maker"}]
        }),
    );
    created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Charles", "last_name": "Babbage", "emails": [{"email": "charles@example.com"}]}),
    );
    for q in [
        "ada",
        "LOVE",
        "ada@analytical.io",
        "analytical",
        "442079460958",
        "engines",
        "ada%20lovelace",
    ] {
        let found = app.get(&format!("/api/v1/contacts?q={q}"), t).json();
        assert_eq!(ids(&found), vec![id(&ada)], "q={q}");
    }
    assert_eq!(
        ids(&app.get("/api/v1/contacts?q=zzz", t).json()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&app.get("/api/v1/accounts?q=analyt", t).json()),
        vec![id(&acme)]
    );
}

#[test]
fn duplicates_are_found_with_their_reasons() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = created(&app, "/api/v1/accounts", t, json!({"name": "Acme"}));
    let link = json!([{"account_id": id(&acme), "role": "buyer"}]);
    let a = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Jonathan", "last_name": "Smith", "emails": [{"email": "js@acme.com"}], "phones": [{"number": "+1 415 555 2671"}], "accounts": link}),
    );
    let same_email = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "J", "last_name": "S", "emails": [{"email": "JS@acme.com"}]}),
    );
    let same_phone = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Other", "last_name": "Person", "phones": [{"number": "(415) 555-2671"}]}),
    );
    let similar = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Jon", "last_name": "smith", "accounts": link}),
    );
    created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Mary", "last_name": "Jones", "accounts": link}),
    );
    let dups = app
        .get(&format!("/api/v1/contacts/{}/duplicates", id(&a)), t)
        .json();
    let mut found: Vec<(String, String)> = dups
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                id(&d["contact"]),
                d["reasons"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        (id(&same_email), "same_email".to_string()),
        (id(&same_phone), "same_phone".to_string()),
        (id(&similar), "similar_name_at_account".to_string()),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn merging_contacts_moves_every_related_record() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = created(&app, "/api/v1/accounts", t, json!({"name": "Acme"}));
    let survivor = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Ann", "last_name": "Lee", "emails": [{"email": "ann@acme.com"}]}),
    );
    let dup = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({
            "first_name": "Ann", "last_name": "Lee", "emails": [{"email": "ann.lee@gmail.com"}, {"email": "ann@acme.com"}],
            "phones": [{"number": "+1 415 555 2671"}], "accounts": [{"account_id": id(&acme), "role": "billing"}],
            "consents": {"email": {"status": "granted", "source": "web_form"}}
        }),
    );
    let call = created(
        &app,
        "/api/v1/activities",
        t,
        json!({"kind": "call", "subject": "Intro call", "links": [{"entity_type": "contact", "entity_id": id(&dup)}]}),
    );

    let p = app
        .post(
            "/api/v1/contacts/merge",
            t,
            &json!({"survivor_id": id(&survivor), "merged_ids": [id(&survivor)]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "self");

    let res = app.post(
        "/api/v1/contacts/merge",
        t,
        &json!({"survivor_id": id(&survivor), "merged_ids": [id(&dup)]}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let merged = res.json();
    let emails: Vec<&str> = merged["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["email"].as_str())
        .collect();
    assert_eq!(emails, vec!["ann@acme.com", "ann.lee@gmail.com"]);
    assert_eq!(merged["phones"][0]["e164"], "+14155552671");
    assert_eq!(merged["accounts"][0]["account_id"], id(&acme));
    assert_eq!(merged["consents"]["email"]["status"], "granted");

    app.get(&format!("/api/v1/contacts/{}", id(&dup)), t)
        .problem(404);
    let gone = app
        .get(
            &format!("/api/v1/contacts/{}?include_archived=true", id(&dup)),
            t,
        )
        .json();
    assert_eq!(gone["merged_into"], id(&survivor));
    assert!(gone["archived_at"].is_string());
    let acts = app
        .get(
            &format!("/api/v1/activities?contact_id={}", id(&survivor)),
            t,
        )
        .json();
    assert_eq!(ids(&acts), vec![id(&call)]);
    let timeline = app
        .get(
            &format!(
                "/api/v1/contacts/{}/timeline?kind=activity.call",
                id(&survivor)
            ),
            t,
        )
        .json();
    assert_eq!(timeline["data"].as_array().map(Vec::len), Some(1));
    let log = app
        .get(
            &format!(
                "/api/v1/audit-log?entity_id={}&action=merged",
                id(&survivor)
            ),
            t,
        )
        .json();
    assert_eq!(log["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        ids(&app.get("/api/v1/contacts?q=gmail", t).json()),
        vec![id(&survivor)]
    );

    // Merging into (or from) an archived record is refused, and nothing changes.
    let p = app
        .post(
            "/api/v1/contacts/merge",
            t,
            &json!({"survivor_id": id(&dup), "merged_ids": [id(&survivor)]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "archived");
}

#[test]
fn merging_accounts_moves_contacts_children_and_activities() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let keep = created(&app, "/api/v1/accounts", t, json!({"name": "Globex"}));
    let dup = created(&app, "/api/v1/accounts", t, json!({"name": "Globex Corp"}));
    let child = created(
        &app,
        "/api/v1/accounts",
        t,
        json!({"name": "Globex Labs", "parent_id": id(&dup)}),
    );
    let person = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Hank", "accounts": [{"account_id": id(&dup), "role": "user"}]}),
    );
    let meeting = created(
        &app,
        "/api/v1/activities",
        t,
        json!({"kind": "meeting", "subject": "QBR", "links": [{"entity_type": "account", "entity_id": id(&dup)}]}),
    );
    let res = app.post(
        "/api/v1/accounts/merge",
        t,
        &json!({"survivor_id": id(&keep), "merged_ids": [id(&dup)]}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{}", id(&child)), t)
            .json()["parent_id"],
        id(&keep)
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{}", id(&person)), t)
            .json()["accounts"][0]["account_id"],
        id(&keep)
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/v1/activities?account_id={}", id(&keep)), t)
            .json()),
        vec![id(&meeting)]
    );
    assert_eq!(
        app.get(
            &format!("/api/v1/accounts/{}?include_archived=true", id(&dup)),
            t
        )
        .json()["merged_into"],
        id(&keep)
    );
}

#[test]
fn erasure_leaves_no_personal_data_in_any_table() {
    let app = TestApp::start();
    let t = &app.admin_token;
    // Every change is also queued for a webhook, whose stored bodies a redelivery resends.
    let receiver = crm_tests::receiver::Receiver::start(&[]);
    let hook = app.post(
        "/api/v1/webhooks",
        t,
        &json!({"url": receiver.url, "event_types": ["*"]}),
    );
    assert_eq!(hook.status, 201, "{}", hook.text);
    let acme = created(&app, "/api/v1/accounts", t, json!({"name": "Acme"}));
    let body = json!({
        "first_name": "Zebulon", "last_name": "Quixote", "job_title": "Chief Windmill Officer",
        "emails": [{"email": "zebulon@quixote-mail.test"}], "phones": [{"number": "+1 415 555 2671"}],
        "accounts": [{"account_id": id(&acme), "role": "buyer"}],
        "consents": {"sms": {"status": "granted", "source": "web_form"}},
        "social_profiles": {"linkedin": "https://linkedin.example/in/zquixote"}
    });
    let res = app.send(
        "POST",
        "/api/v1/contacts",
        Some(t),
        &[("Idempotency-Key", "create-zebulon")],
        Some(&body.to_string()),
    );
    assert_eq!(res.status, 201);
    let c = res.json();
    app.patch(
        &format!("/api/v1/contacts/{}", id(&c)),
        t,
        &json!({"job_title": "Knight Errant Zebulon"}),
    );
    created(
        &app,
        "/api/v1/activities",
        t,
        json!({"kind": "call", "subject": "Called Zebulon", "body": "Zebulon Quixote asked about windmills",
        "links": [{"entity_type": "contact", "entity_id": id(&c)}, {"entity_type": "account", "entity_id": id(&acme)}]}),
    );
    // An earlier record of the same person came in through an import, and was merged in.
    let csv = "first_name,last_name,email\nZebulon,Quixote-Smith,zeb.q@quixote-mail.test\n";
    let import = app
        .upload(
            "/api/v1/imports?object=contacts",
            "text/csv",
            csv.as_bytes(),
        )
        .json();
    let import = crate::imports::finished(&app, &id(&import), std::time::Duration::from_secs(20));
    assert_eq!(import["created"], 1, "{import}");
    let dup = app
        .get("/api/v1/contacts?email=zeb.q@quixote-mail.test", t)
        .json();
    let merged = app.post(
        "/api/v1/contacts/merge",
        t,
        &json!({"survivor_id": id(&c), "merged_ids": [id(&dup["data"][0])]}),
    );
    assert_eq!(merged.status, 200, "{}", merged.text);
    assert!(app.count("webhook_deliveries") > 0);

    let export = app
        .get(&format!("/api/v1/contacts/{}/personal-data", id(&c)), t)
        .json();
    assert_eq!(
        export["contact"]["emails"][0]["email"],
        "zebulon@quixote-mail.test"
    );
    assert_eq!(export["activities"][0]["subject"], "Called Zebulon");
    assert!(export["audit_log"].as_array().is_some_and(|a| a.len() >= 2));

    let before = app.all_stored_text();
    assert!(
        before.contains("Zebulon")
            && before.contains("quixote-mail")
            && before.contains("4155552671")
    );
    let erased = app.post(&format!("/api/v1/contacts/{}/erase", id(&c)), t, &json!({}));
    assert_eq!(erased.status, 200, "{}", erased.text);
    let after = app.all_stored_text();
    for secret in [
        "Zebulon",
        "zebulon",
        "Quixote",
        "quixote",
        "4155552671",
        "415 555",
        "Windmill",
        "windmill",
        "linkedin.example",
    ] {
        let hits: Vec<&str> = after.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            hits.is_empty(),
            "{secret:?} still stored after erasure:\n{}",
            hits.join("\n")
        );
    }
    // Non-personal aggregates remain: the account link and the activity itself.
    let now = app
        .get(
            &format!("/api/v1/contacts/{}?include_archived=true", id(&c)),
            t,
        )
        .json();
    assert_eq!(now["accounts"][0]["account_id"], id(&acme));
    assert!(now["erased_at"].is_string());
    assert_eq!(
        app.get(&format!("/api/v1/activities?account_id={}", id(&acme)), t)
            .json()["data"][0]["kind"],
        "call"
    );
    // Audited, and not undoable.
    let log = app
        .get(
            &format!("/api/v1/audit-log?entity_id={}&action=erased", id(&c)),
            t,
        )
        .json();
    assert_eq!(log["data"].as_array().map(Vec::len), Some(1));
    app.post(&format!("/api/v1/contacts/{}/erase", id(&c)), t, &json!({}))
        .problem(409);
    app.post(
        &format!("/api/v1/contacts/{}/restore", id(&c)),
        t,
        &json!({}),
    )
    .problem(409);
    app.patch(
        &format!("/api/v1/contacts/{}", id(&c)),
        t,
        &json!({"first_name": "Back"}),
    )
    .problem(409);
    let (_, manager) = app.user("manager");
    app.post(
        &format!("/api/v1/contacts/{}/erase", id(&acme)),
        &manager,
        &json!({}),
    )
    .problem(403);
}

#[test]
fn reps_edit_only_what_they_or_their_team_own_and_partners_see_nothing() {
    let app = TestApp::start();
    let team = created(
        &app,
        "/api/v1/teams",
        &app.admin_token,
        json!({"name": "West"}),
    );
    let (alice_id, alice) = app.user("sales_rep");
    let (bob_id, bob) = app.user("sales_rep");
    let (_, carol) = app.user("sales_rep");
    for uid in [&alice_id, &bob_id] {
        app.patch(
            &format!("/api/v1/users/{uid}"),
            &app.admin_token,
            &json!({"team_id": id(&team)}),
        );
    }
    // Tokens stay valid: the principal (with its team) is read on every request.
    let acct = created(
        &app,
        "/api/v1/accounts",
        &alice,
        json!({"name": "Alice's Account"}),
    );
    let path = format!("/api/v1/accounts/{}", id(&acct));
    // Everyone internal sees it; a rep outside the team may not change it.
    assert_eq!(app.get(&path, &carol).status, 200);
    app.patch(&path, &carol, &json!({"name": "Hijacked"}))
        .problem(403);
    app.delete(&path, &carol).problem(403);
    assert_eq!(app.get(&path, &alice).json()["name"], "Alice's Account");
    // A teammate may; reassigning to someone else is for managers.
    assert_eq!(
        app.patch(&path, &bob, &json!({"industry": "Retail"}))
            .status,
        200
    );
    app.patch(&path, &alice, &json!({"owner_id": bob_id}))
        .problem(403);
    let (_, manager) = app.user("manager");
    let res = app.patch(&path, &manager, &json!({"owner_id": bob_id}));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["owner_id"], bob_id);
    // Analysts read only; partners see no customer that is not shared with them.
    let (_, analyst) = app.user("analyst");
    app.post("/api/v1/accounts", &analyst, &json!({"name": "x"}))
        .problem(403);
    let (_, partner) = app.user("partner");
    assert_eq!(
        ids(&app.get("/api/v1/accounts", &partner).json()),
        Vec::<String>::new()
    );
    app.get(&path, &partner).problem(404);
}

#[test]
fn a_reps_todo_list_is_their_open_tasks_by_due_date() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let (other_id, _) = app.user("sales_rep");
    let contact = created(
        &app,
        "/api/v1/contacts",
        &rep,
        json!({"first_name": "Client"}),
    );
    let link = json!([{"entity_type": "contact", "entity_id": id(&contact)}]);
    let later = created(
        &app,
        "/api/v1/activities",
        &rep,
        json!({"kind": "task", "subject": "Send proposal", "due_at": "2030-01-10T09:00:00Z", "links": link}),
    );
    let sooner = created(
        &app,
        "/api/v1/activities",
        &rep,
        json!({"kind": "task", "subject": "Call back", "due_at": "2030-01-05T09:00:00+02:00", "links": link}),
    );
    created(
        &app,
        "/api/v1/activities",
        &rep,
        json!({"kind": "task", "subject": "Far future", "due_at": "2031-01-01T00:00:00Z"}),
    );
    created(
        &app,
        "/api/v1/activities",
        &rep,
        json!({"kind": "task", "subject": "Someone else's", "due_at": "2030-01-01T00:00:00Z", "assignee_id": other_id}),
    );
    let done = created(
        &app,
        "/api/v1/activities",
        &rep,
        json!({"kind": "task", "subject": "Done already", "due_at": "2030-01-02T00:00:00Z"}),
    );
    let res = app.patch(
        &format!("/api/v1/activities/{}", id(&done)),
        &rep,
        &json!({"status": "completed", "outcome": "sent"}),
    );
    assert!(res.json()["completed_at"].is_string());

    let todo = app.get("/api/v1/activities?assignee_id=me&status=open&due_before=2030-12-31T00:00:00Z&sort=due_at", &rep).json();
    assert_eq!(ids(&todo), vec![id(&sooner), id(&later)]);
    assert_eq!(todo["data"][0]["due_at"], "2030-01-05T07:00:00.000000Z");

    let paged = app
        .get(
            "/api/v1/activities?assignee_id=me&sort=due_at&limit=2",
            &rep,
        )
        .json();
    let cursor = paged["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rest = app
        .get(
            &format!("/api/v1/activities?assignee_id=me&sort=due_at&limit=2&cursor={cursor}"),
            &rep,
        )
        .json();
    assert_eq!(ids(&rest).len(), 2, "{rest}");

    let timeline = app
        .get(&format!("/api/v1/contacts/{}/timeline", id(&contact)), &rep)
        .json();
    let kinds: Vec<&str> = timeline["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["activity.task", "activity.task", "contact.created"]
    );
    app.post(
        "/api/v1/activities",
        &rep,
        &json!({"kind": "task", "subject": "x", "due_at": "tomorrow"}),
    )
    .problem(422);
    app.post("/api/v1/activities", &rep, &json!({"kind": "call", "subject": "x", "links": [{"entity_type": "account", "entity_id": "01900000-0000-7000-8000-000000000009"}]})).problem(422);
}

#[test]
fn the_timeline_shows_field_changes_newest_first_and_households_their_members() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let home = created(
        &app,
        "/api/v1/households",
        t,
        json!({"name": "The Lees", "address": {"city": "Leeds", "country": "GB"}}),
    );
    let c = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Sam", "last_name": "Lee", "household_id": id(&home)}),
    );
    app.patch(
        &format!("/api/v1/contacts/{}", id(&c)),
        t,
        &json!({"lifecycle_stage": "customer"}),
    );
    let tl = app
        .get(&format!("/api/v1/contacts/{}/timeline", id(&c)), t)
        .json();
    assert_eq!(tl["data"][0]["kind"], "contact.updated");
    assert_eq!(tl["data"][0]["data"]["lifecycle_stage"]["to"], "customer");
    assert_eq!(tl["data"][1]["kind"], "contact.created");
    let h = app
        .get(&format!("/api/v1/households/{}", id(&home)), t)
        .json();
    assert_eq!(h["member_ids"], json!([id(&c)]));
    app.delete(&format!("/api/v1/households/{}", id(&home)), t)
        .problem(409);
    app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "X", "household_id": "01900000-0000-7000-8000-000000000002"}),
    )
    .problem(422);
}

#[test]
fn products_bundles_and_price_books() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let laptop = created(
        &app,
        "/api/v1/products",
        t,
        json!({"sku": "LAP-14", "name": "Laptop 14", "family": "hardware", "warranty_months": 24}),
    );
    let dock = created(
        &app,
        "/api/v1/products",
        t,
        json!({"sku": "DOCK-1", "name": "Dock", "family": "hardware"}),
    );
    let kit = created(
        &app,
        "/api/v1/products",
        t,
        json!({"sku": "KIT-1", "name": "Desk kit", "components": [
        {"product_id": id(&laptop), "quantity": 1}, {"product_id": id(&dock), "quantity": 2}]}),
    );
    assert_eq!(kit["components"].as_array().map(Vec::len), Some(2));
    assert_eq!(kit["unit"], "each");
    // A bundle cannot contain itself, even through another bundle.
    let outer = created(
        &app,
        "/api/v1/products",
        t,
        json!({"sku": "KIT-2", "name": "Big kit", "components": [{"product_id": id(&kit), "quantity": 1}]}),
    );
    let p = app
        .patch(
            &format!("/api/v1/products/{}", id(&kit)),
            t,
            &json!({"components": [{"product_id": id(&outer), "quantity": 1}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "cycle");
    app.post(
        "/api/v1/products",
        t,
        &json!({"sku": "LAP-14", "name": "Again"}),
    )
    .problem(409);
    assert_eq!(
        ids(&app.get("/api/v1/products?q=desk", t).json()),
        vec![id(&kit)]
    );

    let list = created(
        &app,
        "/api/v1/price-books",
        t,
        json!({"name": "List 2027", "is_default": true, "prices": [
        {"product_id": id(&laptop), "currency": "EUR", "unit_price": 129900},
        {"product_id": id(&laptop), "currency": "USD", "unit_price": 139900}]}),
    );
    assert_eq!(list["prices"].as_array().map(Vec::len), Some(2));
    let partner = created(
        &app,
        "/api/v1/price-books",
        t,
        json!({"name": "Partner 2027", "is_default": true}),
    );
    assert_eq!(partner["is_default"], true);
    assert_eq!(
        app.get(&format!("/api/v1/price-books/{}", id(&list)), t)
            .json()["is_default"],
        false
    );
    let p = app.post("/api/v1/price-books", t, &json!({"name": "Bad", "prices": [{"product_id": id(&dock), "currency": "euro", "unit_price": -1}]})).problem(422);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["prices[0].currency", "prices[0].unit_price"]);
    let (_, rep) = app.user("sales_rep");
    assert_eq!(app.get("/api/v1/price-books", &rep).status, 200);
    app.post("/api/v1/products", &rep, &json!({"sku": "X", "name": "X"}))
        .problem(403);
}

#[test]
fn custom_fields_are_validated_returned_filtered_and_described() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let field = |body: Value| app.post("/api/v1/meta/objects/contact/fields", t, &body);
    assert_eq!(field(json!({"key": "shoe_size", "label": "Shoe size", "field_type": "number", "min": 15, "max": 60})).status, 201);
    assert_eq!(field(json!({"key": "tier", "field_type": "picklist", "options": ["gold", "silver"], "required": true})).status, 201);
    assert_eq!(field(json!({"key": "interests", "field_type": "multi_picklist", "options": ["golf", "chess", "sailing"]})).status, 201);
    assert_eq!(
        field(json!({"key": "loyalty_id", "field_type": "text", "unique": true})).status,
        201
    );
    assert_eq!(
        field(json!({"key": "lifetime_value", "field_type": "money"})).status,
        201
    );
    field(json!({"key": "tier", "field_type": "text"})).problem(409);
    field(json!({"key": "Bad Key", "field_type": "text"})).problem(422);
    field(json!({"key": "colour", "field_type": "picklist"})).problem(422);

    let before = app.count("contacts");
    // Wrong types, out-of-range values, unknown fields and a missing required field: 422, nothing written.
    let p = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "custom": {"tier": "gold", "shoe_size": "big"}}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "custom.shoe_size");
    let p = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "custom": {"tier": "bronze", "shoe_size": 99}}),
        )
        .problem(422);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["custom.shoe_size", "custom.tier"]);
    app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "A", "custom": {"tier": "gold", "favourite": 1}}),
    )
    .problem(422);
    let p = app
        .post("/api/v1/contacts", t, &json!({"first_name": "A"}))
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "custom.tier");
    assert_eq!(app.count("contacts"), before);

    let a = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Ann", "custom": {"tier": "gold", "shoe_size": 38, "interests": ["golf", "chess"], "loyalty_id": "L-1", "lifetime_value": {"amount": 150000, "currency": "EUR"}}}),
    );
    assert_eq!(a["custom"]["shoe_size"], 38);
    assert_eq!(a["custom"]["interests"], json!(["golf", "chess"]));
    let b = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Bo", "custom": {"tier": "silver", "shoe_size": 44, "interests": ["sailing"]}}),
    );
    app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "Cy", "custom": {"tier": "gold", "loyalty_id": "L-1"}}),
    )
    .problem(409);

    assert_eq!(
        ids(&app.get("/api/v1/contacts?custom.tier=gold", t).json()),
        vec![id(&a)]
    );
    assert_eq!(
        ids(&app.get("/api/v1/contacts?custom.shoe_size=44", t).json()),
        vec![id(&b)]
    );
    assert_eq!(
        ids(&app.get("/api/v1/contacts?custom.interests=chess", t).json()),
        vec![id(&a)]
    );
    app.get("/api/v1/contacts?custom.nope=1", t).problem(400);
    app.get("/api/v1/contacts?custom.shoe_size=big", t)
        .problem(400);

    let res = app.patch(
        &format!("/api/v1/contacts/{}", id(&b)),
        t,
        &json!({"custom": {"tier": "gold", "shoe_size": null}}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.json()["custom"].get("shoe_size").is_none());
    assert_eq!(
        ids(&app
            .get("/api/v1/contacts?custom.tier=gold&sort=first_name", t)
            .json()),
        vec![id(&a), id(&b)]
    );

    // Sorting by a custom field, numeric and text, across pages; records without a value sort first.
    let c = created(
        &app,
        "/api/v1/contacts",
        t,
        json!({"first_name": "Cy", "custom": {"tier": "silver", "shoe_size": 41}}),
    );
    let by_size = app.get("/api/v1/contacts?sort=custom.shoe_size", t).json();
    assert_eq!(ids(&by_size), vec![id(&b), id(&a), id(&c)]);
    let mut seen = vec![];
    let mut url = "/api/v1/contacts?sort=-custom.shoe_size&limit=1".to_string();
    loop {
        let page = app.get(&url, t).json();
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cur) => {
                url = format!("/api/v1/contacts?sort=-custom.shoe_size&limit=1&cursor={cur}")
            }
            None => break,
        }
    }
    assert_eq!(seen, vec![id(&c), id(&a), id(&b)]);
    let by_tier = app.get("/api/v1/contacts?sort=-custom.tier,first_name", t);
    by_tier.problem(400);
    let by_tier = app
        .get("/api/v1/contacts?sort=-custom.tier&limit=2", t)
        .json();
    assert_eq!(ids(&by_tier)[0], id(&c));
    app.get("/api/v1/contacts?sort=custom.interests", t)
        .problem(400);
    app.get("/api/v1/contacts?sort=custom.nope", t).problem(400);

    let meta = app.get("/api/v1/meta/objects", t).json();
    let contact = meta
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["object"] == "contact")
        .cloned()
        .unwrap_or_default();
    let tier = contact["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["key"] == "tier")
        .cloned()
        .unwrap_or_default();
    assert_eq!(tier["custom"], true);
    assert_eq!(tier["options"], json!(["gold", "silver"]));
    assert!(contact["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f["key"] == "emails" && f["custom"] == false));
    let (_, rep) = app.user("sales_rep");
    app.post(
        "/api/v1/meta/objects/contact/fields",
        &rep,
        &json!({"key": "x", "field_type": "text"}),
    )
    .problem(403);
}
