//! The README's curl walk-throughs, run as written against a live server.

use crm_tests::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};
use std::process::Command;

/// The shell blocks between `<!-- KIND:NAME -->` and `<!-- /KIND -->`.
fn sh_blocks(kind: &str, name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_default();
    let start = format!("<!-- {kind}:{name} -->");
    let end = format!("<!-- /{kind} -->");
    let section = readme
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| panic!("README has no {kind} {name}"));
    let mut script = String::new();
    let mut inside = false;
    for line in section.lines() {
        if line.starts_with("```") {
            inside = !inside && line.starts_with("```sh");
            continue;
        }
        if inside {
            script.push_str(line);
            script.push('\n');
        }
    }
    script
}

/// The shell blocks of `<!-- walkthrough:NAME -->`.
pub(crate) fn walkthrough(name: &str) -> String {
    sh_blocks("walkthrough", name)
}

/// The shell blocks of `<!-- snippet:NAME -->`.
pub(crate) fn snippet(name: &str) -> String {
    sh_blocks("snippet", name)
}

pub(crate) fn run(app: &TestApp, script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("CRM", &app.base)
        .env("CRM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TOKEN", &app.admin_token)
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_customers_walkthrough_works_when_pasted_into_a_shell() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("customers"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("\"name\":\"Acme Group\"") && lines[0].contains("Acme France"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("ada@acme.com") && lines[2].contains("ada@acme.com"),
        "{stdout}"
    );
    assert!(
        lines[3].contains("Send proposal") && !lines[3].contains("Discovery call"),
        "{stdout}"
    );
    assert!(
        lines[4].contains("activity.task") && lines[4].contains("activity.call"),
        "{stdout}"
    );
    assert!(lines[5].contains("same_email"), "{stdout}");
    assert!(lines[6].contains("ada@example.org"), "{stdout}");
    assert!(
        lines[7].contains("\"erased_at\":\"") && !lines[7].contains("Lovelace"),
        "{stdout}"
    );
}

#[test]
fn the_sales_walkthrough_goes_from_lead_to_won_deal_and_commission() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("sales"));
    let mut lines = stdout.lines();
    let refused: Value = serde_json::from_str(lines.next().unwrap_or_default()).unwrap_or_default();
    assert_eq!(refused["status"], 422, "{stdout}");
    assert_eq!(refused["errors"][0]["field"], "amount", "{stdout}");
    assert_eq!(refused["errors"][1]["field"], "close_date", "{stdout}");
    let won: Value = serde_json::from_str(lines.next().unwrap_or_default()).unwrap_or_default();
    assert_eq!(won["status"], "won", "{stdout}");
    assert_eq!(won["amount"], 4_800_000);
    assert!(won["closed_at"].is_string());
    assert!(won["lead_id"].is_string());
    assert_eq!(app.count("accounts"), 1);
    // 3 × 1,999 less 12.5% = 5,247 net, at 5%: 262.35, rounded to 262.
    let statement: Value =
        serde_json::from_str(lines.next().unwrap_or_default()).unwrap_or_default();
    assert_eq!(statement["credited_revenue"], 5_247, "{stdout}");
    assert_eq!(statement["total_commission"], 262, "{stdout}");
}

#[test]
fn the_marketing_walkthrough_mails_only_the_consenting_members_of_a_segment() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("marketing"));
    let m: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert_eq!(
        (
            m["members"].clone(),
            m["reached"].clone(),
            m["skipped"].clone()
        ),
        (json!(3), json!(2), json!(1)),
        "{stdout}"
    );
    let outbox = app.get("/api/v1/outbox", &app.admin_token).json();
    let mut to: Vec<&str> = outbox["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["template"] == "campaign")
        .filter_map(|m| m["to_address"].as_str())
        .collect();
    to.sort();
    assert_eq!(to, ["ann@example.com", "ben@example.com"]);
}

