//! Sessions that end when they should, logins that cannot be guessed at speed, and
//! client addresses that a client cannot choose.

use crm_core::jobs::JobRegistry;
use crm_tests::{TestApp, ADMIN_EMAIL};
use serde_json::{json, Value};

fn login_pair(app: &TestApp, email: &str, password: &str) -> Value {
    let body = json!({"email": email, "password": password}).to_string();
    let res = app.send("POST", "/api/v1/auth/login", None, &[], Some(&body));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    res.json()
}

fn refresh_status(app: &TestApp, refresh: &Value) -> u16 {
    let body = json!({"refresh_token": refresh}).to_string();
    app.send("POST", "/api/v1/auth/refresh", None, &[], Some(&body))
        .status
}

fn new_user(app: &TestApp, role: &str) -> (String, String) {
    let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
    let res = app.post(
        "/api/v1/users",
        &app.admin_token,
        &json!({"email": email, "name": "Someone", "role": role, "password": "first-password-123"}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    (res.json()["id"].as_str().unwrap_or_default().into(), email)
}

#[test]
fn a_new_password_a_new_role_or_deactivation_ends_the_users_sessions() {
    let app = TestApp::start();
    let (id, email) = new_user(&app, "sales_rep");
    let user = format!("/api/v1/users/{id}");

    let tokens = login_pair(&app, &email, "first-password-123");
    let access = tokens["access_token"].as_str().unwrap_or_default();
    assert_eq!(app.get("/api/v1/users/me", access).status, 200);
    let change = json!({"password": "second-password-456"});
    assert_eq!(app.patch(&user, &app.admin_token, &change).status, 200);
    assert_eq!(
        refresh_status(&app, &tokens["refresh_token"]),
        401,
        "password change"
    );
    // The access token in hand stops working too, not only when it expires.
    let gone = app.get("/api/v1/users/me", access).problem(401);
    assert!(
        gone["detail"]
            .as_str()
            .unwrap_or("")
            .contains("session was ended"),
        "{gone}"
    );

    let tokens = login_pair(&app, &email, "second-password-456");
    assert_eq!(
        app.patch(&user, &app.admin_token, &json!({"role": "agent"}))
            .status,
        200
    );
    assert_eq!(
        refresh_status(&app, &tokens["refresh_token"]),
        401,
        "role change"
    );
    let access = tokens["access_token"].as_str().unwrap_or_default();
    app.get("/api/v1/users/me", access).problem(401);
    // A new login works at once, with the new role.
    let fresh = login_pair(&app, &email, "second-password-456");
    let me = app
        .get(
            "/api/v1/users/me",
            fresh["access_token"].as_str().unwrap_or_default(),
        )
        .json();
    assert_eq!(me["role"], "agent", "{me}");

    let tokens = login_pair(&app, &email, "second-password-456");
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let key = app
        .post("/api/v1/api-keys", access, &json!({"name": "script"}))
        .json();
    let secret = key["secret"].as_str().unwrap_or_default().to_string();
    assert_eq!(app.get("/api/v1/users/me", &secret).status, 200);
    assert_eq!(
        app.patch(&user, &app.admin_token, &json!({"active": false}))
            .status,
        200
    );
    assert_eq!(
        refresh_status(&app, &tokens["refresh_token"]),
        401,
        "deactivation"
    );
    app.get("/api/v1/users/me", &secret).problem(401);
    // Reactivating does not bring the old key back.
    assert_eq!(
        app.patch(&user, &app.admin_token, &json!({"active": true}))
            .status,
        200
    );
    app.get("/api/v1/users/me", &secret).problem(401);
}

#[test]
fn repeated_failed_logins_lock_the_account_and_the_address_for_a_while() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.login_max_failures = 3);
    let (_, email) = new_user(&app, "agent");
    let attempt = |password: &str| {
        let body = json!({"email": email, "password": password}).to_string();
        app.send("POST", "/api/v1/auth/login", None, &[], Some(&body))
    };
    for _ in 0..3 {
        attempt("wrong-password").problem(401);
    }
    // Locked: even the right password is refused until the lockout ends.
    let locked = attempt("first-password-123");
    locked.problem(429);
    let wait: u64 = locked
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(wait > 0 && wait <= 900, "Retry-After {wait}");
    // The address that guessed is locked for other accounts too.
    let body = json!({"email": ADMIN_EMAIL, "password": crm_tests::ADMIN_PASSWORD}).to_string();
    app.send("POST", "/api/v1/auth/login", None, &[], Some(&body))
        .problem(429);
}

#[test]
fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.login_max_failures = 2;
        c.trusted_proxies = vec!["127.0.0.1"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())];
    });
    let try_from = |client: &str, email: &str, password: &str| {
        let body = json!({"email": email, "password": password}).to_string();
        let xff = format!("{client}, 127.0.0.1");
        app.send(
            "POST",
            "/api/v1/auth/login",
            None,
            &[("X-Forwarded-For", &xff)],
            Some(&body),
        )
        .status
    };
    for _ in 0..2 {
        assert_eq!(
            try_from("203.0.113.5", "nobody@example.com", "x-x-x-x-x"),
            401
        );
    }
    assert_eq!(
        try_from("203.0.113.5", ADMIN_EMAIL, crm_tests::ADMIN_PASSWORD),
        429
    );
    // Another client behind the same proxy is not locked out by the first one's guesses.
    assert_eq!(
        try_from("198.51.100.7", ADMIN_EMAIL, crm_tests::ADMIN_PASSWORD),
        200
    );
}

#[test]
fn a_client_not_behind_a_trusted_proxy_cannot_choose_its_address() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.login_max_failures = 2);
    for i in 0..2 {
        let body = json!({"email": "nobody@example.com", "password": "x-x-x-x-x"}).to_string();
        let xff = format!("198.51.100.{i}");
        let res = app.send(
            "POST",
            "/api/v1/auth/login",
            None,
            &[("X-Forwarded-For", &xff)],
            Some(&body),
        );
        res.problem(401);
    }
    let body = json!({"email": ADMIN_EMAIL, "password": crm_tests::ADMIN_PASSWORD}).to_string();
    let res = app.send(
        "POST",
        "/api/v1/auth/login",
        None,
        &[("X-Forwarded-For", "192.0.2.99")],
        Some(&body),
    );
    res.problem(429);
}

#[test]
fn rejected_credentials_spend_the_senders_rate_limit() {
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.anonymous_rate_limit_per_minute = 5
    });
    let mut statuses = vec![];
    for i in 0..7 {
        let res = app.get("/api/v1/users/me", &format!("crm_guess{i}"));
        statuses.push(res.status);
    }
    // The harness's own login spent one token of the five.
    assert_eq!(statuses, vec![401, 401, 401, 401, 429, 429, 429]);
    // A valid credential is counted on its own bucket and still works.
    assert_eq!(app.get("/api/v1/users/me", &app.admin_token).status, 200);
}
