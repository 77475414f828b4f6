//! Concurrent writers. On PostgreSQL writers run in parallel (no global lock): a write
//! locks what it reads to change, so no answered change is lost, no key is inserted twice
//! and no total misses a payment. On SQLite the same tests hold with its single writer.

use crm_tests::TestApp;
use serde_json::{json, Value};

const WRITERS: usize = 8;

fn in_parallel<T: Send>(per_writer: impl Fn(usize) -> T + Sync) -> Vec<T> {
    at_once(WRITERS, per_writer)
}

/// `n` writers at once, each told its number; what each returned, in order.
fn at_once<T: Send>(n: usize, per_writer: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let work = &per_writer;
        let handles: Vec<_> = (0..n).map(|w| s.spawn(move || work(w))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("writer panicked")))
            .collect()
    })
}

#[test]
fn concurrent_patches_of_one_record_lose_none_of_the_answered_changes() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let id = app
        .post("/api/v1/accounts", t, &json!({"name": "Contended"}))
        .json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rounds = 25;
    let answered: usize = in_parallel(|w| {
        (0..rounds)
            .filter(|i| {
                let res = app.patch(
                    &format!("/api/v1/accounts/{id}"),
                    t,
                    &json!({"industry": format!("w{w}-{i}")}),
                );
                // A write that lost a race says so (409) and wrote nothing.
                assert!(
                    matches!(res.status, 200 | 409),
                    "{} {}",
                    res.status,
                    res.text
                );
                res.status == 200
            })
            .count()
    })
    .into_iter()
    .sum();
    assert!(answered > 0);
    let after = app.get(&format!("/api/v1/accounts/{id}"), t).json();
    // Every 200 moved the version by one: none was written over by another.
    assert_eq!(after["version"], json!(1 + answered), "{after}");
    let audited = app
        .get(
            &format!("/api/v1/audit-log?entity_id={id}&action=updated&limit=200"),
            t,
        )
        .json();
    assert_eq!(
        audited["data"].as_array().map(Vec::len),
        Some(answered),
        "one audit row per answered change"
    );
}

#[test]
fn concurrent_upserts_of_one_external_key_make_one_record() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let statuses = in_parallel(|w| {
        app.send(
            "PUT",
            "/api/v1/accounts/external/erp/C-7",
            Some(t),
            &[],
            Some(&json!({"name": format!("Acme {w}")}).to_string()),
        )
        .status
    });
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 201)),
        "{statuses:?}"
    );
    assert_eq!(app.count("accounts"), 1);
}

#[test]
fn concurrent_payments_on_one_invoice_all_count_in_amount_paid() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let account = app
        .post("/api/v1/accounts", t, &json!({"name": "Payer"}))
        .json();
    let invoice: Value = app
        .post(
            "/api/v1/invoices",
            t,
            &json!({"account_id": account["id"], "number": "INV-9", "currency": "EUR",
                "amount_total": 1_000_000, "issued_on": "2026-01-10", "due_on": "2099-02-09"}),
        )
        .json();
    let invoice_id = invoice["id"].as_str().unwrap_or_default().to_string();
    in_parallel(|_| {
        let res = app.post(
            "/api/v1/payments",
            t,
            &json!({"invoice_id": invoice_id, "amount": 1000, "received_on": "2026-01-20",
                "method": "card"}),
        );
        assert_eq!(res.status, 201, "{}", res.text);
    });
    let after = app.get(&format!("/api/v1/invoices/{invoice_id}"), t).json();
    assert_eq!(after["amount_paid"], json!(1000 * WRITERS), "{after}");
}

/// A web form taking a name, an email and consent to mail; its submission path.
fn web_form(app: &TestApp) -> String {
    let form = app.post(
        "/api/v1/forms",
        &app.admin_token,
        &json!({"name": "Demo", "consent_text": "Send me news", "fields": [
            {"name": "name", "maps_to": "last_name"}, {"name": "mail", "maps_to": "email"}]}),
    );
    assert_eq!(form.status, 201, "{}", form.text);
    format!(
        "/api/v1/forms/{}/submissions",
        form.json()["public_key"].as_str().unwrap_or_default()
    )
}

fn submit(app: &TestApp, url: &str, body: &Value) -> u16 {
    let res = app.send("POST", url, None, &[], Some(&body.to_string()));
    assert_eq!(res.status, 201, "{}", res.text);
    res.status
}

#[test]
fn a_visitor_submitting_a_web_form_twice_at_once_becomes_one_lead() {
    let app = TestApp::start();
    let url = web_form(&app);
    let visitors = 5;
    for v in 0..visitors {
        // A double click: the same submission twice at once, the address written differently.
        at_once(2, |w| {
            let mail = if w == 0 {
                format!("visitor{v}@example.com")
            } else {
                format!("Visitor{v}@Example.com")
            };
            submit(&app, &url, &json!({"name": "Twice", "mail": mail}))
        });
    }
    assert_eq!(app.count("leads"), visitors, "one lead per visitor");
    assert_eq!(app.count("form_submissions"), 2 * visitors);
    assert_eq!(
        app.count("(SELECT DISTINCT lead_id FROM form_submissions) AS s"),
        visitors,
        "both submissions of a visitor are recorded against their one lead"
    );
}