#[test]
fn the_journey_walkthrough_goes_from_form_submission_to_campaign_metrics() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("journey"));
    let mut lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null));
    let (m, journey): (Value, Value) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let touches: Vec<(&Value, &Value)> = journey["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (&t["kind"], &t["campaign_name"]))
        .collect();
    assert_eq!(
        touches,
        [(&json!("form_submission"), &json!("Spring webinar"))],
        "{stdout}"
    );
    assert_eq!(
        (
            m["members"].clone(),
            m["reached"].clone(),
            m["leads"].clone(),
            m["cost_per_lead"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(30000)),
        "{stdout}"
    );
    let outbox = app.get("/api/v1/outbox", &app.admin_token).json();
    let to: Vec<&str> = outbox["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["template"] == "campaign")
        .filter_map(|m| m["to_address"].as_str())
        .collect();
    assert_eq!(to, ["ada@example.com"]);
    assert_eq!(
        app.count("contact_consents WHERE channel = 'email' AND status = 'granted'"),
        1
    );
}

#[test]
fn the_loyalty_walkthrough_earns_on_an_order_and_redeems_a_retried_reward_once() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("loyalty"));
    let m: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert_eq!(
        (
            m["balance"].clone(),
            m["lifetime_points"].clone(),
            m["tier"].clone()
        ),
        (json!(34), json!(64), json!("Gold")),
        "{stdout}"
    );
    assert_eq!(app.count("loyalty_ledger WHERE kind = 'redeem'"), 1);
}

#[test]
fn the_list_import_snippet_fills_a_list_from_a_csv_with_consent() {
    let app = TestApp::start();
    let stdout = run(&app, &snippet("list-import"));
    let page: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    let mut names: Vec<&str> = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["last_name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Hopper", "Lovelace"], "{stdout}");
    assert_eq!(
        app.count("contact_consents WHERE status = 'granted' AND source = 'import'"),
        2
    );
}

#[test]
fn the_sms_reply_snippet_opts_the_contact_out() {
    let app = TestApp::start();
    let contact = app.post(
        "/api/v1/contacts",
        &app.admin_token,
        &json!({"first_name": "Ann", "last_name": "Text", "phones": [{"number": "+33612345678"}],
            "consents": {"sms": {"status": "granted", "source": "shop"}}}),
    );
    let id = contact.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let stdout = run(&app, &snippet("sms-reply"));
    let out: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert_eq!(
        (out["opted_out"].clone(), out["contact_ids"].clone()),
        (json!(true), json!([id])),
        "{stdout}"
    );
    let ann = app
        .get(&format!("/api/v1/contacts/{id}"), &app.admin_token)
        .json();
    assert_eq!(ann["consents"]["sms"]["status"], "withdrawn", "{ann}");
}

#[test]
fn the_service_walkthrough_goes_from_inbound_mail_to_survey() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("service"));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    let group = &report["groups"][0];
    assert_eq!(group["responses"], 1, "{stdout}");
    assert_eq!(group["average_rating"], 5.0);
    assert_eq!(group["nps"], 100.0);
    let tickets = app.get("/api/v1/tickets", &app.admin_token).json();
    let t = &tickets["data"][0];
    assert_eq!(t["status"], "solved");
    assert_eq!(t["channel"], "email");
    let id = t["id"].as_str().unwrap_or_default();
    let convo = app
        .get(&format!("/api/v1/tickets/{id}/messages"), &app.admin_token)
        .json();
    let kinds: Vec<&str> = convo["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["inbound", "public", "inbound"]);
    assert!(t["first_responded_at"].is_string() && t["resolution_due_at"].is_string());
}

#[test]
fn the_billing_walkthrough_works_when_pasted_into_a_shell() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("billing"));
    assert!(
        stdout.contains("\"currency\":\"EUR\",\"open_balance\":100000,\"overdue_amount\":100000,\"invoices_open\":1,\"invoices_overdue\":1"),
        "{stdout}"
    );
}

#[test]
fn the_readme_walkthrough_works_when_pasted_into_a_shell() {
    let app = TestApp::start();
    let script = walkthrough("basics");
    assert!(script.contains("curl"));
    let stdout = run(&app, &script);
    // The last steps show the API key working and a problem response.
    assert!(stdout.contains("\"role\":\"admin\""), "{stdout}");
    assert!(stdout.contains("application/problem+json"), "{stdout}");
    assert!(stdout.contains("\"status\":422"), "{stdout}");
}

