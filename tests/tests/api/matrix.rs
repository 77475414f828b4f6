//! The authorization matrix: every operation of the served spec × every kind of caller,
//! checked against the one permission table in the code.

use crm_core::access::{Access, Operation, Ownership, Role};
use crm_tests::{TestApp, JWT_SECRET};
use serde_json::{json, Value};
use std::collections::HashMap;

const RANDOM_ID: &str = "01900000-0000-7000-8000-0000000000aa";

fn spec_operations(app: &TestApp) -> Vec<(String, String)> {
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let mut ops = vec![];
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, _) in item.as_object().into_iter().flatten() {
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

fn table_entry(method: &str, path: &str) -> Option<Operation> {
    crm_gateway::access_table()
        .operations()
        .find(|op| op.method == method && op.path == path)
        .copied()
}

#[test]
fn every_operation_is_in_the_permission_table_and_every_row_is_served() {
    let app = TestApp::start();
    let ops = spec_operations(&app);
    let missing: Vec<String> = ops
        .iter()
        .filter(|(m, p)| table_entry(m, p).is_none())
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a row in the permission table: {missing:?}"
    );
    let stale: Vec<String> = crm_gateway::access_table()
        .operations()
        .filter(|op| !ops.iter().any(|(m, p)| m == op.method && p == op.path))
        .map(|op| format!("{} {}", op.method, op.path))
        .collect();
    assert!(
        stale.is_empty(),
        "permission rows for operations the spec does not have: {stale:?}"
    );
}

fn expired_token(app: &TestApp) -> String {
    let me = app.get("/api/v1/users/me", &app.admin_token).json();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = json!({"sub": me["id"], "role": "admin", "iat": now - 7200, "exp": now - 3600, "jti": "x", "typ": "access", "iss": "crm", "aud": "crm-api"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

fn revoked_key(app: &TestApp) -> String {
    let key = app
        .post(
            "/api/v1/api-keys",
            &app.admin_token,
            &json!({"name": "to revoke"}),
        )
        .json();
    let id = key["id"].as_str().unwrap_or_default();
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}"), &app.admin_token)
            .status,
        204
    );
    key["secret"].as_str().unwrap_or_default().to_string()
}

enum Caller {
    Anonymous,
    Rejected(String),
    Role(Role, String),
}

/// How a client may spell a path. The router decodes percent-escapes, so encoded
/// spellings reach the same route and must be authorized exactly like it; the others
/// match no route and must be refused without reaching any handler.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spelling {
    Canonical,
    PercentEncoded,
    MixedCaseEncoded,
    DoubleSlash,
    TrailingSlash,
}

/// `/api/v1/webhooks` as `/api/v1/%77%65bhooks` and friends: the first resource segment
/// gets its letters escaped (all upper-case hex, or alternating hex case).
fn spell(path: &str, spelling: Spelling) -> String {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return path.to_string();
    };
    let (segment, tail) = rest.split_once('/').map_or((rest, ""), |(s, t)| (s, t));
    let escape = |mixed: bool| -> String {
        segment
            .chars()
            .enumerate()
            .map(
                |(i, c)| match (c.is_ascii_alphabetic(), mixed && i % 2 == 1) {
                    (true, true) => format!("%{:x}", c as u32),
                    (true, false) => format!("%{:X}", c as u32),
                    _ => c.to_string(),
                },
            )
            .collect()
    };
    let join = |seg: String| {
        if tail.is_empty() {
            format!("/api/v1/{seg}")
        } else {
            format!("/api/v1/{seg}/{tail}")
        }
    };
    match spelling {
        Spelling::Canonical => path.to_string(),
        Spelling::PercentEncoded => join(escape(false)),
        Spelling::MixedCaseEncoded => join(escape(true)),
        Spelling::DoubleSlash => path.replacen("/api/v1/", "/api/v1//", 1),
        Spelling::TrailingSlash => format!("{path}/"),
    }
}

