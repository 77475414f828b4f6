use crm_tests::TestApp;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_wrong_type_names_the_path_to_the_field_on_every_kind_of_write() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let field = |res: crm_tests::Resp| -> (String, String) {
        let p = res.problem(422);
        (
            p["errors"][0]["field"].as_str().unwrap_or("-").to_string(),
            p["errors"][0]["code"].as_str().unwrap_or("-").to_string(),
        )
    };
    let pair = |f: &str, c: &str| (f.to_string(), c.to_string());
    assert_eq!(
        field(app.post("/api/v1/contacts", t, &json!({"first_name": 5}))),
        pair("first_name", "invalid_type"),
        "the field, not the value 5"
    );
    assert_eq!(
        field(app.post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "emails": [{"email": "a@example.com"}, {"email": true}]})
        )),
        pair("emails[1].email", "invalid_type")
    );
    assert_eq!(
        field(app.post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "A", "emails": [{"email": "a@example.com", "colour": "red"}]})
        )),
        pair("emails[0].colour", "unknown_field")
    );
    assert_eq!(
        field(app.post(
            "/api/v1/orders",
            t,
            &json!({"lines": [{"product_id": "01900000-0000-7000-8000-000000000001", "quantity": "many"}]})
        )),
        pair("lines[0].quantity", "invalid_type")
    );
    // Bodies read from JSON already parsed (upserts, batch items) say the same.
    assert_eq!(
        field(app.put(
            "/api/v1/contacts/external/erp/c-1",
            t,
            &json!({"first_name": 5})
        )),
        pair("first_name", "invalid_type")
    );
    let batch = app.post(
        "/api/v1/contacts/batch",
        t,
        &json!({"items": [{"op": "create", "body": {"first_name": "A", "last_name": 7}}]}),
    );
    assert_eq!(batch.status, 200, "{}", batch.text);
    let error = &batch.json()["results"][0]["error"];
    assert_eq!(error["errors"][0]["field"], "last_name", "{error}");
    assert_eq!(app.count("contacts"), 0);
}

