use crm_tests::TestApp;

fn committed_spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn committed_openapi_matches_the_code() {
    let code = crm_gateway::openapi::document_json();
    assert!(
        committed_spec() == code,
        "openapi/openapi.json is out of date: run `make openapi` and commit the result"
    );
}

#[test]
fn the_served_spec_is_the_committed_one_with_bearer_security() {
    let app = TestApp::start();
    let served = app.send("GET", "/openapi.json", None, &[], None).json();
    let committed: serde_json::Value = serde_json::from_str(&committed_spec()).unwrap_or_default();
    assert_eq!(served, committed);
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let docs = app.send("GET", "/docs/", None, &[], None);
    assert_eq!(docs.status, 200);
    assert!(docs.text.to_lowercase().contains("swagger"));
}

#[test]
fn health_metrics_and_request_ids() {
    let app = TestApp::start();
    assert_eq!(
        app.send("GET", "/health/live", None, &[], None).json()["status"],
        "ok"
    );
    assert_eq!(
        app.send("GET", "/health/ready", None, &[], None).json()["status"],
        "ok"
    );
    let res = app.send(
        "GET",
        "/api/v1/users/me",
        Some(&app.admin_token),
        &[("X-Request-Id", "trace-abc-123")],
        None,
    );
    assert_eq!(res.header("x-request-id"), Some("trace-abc-123"));
    let generated = app.send("GET", "/health/live", None, &[], None);
    assert_eq!(generated.header("x-request-id").map(str::len), Some(36));
    let metrics = app.send("GET", "/metrics", None, &[], None);
    assert!(
        metrics.text.contains(
            "crm_http_requests_total{method=\"GET\",route=\"/api/v1/users/me\",status=\"200\"} 1"
        ),
        "{}",
        metrics.text
    );
    app.send("GET", "/no/such/route", None, &[], None)
        .problem(404);
}

#[test]
fn cors_allows_only_configured_origins() {
    let app = TestApp::start_with(Default::default(), |c| {
        c.cors_origins = vec!["https://app.example.com".into()]
    });
    let ok = app.send(
        "OPTIONS",
        "/api/v1/users",
        None,
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let bad = app.send(
        "OPTIONS",
        "/api/v1/users",
        None,
        &[
            ("Origin", "https://evil.example.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_ne!(
        bad.header("access-control-allow-origin"),
        Some("https://evil.example.com")
    );
    assert!(bad.status >= 400);
}

#[test]
fn rate_limits_count_per_caller_and_answer_429_with_retry_after() {
    let app = TestApp::start_with(Default::default(), |c| {
        c.rate_limit_per_minute = 5;
        c.anonymous_rate_limit_per_minute = 3;
    });
    let (_, other) = app.user("agent");
    let mut remaining = vec![];
    for _ in 0..4 {
        let res = app.get("/api/v1/users/me", &other);
        assert_eq!(res.status, 200);
        assert_eq!(res.header("ratelimit-limit"), Some("5"));
        remaining.push(res.header("ratelimit-remaining").unwrap_or("?").to_string());
    }
    assert_eq!(remaining, vec!["4", "3", "2", "1"]);
    assert_eq!(app.get("/api/v1/users/me", &other).status, 200);
    let refused = app.get("/api/v1/users/me", &other);
    let p = refused.problem(429);
    assert!(p["detail"]
        .as_str()
        .unwrap_or("")
        .contains("5 requests a minute"));
    assert!(refused
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    // Another caller has its own bucket.
    assert_eq!(app.get("/api/v1/users/me", &app.admin_token).status, 200);
    // Calls without credentials are counted per address: the test harness already logged in
    // twice from here (admin and the agent), so one attempt is left before 429.
    let body = serde_json::json!({"email": "nobody@example.com", "password": "x"}).to_string();
    assert_eq!(
        app.send("POST", "/api/v1/auth/login", None, &[], Some(&body))
            .status,
        401
    );
    app.send("POST", "/api/v1/auth/login", None, &[], Some(&body))
        .problem(429);
}

#[test]
fn an_unknown_database_url_scheme_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for command in ["migrate", "serve"] {
        let out = std::process::Command::new(crate::imports::crm_binary())
            .arg(command)
            .current_dir(dir.path())
            .env("DATABASE_URL", "mysql://x/y")
            .env("CRM_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("run crm {command}: {e}"));
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            !out.status.success(),
            "crm {command} succeeded: {stdout} {stderr}"
        );
        assert!(
            stderr.contains("mysql://") && stderr.contains("postgres://"),
            "the error names the scheme and what is accepted: {stderr}"
        );
        assert!(!stdout.contains("migrations applied"), "{stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing is created: {left:?}");
}