#[test]
fn identical_quotas_created_at_once_store_one_and_refuse_the_others() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (rep, _) = app.user("sales_rep");
    let quota = json!({"user_id": rep, "period": "2027-Q1", "currency": "EUR", "amount": 50_000});
    let answers = in_parallel(|_| app.post("/api/v1/quotas", t, &quota));
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|r| r.status != 201) {
        let p = refused.problem(409);
        assert_eq!(p["code"], "conflict", "{p}");
    }
    let listed = app.get(&format!("/api/v1/quotas?user_id={rep}"), t).json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(app.count("quotas"), 1);
    // An archived quota is history: the user may be given another for the period.
    let first = listed["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        app.delete(&format!("/api/v1/quotas/{first}"), t).status,
        204
    );
    let again = app.post("/api/v1/quotas", t, &quota);
    assert_eq!(again.status, 201, "{}", again.text);
    // Restoring the first while the second is active is refused.
    app.post(&format!("/api/v1/quotas/{first}/restore"), t, &json!({}))
        .problem(409);
}

fn id_of(res: &crm_tests::Resp) -> String {
    assert!(matches!(res.status, 200 | 201), "{}", res.text);
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn submissions_at_once_by_one_lead_each_count_and_hand_it_off_once() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (rep, _) = app.user("sales_rep");
    let rule = id_of(&app.post(
        "/api/v1/lead-assignment-rules",
        t,
        &json!({"name": "Hot leads", "assign_to": "user", "user_id": rep,
            "conditions": [{"field": "score", "op": "gte", "value": 200}]}),
    ));
    id_of(&app.post(
        "/api/v1/scoring-models",
        t,
        &json!({"name": "Engaged", "applies_to": "lead", "handoff_score": 200, "rules": [
            {"kind": "behaviour", "event": "form_submitted", "points": 40}]}),
    ));
    let url = web_form(&app);
    // The first submission makes the lead (40); it then gives three more addresses.
    submit(
        &app,
        &url,
        &json!({"name": "Lamarr", "mail": "hedy0@example.com"}),
    );
    let leads = app.get("/api/v1/leads", t).json();
    let lead = leads["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(leads["data"][0]["score"], 40, "{leads}");
    let emails: Vec<Value> = (0..4)
        .map(|i| json!({"email": format!("hedy{i}@example.com"), "primary": i == 0}))
        .collect();
    let res = app.patch(
        &format!("/api/v1/leads/{lead}"),
        t,
        &json!({ "emails": emails }),
    );
    assert_eq!(res.status, 200, "{}", res.text);

    // Four submissions at once, each from another of the lead's addresses: 40 points each.
    at_once(4, |w| {
        submit(
            &app,
            &url,
            &json!({"name": "Lamarr", "mail": format!("hedy{w}@example.com")}),
        )
    });
    let after = app.get(&format!("/api/v1/leads/{lead}"), t).json();
    assert_eq!(after["score"], 200, "{after}");
    let history = app
        .get(
            &format!("/api/v1/score-history?entity_type=lead&entity_id={lead}"),
            t,
        )
        .json();
    let mut steps: Vec<(i64, i64)> = history
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["old_score"].as_i64().unwrap_or(-1),
                h["new_score"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    steps.sort_unstable();
    assert_eq!(
        steps,
        [(0, 40), (40, 80), (80, 120), (120, 160), (160, 200)],
        "{history}"
    );
    // Reaching 200 handed the lead to sales, once.
    assert_eq!(after["owner_id"], rep.as_str(), "{after}");
    let rule = app
        .get(&format!("/api/v1/lead-assignment-rules/{rule}"), t)
        .json();
    assert_eq!(rule["assigned_count"], 1, "{rule}");
}

#[test]
fn one_user_put_on_two_commission_plans_at_once_lands_on_one() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (rep, _) = app.user("sales_rep");
    let answers = in_parallel(|w| {
        app.post(
            "/api/v1/commission-plans",
            t,
            &json!({"name": format!("Plan {w}"), "user_ids": [rep],
                "tiers": [{"from_percent": 0, "rate_percent": 5}]}),
        )
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|r| r.status != 201) {
        let p = refused.problem(422);
        assert_eq!(p["errors"][0]["field"], "user_ids[0]", "{p}");
    }
    assert_eq!(app.count("commission_plans"), 1);
}

#[test]
fn a_contact_enrolled_by_hand_at_once_gets_one_run() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let ada = id_of(&app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "Ada", "last_name": "L"}),
    ));
    let flow = id_of(&app.post(
        "/api/v1/automations",
        t,
        &json!({"name": "Nurture", "status": "active", "trigger": {"event": "order.created"},
            "enrolment": {"once_per_subject": true},
            "steps": [{"type": "wait", "hours": 24}]}),
    ));
    let enrolled: i64 = in_parallel(|_| {
        let res = app.post(
            &format!("/api/v1/automations/{flow}/enrolments"),
            t,
            &json!({ "contact_ids": [ada] }),
        );
        assert_eq!(res.status, 200, "{}", res.text);
        res.json()["enrolled"].as_i64().unwrap_or(-1)
    })
    .into_iter()
    .sum();
    assert_eq!(enrolled, 1);
    assert_eq!(app.count("automation_runs"), 1);
}

