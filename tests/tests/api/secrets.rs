//! No secret or password is ever printed or logged: a real `crm` process runs at debug
//! level while keys, webhooks, users and logins are made, and its whole output is searched.

use crm_tests::TestApp;
use serde_json::{json, Value};
use std::io::Read;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn call(base: &str, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = ureq::request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_json(body) {
        Ok(r) => r.into_json().unwrap_or(Value::Null),
        Err(ureq::Error::Status(_, r)) => r.into_json().unwrap_or(Value::Null),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

#[test]
fn the_servers_log_and_database_hold_no_secret() {
    // The harness app owns the database; a real process serves it with every log on.
    let app = TestApp::start_with(Default::default(), |c| c.job_workers = 0);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let out = log.reopen().unwrap_or_else(|e| panic!("{e}"));
    let err = log.reopen().unwrap_or_else(|e| panic!("{e}"));
    let mut server = std::process::Command::new(crate::imports::crm_binary())
        .arg("serve")
        .env("DATABASE_URL", &app.state.config.database_url)
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM_JWT_SECRET", crm_tests::JWT_SECRET)
        .env("CRM_SECRETS_KEY", crm_tests::SECRETS_KEY)
        .env("CRM_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
        .env("RUST_LOG", "trace")
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start crm: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ureq::get(&format!("{base}/health/live")).call().is_err() {
        assert!(std::time::Instant::now() < deadline, "crm did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let login = json!({"email": crm_tests::ADMIN_EMAIL, "password": crm_tests::ADMIN_PASSWORD});
    let tokens = call(&base, "POST", "/api/v1/auth/login", None, login);
    let admin = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refresh = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let user_password = "a-password-nobody-may-read";
    let user = json!({"email": "rep@example.com", "name": "Rep", "role": "sales_rep", "password": user_password});
    call(&base, "POST", "/api/v1/users", Some(&admin), user);
    let _ = call(
        &base,
        "POST",
        "/api/v1/auth/login",
        None,
        json!({"email": "rep@example.com", "password": "wrong-guess-in-the-log"}),
    );
    let key = call(
        &base,
        "POST",
        "/api/v1/api-keys",
        Some(&admin),
        json!({"name": "ci"}),
    );
    let key_secret = key["secret"].as_str().unwrap_or_default().to_string();
    let hook = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "secret": "webhook-signing-secret-0123456789"});
    call(&base, "POST", "/api/v1/webhooks", Some(&key_secret), hook);
    call(
        &base,
        "POST",
        "/api/v1/contacts",
        Some(&admin),
        json!({"first_name": "Ada", "emails": [{"email": "ada.private@example.org"}]}),
    );
    let _ = ureq::get(&format!("{base}/api/v1/contacts?q=ada.private"))
        .set("Authorization", &format!("Bearer {admin}"))
        .call();
    let _ = ureq::put(&format!(
        "{base}/api/v1/contacts/by-email?email=ada.private@example.org"
    ))
    .set("Authorization", &format!("Bearer {admin}"))
    .send_json(json!({"first_name": "Ada"}));
    call(
        &base,
        "POST",
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    );

    let _ = server.kill();
    let _ = server.wait();
    let mut printed = String::new();
    let _ = log
        .reopen()
        .and_then(|mut f| f.read_to_string(&mut printed));
    assert!(
        printed.contains("request"),
        "the server logged requests: {printed}"
    );
    let secrets = [
        ("the JWT secret", crm_tests::JWT_SECRET),
        ("the secrets key", crm_tests::SECRETS_KEY),
        ("the admin's password", crm_tests::ADMIN_PASSWORD),
        ("a user's password", user_password),
        ("a wrong password", "wrong-guess-in-the-log"),
        ("an access token", admin.as_str()),
        ("a refresh token", refresh.as_str()),
        ("an API key", key_secret.as_str()),
        ("a webhook secret", "webhook-signing-secret-0123456789"),
        ("a contact's email", "ada.private"),
    ];
    for (what, secret) in secrets {
        assert!(
            !secret.is_empty() && !printed.contains(secret),
            "the log shows {what}"
        );
    }
    let stored = app.all_stored_text();
    // Everything but the contact's email, which is rightly stored.
    for (what, secret) in &secrets[..9] {
        assert!(
            !stored.contains(secret),
            "the database stores {what} in plaintext"
        );
    }
}