#[test]
fn the_sync_walkthrough_upserts_by_key_reads_the_feed_once_and_exports() {
    let app = TestApp::start();
    let stdout = run(&app, &walkthrough("sync"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.get(..3),
        Some(&["201", "200", "\"succeeded\":2,\"failed\":0"][..]),
        "created, then updated by the same key; the batch wrote both items\n{stdout}"
    );
    assert_eq!(
        lines.get(3..7),
        Some(
            &[
                "account.created Globex",
                "account.updated Globex Corporation",
                "account.created Initech",
                "account.created Umbrella",
            ][..]
        ),
        "every account change once, in order\n{stdout}"
    );
    let cursor = lines
        .get(7)
        .and_then(|l| l.strip_prefix("next_cursor: "))
        // `seq`, or `tx.seq` on PostgreSQL (see the feed's `Position`).
        .filter(|c| c.split('.').all(|part| part.parse::<u64>().is_ok()))
        .unwrap_or_else(|| panic!("no next_cursor line\n{stdout}"));
    let again: Value = serde_json::from_str(lines.get(8).copied().unwrap_or_default())
        .unwrap_or_else(|e| panic!("second read is not JSON ({e})\n{stdout}"));
    assert_eq!(
        again,
        json!({"data": [], "next_cursor": cursor, "has_more": false}),
        "nothing after the cursor\n{stdout}"
    );
    let header: Vec<&str> = lines
        .get(9)
        .copied()
        .unwrap_or_default()
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("CSV header has no {name}\n{stdout}"))
    };
    let (name, key) = (column("name"), column("external_id"));
    column("id");
    let rows: Vec<(String, String)> = lines[10..]
        .iter()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{l}");
            (cells[key].to_string(), cells[name].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("C-1001", "Globex Corporation"),
            ("C-1002", "Initech"),
            ("C-1003", "Umbrella"),
        ]
        .map(|(k, n)| (k.to_string(), n.to_string())),
        "{stdout}"
    );
}

#[test]
fn the_composite_walkthrough_creates_an_account_and_its_linked_contact() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let stdout = run(&app, &walkthrough("composite"));
    let answer: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let results = &answer["results"];
    assert_eq!(results[0]["reference_id"], "acct", "{stdout}");
    assert_eq!(results[0]["status"], 201, "{stdout}");
    assert_eq!(results[1]["reference_id"], "ceo", "{stdout}");
    assert_eq!(results[1]["status"], 201, "{stdout}");
    let account_id = results[0]["body"]["id"].as_str().unwrap_or_default();
    assert!(!account_id.is_empty(), "{stdout}");
    assert_eq!(
        results[1]["body"]["accounts"][0]["account_id"], account_id,
        "@{{acct.id}} became the new account's id\n{stdout}"
    );
    // Both were committed.
    let account = app.get(&format!("/api/v1/accounts/{account_id}"), t);
    assert_eq!(account.status, 200, "{}", account.text);
    assert_eq!(account.json()["external_id"], "C-2001");
    let contact_id = results[1]["body"]["id"].as_str().unwrap_or_default();
    let contact = app.get(&format!("/api/v1/contacts/{contact_id}"), t);
    assert_eq!(contact.status, 200, "{}", contact.text);
    assert_eq!(contact.json()["accounts"][0]["account_id"], account_id);
}

#[test]
fn the_import_walkthrough_reports_broken_rows_by_line_and_imports_the_rest() {
    let app = TestApp::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{}", walkthrough("import")))
        .current_dir(dir.path())
        .env("CRM", &app.base)
        .env("TOKEN", &app.admin_token)
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "processed 4, created 2, updated 0, failed 2",
            "\"line\":3,\"field\":\"employee_count\"",
            "\"line\":4,\"field\":\"name\"",
        ],
        "{stdout}"
    );
    let acme = app.get("/api/v1/accounts?q=acme", &app.admin_token).json();
    assert_eq!(acme["data"][0]["external_id"], "A-1");
    assert_eq!(acme["data"][0]["employee_count"], 120);
}
