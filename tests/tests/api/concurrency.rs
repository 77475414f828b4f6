//! Concurrent writers. On PostgreSQL writers run in parallel (no global lock): a write
//! locks what it reads to change, so no answered change is lost, no key is inserted twice
//! and no total misses a payment. On SQLite the same tests hold with its single writer.

use crm_tests::TestApp;
use serde_json::{json, Value};

const WRITERS: usize = 8;

fn in_parallel<T: Send>(per_writer: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let work = &per_writer;
        let handles: Vec<_> = (0..WRITERS).map(|w| s.spawn(move || work(w))).collect();
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
