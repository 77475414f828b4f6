//! Integrations: upserts by external key and email, batch and composite writes, exports.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> crm_tests::Resp {
    app.send("PUT", path, Some(token), &[], Some(&body.to_string()))
}

#[test]
fn upsert_by_external_key_creates_then_updates() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let first = put(
        &app,
        "/api/v1/accounts/external/erp/C-1001",
        t,
        &json!({"name": "Acme"}),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json()["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(first.json()["external_source"], "erp");
    assert_eq!(first.json()["external_id"], "C-1001");
    assert_eq!(
        first.header("location"),
        Some(format!("/api/v1/accounts/{id}").as_str())
    );

    let second = put(
        &app,
        "/api/v1/accounts/external/erp/C-1001",
        t,
        &json!({"industry": "Retail"}),
    );
    assert_eq!(second.status, 200, "{}", second.text);
    let updated = second.json();
    assert_eq!(updated["id"], id.as_str(), "the same record is updated");
    assert_eq!(updated["name"], "Acme");
    assert_eq!(updated["industry"], "Retail");
    assert_eq!(updated["version"], 2);
    assert_eq!(app.count("accounts"), 1);

    // Sending the same values again changes nothing: no new version, no event, no webhook.
    let events = app.count("events");
    let same = put(
        &app,
        "/api/v1/accounts/external/erp/C-1001",
        t,
        &json!({"industry": "Retail"}),
    );
    assert_eq!(same.status, 200, "{}", same.text);
    assert_eq!(same.json()["version"], 2);
    assert_eq!(app.count("events"), events);

    // Another system's key is another record; a contradicting key in the body is a 422.
    let other = put(
        &app,
        "/api/v1/accounts/external/billing/C-1001",
        t,
        &json!({"name": "Acme Billing"}),
    );
    assert_eq!(other.status, 201);
    put(
        &app,
        "/api/v1/accounts/external/erp/C-1001",
        t,
        &json!({"external_id": "C-9"}),
    )
    .problem(422);
    // A stale If-Match on the update path is a 412.
    let stale = app.send(
        "PUT",
        "/api/v1/accounts/external/erp/C-1001",
        Some(t),
        &[("If-Match", "\"v1\"")],
        Some("{\"name\": \"Acme Ltd\"}"),
    );
    stale.problem(412);
    // The key is visible and settable through the ordinary endpoints too.
    let same_key = app.post(
        "/api/v1/accounts",
        t,
        &json!({"name": "Dup", "external_source": "erp", "external_id": "C-1001"}),
    );
    same_key.problem(409);
    app.post(
        "/api/v1/accounts",
        t,
        &json!({"name": "Half", "external_source": "erp"}),
    )
    .problem(422);
    put(&app, "/api/v1/widgets/external/erp/1", t, &json!({})).problem(404);
}

#[test]
fn contacts_upsert_by_primary_email() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let created = put(
        &app,
        "/api/v1/contacts/by-email?email=Ada%40Example.com",
        t,
        &json!({"first_name": "Ada"}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["emails"][0]["email"], "ada@example.com");
    let updated = put(
        &app,
        "/api/v1/contacts/by-email?email=ada@example.com",
        t,
        &json!({"last_name": "Lovelace"}),
    );
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json()["id"], created.json()["id"]);
    assert_eq!(updated.json()["first_name"], "Ada");
    assert_eq!(app.count("contacts"), 1);
    // In a composite too, with the address percent-encoded as in any query string.
    let composite = app.post(
        "/api/v1/composite",
        t,
        &json!({"requests": [{"reference_id": "c", "method": "PUT",
            "path": "/api/v1/contacts/by-email?email=ada%2Bwork@example.com",
            "body": {"first_name": "Ada"}}]}),
    );
    assert_eq!(composite.status, 200, "{}", composite.text);
    let result = &composite.json()["results"][0];
    assert_eq!(result["status"], 201, "{result}");
    assert_eq!(result["body"]["emails"][0]["email"], "ada+work@example.com");
    // Accounts are not matched by email: `/accounts/by-email` is only `/accounts/{id}`,
    // which takes no PUT.
    put(
        &app,
        "/api/v1/accounts/by-email?email=a@b.co",
        t,
        &json!({}),
    )
    .problem(405);
    // Without the email there is nothing to match on.
    put(&app, "/api/v1/contacts/by-email", t, &json!({})).problem(400);
}

