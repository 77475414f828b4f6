//! The HTTP layer follows the error contract too, every response carries security
//! headers, and once-shown secrets are not kept for replays.

use crm_tests::TestApp;
use serde_json::json;

#[test]
fn responses_carry_security_headers_and_api_responses_are_not_cached() {
    let app = TestApp::start();
    let api = app.get("/api/v1/users/me", &app.admin_token);
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(api.header("cache-control"), Some("no-store"));
    let csp = api.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let missing = app.send("GET", "/api/v1/nowhere", None, &[], None);
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));
    let docs = app.send("GET", "/docs/", None, &[], None);
    assert_eq!(docs.status, 200);
    let csp = docs.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // The docs page never sends the spec to Swagger's online validator.
    let init = app.send("GET", "/docs/swagger-initializer.js", None, &[], None);
    assert!(
        init.text.contains("\"validatorUrl\": \"none\""),
        "{}",
        init.text
    );
}

#[test]
fn an_over_long_request_target_is_a_414_problem_and_headers_a_431() {
    let app = TestApp::start();
    let mapping = format!("{{\"a\":\"{}\"}}", "x".repeat(40_000));
    let res = app.send(
        "POST",
        &format!("/api/v1/imports?object=accounts&mapping={mapping}"),
        Some(&app.admin_token),
        &[],
        Some("{}"),
    );
    res.problem(414);
    let big = "y".repeat(40_000);
    let res = app.send(
        "GET",
        "/api/v1/users/me",
        Some(&app.admin_token),
        &[("X-Padding", &big)],
        None,
    );
    res.problem(431);
}

#[test]
fn the_longest_mapping_the_spec_allows_gets_a_problem_not_the_parsers_empty_400() {
    let app = TestApp::start();
    // 4,000 four-byte characters, percent-encoded: 48 KB of request target. Past 64 KiB
    // the HTTP parser itself would answer an empty 400; the spec's maxLength keeps every
    // allowed mapping below that, so the API's own 414 answers.
    let value: String = "\u{1F600}".repeat(3_990);
    let mapping = format!("{{\"a\":\"{value}\"}}");
    let encoded: String = mapping.bytes().map(|b| format!("%{b:02X}")).collect();
    let res = app.upload(
        &format!("/api/v1/imports?object=accounts&mapping={encoded}"),
        "text/csv",
        b"name\nAcme\n",
    );
    res.problem(414);
    let over = format!("{{\"a\":\"{}\"}}", "x".repeat(4_000));
    let res = app.upload(
        &format!("/api/v1/imports?object=accounts&mapping={over}"),
        "text/csv",
        b"name\nAcme\n",
    );
    let problem = res.problem(422);
    assert_eq!(problem["errors"][0]["field"], "mapping", "{problem}");
}

#[test]
fn a_json_array_is_never_taken_for_an_object() {
    let app = TestApp::start();
    // serde would read ["token"] as {"refresh_token": "token"} and log out with it.
    for path in ["/api/v1/auth/logout", "/api/v1/auth/refresh"] {
        let res = app.send("POST", path, None, &[], Some("[\"abc\"]"));
        res.problem(422);
    }
    let res = app.post("/api/v1/teams", &app.admin_token, &json!(["Sales"]));
    res.problem(422);
    let teams = app.get("/api/v1/teams", &app.admin_token).json();
    assert_eq!(teams["data"].as_array().map(Vec::len), Some(0), "{teams}");
}

#[test]
fn text_with_control_characters_is_refused_and_nothing_is_stored() {
    let app = TestApp::start();
    let team = app
        .post("/api/v1/teams", &app.admin_token, &json!({"name": "Sales"}))
        .json();
    let path = format!("/api/v1/teams/{}", team["id"].as_str().unwrap_or_default());
    let res = app.patch(
        &path,
        &app.admin_token,
        &json!({"name": "Sa\u{0089}les\u{0096}"}),
    );
    let p = res.problem(422);
    assert_eq!(p["errors"][0]["field"], "name");
    assert_eq!(app.get(&path, &app.admin_token).json()["name"], "Sales");
    let res = app.post(
        "/api/v1/accounts",
        &app.admin_token,
        &json!({"name": "Acme\u{0007}"}),
    );
    res.problem(422);
    assert_eq!(app.count("accounts"), 0);
    // Line breaks and tabs are text, not control.
    let ok = app.post(
        "/api/v1/accounts",
        &app.admin_token,
        &json!({"name": "Acme", "billing_address": {"street": "1 Main St\nUnit 2\tRear"}}),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
}

#[test]
fn a_replayed_api_key_creation_says_the_secret_was_shown_once() {
    let app = TestApp::start();
    let key = [("Idempotency-Key", "make-key-1")];
    let body = json!({"name": "ci"}).to_string();
    let first = app.send(
        "POST",
        "/api/v1/api-keys",
        Some(&app.admin_token),
        &key,
        Some(&body),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.json()["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(secret.starts_with("crm_"));
    let again = app.send(
        "POST",
        "/api/v1/api-keys",
        Some(&app.admin_token),
        &key,
        Some(&body),
    );
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert!(again.json()["secret"].is_null(), "{}", again.text);
    assert!(again.json()["secret_note"]
        .as_str()
        .unwrap_or("")
        .contains("shown once"));
    assert!(
        !app.all_stored_text().contains(&secret),
        "the secret is stored nowhere"
    );
}

#[test]
fn the_spec_describes_the_replay_of_an_api_key_creation_as_it_is_answered() {
    // The secret is shown once and never stored: a replay answers `secret: null` with a
    // `secret_note`, and the response schema must say both may come.
    let app = TestApp::start();
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let created = &spec["components"]["schemas"]["CreatedApiKey"];
    let own = created["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["properties"]["secret"].is_object())
        .unwrap_or_else(|| panic!("no secret in {created}"));
    let secret = &own["properties"]["secret"];
    assert!(
        secret["type"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("null")) && types.contains(&json!("string"))),
        "a replay answers secret: null, so the schema must allow it: {secret}"
    );
    assert!(
        own["properties"]["secret_note"]["type"]
            .as_array()
            .is_some_and(|types| types.contains(&json!("string"))),
        "{own}"
    );
    let required = own["required"].as_array().cloned().unwrap_or_default();
    assert!(!required.contains(&json!("secret_note")), "{own}");
}

/// A mail gateway's key is shown once too: a replayed create does not store or show it.
#[test]
fn a_replayed_mail_gateway_create_neither_stores_nor_shows_its_key() {
    let app = TestApp::start();
    let key = [("Idempotency-Key", "gateway-1")];
    let body = json!({"name": "Postfix"}).to_string();
    let send = || {
        app.send(
            "POST",
            "/api/v1/mail-gateways",
            Some(&app.admin_token),
            &key,
            Some(&body),
        )
    };
    let first = send();
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.json()["key"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("crm_mgw_"), "{}", first.text);
    let again = send();
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert!(again.json()["key"].is_null(), "{}", again.text);
    assert!(
        !app.all_stored_text().contains(&secret),
        "the gateway key is stored nowhere in plaintext"
    );
}
