//! The README's integrator guide, run against a live server: the cron sync job (paging,
//! a run with nothing new, the 410 resync) and the shell signature check, against real
//! webhook deliveries.

use crate::readme::{snippet, walkthrough};
use crm_tests::receiver::Receiver;
use crm_tests::TestApp;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Run a script with bash in strict mode in `dir`; (success, stdout, stderr).
fn bash(script: &str, dir: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[test]
fn the_sync_job_reads_each_change_once_and_resyncs_after_a_410() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let dir = tempdir();
    let script = walkthrough("poll");
    assert!(script.contains("limit=200"), "{script}");
    // Pages of two, so that the job has to follow has_more.
    let script = script.replace("limit=200", "limit=2");
    let job = || {
        let (ok, stdout, stderr) = bash(&script, dir.path(), &[("CRM", &app.base), ("TOKEN", t)]);
        assert!(ok, "sync job failed:\n{stdout}\n{stderr}");
        stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let create = |name: &str| {
        let res = app.post("/api/v1/accounts", t, &json!({ "name": name }));
        assert_eq!(res.status, 201, "{}", res.text);
        res.json()["id"].as_str().unwrap_or_default().to_string()
    };

    let first = create("A1");
    create("A2");
    create("A3");
    assert_eq!(
        job(),
        [
            "account.created A1",
            "account.created A2",
            "account.created A3"
        ]
    );
    assert!(dir.path().join("crm.cursor").exists());
    assert!(job().is_empty(), "a second run finds nothing new");

    let res = app.patch(
        &format!("/api/v1/accounts/{first}"),
        t,
        &json!({"name": "A1b"}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(job(), ["account.updated A1b"]);

    // The job falls behind the retention period: the next run gets a 410 and resyncs.
    create("A4");
    {
        let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
        let pruned =
            crm_core::integrations::feed::prune(&mut conn, chrono::Duration::days(-1)).unwrap_or(0);
        assert!(pruned > 0);
    }
    assert_eq!(job(), ["resync: 4 accounts"]);
    let export = std::fs::read_to_string(dir.path().join("accounts.ndjson")).unwrap_or_default();
    assert!(export.contains("\"name\":\"A4\""), "{export}");
    create("A5");
    assert_eq!(
        job(),
        ["account.created A5"],
        "after a resync, on from there"
    );
}

const SECRET: &str = "guide-webhook-secret-0123456789";

#[test]
fn the_readme_signature_check_accepts_real_deliveries_and_rejects_forgeries() {
    assert!(
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the README's signature check needs openssl (apt-get install openssl)"
    );
    let app = TestApp::start();
    let t = &app.admin_token;
    let receiver = Receiver::start(&[]);
    let res = app.post(
        "/api/v1/webhooks",
        t,
        &json!({"url": receiver.url, "event_types": ["contact.*"], "secret": SECRET}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let res = app.post("/api/v1/contacts", t, &json!({"first_name": "Ada"}));
    assert_eq!(res.status, 201, "{}", res.text);
    let delivery = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    let timestamp = delivery.headers["x-crm-timestamp"].clone();
    let signature = delivery.headers["x-crm-signature"].clone();

    let dir = tempdir();
    let body = dir.path().join("body.json");
    std::fs::write(&body, &delivery.body).unwrap_or_else(|e| panic!("{e}"));
    let tampered = dir.path().join("tampered.json");
    let forged = delivery.body.replace("Ada", "Eve");
    assert_ne!(forged, delivery.body);
    std::fs::write(&tampered, forged).unwrap_or_else(|e| panic!("{e}"));

    let script = snippet("verify-webhook");
    let check = |secret: &str, timestamp: &str, signature: &str, file: &Path| {
        let (ok, stdout, stderr) = bash(
            &script,
            dir.path(),
            &[
                ("SECRET", secret),
                ("TIMESTAMP", timestamp),
                ("SIGNATURE", signature),
                ("BODY_FILE", &file.display().to_string()),
            ],
        );
        assert_eq!(
            ok,
            stdout.trim() == "valid",
            "exit status and answer disagree:\n{stdout}\n{stderr}"
        );
        stdout.trim().to_string()
    };

    assert_eq!(check(SECRET, &timestamp, &signature, &body), "valid");
    assert_eq!(check(SECRET, &timestamp, &signature, &tampered), "invalid");
    assert_eq!(
        check(
            "another-secret-0123456789abc",
            &timestamp,
            &signature,
            &body
        ),
        "invalid"
    );
    // Correctly signed but ten minutes old: a replay.
    let old = timestamp.parse::<i64>().unwrap_or(0) - 600;
    let old_signature = crm_core::integrations::webhooks::signature(SECRET, old, &delivery.body);
    assert_eq!(
        check(SECRET, &old.to_string(), &old_signature, &body),
        "invalid"
    );
    // The timestamp header never reaches shell arithmetic unchecked.
    let pwned = dir.path().join("pwned");
    let evil = format!("1[$(touch {})]", pwned.display());
    assert_eq!(check(SECRET, &evil, &signature, &body), "invalid");
    assert!(!pwned.exists(), "the timestamp header ran a command");
}
