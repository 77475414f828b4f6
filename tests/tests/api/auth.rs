use crm_tests::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

fn login_body(email: &str, password: &str) -> String {
    json!({"email": email, "password": password}).to_string()
}

#[test]
fn login_returns_a_token_pair_that_works() {
    let app = TestApp::start();
    let res = app.send(
        "POST",
        "/api/v1/auth/login",
        None,
        &[],
        Some(&login_body(ADMIN_EMAIL, ADMIN_PASSWORD)),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap_or(0) > 0);
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("crt_")));
    let token = body["access_token"].as_str().unwrap_or_default();
    let me = app.get("/api/v1/users/me", token);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], ADMIN_EMAIL);
}

#[test]
fn wrong_password_and_unknown_email_are_401_problems() {
    let app = TestApp::start();
    for body in [
        login_body(ADMIN_EMAIL, "not-the-password"),
        login_body("nobody@example.com", "whatever"),
    ] {
        let res = app.send("POST", "/api/v1/auth/login", None, &[], Some(&body));
        let p = res.problem(401);
        assert_eq!(p["detail"], "wrong email or password");
    }
    let res = app.send(
        "POST",
        "/api/v1/auth/login",
        None,
        &[],
        Some(r#"{"email": "a@b.c"}"#),
    );
    let p = res.problem(422);
    assert_eq!(p["errors"][0]["field"], "password");
}

fn token_with(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[test]
fn expired_forged_and_alg_none_tokens_are_401() {
    let app = TestApp::start();
    let me = app.get("/api/v1/users/me", &app.admin_token).json();
    let sub = me["id"].as_str().unwrap_or_default();
    let now = chrono_now();
    let claims = |exp: i64| json!({"sub": sub, "role": "admin", "iat": now - 7200, "exp": exp, "jti": "x", "typ": "access", "iss": "crm", "aud": "crm-api"});

    let expired = token_with(claims(now - 3600), JWT_SECRET);
    let p = app.get("/api/v1/users/me", &expired).problem(401);
    assert!(p["detail"].as_str().unwrap_or("").contains("expired"));

    let forged = token_with(
        claims(now + 3600),
        "another-secret-another-secret-another-secret",
    );
    app.get("/api/v1/users/me", &forged).problem(401);

    // alg: none with a valid payload and no signature.
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(now + 3600))
    );
    app.get("/api/v1/users/me", &none).problem(401);

    // A good signature over an admin claim still works, proving the checks above are real.
    let good = token_with(claims(now + 3600), JWT_SECRET);
    assert_eq!(app.get("/api/v1/users/me", &good).status, 200);

    let res = app.send(
        "GET",
        "/api/v1/users/me",
        None,
        &[("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")],
        None,
    );
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::start();
    let first = app
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            &[],
            Some(&login_body(ADMIN_EMAIL, ADMIN_PASSWORD)),
        )
        .json();
    let r1 = first["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let body = |t: &str| json!({"refresh_token": t}).to_string();

    let second = app.send("POST", "/api/v1/auth/refresh", None, &[], Some(&body(&r1)));
    assert_eq!(second.status, 200, "{}", second.text);
    let r2 = second.json()["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(r1, r2);
    let access = second.json()["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(app.get("/api/v1/users/me", &access).status, 200);

    // Presenting the rotated token again is treated as theft: the new one dies too.
    app.send("POST", "/api/v1/auth/refresh", None, &[], Some(&body(&r1)))
        .problem(401);
    app.send("POST", "/api/v1/auth/refresh", None, &[], Some(&body(&r2)))
        .problem(401);
}

#[test]
fn logout_revokes_the_refresh_token() {
    let app = TestApp::start();
    let tokens = app
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            &[],
            Some(&login_body(ADMIN_EMAIL, ADMIN_PASSWORD)),
        )
        .json();
    let body = json!({"refresh_token": tokens["refresh_token"]}).to_string();
    assert_eq!(
        app.send("POST", "/api/v1/auth/logout", None, &[], Some(&body))
            .status,
        204
    );
    app.send("POST", "/api/v1/auth/refresh", None, &[], Some(&body))
        .problem(401);
}

#[test]
fn archived_and_deactivated_users_lose_access_at_once() {
    let app = TestApp::start();
    let (id, token) = app.user("agent");
    assert_eq!(app.get("/api/v1/users/me", &token).status, 200);
    let res = app.patch(
        &format!("/api/v1/users/{id}"),
        &app.admin_token,
        &json!({"active": false}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    app.get("/api/v1/users/me", &token).problem(401);
}