#[test]
fn batch_reports_each_item_and_all_or_none_rolls_back_on_one_bad_item() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let existing = app
        .post("/api/v1/accounts", t, &json!({"name": "Old"}))
        .json();
    let existing_id = existing["id"].as_str().unwrap_or_default();
    let items = json!([
        {"op": "create", "body": {"name": "New 1"}},
        {"op": "update", "id": existing_id, "body": {"name": "Old, renamed"}},
        {"op": "upsert", "external_source": "erp", "external_id": "7", "body": {"name": "Upserted"}},
        {"op": "create", "body": {"industry": "no name"}},
        {"op": "delete", "id": "01890000-0000-7000-8000-000000000000"},
    ]);
    let res = app.post("/api/v1/accounts/batch", t, &json!({"items": items}));
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, vec![201, 200, 201, 422, 404]);
    assert_eq!(body["succeeded"], 3);
    assert_eq!(body["failed"], 2);
    assert_eq!(body["results"][3]["error"]["errors"][0]["field"], "name");
    assert_eq!(app.count("accounts"), 3);

    // all_or_none: the bad fourth item undoes the three before it.
    let events_before = app.count("events");
    let res = app.post(
        "/api/v1/accounts/batch",
        t,
        &json!({"all_or_none": true, "items": [
            {"op": "create", "body": {"name": "A"}},
            {"op": "update", "id": existing_id, "body": {"name": "Changed again"}},
            {"op": "upsert", "external_source": "erp", "external_id": "8", "body": {"name": "B"}},
            {"op": "create", "body": {"employee_count": -1, "name": "C"}},
        ]}),
    );
    let p = res.problem(422);
    assert_eq!(p["failed_index"], 3);
    assert!(p["detail"]
        .as_str()
        .unwrap_or("")
        .contains("nothing was written"));
    assert_eq!(app.count("accounts"), 3, "nothing was written");
    assert_eq!(
        app.count("events"),
        events_before,
        "no event escaped the rollback"
    );
    let old = app
        .get(&format!("/api/v1/accounts/{existing_id}"), t)
        .json();
    assert_eq!(old["name"], "Old, renamed");

    // Over the limit: 413 naming it; nothing written.
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"op": "create", "body": {"name": format!("n{i}")}}))
        .collect();
    let p = app
        .post("/api/v1/accounts/batch", t, &json!({"items": many}))
        .problem(413);
    assert!(p["detail"].as_str().unwrap_or("").contains("200"));
    assert_eq!(app.count("accounts"), 3);
    // Roles: an analyst may not write through a batch.
    let (_, analyst) = app.user("analyst");
    app.post(
        "/api/v1/accounts/batch",
        &analyst,
        &json!({"items": [{"op": "create", "body": {"name": "x"}}]}),
    )
    .problem(403);
}

