//! Automations: a purchase of a product family mails the campaign's offer after the wait,
//! through a real SMTP server, once; exit events and conditions end runs; a web form's
//! submission starts its automation; a daily date trigger enrols once a day; definitions
//! with unknown parts are refused naming them.

use crate::marketing::{created, errors as fields};
use crm_core::jobs::JobRegistry;
use crm_tests::smtp::SmtpServer;
use crm_tests::TestApp;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The runs of an automation, oldest first.
fn runs(app: &TestApp, automation: &str) -> Vec<Value> {
    let page = app.get(
        &format!("/api/v1/automation-runs?automation_id={automation}&sort=started_at"),
        &app.admin_token,
    );
    assert_eq!(page.status, 200, "{}", page.text);
    page.json()["data"].as_array().cloned().unwrap_or_default()
}

fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the automation has `n` runs and every one has ended.
fn settled(app: &TestApp, automation: &str, n: usize) -> Vec<Value> {
    eventually("the runs to end", || {
        let r = runs(app, automation);
        (r.len() == n && r.iter().all(|x| x["status"] != "active")).then_some(r)
    })
}

fn history(app: &TestApp, run: &Value) -> Vec<(String, String)> {
    let id = run["id"].as_str().unwrap_or_default();
    let d = app.get(&format!("/api/v1/automation-runs/{id}"), &app.admin_token);
    assert_eq!(d.status, 200, "{}", d.text);
    d.json()["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["action"].as_str().unwrap_or_default().to_string(),
                h["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn order(app: &TestApp, account: &str, product: &str) {
    created(
        app,
        "/api/v1/orders",
        json!({"account_id": account, "currency": "EUR", "ordered_on": "2026-12-01",
            "lines": [{"product_id": product, "quantity": 1, "unit_price": 9900}]}),
    );
}

#[test]
fn a_purchase_mails_the_offer_after_the_wait_once_and_exit_rules_end_runs() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = TestApp::start_with(JobRegistry::default(), |c| c.smtp_url = Some(url.into()));
    let person = |first: &str, account: &str, consent: &str| {
        created(
            &app,
            "/api/v1/contacts",
            json!({"first_name": first, "last_name": "Buyer",
                "emails": [{"email": format!("{}@example.com", first.to_lowercase())}],
                "accounts": [{"account_id": account, "role": "buyer"}],
                "consents": {"email": {"status": consent, "source": "web_form"}}}),
        )
    };
    let acme = created(&app, "/api/v1/accounts", json!({"name": "Acme"}));
    let globex = created(&app, "/api/v1/accounts", json!({"name": "Globex"}));
    let ann = person("Ann", &acme, "granted");
    let bea = person("Bea", &globex, "withdrawn");
    let bike = created(
        &app,
        "/api/v1/products",
        json!({"sku": "BIKE", "name": "Bike", "family": "bikes"}),
    );
    let cap = created(
        &app,
        "/api/v1/products",
        json!({"sku": "CAP", "name": "Cap", "family": "apparel"}),
    );
    let offer = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Bike care", "channel": "email", "subject": "Your bike, {{ contact.first_name }}",
            "body_text": "Book a service at https://shop.example/service"}),
    );

    // Unknown parts are named, and nothing is saved.
    let bad = app
        .post(
            "/api/v1/automations",
            &app.admin_token,
            &json!({"name": "Bad", "trigger": {"event": "order.*", "when": [{"field": "total", "op": "approx", "value": 1}]},
                "steps": [{"type": "teleport"}, {"type": "wait", "seconds": 0},
                    {"type": "send_email", "campaign_id": bike},
                    {"type": "condition", "criteria": {"field": "shoe_size", "op": "eq", "value": 1}}],
                "exit": {"events": ["nonsense"]}}),
        )
        .problem(422);
    assert_eq!(
        fields(&bad),
        [
            "trigger.when[0].op",
            "steps[0].type",
            "steps[1].seconds",
            "steps[2].campaign_id",
            "steps[3].criteria.field",
            "exit.events[0]"
        ],
        "{bad}"
    );
    assert_eq!(app.count("automations"), 0);

    // Lists are bounded: at most 20 `when` tests in a trigger or a condition step, and 20
    // exit events.
    let test = json!({"field": "total", "op": "gte", "value": 1});
    let wait = json!({"type": "wait", "days": 1});
    for (body, field) in [
        (
            json!({"name": "Long", "trigger": {"event": "order.created", "when": vec![test.clone(); 10_000]},
                "steps": [wait]}),
            "trigger.when",
        ),
        (
            json!({"name": "Long", "trigger": {"event": "order.created"},
                "steps": [{"type": "condition", "when": vec![test.clone(); 21]}]}),
            "steps[0].when",
        ),
        (
            json!({"name": "Long", "trigger": {"event": "order.created"}, "steps": [wait],
                "exit": {"events": vec!["order.created"; 21]}}),
            "exit.events",
        ),
    ] {
        let p = app
            .post("/api/v1/automations", &app.admin_token, &body)
            .problem(422);
        assert_eq!(fields(&p), [field], "{p}");
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("at most 20"),
            "{p}"
        );
    }
    assert_eq!(app.count("automations"), 0);

    let care = created(
        &app,
        "/api/v1/automations",
        json!({"name": "Bike care", "status": "active",
            "trigger": {"event": "order.created", "product_family": "bikes"},
            "steps": [{"type": "wait", "seconds": 2}, {"type": "send_email", "campaign_id": offer},
                {"type": "set_field", "field": "lifecycle_stage", "value": "customer"},
                {"type": "create_task", "subject": "Call about the bike", "due_in_days": 2}]}),
    );
    let started = Instant::now();
    order(&app, &acme, &bike);
    order(&app, &globex, &bike);
    // Another family triggers nothing.
    order(&app, &acme, &cap);

    let mails = smtp.wait_for(1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "mailed before the wait ended"
    );
    let done = settled(&app, &care, 2);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["ann@example.com"]);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Your bike, Ann")
    );
    assert!(mails[0].header("List-Unsubscribe").is_some());
    let ann_run = done.iter().find(|r| r["subject_id"] == ann.as_str());
    let bea_run = done.iter().find(|r| r["subject_id"] == bea.as_str());
    let (Some(ann_run), Some(bea_run)) = (ann_run, bea_run) else {
        panic!("one run each: {done:?}")
    };
    assert_eq!(ann_run["status"], "completed");
    assert_eq!(
        history(&app, ann_run),
        [
            ("enrolled".into(), "done".into()),
            ("wait".into(), "waiting".into()),
            ("send_email".into(), "done".into()),
            ("set_field".into(), "done".into()),
            ("create_task".into(), "done".into()),
        ]
    );
    // Bea withdrew consent: her mail is skipped, counted on the campaign, and the run goes on.
    assert_eq!(
        history(&app, bea_run)[2],
        ("send_email".into(), "skipped".into())
    );
    let contact = app.get(&format!("/api/v1/contacts/{ann}"), &app.admin_token);
    assert_eq!(contact.json()["lifecycle_stage"], "customer");
    assert_eq!(
        app.count("activities WHERE kind = 'task' AND subject = 'Call about the bike'"),
        2
    );

    // A second bike: a new run, but the same campaign message never reaches Ann twice.
    order(&app, &acme, &bike);
    let again = settled(&app, &care, 3);
    let third = again.last().cloned().unwrap_or_default();
    assert_eq!(
        history(&app, &third)[2],
        ("send_email".into(), "skipped".into())
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.mails().len(), 1);

    // An exit event ends a waiting run; a stopped run is a 409 the second time.
    let nudge = created(
        &app,
        "/api/v1/automations",
        json!({"name": "Come back", "status": "active", "trigger": {"event": "contact.updated",
                "when": [{"field": "lifecycle_stage", "op": "eq", "value": "other"}]},
            "steps": [{"type": "wait", "hours": 24}, {"type": "notify"}],
            "exit": {"events": ["order.created"]}}),
    );
    let churn = |id: &str| {
        let r = app.patch(
            &format!("/api/v1/contacts/{id}"),
            &app.admin_token,
            &json!({"lifecycle_stage": "other"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    };
    churn(&ann);
    churn(&bea);
    let waiting = eventually("two waiting runs", || {
        let r = runs(&app, &nudge);
        (r.len() == 2 && r.iter().all(|x| x["wake_at"].is_string())).then_some(r)
    });
    order(&app, &acme, &cap);
    let exited = eventually("Ann's run to exit", || {
        let r = runs(&app, &nudge);
        r.iter()
            .find(|x| x["subject_id"] == ann.as_str() && x["status"] == "exited")
            .cloned()
    });
    assert_eq!(exited["exit_reason"], "exit event order.created");
    let bea_waiting = waiting
        .iter()
        .find(|x| x["subject_id"] == bea.as_str())
        .cloned()
        .unwrap_or_default();
    let path = format!(
        "/api/v1/automation-runs/{}/exit",
        bea_waiting["id"].as_str().unwrap_or_default()
    );
    let stopped = app.post(&path, &app.admin_token, &json!({}));
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    assert_eq!(stopped.json()["status"], "exited");
    app.post(&path, &app.admin_token, &json!({})).problem(409);
    // Only one run per contact at a time: churning again while none is active enrols anew,
    // and Ann's history across automations lists them all.
    let theirs = app.get(
        &format!("/api/v1/automation-runs?subject_id={ann}"),
        &app.admin_token,
    );
    assert_eq!(theirs.json()["data"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_form_submission_starts_its_automation_and_a_condition_ends_a_run() {
    let app = TestApp::start();
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Demo request", "consent_text": "Keep me posted", "fields": [
                {"name": "name", "maps_to": "last_name", "required": true},
                {"name": "mail", "maps_to": "email", "required": true},
                {"name": "firm", "maps_to": "company"}]}),
        )
        .json();
    let (form_id, key) = (
        form["id"].as_str().unwrap_or_default().to_string(),
        form["public_key"].as_str().unwrap_or_default().to_string(),
    );
    let follow_up = created(
        &app,
        "/api/v1/automations",
        json!({"name": "Demo follow-up", "status": "active",
            "trigger": {"event": "form_submission.created",
                "when": [{"field": "form_id", "op": "eq", "value": form_id}]},
            "steps": [
                {"type": "condition", "when": [{"field": "company", "op": "exists"}]},
                {"type": "set_field", "field": "status", "value": "working"},
                {"type": "create_task", "subject": "Book the demo"}]}),
    );
    let submit = |body: Value| {
        let r = app.send(
            "POST",
            &format!("/api/v1/forms/{key}/submissions"),
            None,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    };
    submit(
        json!({"name": "Lovelace", "mail": "ada@example.org", "firm": "Engines Ltd", "consent": true}),
    );
    submit(json!({"name": "Nobody", "mail": "no@example.org"}));

    let done = settled(&app, &follow_up, 2);
    assert!(done.iter().all(|r| r["subject_type"] == "lead"), "{done:?}");
    let lead_of = |email: &str| {
        let page = app.get(&format!("/api/v1/leads?email={email}"), &app.admin_token);
        page.json()["data"][0].clone()
    };
    let ada = lead_of("ada@example.org");
    let nobody = lead_of("no@example.org");
    assert_eq!(ada["status"], "working");
    assert_eq!(nobody["status"], "new");
    let by_subject = |lead: &Value| {
        done.iter()
            .find(|r| r["subject_id"] == lead["id"])
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_subject(&ada)["status"], "completed");
    let ended = by_subject(&nobody);
    assert_eq!(ended["status"], "exited");
    assert_eq!(ended["exit_reason"], "condition not met");
    assert_eq!(
        app.count("activities WHERE kind = 'task' AND subject = 'Book the demo'"),
        1
    );
    // A retried job for a step the run has passed does nothing.
    let run = by_subject(&ada)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    app.execute(&format!(
        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES ('00000000-0000-4000-8000-00000000aaaa', 'automation.advance', \
         '{{\"run_id\":\"{run}\",\"step\":1}}', 'queued', 0, 3, '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z')"
    ));
    eventually("the replayed job to finish", || {
        (app.count(
            "jobs WHERE id = '00000000-0000-4000-8000-00000000aaaa' AND status = 'succeeded'",
        ) == 1)
            .then_some(())
    });
    assert_eq!(
        app.count("activities WHERE kind = 'task' AND subject = 'Book the demo'"),
        1
    );
}

#[test]
fn a_daily_trigger_enrols_the_contacts_whose_date_has_come_once_a_day() {
    let app = TestApp::start();
    created(
        &app,
        "/api/v1/meta/objects/contact/fields",
        json!({"key": "renewal_on", "label": "Renewal", "field_type": "date"}),
    );
    let in_days = |d: i64| {
        (chrono::Utc::now() + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let person = |first: &str, renewal: String| {
        created(
            &app,
            "/api/v1/contacts",
            json!({"first_name": first, "last_name": "Renews", "custom": {"renewal_on": renewal}}),
        )
    };
    let due = person("Due", in_days(30));
    person("Later", in_days(90));
    let renewals = created(
        &app,
        "/api/v1/automations",
        json!({"name": "Renewal reminder", "status": "active",
            "trigger": {"daily": {"field": "custom.renewal_on", "op": "lte", "value": "+30d"}},
            "steps": [{"type": "notify", "data": {"kind": "renewal"}}]}),
    );
    let run_task = || {
        let r = app.post(
            "/api/v1/schedules/automations.daily/run",
            &app.admin_token,
            &json!({}),
        );
        assert!(r.status == 202 || r.status == 200, "{}", r.text);
    };
    run_task();
    let done = settled(&app, &renewals, 1);
    assert_eq!(done[0]["subject_id"], due.as_str());
    assert!(done[0]["trigger_key"]
        .as_str()
        .is_some_and(|k| k.starts_with("day:")));
    assert_eq!(
        app.count("events WHERE event_type = 'automation_run.notified'"),
        1
    );
    // The same day again enrols nobody twice.
    run_task();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(&app, &renewals).len(), 1);
}
