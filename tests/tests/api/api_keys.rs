use crm_tests::TestApp;
use serde_json::json;

#[test]
fn an_api_key_is_shown_once_works_like_a_token_and_dies_when_revoked() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let res = app.post("/api/v1/api-keys", &rep, &json!({"name": "nightly sync"}));
    assert_eq!(res.status, 201, "{}", res.text);
    let created = res.json();
    let secret = created["secret"].as_str().unwrap_or_default().to_string();
    let id = created["id"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("crm_") && secret.len() > 40);
    assert!(secret.starts_with(created["prefix"].as_str().unwrap_or("?")));
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/api-keys/{id}").as_str())
    );

    // The key authenticates as its owner with the owner's role.
    let me = app.get("/api/v1/users/me", &secret);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["role"], "sales_rep");
    app.post(
        "/api/v1/users",
        &secret,
        &json!({"email": "x@example.com", "name": "x", "role": "admin"}),
    )
    .problem(403);

    // Listing never shows the secret; last use is recorded.
    let list = app.get("/api/v1/api-keys", &rep).json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert!(list["data"][0].get("secret").is_none());
    assert!(!list.to_string().contains(&secret));
    assert!(list["data"][0]["last_used_at"].is_string());

    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}"), &rep).status,
        204
    );
    let p = app.get("/api/v1/users/me", &secret).problem(401);
    assert!(p["detail"].as_str().unwrap_or("").contains("revoked"));
}

#[test]
fn users_see_and_revoke_only_their_own_keys_admins_all() {
    let app = TestApp::start();
    let (_, alice) = app.user("agent");
    let (_, bob) = app.user("marketer");
    let key = app
        .post("/api/v1/api-keys", &alice, &json!({"name": "alice"}))
        .json();
    let key_id = key["id"].as_str().unwrap_or_default();
    app.post("/api/v1/api-keys", &bob, &json!({"name": "bob"}));

    let bobs = app.get("/api/v1/api-keys", &bob).json();
    assert_eq!(bobs["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(bobs["data"][0]["name"], "bob");
    app.delete(&format!("/api/v1/api-keys/{key_id}"), &bob)
        .problem(404);

    let all = app.get("/api/v1/api-keys", &app.admin_token).json();
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{key_id}"), &app.admin_token)
            .status,
        204
    );
    app.get(
        "/api/v1/users/me",
        key["secret"].as_str().unwrap_or_default(),
    )
    .problem(401);
}

#[test]
fn bad_key_requests_are_rejected_without_writing() {
    let app = TestApp::start();
    let before = app.count("api_keys");
    app.post("/api/v1/api-keys", &app.admin_token, &json!({"name": ""}))
        .problem(422);
    let p = app
        .post(
            "/api/v1/api-keys",
            &app.admin_token,
            &json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "expires_at");
    app.get("/api/v1/users/me", "crm_not-a-real-key")
        .problem(401);
    assert_eq!(app.count("api_keys"), before);
}