#[test]
fn a_batch_item_whose_body_breaks_a_field_rule_fails_alone_as_the_spec_says() {
    let app = TestApp::start();
    let t = &app.admin_token;
    // `preferred_language` is 2 to 35 characters: the first body breaks that rule.
    let res = app.post(
        "/api/v1/contacts/batch",
        t,
        &json!({"items": [
            {"op": "create", "body": {"first_name": "Short", "preferred_language": "x"}},
            {"op": "create", "body": {"first_name": "Fine", "preferred_language": "en"}}]}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let results = res.json()["results"].clone();
    assert_eq!(results[0]["status"], 422, "{results}");
    assert_eq!(
        results[0]["error"]["errors"][0]["field"],
        "preferred_language"
    );
    assert_eq!(results[1]["status"], 201, "{results}");
    assert_eq!(app.count("contacts"), 1);

    // So the spec does not make the item body's field rules rules of the request: the body is
    // an object checked per item, and the operation says so.
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let body = &spec["components"]["schemas"]["ContactBatchItem"]["properties"]["body"];
    assert_eq!(body["type"], json!(["object", "null"]), "{body}");
    assert_eq!(body["additionalProperties"], true, "{body}");
    assert!(
        body.get("$ref").is_none() && body.get("oneOf").is_none(),
        "{body}"
    );
    let about = body["description"].as_str().unwrap_or_default();
    assert!(
        about.contains("ContactPatch") && about.contains("422"),
        "{about}"
    );
}

#[test]
fn composite_uses_earlier_results_and_rolls_back_as_one() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let res = app.post("/api/v1/composite", t, &json!({"requests": [
        {"reference_id": "acct", "method": "POST", "path": "/api/v1/accounts", "body": {"name": "Initech"}},
        {"reference_id": "person", "method": "POST", "path": "/api/v1/contacts", "body": {
            "first_name": "Peter", "accounts": [{"account_id": "@{acct.id}", "role": "buyer"}]}},
        {"reference_id": "again", "method": "PATCH", "path": "/api/v1/accounts/@{acct.id}", "body": {"industry": "Software"}},
        {"reference_id": "read", "method": "GET", "path": "/api/v1/contacts/@{person.id}"},
    ]}));
    assert_eq!(res.status, 200, "{}", res.text);
    let results = res.json()["results"].clone();
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[2]["body"]["industry"], "Software");
    assert_eq!(
        results[3]["body"]["accounts"][0]["account_id"],
        results[0]["body"]["id"]
    );

    // A failing step undoes the steps before it.
    let (accounts, contacts) = (app.count("accounts"), app.count("contacts"));
    let p = app.post("/api/v1/composite", t, &json!({"requests": [
        {"reference_id": "acct", "method": "POST", "path": "/api/v1/accounts", "body": {"name": "Globex"}},
        {"reference_id": "bad", "method": "POST", "path": "/api/v1/contacts", "body": {
            "first_name": "X", "accounts": [{"account_id": "@{acct.id}", "role": "buyer"}], "emails": [{"email": "not-an-email"}]}},
    ]})).problem(422);
    assert_eq!(p["failed_reference_id"], "bad");
    assert_eq!(
        (app.count("accounts"), app.count("contacts")),
        (accounts, contacts)
    );

    // A reference to a step that does not exist (or comes later) is a 422 before anything runs.
    let p = app.post("/api/v1/composite", t, &json!({"requests": [
        {"reference_id": "c", "method": "POST", "path": "/api/v1/contacts", "body": {"first_name": "Y", "household_id": "@{nope.id}"}},
    ]})).problem(422);
    assert!(p["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("nope"));
    // A referenced field that is absent is a 422 at run time, with the rollback.
    app.post("/api/v1/composite", t, &json!({"requests": [
        {"reference_id": "a", "method": "POST", "path": "/api/v1/accounts", "body": {"name": "Hooli"}},
        {"reference_id": "b", "method": "PATCH", "path": "/api/v1/accounts/@{a.parent_id}", "body": {}},
    ]})).problem(422);
    assert_eq!(app.count("accounts"), accounts);
    let too_many: Vec<Value> = (0..26).map(|i| json!({"reference_id": format!("r{i}"), "method": "POST", "path": "/api/v1/accounts", "body": {"name": "n"}})).collect();
    app.post("/api/v1/composite", t, &json!({"requests": too_many}))
        .problem(422);
}

#[test]
fn exports_stream_ndjson_and_csv_with_list_filters_and_visibility() {
    let app = TestApp::start();
    let t = &app.admin_token;
    for i in 0..450 {
        let industry = if i % 3 == 0 { "Retail" } else { "Energy" };
        app.post(
            "/api/v1/accounts",
            t,
            &json!({"name": format!("Company {i:03}"), "industry": industry, "tags": ["a", "b"]}),
        );
    }
    let res = app.send(
        "GET",
        "/api/v1/exports/accounts?industry=Retail",
        Some(t),
        &[("Accept", "application/x-ndjson")],
        None,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = res
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        lines.len(),
        150,
        "every Retail account, across pages of 200"
    );
    assert!(lines.iter().all(|l| l["industry"] == "Retail"));
    let mut names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), 150, "no record twice");

    let csv = app.send(
        "GET",
        "/api/v1/exports/accounts?sort=-name",
        Some(t),
        &[("Accept", "text/csv")],
        None,
    );
    assert_eq!(csv.status, 200);
    let mut rows = csv.text.lines();
    let header: Vec<&str> = rows.next().unwrap_or("").split(',').collect();
    assert!(header.contains(&"name") && header.contains(&"id"));
    let name_col = header.iter().position(|h| *h == "name").unwrap_or(0);
    let first = rows.next().unwrap_or("");
    assert_eq!(first.split(',').nth(name_col), Some("Company 449"));
    assert_eq!(csv.text.lines().count(), 451);

    app.send(
        "GET",
        "/api/v1/exports/accounts?no_such=1",
        Some(t),
        &[],
        None,
    )
    .problem(400);
    // Partners see no customers yet: their export is empty, not a leak.
    let (_, partner) = app.user("partner");
    let res = app.send("GET", "/api/v1/exports/accounts", Some(&partner), &[], None);
    assert_eq!((res.status, res.text.as_str()), (200, ""));
}

#[test]
fn an_erp_keeps_the_product_catalogue_in_sync_by_its_own_ids() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let created = put(
        &app,
        "/api/v1/products/external/erp/P-1",
        t,
        &json!({"sku": "W-1", "name": "Widget"}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let updated = put(
        &app,
        "/api/v1/products/external/erp/P-1",
        t,
        &json!({"name": "Widget Pro"}),
    );
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(
        (
            updated.json()["sku"].clone(),
            updated.json()["name"].clone()
        ),
        (json!("W-1"), json!("Widget Pro"))
    );
    assert_eq!(app.count("products"), 1);
    // Only those who manage the catalogue may write it, through any path.
    let (_, rep) = app.user("sales_rep");
    put(
        &app,
        "/api/v1/products/external/erp/P-2",
        &rep,
        &json!({"sku": "W-2", "name": "x"}),
    )
    .problem(403);
    app.post(
        "/api/v1/products/batch",
        &rep,
        &json!({"items": [{"op": "create", "body": {"sku": "W-3", "name": "y"}}]}),
    )
    .problem(403);
    assert_eq!(app.count("products"), 1);
}
