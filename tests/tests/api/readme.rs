//! The README's curl walk-through, run as written against a live server.

use crm_tests::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use std::process::Command;

/// The shell blocks between `<!-- walkthrough:NAME -->` and `<!-- /walkthrough -->`.
fn walkthrough(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_default();
    let start = format!("<!-- walkthrough:{name} -->");
    let section = readme
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once("<!-- /walkthrough -->"))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| panic!("README has no walkthrough {name}"));
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

fn run(app: &TestApp, script: &str) -> String {
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