#[test]
fn consent_given_on_several_submissions_at_once_is_recorded_for_each() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let emails: Vec<Value> = (0..4)
        .map(|i| json!({"email": format!("ada{i}@example.com"), "primary": i == 0}))
        .collect();
    let ada = id_of(&app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "Ada", "last_name": "L", "emails": emails}),
    ));
    let url = web_form(&app);
    // One person on several devices: each address of hers at once, each agreeing to mail.
    at_once(4, |w| {
        submit(
            &app,
            &url,
            &json!({"name": "Lovelace", "mail": format!("ada{w}@example.com"), "consent": true}),
        )
    });
    let contact = app.get(&format!("/api/v1/contacts/{ada}"), t).json();
    assert_eq!(
        contact["consents"]["email"]["status"], "granted",
        "{contact}"
    );
    assert_eq!(app.count("form_submissions"), 4);
    assert_eq!(app.count("leads"), 0);
}

#[test]
fn accounts_changed_while_a_realignment_runs_are_placed_once_and_fail_nothing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let mut accounts: Vec<String> = in_parallel(|w| {
        (0..40)
            .map(|i| {
                id_of(&app.post(
                    "/api/v1/accounts",
                    t,
                    &json!({"name": format!("Fjord {w}-{i}"), "billing_address": {"country": "NO"}}),
                ))
            })
            .collect::<Vec<_>>()
    })
    .concat();
    // A new territory: every account is out of place until it is placed again.
    let nordics = id_of(&app.post(
        "/api/v1/territories",
        t,
        &json!({"name": "Nordics", "rules": {"countries": ["NO"]}}),
    ));
    let run = app.post("/api/v1/territories/realign", t, &json!({}));
    assert_eq!(run.status, 202, "{}", run.text);
    let job = run.json()["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The job places the accounts by ascending id; meanwhile each is changed, by descending
    // id, which places it too: the two meet on some account.
    accounts.sort_unstable_by(|a, b| b.cmp(a));
    in_parallel(|w| {
        for a in accounts.iter().skip(w).step_by(WRITERS) {
            let res = app.patch(
                &format!("/api/v1/accounts/{a}"),
                t,
                &json!({"industry": "Fishing"}),
            );
            assert_eq!(res.status, 200, "{}", res.text);
        }
    });
    let start = std::time::Instant::now();
    let done = loop {
        let j = app.get(&format!("/api/v1/jobs/{job}"), t).json();
        if j["status"] == "succeeded" || j["status"] == "failed" {
            break j;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "the job did not finish: {j}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        (
            done["status"].clone(),
            done["attempts"].clone(),
            done["last_error"].clone()
        ),
        (json!("succeeded"), json!(1), Value::Null),
        "the realignment succeeded at its first attempt: {done}"
    );
    for a in &accounts {
        let placed = app
            .get(&format!("/api/v1/accounts/{a}/territory"), t)
            .json();
        assert_eq!(placed["territory"]["id"], nordics.as_str(), "{placed}");
        assert_eq!(
            placed["history"].as_array().map(Vec::len),
            Some(1),
            "placed once: {placed}"
        );
    }
}

#[test]
fn a_database_busy_past_its_timeout_answers_503_with_retry_after_never_500() {
    use crm_core::db::{self, BackendKind};
    use diesel::connection::SimpleConnection;
    // PostgreSQL: statements give up after 1.5 s (before the 10 s lock timeout); SQLite waits
    // out its 10 s busy timeout.
    let app = TestApp::start_with(Default::default(), |c| {
        c.pg_session_limits.statement_timeout = std::time::Duration::from_millis(1500)
    });
    let t = &app.admin_token;
    // Another program holds the write lock meanwhile.
    let mut holder = db::connect_once(&app.state.config.database_url)
        .unwrap_or_else(|e| panic!("separate connection: {e}"));
    let hold = match db::backend_of(&holder) {
        BackendKind::Sqlite => "BEGIN IMMEDIATE",
        BackendKind::Postgres => "BEGIN; LOCK TABLE accounts IN EXCLUSIVE MODE",
    };
    holder
        .batch_execute(hold)
        .unwrap_or_else(|e| panic!("{hold}: {e}"));
    let busy = app.post("/api/v1/accounts", t, &json!({"name": "Busy"}));
    holder
        .batch_execute("ROLLBACK")
        .unwrap_or_else(|e| panic!("rollback: {e}"));
    let p = busy.problem(503);
    assert_eq!(p["code"], "unavailable", "{p}");
    assert_eq!(busy.header("retry-after"), Some("2"));
    // Nothing was written, and once the lock is gone the retry goes through.
    assert_eq!(app.count("accounts"), 0);
    let retry = app.post("/api/v1/accounts", t, &json!({"name": "Busy"}));
    assert_eq!(retry.status, 201, "{}", retry.text);
}