fn callers(app: &TestApp) -> Vec<(String, Caller)> {
    let mut callers: Vec<(String, Caller)> = vec![
        ("no credentials".into(), Caller::Anonymous),
        ("expired token".into(), Caller::Rejected(expired_token(app))),
        ("revoked API key".into(), Caller::Rejected(revoked_key(app))),
        (
            "forged token".into(),
            Caller::Rejected("eyJhbGciOiJub25lIn0.e30.".into()),
        ),
    ];
    for role in Role::ALL {
        let (_, token) = app.user(role.as_str());
        callers.push((format!("{} user", role.as_str()), Caller::Role(role, token)));
    }
    callers
}

/// Every operation × every caller in one spelling of the path, against the table.
fn check_matrix(spelling: Spelling) {
    let app = TestApp::start();
    let callers = callers(&app);
    let ops = spec_operations(&app);
    let mut checked = 0;
    let mut wrong = vec![];
    for (method, path) in &ops {
        let Some(entry) = table_entry(method, path) else {
            wrong.push(format!("{method} {path}: no permission row"));
            continue;
        };
        let url = spell(
            &path
                .replace("{id}", RANDOM_ID)
                .replace("{object}", "contact")
                .replace("{key}", "no_such_field"),
            spelling,
        );
        let body = matches!(method.as_str(), "POST" | "PATCH" | "PUT").then_some("{}");
        let reaches_route = matches!(
            spelling,
            Spelling::Canonical | Spelling::PercentEncoded | Spelling::MixedCaseEncoded
        ) || !url.starts_with("/api/v1/");
        for (name, caller) in &callers {
            let (token, expect_allowed) = match caller {
                Caller::Anonymous => (None, entry.access == Access::Public),
                Caller::Rejected(t) => (Some(t.as_str()), entry.access == Access::Public),
                Caller::Role(role, t) => (Some(t.as_str()), entry.allows(*role)),
            };
            let res = app.send(method, &url, token, &[], body);
            checked += 1;
            // A spelling that matches no route must be refused before any handler runs:
            // the router's own 404 names the path it could not route.
            let unrouted = res.status == 404
                && res.json()["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no route"));
            let outcome_ok = match (reaches_route, expect_allowed, caller) {
                (false, _, _) => unrouted,
                (true, true, _) => ![401, 403].contains(&res.status) && res.status < 500,
                (true, false, Caller::Role(..)) => res.status == 403,
                (true, false, _) => res.status == 401,
            };
            if !outcome_ok {
                wrong.push(format!(
                    "{method} {url} as {name}: got {} {} (expected {})",
                    res.status,
                    res.text.chars().take(120).collect::<String>(),
                    if !reaches_route {
                        "404 no route"
                    } else if expect_allowed {
                        "allowed"
                    } else if matches!(caller, Caller::Role(..)) {
                        "403"
                    } else {
                        "401"
                    }
                ));
            }
        }
    }
    println!(
        "authorization matrix ({spelling:?}): {} operations x {} callers = {checked} checks, {} wrong",
        ops.len(),
        callers.len(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "authorization matrix failures:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_operation_answers_every_caller_as_the_permission_table_says() {
    check_matrix(Spelling::Canonical);
}

#[test]
fn percent_encoded_paths_are_authorized_like_the_route_they_reach() {
    check_matrix(Spelling::PercentEncoded);
}

#[test]
fn mixed_case_encoded_paths_are_authorized_like_the_route_they_reach() {
    check_matrix(Spelling::MixedCaseEncoded);
}

#[test]
fn double_slash_paths_reach_no_handler() {
    check_matrix(Spelling::DoubleSlash);
}

#[test]
fn trailing_slash_paths_reach_no_handler() {
    check_matrix(Spelling::TrailingSlash);
}

#[test]
fn escaped_paths_open_neither_webhooks_to_analysts_nor_users_to_partners() {
    let app = TestApp::start();
    let (_, analyst) = app.user("analyst");
    let body = json!({"url": "https://example.org/hook", "event_types": ["*"]});
    for path in [
        "/api/v1/webhooks",
        "/api/v1/%77ebhooks",
        "/api/v1/%57ebhooks",
        "/api/v1/w%65bhooks",
    ] {
        let res = app.send("POST", path, Some(&analyst), &[], Some(&body.to_string()));
        assert!(
            [403, 404].contains(&res.status),
            "POST {path} as analyst: {} {}",
            res.status,
            res.text
        );
    }
    // Partner users do not see the employee directory, however the path is spelled.
    let (_, partner) = app.user("partner");
    for path in [
        "/api/v1/users",
        "/api/v1/%75sers",
        "/api/v1/%75%73%65%72%73",
    ] {
        app.get(path, &partner).problem(403);
    }
    assert_eq!(app.count("webhooks"), 0);
}

/// Creates a record owned by the caller for an operation with an ownership rule, and
/// returns its id. A new owned resource must add its fixture here.
type Fixture = fn(&TestApp, &str) -> String;

fn fixtures() -> HashMap<&'static str, Fixture> {
    let mut f: HashMap<&'static str, Fixture> = HashMap::new();
    f.insert("/api/v1/api-keys/{id}", |app, token| {
        let key = app
            .post("/api/v1/api-keys", token, &json!({"name": "owned"}))
            .json();
        key["id"].as_str().unwrap_or_default().to_string()
    });
    fn account(app: &TestApp, token: &str) -> String {
        let res = app.post("/api/v1/accounts", token, &json!({"name": "Owned Ltd"}));
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    fn contact(app: &TestApp, token: &str) -> String {
        let res = app.post(
            "/api/v1/contacts",
            token,
            &json!({"first_name": "Owned", "last_name": "Person"}),
        );
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in ["/api/v1/accounts/{id}", "/api/v1/accounts/{id}/restore"] {
        f.insert(path, account);
    }
    for path in ["/api/v1/contacts/{id}", "/api/v1/contacts/{id}/restore"] {
        f.insert(path, contact);
    }
    fn activity(app: &TestApp, token: &str) -> String {
        let res = app.post(
            "/api/v1/activities",
            token,
            &json!({"kind": "note", "subject": "Owned note"}),
        );
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in ["/api/v1/activities/{id}", "/api/v1/activities/{id}/restore"] {
        f.insert(path, activity);
    }
    fn lead(app: &TestApp, token: &str) -> String {
        let res = app.post(
            "/api/v1/leads",
            token,
            &json!({"company": "Owned Prospect", "last_name": "Owner"}),
        );
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in [
        "/api/v1/leads/{id}",
        "/api/v1/leads/{id}/restore",
        "/api/v1/leads/{id}/convert",
    ] {
        f.insert(path, lead);
    }
    /// A lead one rule (matching only it) assigns back to its owner, so assigning succeeds.
    fn assignable_lead(app: &TestApp, token: &str) -> String {
        let me = app.get("/api/v1/users/me", token).json();
        let rule = app.post(
            "/api/v1/lead-assignment-rules",
            &app.admin_token,
            &json!({"name": "Mine", "assign_to": "user", "user_id": me["id"],
                "conditions": [{"field": "company", "op": "eq", "value": "Assignable Prospect"}]}),
        );
        assert_eq!(rule.status, 201, "{}", rule.text);
        let res = app.post(
            "/api/v1/leads",
            token,
            &json!({"company": "Assignable Prospect"}),
        );
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    f.insert("/api/v1/leads/{id}/assign", assignable_lead);
    fn opportunity(app: &TestApp, token: &str) -> String {
        let pipeline = app.simple_pipeline();
        let account = app.post(
            "/api/v1/accounts",
            token,
            &json!({"name": "Owned Deal Ltd"}),
        );
        let res = app.post(
            "/api/v1/opportunities",
            token,
            &json!({"name": "Owned deal", "account_id": account.json()["id"],
                "pipeline_id": pipeline, "currency": "EUR"}),
        );
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in [
        "/api/v1/opportunities/{id}",
        "/api/v1/opportunities/{id}/restore",
        "/api/v1/opportunities/{id}/stage",
    ] {
        f.insert(path, opportunity);
    }
    // Records that belong to another follow its owner: for their creates the fixture is
    // the body, naming a parent the caller owns.
    f.insert("/api/v1/quotes", |app, token| {
        quote_body(app, &opportunity(app, token)).to_string()
    });
    fn quote(app: &TestApp, token: &str) -> String {
        let body = quote_body(app, &opportunity(app, token));
        let res = app.post("/api/v1/quotes", token, &body);
        assert_eq!(res.status, 201, "{}", res.text);
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in [
        "/api/v1/quotes/{id}",
        "/api/v1/quotes/{id}/restore",
        "/api/v1/quotes/{id}/status",
    ] {
        f.insert(path, quote);
    }
    f.insert("/api/v1/quotes/{id}/revise", |app, token| {
        let id = quote(app, token);
        let sent = app.post(
            &format!("/api/v1/quotes/{id}/status"),
            token,
            &json!({"status": "sent"}),
        );
        assert_eq!(sent.status, 200, "{}", sent.text);
        id
    });
    f.insert("/api/v1/orders", |app, token| {
        order_body(app, &json!({"opportunity_id": opportunity(app, token)})).to_string()
    });
    fn order(app: &TestApp, token: &str) -> String {
        let body = order_body(app, &json!({"account_id": account(app, token)}));
        let res = app.post("/api/v1/orders", token, &body);
        assert_eq!(res.status, 201, "{}", res.text);
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }
    for path in ["/api/v1/orders/{id}", "/api/v1/orders/{id}/restore"] {
        f.insert(path, order);
    }
    f
}

/// A record that belongs to another is refused to another owner's caller on the object
/// paths too — batch, composite and (for a create) an upsert by a new external key — by
/// the same rule as its own route.
fn refused_on_every_object_path(
    app: &TestApp,
    op: &Operation,
    url: &str,
    body: Option<&str>,
    caller: &str,
) {
    let collection = op
        .path
        .trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or_default();
    let body: Value = body
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(json!({}));
    let id = url.rsplit('/').next().unwrap_or_default();
    let on_record = op.path.contains("{id}");
    let item = match (op.method, on_record, op.path.ends_with("{id}")) {
        ("POST", false, _) => json!({"op": "create", "body": body}),
        ("PATCH", _, true) => json!({"op": "update", "id": id, "body": body}),
        ("DELETE", _, true) => json!({"op": "delete", "id": id}),
        // Actions (status, revise, restore) have no object path.
        _ => return,
    };
    let batch = app.post(
        &format!("/api/v1/{collection}/batch"),
        caller,
        &json!({"items": [item]}),
    );
    assert_eq!(batch.status, 200, "{collection} batch: {}", batch.text);
    assert_eq!(
        batch.json()["results"][0]["status"],
        403,
        "{} {} by batch: {}",
        op.method,
        op.path,
        batch.text
    );
    let mut sub = json!({"reference_id": "it", "method": op.method, "path": url});
    if op.method != "DELETE" {
        sub["body"] = body.clone();
    }
    let composite = app.post("/api/v1/composite", caller, &json!({"requests": [sub]}));
    assert_eq!(
        composite.status, 403,
        "{} {} by composite: {}",
        op.method, op.path, composite.text
    );
    if !on_record {
        let key = uuid::Uuid::now_v7().simple().to_string();
        let upsert = app.put(
            &format!("/api/v1/{collection}/external/probe/{key}"),
            caller,
            &body,
        );
        assert_eq!(
            upsert.status, 403,
            "{collection} upsert of a new key: {}",
            upsert.text
        );
    }
}

/// A product and a price book of the admin's, for quotes and orders.
fn priced_product(app: &TestApp) -> (String, String) {
    app.priced_product(&format!("SKU-{}", uuid::Uuid::now_v7().simple()), 10000)
}

fn quote_body(app: &TestApp, opportunity: &str) -> Value {
    let (product, book) = priced_product(app);
    json!({"opportunity_id": opportunity, "price_book_id": book,
        "lines": [{"product_id": product, "quantity": 2}]})
}

/// An order on the account or deal `parent` names, with the account the deal's.
fn order_body(app: &TestApp, parent: &Value) -> Value {
    let (product, book) = priced_product(app);
    let account = match parent["opportunity_id"].as_str() {
        Some(deal) => app
            .get(&format!("/api/v1/opportunities/{deal}"), &app.admin_token)
            .json()["account_id"]
            .clone(),
        None => parent["account_id"].clone(),
    };
    json!({"account_id": account, "opportunity_id": parent["opportunity_id"],
        "price_book_id": book, "currency": "EUR", "ordered_on": "2026-11-30",
        "lines": [{"product_id": product, "quantity": 1}]})
}

/// The body an owned operation is called with in the object-level test: `{}` unless the
/// operation needs more to succeed.
fn owned_body(method: &str, path: &str) -> Option<&'static str> {
    match path {
        // Moving a deal to the stage it is in: allowed, and repeatable.
        "/api/v1/opportunities/{id}/stage" => Some(r#"{"stage": "open"}"#),
        "/api/v1/quotes/{id}/status" => Some(r#"{"status": "sent"}"#),
        _ => matches!(method, "POST" | "PATCH" | "PUT").then_some("{}"),
    }
}

#[test]
fn object_level_rules_hold_for_every_owned_operation() {
    let app = TestApp::start();
    let fixtures = fixtures();
    let mut checked = 0;
    for op in crm_gateway::access_table().operations() {
        let override_permission = match op.ownership {
            Ownership::None => continue,
            Ownership::OwnerOnly(p)
            | Ownership::OwnerOrTeamEdits(p)
            | Ownership::FollowsParent(_, p) => Some(p),
            Ownership::PartnerOrganisation => None,
        };
        let fixture = fixtures.get(op.path).unwrap_or_else(|| {
            panic!(
                "{} {} has an ownership rule but no fixture in matrix.rs",
                op.method, op.path
            )
        });
        // Two users of a role that may call the operation but holds no override.
        let role = Role::ALL
            .into_iter()
            .find(|r| {
                op.allows(*r)
                    && override_permission.is_none_or(|p| !crm_core::access::role_allows(*r, p))
            })
            .unwrap_or_else(|| panic!("no role to test {} {} with", op.method, op.path));
        let (_, owner) = app.user(role.as_str());
        let (_, other) = app.user(role.as_str());
        // An operation on a record takes its id; a create of a record that belongs to
        // another takes the fixture's body, naming the owner's parent.
        let on_record = op.path.contains("{id}");
        let made = fixture(&app, &owner);
        let (url, body) = if on_record {
            (
                op.path.replace("{id}", &made),
                owned_body(op.method, op.path).map(str::to_string),
            )
        } else {
            (op.path.to_string(), Some(made))
        };
        let body = body.as_deref();
        let foreign = app.send(op.method, &url, Some(&other), &[], body);
        let expected = match op.ownership {
            Ownership::OwnerOrTeamEdits(_) | Ownership::FollowsParent(..) => 403,
            _ => 404,
        };
        assert_eq!(
            foreign.status, expected,
            "{} {} on another owner's record: {}",
            op.method, op.path, foreign.text
        );
        if matches!(op.ownership, Ownership::FollowsParent(..)) {
            refused_on_every_object_path(&app, op, &url, body, &other);
        }
        let own = app.send(op.method, &url, Some(&owner), &[], body);
        assert!(
            own.status < 300,
            "{} {} on the caller's own record: {}",
            op.method,
            op.path,
            own.text
        );
        // A record of its own for the admin: some operations happen once (a conversion).
        let made = fixture(&app, &owner);
        let (url, body) = if on_record {
            (op.path.replace("{id}", &made), body.map(str::to_string))
        } else {
            (op.path.to_string(), Some(made))
        };
        let admin = app.send(
            op.method,
            &url,
            Some(&app.admin_token),
            &[],
            body.as_deref(),
        );
        assert!(
            admin.status < 300,
            "{} {} as admin: {}",
            op.method,
            op.path,
            admin.text
        );
        checked += 1;
    }
    println!("object-level rules checked on {checked} operations");
    assert!(checked > 0);
}

/// A body the error-contract test can send: `{}` is valid JSON of the wrong shape.
pub fn spec(app: &TestApp) -> Value {
    app.send("GET", "/openapi.json", None, &[], None).json()
}
