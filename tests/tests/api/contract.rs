//! The error contract: every documented error is a problem document, and every kind of
//! bad input the platform handles gets problem+json with the right, documented status.

use super::matrix::spec;
use crm_tests::TestApp;
use serde_json::Value;

const RANDOM_ID: &str = "01900000-0000-7000-8000-0000000000bb";

#[test]
fn every_documented_error_uses_the_problem_schema() {
    let app = TestApp::start();
    let spec = spec(&app);
    let mut count = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if status.parse::<u16>().unwrap_or(0) < 400 {
                    continue;
                }
                let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/Problem",
                    "{method} {path} documents {status} without the problem schema"
                );
                count += 1;
            }
        }
    }
    println!("{count} documented error responses use the problem schema");
    assert!(count > 50);
}

struct Probe<'a> {
    method: String,
    path: &'a str,
    op: &'a Value,
}

impl Probe<'_> {
    fn documents(&self, status: u16) -> bool {
        self.op["responses"].get(status.to_string()).is_some()
    }

    fn has_query(&self, name: &str) -> bool {
        self.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "query" && p["name"] == name)
    }
}

/// `?name=value` for the operation's required query parameters (an upsert's `email`), so
/// that a probe reaches the body checks.
fn required_query(op: &Value) -> String {
    let pairs: Vec<String> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| {
            let value = match p["schema"]["format"].as_str() {
                Some("email") => "probe@example.com",
                Some("uuid") => RANDOM_ID,
                _ => "probe",
            };
            format!("{}={value}", p["name"].as_str().unwrap_or_default())
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn sep(url: &str) -> char {
    if url.contains('?') {
        '&'
    } else {
        '?'
    }
}

fn check(
    app: &TestApp,
    probe: &Probe,
    what: &str,
    url: &str,
    body: Option<&str>,
    expected: u16,
    failures: &mut Vec<String>,
) {
    let res = app.send(&probe.method, url, Some(&app.admin_token), &[], body);
    let is_problem = res.header("content-type") == Some("application/problem+json");
    if res.status != expected || !is_problem || !probe.documents(expected) {
        failures.push(format!(
            "{} {} with {what}: got {} ({}), expected documented {expected} problem",
            probe.method,
            probe.path,
            res.status,
            res.header("content-type").unwrap_or("-")
        ));
    }
}

#[test]
fn every_kind_of_bad_input_gets_the_right_problem_on_every_operation() {
    let app = TestApp::start();
    let spec = spec(&app);
    let oversize = format!(
        "{{\"name\": \"{}\"}}",
        "x".repeat(app.state.config.body_limit_bytes + 10)
    );
    let mut failures = vec![];
    let mut probes = 0;
    // A form's public key is its public endpoint's credential: probe a real one.
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &serde_json::json!({"name": "Probe", "fields": [{"name": "mail", "maps_to": "email"}]}),
        )
        .json();
    let form_key = form["public_key"].as_str().unwrap_or_default().to_string();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let probe = Probe {
                method: method.to_uppercase(),
                path,
                op,
            };
            let url = path
                .replace("{id}", RANDOM_ID)
                .replace("{object}", "contact")
                .replace("{key}", "no_such_field")
                .replace("{public_key}", &form_key)
                + &required_query(op);
            // JSON bodies only: a file upload (an import's CSV) is probed by its own tests.
            if op["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                check(
                    &app,
                    &probe,
                    "malformed JSON",
                    &url,
                    Some("{\"name\": "),
                    400,
                    &mut failures,
                );
                check(
                    &app,
                    &probe,
                    "a body of the wrong type",
                    &url,
                    Some("[1, 2]"),
                    422,
                    &mut failures,
                );
                check(
                    &app,
                    &probe,
                    "an unknown field",
                    &url,
                    Some("{\"zz_unknown_field\": 1}"),
                    422,
                    &mut failures,
                );
                check(
                    &app,
                    &probe,
                    "an oversize body",
                    &url,
                    Some(&oversize),
                    413,
                    &mut failures,
                );
                probes += 4;
            }
            if path.contains("{id}") {
                let bad = path.replace("{id}", "not-a-uuid");
                let body = op.get("requestBody").map(|_| "{}");
                check(
                    &app,
                    &probe,
                    "a malformed id",
                    &bad,
                    body,
                    400,
                    &mut failures,
                );
                probes += 1;
            }
            if probe.has_query("sort") {
                check(
                    &app,
                    &probe,
                    "an unknown sort field",
                    &format!("{url}{}sort=zz_unknown", sep(&url)),
                    None,
                    400,
                    &mut failures,
                );
                probes += 1;
            }
            if probe.has_query("limit") {
                check(
                    &app,
                    &probe,
                    "an unknown filter",
                    &format!("{url}{}zz_unknown=1", sep(&url)),
                    None,
                    400,
                    &mut failures,
                );
                check(
                    &app,
                    &probe,
                    "a limit over 200",
                    &format!("{url}{}limit=500", sep(&url)),
                    None,
                    400,
                    &mut failures,
                );
                probes += 2;
            }
        }
    }
    println!(
        "error contract: {probes} bad-input probes, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "error contract failures:\n{}",
        failures.join("\n")
    );
}

/// Every list a client sends is bounded in the spec (`maxItems`), so neither the server nor
/// a client generated from the spec takes an unbounded one. (Each bound is enforced by the
/// input's validator; the tests of each area send one item too many.)
#[test]
fn every_list_in_a_request_body_has_a_max_items() {
    fn arrays(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                let is_array = match map.get("type") {
                    Some(Value::String(t)) => t == "array",
                    Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
                    _ => false,
                };
                if is_array && !map.contains_key("maxItems") {
                    out.push(at.to_string());
                }
                for (k, c) in map {
                    if !matches!(k.as_str(), "example" | "examples" | "default" | "enum") {
                        arrays(c, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, c) in items.iter().enumerate() {
                    arrays(c, &format!("{at}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    fn refs(v: &Value, schemas: &Value, seen: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    if seen.insert(name.to_string()) {
                        refs(&schemas[name], schemas, seen);
                    }
                }
                map.values().for_each(|c| refs(c, schemas, seen));
            }
            Value::Array(items) => items.iter().for_each(|c| refs(c, schemas, seen)),
            _ => {}
        }
    }
    let app = TestApp::start();
    let spec = spec(&app);
    let schemas = &spec["components"]["schemas"];
    let mut sent = std::collections::BTreeSet::new();
    let mut unbounded = vec![];
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(body) = op.get("requestBody") {
                refs(body, schemas, &mut sent);
                arrays(body, &format!("{method} {path}"), &mut unbounded);
            }
        }
    }
    for name in &sent {
        arrays(&schemas[name.as_str()], name, &mut unbounded);
    }
    assert!(
        unbounded.is_empty(),
        "lists a client sends with no maxItems:\n{}",
        unbounded.join("\n")
    );
}

/// Generated clients name a method after each operationId; two operations sharing one
/// give `POST /contacts` the account's types.
#[test]
fn every_operation_has_its_own_operation_id() {
    let app = TestApp::start();
    let spec = spec(&app);
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            let here = format!("{method} {path}");
            if let Some(first) = seen.insert(id.clone(), here.clone()) {
                panic!("operationId {id:?} is both {first} and {here}");
            }
        }
    }
    assert!(seen.len() > 100, "{} operations", seen.len());
}
