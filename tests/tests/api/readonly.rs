//! Read-only fields (OWASP API3, mass assignment): every field a record shows but its
//! create schema does not take — ids, versions, totals, scores, links set by the server —
//! is refused or ignored on create, PATCH, batch and upsert. The fields come from the
//! served spec, so a new resource or field is covered without being listed here.

use crm_tests::TestApp;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// A resource of the kernel: its collection path and record schema name.
struct Declared {
    path: String,
    record: String,
    read_only: Vec<(String, Value)>,
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => spec
            .pointer(&r.replace("#/", "/"))
            .map_or(schema, |s| resolve(spec, s)),
        None => schema,
    }
}

/// A value of the field's type that the server would never have put there itself.
fn probe(spec: &Value, schema: &Value) -> Value {
    let schema = resolve(spec, schema);
    if let Some(branches) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        if let Some(b) = branches.iter().find(|b| b["type"] != "null") {
            return probe(spec, b);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.last().cloned().unwrap_or(Value::Null);
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match (kind.as_str(), schema["format"].as_str()) {
        (Some("string"), Some("date-time")) => json!("2031-01-02T03:04:05Z"),
        (Some("string"), Some("date")) => json!("2031-01-02"),
        (Some("string"), Some("uuid")) => json!("01900000-0000-7000-8000-00000000beef"),
        (Some("string"), _) => json!("01900000-0000-7000-8000-00000000beef"),
        (Some("integer"), _) => json!(987_654),
        (Some("number"), _) => json!(987_654.5),
        (Some("boolean"), _) => json!(true),
        (Some("array"), _) => json!([]),
        _ => json!({}),
    }
}

fn properties(spec: &Value, name: &str) -> Map<String, Value> {
    resolve(
        spec,
        &json!({"$ref": format!("#/components/schemas/{name}")}),
    )["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Every kernel resource (a POST taking `<Record>Create`) and its read-only fields.
fn declared(spec: &Value) -> Vec<Declared> {
    let mut out = vec![];
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        let create = item["post"]
            .pointer("/requestBody/content/application~1json/schema/$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .and_then(|n| n.strip_suffix("Create"));
        let Some(record) = create else { continue };
        let record_props = properties(spec, record);
        let takes: BTreeSet<String> = properties(spec, &format!("{record}Create"))
            .keys()
            .cloned()
            .collect();
        let read_only = record_props
            .iter()
            .filter(|(k, _)| !takes.contains(*k))
            .map(|(k, s)| (k.clone(), probe(spec, s)))
            .collect();
        out.push(Declared {
            path: path.clone(),
            record: record.to_string(),
            read_only,
        });
    }
    out
}

/// Whether a write answered with `field` refused (a 422 naming it) or ignored (a success
/// whose record does not hold the probe).
fn refused_or_ignored(status: u64, answer: &Value, field: &str, probe: &Value) -> bool {
    match status {
        422 => answer["errors"].as_array().is_some_and(|errors| {
            errors.iter().any(|e| {
                e["field"] == field
                    || e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("`{field}`")))
            })
        }),
        200 | 201 => answer.get(field) != Some(probe),
        _ => false,
    }
}

#[test]
fn every_create_refuses_the_read_only_fields_of_its_resource() {
    let app = TestApp::start();
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let resources = declared(&spec);
    assert!(resources.len() > 30, "{} kernel resources", resources.len());
    let mut wrong = vec![];
    let mut checked = 0;
    for r in &resources {
        for (field, value) in &r.read_only {
            let res = app.post(&r.path, &app.admin_token, &json!({ field: value }));
            checked += 1;
            if !(res.status == 422 && refused_or_ignored(422, &res.json(), field, value)) {
                wrong.push(format!(
                    "POST {} with {field}: {} {}",
                    r.path,
                    res.status,
                    res.text.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    println!(
        "{checked} read-only fields of {} resources",
        resources.len()
    );
    assert!(
        wrong.is_empty(),
        "read-only fields taken:\n{}",
        wrong.join("\n")
    );
}

/// A valid create body for each integrable collection (they have batch and upserts).
fn bodies(app: &TestApp) -> Vec<(&'static str, Value)> {
    let t = &app.admin_token;
    let made = |path: &str, body: Value| {
        let res = app.post(path, t, &body);
        assert_eq!(res.status, 201, "{path}: {}", res.text);
        res.json()["id"].as_str().unwrap_or_default().to_string()
    };
    let account = made("/api/v1/accounts", json!({"name": "Acme"}));
    let (product, book) = app.priced_product("RO-1", 1000);
    let deal = made(
        "/api/v1/opportunities",
        json!({"name": "Deal", "account_id": account, "pipeline_id": app.simple_pipeline(), "currency": "EUR"}),
    );
    let invoice = json!({"account_id": account, "number": "RO-INV", "currency": "EUR",
        "issued_on": "2026-11-01", "due_on": "2026-12-01", "amount_total": 5000});
    vec![
        ("accounts", json!({"name": "Read-only Ltd"})),
        (
            "contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace"}),
        ),
        ("products", json!({"sku": "RO-2", "name": "Licence"})),
        (
            "leads",
            json!({"company": "Prospect", "last_name": "Hopper"}),
        ),
        (
            "opportunities",
            json!({"name": "Another", "account_id": account,
            "pipeline_id": app.simple_pipeline(), "currency": "EUR"}),
        ),
        (
            "quotes",
            json!({"opportunity_id": deal, "price_book_id": book,
            "lines": [{"product_id": product, "quantity": 1}]}),
        ),
        (
            "orders",
            json!({"account_id": account, "currency": "EUR", "ordered_on": "2026-11-30",
            "price_book_id": book, "lines": [{"product_id": product, "quantity": 1}]}),
        ),
        ("invoices", invoice),
        (
            "payments",
            json!({"account_id": account, "amount": 100, "currency": "EUR",
            "received_on": "2026-11-02"}),
        ),
        (
            "tickets",
            json!({"subject": "It broke", "account_id": account}),
        ),
    ]
}

#[test]
fn read_only_fields_are_refused_or_ignored_by_patch_batch_and_upsert() {
    let app = TestApp::start();
    let t = app.admin_token.clone();
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let resources = declared(&spec);
    let mut wrong = vec![];
    let mut checked = 0;
    for (n, (collection, body)) in bodies(&app).into_iter().enumerate() {
        let path = format!("/api/v1/{collection}");
        let r = resources
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("{path} is not a kernel resource in the spec"));
        // One record per field, keyed for upserts.
        for (f, (field, value)) in r.read_only.iter().enumerate() {
            let key = format!("RO-{n}-{f}");
            let mut keyed = body.clone();
            // Unique fields take the key too.
            for unique in ["number", "sku"] {
                if keyed.get(unique).is_some() {
                    keyed[unique] = json!(key);
                }
            }
            let upsert_url = format!("{path}/external/erp/{key}");
            let created = app.put(&upsert_url, &t, &keyed);
            assert_eq!(created.status, 201, "{upsert_url}: {}", created.text);
            let id = created.json()["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut with = keyed.clone();
            with[field.as_str()] = value.clone();
            let patch = app.patch(&format!("{path}/{id}"), &t, &json!({ field: value }));
            let upsert = app.put(&upsert_url, &t, &with);
            let batch = app
                .post(
                    &format!("{path}/batch"),
                    &t,
                    &json!({"items": [{"op": "update", "id": id, "body": { field: value }}]}),
                )
                .json();
            let item = &batch["results"][0];
            let item_answer = if item["error"].is_object() {
                item["error"].clone()
            } else {
                item["record"].clone()
            };
            for (how, status, answer) in [
                ("PATCH", u64::from(patch.status), patch.json()),
                ("PUT upsert", u64::from(upsert.status), upsert.json()),
                (
                    "batch update",
                    item["status"].as_u64().unwrap_or(0),
                    item_answer,
                ),
            ] {
                checked += 1;
                if !refused_or_ignored(status, &answer, field, value) {
                    wrong.push(format!("{how} {path} {field}={value}: {status} {answer}"));
                }
            }
            let stored = app.get(&format!("{path}/{id}"), &t).json();
            if stored.get(field.as_str()) == Some(value) {
                wrong.push(format!("{path} {field}: stored the probe {value}"));
            }
        }
    }
    println!("{checked} writes of read-only fields");
    assert!(
        wrong.is_empty(),
        "read-only fields taken:\n{}",
        wrong.join("\n")
    );
}

/// Owners a role may not give away: a rep's own record stays theirs, whatever field of
/// another user's id they send, on PATCH, batch and upsert.
#[test]
fn a_rep_cannot_give_a_record_to_someone_else_on_any_write_path() {
    let app = TestApp::start();
    let (_, rep) = app.user("sales_rep");
    let (other, _) = app.user("sales_rep");
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let mut checked = 0;
    for (collection, body) in [
        ("accounts", json!({"name": "Mine Ltd"})),
        (
            "contacts",
            json!({"first_name": "Mine", "last_name": "Person"}),
        ),
        ("leads", json!({"company": "Mine Co", "last_name": "Lead"})),
    ] {
        let path = format!("/api/v1/{collection}");
        let record = declared(&spec)
            .into_iter()
            .find(|r| r.path == path)
            .map(|r| r.record)
            .unwrap_or_default();
        assert!(properties(&spec, &format!("{record}Create")).contains_key("owner_id"));
        let mut given = body.clone();
        given["owner_id"] = json!(other);
        let res = app.post(&path, &rep, &given);
        assert!(
            [403, 422].contains(&res.status),
            "POST {path}: {}",
            res.text
        );
        let url = format!("{path}/external/erp/MINE");
        let mine = app.put(&url, &rep, &body);
        assert_eq!(mine.status, 201, "{}", mine.text);
        let id = mine.json()["id"].as_str().unwrap_or_default().to_string();
        let patch = app.patch(&format!("{path}/{id}"), &rep, &json!({"owner_id": other}));
        let upsert = app.put(&url, &rep, &given);
        let batch = app
            .post(
                &format!("{path}/batch"),
                &rep,
                &json!({"items": [{"op": "update", "id": id, "body": {"owner_id": other}}]}),
            )
            .json();
        for (how, status) in [
            ("PATCH", u64::from(patch.status)),
            ("upsert", u64::from(upsert.status)),
            ("batch", batch["results"][0]["status"].as_u64().unwrap_or(0)),
        ] {
            checked += 1;
            assert!([403, 422].contains(&status), "{how} {path}: {status}");
        }
        let stored = app.get(&format!("{path}/{id}"), &app.admin_token).json();
        assert_ne!(stored["owner_id"], json!(other), "{path}: {stored}");
    }
    assert_eq!(checked, 9);
}