#[test]
fn malformed_json_wrong_types_and_missing_fields_are_problems_and_write_nothing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let before = app.count("users");
    let res = app.send("POST", "/api/v1/users", Some(t), &[], Some("{\"email\": "));
    let p = res.problem(400);
    assert!(p["detail"]
        .as_str()
        .unwrap_or("")
        .contains("malformed JSON"));

    let p = app
        .post(
            "/api/v1/users",
            t,
            &json!({"email": "a@example.com", "name": 5, "role": "agent"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "invalid_type");

    let p = app
        .post(
            "/api/v1/users",
            t,
            &json!({"name": "No Email", "role": "agent"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "email");
    assert_eq!(p["errors"][0]["code"], "required");

    let p = app
        .post(
            "/api/v1/users",
            t,
            &json!({"email": "a@example.com", "name": "A", "role": "agent", "colour": "red"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["code"], "unknown_field");

    let p = app
        .post(
            "/api/v1/users",
            t,
            &json!({"email": "not-an-email", "name": "", "role": "agent", "password": "short"}),
        )
        .problem(422);
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["email", "name", "password"]);
    assert_eq!(app.count("users"), before);
    assert_eq!(
        app.count("audit_log"),
        1,
        "only the bootstrap admin was audited"
    );
}

#[test]
fn unknown_sort_filter_and_bad_paging_are_400() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let p = app.get("/api/v1/users?sort=password_hash", t).problem(400);
    assert!(p["detail"]
        .as_str()
        .unwrap_or("")
        .contains("sortable fields"));
    app.get("/api/v1/users?favourite_colour=blue", t)
        .problem(400);
    app.get("/api/v1/users?limit=0", t).problem(400);
    app.get("/api/v1/users?limit=201", t).problem(400);
    app.get("/api/v1/users?cursor=definitely-not-a-cursor", t)
        .problem(400);
    app.get("/api/v1/users?active=maybe", t).problem(400);
    app.get("/api/v1/users/not-a-uuid", t).problem(400);
    app.get("/api/v1/users/01900000-0000-7000-8000-000000000000", t)
        .problem(404);
}

#[test]
fn keyset_pages_cover_every_record_once_in_sort_order() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let names = [
        "delta", "alpha", "echo", "charlie", "bravo", "foxtrot", "golf",
    ];
    for n in names {
        assert_eq!(
            app.post("/api/v1/teams", t, &json!({"name": n})).status,
            201
        );
    }
    for (sort, expect_desc) in [("name", false), ("-name", true)] {
        let mut seen = vec![];
        let mut url = format!("/api/v1/teams?limit=3&sort={sort}");
        loop {
            let page = app.get(&url, t).json();
            let batch = ids(&page);
            assert!(batch.len() <= 3);
            seen.extend(batch);
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("/api/v1/teams?limit=3&sort={sort}&cursor={c}"),
                None => break,
            }
        }
        let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        expected.sort();
        if expect_desc {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
    // A cursor from one sort order is refused under another.
    let page = app.get("/api/v1/teams?limit=2&sort=name", t).json();
    let c = page["next_cursor"].as_str().unwrap_or_default();
    app.get(&format!("/api/v1/teams?limit=2&sort=-name&cursor={c}"), t)
        .problem(400);
}

#[test]
fn idempotent_post_replays_the_first_response() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let body = json!({"name": "Field Sales"}).to_string();
    let key = [("Idempotency-Key", "create-field-sales-1")];
    let first = app.send("POST", "/api/v1/teams", Some(t), &key, Some(&body));
    assert_eq!(first.status, 201, "{}", first.text);
    let second = app.send("POST", "/api/v1/teams", Some(t), &key, Some(&body));
    assert_eq!(second.status, 201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json()["id"], second.json()["id"]);
    assert_eq!(first.header("location"), second.header("location"));
    assert_eq!(app.count("teams"), 1);

    let other = json!({"name": "Inside Sales"}).to_string();
    let p = app
        .send("POST", "/api/v1/teams", Some(t), &key, Some(&other))
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count("teams"), 1);

    // Without a key, a repeat is a new request (here, a name conflict).
    app.send("POST", "/api/v1/teams", Some(t), &[], Some(&body))
        .problem(409);
}

#[test]
fn stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let created = app.post("/api/v1/teams", t, &json!({"name": "Support"}));
    let id = created.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let etag_v1 = created.header("etag").unwrap_or_default().to_string();
    assert_eq!(etag_v1, "\"v1\"");

    let ok = app.send(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(t),
        &[("If-Match", &etag_v1)],
        Some(r#"{"name":"Support EMEA"}"#),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("etag"), Some("\"v2\""));

    let stale = app.send(
        "PATCH",
        &format!("/api/v1/teams/{id}"),
        Some(t),
        &[("If-Match", &etag_v1)],
        Some(r#"{"name":"Support APAC"}"#),
    );
    stale.problem(412);
    let now = app.get(&format!("/api/v1/teams/{id}"), t);
    assert_eq!(now.json()["name"], "Support EMEA");
    assert_eq!(now.header("etag"), Some("\"v2\""));
}

#[test]
fn soft_delete_hides_restore_brings_back_and_include_archived_shows() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let id = app
        .post("/api/v1/teams", t, &json!({"name": "Temp"}))
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(app.delete(&format!("/api/v1/teams/{id}"), t).status, 204);
    app.get(&format!("/api/v1/teams/{id}"), t).problem(404);
    let shown = app.get(&format!("/api/v1/teams/{id}?include_archived=true"), t);
    assert!(shown.json()["archived_at"].is_string());
    assert_eq!(
        ids(&app.get("/api/v1/teams", t).json()),
        Vec::<String>::new()
    );
    let all = app.get("/api/v1/teams?include_archived=true", t).json();
    assert_eq!(ids(&all), vec!["Temp"]);
    assert!(all["data"][0]["archived_at"].is_string());
    let restored = app.post(&format!("/api/v1/teams/{id}/restore"), t, &json!({}));
    assert_eq!(restored.status, 200);
    assert!(restored.json()["archived_at"].is_null());
    assert_eq!(ids(&app.get("/api/v1/teams", t).json()), vec!["Temp"]);
}

#[test]
fn oversize_bodies_are_413() {
    let app = TestApp::start_with(Default::default(), |c| c.body_limit_bytes = 4096);
    let t = &app.admin_token;
    let big = json!({"name": "x", "description": "y".repeat(10_000)});
    app.post("/api/v1/teams", t, &big).problem(413);
    let key = [("Idempotency-Key", "big-one")];
    app.send(
        "POST",
        "/api/v1/teams",
        Some(t),
        &key,
        Some(&big.to_string()),
    )
    .problem(413);
    assert_eq!(app.count("teams"), 0);
}

#[test]
fn every_change_is_audited_with_its_event_in_the_same_transaction() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let id = app
        .post("/api/v1/teams", t, &json!({"name": "Audit me"}))
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    app.patch(
        &format!("/api/v1/teams/{id}"),
        t,
        &json!({"description": "now described"}),
    );
    let log = app
        .get(
            &format!("/api/v1/audit-log?entity_id={id}&sort=occurred_at"),
            t,
        )
        .json();
    let actions: Vec<&str> = log["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["created", "updated"]);
    assert_eq!(
        log["data"][1]["changes"]["description"]["to"],
        "now described"
    );
    assert_eq!(log["data"][1]["actor_kind"], "user");
    assert_eq!(app.count("events"), app.count("audit_log"));
}

#[test]
fn user_email_conflicts_are_409() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let body = json!({"email": "Dup@Example.com", "name": "One", "role": "agent"});
    assert_eq!(app.post("/api/v1/users", t, &body).status, 201);
    let dup = json!({"email": "dup@example.com", "name": "Two", "role": "agent"});
    app.post("/api/v1/users", t, &dup).problem(409);
}
