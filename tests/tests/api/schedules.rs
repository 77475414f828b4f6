//! The platform scheduler and the lead recycle policy it runs: a tick fires once across
//! replicas, the clock survives restarts, and stale leads move with their reason recorded.

use crm_tests::TestApp;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn recycle_jobs(app: &TestApp) -> Vec<Value> {
    let page = app
        .get("/api/v1/jobs?kind=lead-recycle&limit=200", &app.admin_token)
        .json();
    page["data"].as_array().cloned().unwrap_or_default()
}

fn lead(app: &TestApp, body: Value) -> String {
    let res = app.post("/api/v1/leads", &app.admin_token, &body);
    assert_eq!(res.status, 201, "{}", res.text);
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

/// Make a lead look untouched since `when` (only time leaves this state).
fn age(app: &TestApp, id: &str, when: &str) {
    assert_eq!(
        app.execute(&format!(
            "UPDATE leads SET updated_at = '{when}' WHERE id = '{id}'"
        )),
        1
    );
}

#[test]
fn the_recycle_task_is_listed_with_its_clock_and_admins_change_its_cadence() {
    let app = TestApp::start();
    let list = app.get("/api/v1/schedules", &app.admin_token).json();
    let task = list["data"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "lead-recycle").cloned())
        .unwrap_or_default();
    assert_eq!(task["every_seconds"], 3600);
    assert_eq!(task["enabled"], true);
    // Aligned to the hour.
    assert!(
        task["next_run_at"]
            .as_str()
            .unwrap_or("")
            .ends_with(":00:00.000000Z"),
        "{task}"
    );

    let (_, rep) = app.user("sales_rep");
    app.get("/api/v1/schedules", &rep).problem(403);
    app.patch(
        "/api/v1/schedules/lead-recycle",
        &rep,
        &json!({"every_seconds": 5}),
    )
    .problem(403);
    let bad = app
        .patch(
            "/api/v1/schedules/lead-recycle",
            &app.admin_token,
            &json!({"every_seconds": 0}),
        )
        .problem(422);
    assert_eq!(bad["errors"][0]["field"], "every_seconds");
    app.get("/api/v1/schedules/no-such-task", &app.admin_token)
        .problem(404);

    let res = app.send_json(
        "PATCH",
        "/api/v1/schedules/lead-recycle",
        &app.admin_token,
        &json!({"every_seconds": 600, "enabled": false}),
        &[("If-Match", "\"v1\"")],
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["every_seconds"], 600);
    assert_eq!(res.json()["enabled"], false);
    let stale = app.send_json(
        "PATCH",
        "/api/v1/schedules/lead-recycle",
        &app.admin_token,
        &json!({"enabled": true}),
        &[("If-Match", "\"v1\"")],
    );
    stale.problem(412);
    let audit = app
        .get("/api/v1/audit-log?entity_type=schedule", &app.admin_token)
        .json();
    assert_eq!(
        audit["data"][0]["changes"]["every_seconds"]["to"], 600,
        "{audit}"
    );
}

