use crm_tests::TestApp;
use serde_json::{json, Value};

/// Operations without a bearer credential. The last three carry their own: a mail gateway's
/// key, and the token of a survey link (tested in `service`).
const PUBLIC: [&str; 14] = [
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
    "POST /api/v1/inbound/email",
    "GET /api/v1/surveys/{id}",
    "POST /api/v1/surveys/{id}",
    "POST /api/v1/campaigns/{id}/unsubscribe",
    "GET /api/v1/campaigns/{id}/unsubscribe",
    "GET /api/v1/campaigns/{id}/open",
    "GET /api/v1/campaigns/{id}/click",
    "POST /api/v1/forms/{public_key}/submissions",
];

fn operations(spec: &Value) -> Vec<(String, String, bool)> {
    let mut ops = vec![];
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            // `security: []` marks an operation that needs no credentials (and that
            // generated clients call without one).
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            ops.push((method.to_uppercase(), path.clone(), public));
        }
    }
    ops
}

#[test]
fn every_route_in_the_spec_needs_credentials_except_the_documented_public_ones() {
    let app = TestApp::start();
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let ops = operations(&spec);
    assert!(ops.len() >= 20, "spec lists only {} operations", ops.len());
    let id = "01900000-0000-7000-8000-000000000000";
    for (method, path, public) in ops {
        let name = format!("{method} {path}");
        assert_eq!(
            public,
            PUBLIC.contains(&name.as_str()),
            "{name}: public flag in the spec is wrong"
        );
        if public {
            continue;
        }
        let url = path.replace("{id}", id);
        let body = matches!(method.as_str(), "POST" | "PATCH" | "PUT").then_some("{}");
        let res = app.send(&method, &url, None, &[], body);
        res.problem(401);
        let res = app.send(&method, &url, Some("garbage"), &[], body);
        res.problem(401);
    }
}

#[test]
fn roles_without_permission_get_403_and_nothing_is_written() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let (_, partner) = app.user("partner");
    let users_before = app.count("users");
    app.post(
        "/api/v1/users",
        &rep,
        &json!({"email": "new@example.com", "name": "N", "role": "admin"}),
    )
    .problem(403);
    app.post("/api/v1/teams", &rep, &json!({"name": "Rogue"}))
        .problem(403);
    app.get("/api/v1/users", &partner).problem(403);
    app.get("/api/v1/jobs", &rep).problem(403);
    app.get("/api/v1/audit-log", &rep).problem(403);
    assert_eq!(app.count("users"), users_before);
    assert_eq!(app.count("teams"), 0);
    // …while internal roles may read the directory.
    assert_eq!(app.get("/api/v1/users", &rep).status, 200);
}

#[test]
fn admins_cannot_lock_themselves_out() {
    let app = TestApp::start();
    let me = app.get("/api/v1/users/me", &app.admin_token).json();
    let id = me["id"].as_str().unwrap_or_default();
    app.patch(
        &format!("/api/v1/users/{id}"),
        &app.admin_token,
        &json!({"role": "agent"}),
    )
    .problem(409);
    app.delete(&format!("/api/v1/users/{id}"), &app.admin_token)
        .problem(409);
    assert_eq!(
        app.get("/api/v1/users/me", &app.admin_token).json()["role"],
        "admin"
    );
}