#[test]
fn each_tick_fires_once_across_two_server_processes_and_stale_leads_are_recycled_once() {
    let app = TestApp::start();
    let pool_lead = lead(&app, json!({"last_name": "Pool", "status": "new"}));
    let worked = lead(&app, json!({"last_name": "Worked", "status": "working"}));
    let fresh = lead(&app, json!({"last_name": "Fresh", "status": "working"}));
    let nurtured = lead(
        &app,
        json!({"last_name": "Nurtured", "status": "nurturing"}),
    );
    for id in [&pool_lead, &worked, &nurtured] {
        age(&app, id, "2026-01-05T09:00:00.000000Z");
    }
    // 29 days old: inside the working rule's 30 days.
    let recent = crm_core::ids::now_plus(-chrono::Duration::days(29));
    age(&app, &fresh, &recent);
    let policy = json!({"rules": [
        {"status": "new", "after_days": 14, "action": "return_to_pool", "reason": "No first touch in 14 days"},
        {"status": "working", "after_days": 30, "action": "nurture", "reason": "Gone quiet for 30 days"},
        {"status": "nurturing", "after_days": 90, "action": "disqualify", "reason": "No reply in 90 days"},
    ]});
    let res = app.send_json(
        "PUT",
        "/api/v1/lead-recycle-policy",
        &app.admin_token,
        &policy,
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("etag"), Some("\"v1\""));

    // A second replica on the same database, then ticks every second.
    let mut other = crate::imports::spawn_server(&app);
    let res = app.patch(
        "/api/v1/schedules/lead-recycle",
        &app.admin_token,
        &json!({"every_seconds": 1}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    wait_for("five ticks", || recycle_jobs(&app).len() >= 5);
    let _ = other.kill();
    let _ = other.wait();

    let clock = app
        .get("/api/v1/schedules/lead-recycle", &app.admin_token)
        .json();
    let jobs = recycle_jobs(&app);
    // Every firing enqueued exactly one job, and no tick fired twice.
    assert_eq!(clock["fired_count"].as_u64(), Some(jobs.len() as u64));
    let ticks: HashSet<String> = jobs
        .iter()
        .map(|j| j["payload"]["tick"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ticks.len(), jobs.len(), "a tick fired twice: {jobs:?}");
    wait_for("the jobs to run", || {
        recycle_jobs(&app)
            .iter()
            .all(|j| j["status"] == "succeeded")
    });

    let get = |id: &str| {
        app.get(&format!("/api/v1/leads/{id}"), &app.admin_token)
            .json()
    };
    let p = get(&pool_lead);
    assert_eq!(
        (p["status"].as_str(), p["owner_id"].as_str()),
        (Some("new"), None)
    );
    assert_eq!(p["recycle_reason"], "No first touch in 14 days");
    let w = get(&worked);
    assert_eq!(w["status"], "nurturing");
    assert!(w["owner_id"].is_string(), "nurturing keeps the owner: {w}");
    assert_eq!(w["recycle_reason"], "Gone quiet for 30 days");
    let n = get(&nurtured);
    assert_eq!(n["status"], "disqualified");
    assert_eq!(n["disqualified_reason"], "No reply in 90 days");
    let f = get(&fresh);
    assert_eq!(f["status"], "working");
    assert!(f["recycled_at"].is_null());

    // Many ticks ran, but the worked lead moved once: moving it touched it.
    let timeline = app
        .get(
            &format!("/api/v1/leads/{worked}/timeline?kind=lead.recycled"),
            &app.admin_token,
        )
        .json();
    let entries = timeline["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{timeline}");
    assert_eq!(entries[0]["data"]["reason"], "Gone quiet for 30 days");
    assert_eq!(entries[0]["data"]["status"]["from"], "working");
}

#[test]
fn a_bad_policy_is_refused_whole_and_a_manual_run_applies_the_policy_now() {
    let app = TestApp::start();
    let bad = app
        .put(
            "/api/v1/lead-recycle-policy",
            &app.admin_token,
            &json!({"rules": [
                {"status": "working", "after_days": 0, "action": "nurture", "reason": "x"},
                {"status": "working", "after_days": 5, "action": "nurture", "reason": "x"},
                {"status": "nurturing", "after_days": 5, "action": "nurture", "reason": "x"},
            ]}),
        )
        .problem(422);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(fields.contains(&"rules[0].after_days"), "{bad}");
    assert_eq!(
        app.get("/api/v1/lead-recycle-policy", &app.admin_token)
            .json()["version"],
        0
    );
    let (_, rep) = app.user("sales_rep");
    app.put("/api/v1/lead-recycle-policy", &rep, &json!({"rules": []}))
        .problem(403);

    let id = lead(&app, json!({"last_name": "Old", "status": "working"}));
    age(&app, &id, "2025-06-01T00:00:00.000000Z");
    let res = app.send_json("PUT", "/api/v1/lead-recycle-policy", &app.admin_token, &json!({"rules": [{"status": "working", "after_days": 60, "action": "disqualify", "reason": "Stale"}]}), &[]);
    assert_eq!(res.status, 200, "{}", res.text);
    let run = app.post(
        "/api/v1/schedules/lead-recycle/run",
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(run.status, 202, "{}", run.text);
    let job = run.json()["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_for("the manual run", || {
        app.get(&format!("/api/v1/jobs/{job}"), &app.admin_token)
            .json()["status"]
            == "succeeded"
    });
    let lead = app
        .get(&format!("/api/v1/leads/{id}"), &app.admin_token)
        .json();
    assert_eq!(lead["status"], "disqualified");
    assert_eq!(lead["disqualified_reason"], "Stale");
}
