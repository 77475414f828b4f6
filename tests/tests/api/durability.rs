//! Durability after failures: a job that panics inside its transaction, a worker that keeps
//! dying, an import whose job ends for good. Nothing answered with a 2xx is ever lost.

use crm_core::db::{self, DbConn};
use crm_core::jobs::{self, enqueue, JobRegistry};
use crm_tests::TestApp;
use diesel::RunQueryDsl;
use serde_json::json;
use std::time::Duration;

/// Rows of a table as a reader on its own connection sees them: committed rows only.
fn committed_rows(app: &TestApp, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn: DbConn = db::connect_once(&app.state.config.database_url)
        .unwrap_or_else(|e| panic!("separate connection: {e}"));
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<N>(&mut conn)
        .map(|r| r.n)
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

/// A job kind that exists only in tests: it panics halfway through a write transaction.
fn panicking_registry() -> JobRegistry {
    let mut r = JobRegistry::default();
    r.poll_interval = Duration::from_millis(20);
    r.register("test.panic-in-transaction", |conn, _| {
        db::write_tx(conn, |c| -> Result<(), crm_core::error::ApiError> {
            diesel::sql_query("UPDATE write_lock SET n = n").execute(c)?;
            panic!("a bug in a job, on purpose");
        })
        .map_err(|e| e.to_string().into())
    });
    r
}

#[test]
fn writes_after_a_job_panicked_in_its_transaction_are_committed() {
    let app = TestApp::start_with(panicking_registry(), |c| c.db_pool_size = 2);
    let id = {
        let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
        enqueue(&mut conn, "test.panic-in-transaction", &json!({}), 1).unwrap_or_default()
    };
    let job = crate::jobs::wait_for_status(&app, &id, "dead");
    assert_eq!(job["status"], "dead", "{job}");
    assert!(job["last_error"]
        .as_str()
        .unwrap_or("")
        .contains("panicked"));
    for i in 0..12 {
        let res = app.post(
            "/api/v1/accounts",
            &app.admin_token,
            &json!({"name": format!("After the panic {i}")}),
        );
        assert_eq!(res.status, 201, "{}", res.text);
    }
    assert_eq!(
        committed_rows(&app, "accounts"),
        12,
        "every acknowledged write is committed, as another reader of the database sees it"
    );
}

#[test]
fn a_job_whose_worker_keeps_dying_is_given_up_after_its_attempts() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    let id = enqueue(&mut conn, "test.kills-its-worker", &json!({}), 2).unwrap_or_default();
    // Two workers take it and die (their leases run out).
    for worker in ["first", "second"] {
        let taken = jobs::claim(&mut conn, worker, Duration::from_millis(1))
            .ok()
            .flatten();
        assert_eq!(taken.map(|j| j.id), Some(id.clone()));
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(conn);
    let worked = jobs::work_once(&app.state.pool, &app.state.jobs, "third");
    assert_eq!(worked.ok(), Some(false), "no attempt is left to hand out");
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), &app.admin_token)
        .json();
    assert_eq!(
        (job["status"].clone(), job["attempts"].clone()),
        (json!("dead"), json!(2)),
        "{job}"
    );
    assert!(job["last_error"]
        .as_str()
        .unwrap_or("")
        .contains("lease expired"));
}

#[test]
fn an_import_whose_job_is_given_up_says_failed_instead_of_running() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let res = app.upload(
        "/api/v1/imports?object=accounts&mode=create",
        "text/csv",
        b"name\nAcme\n",
    );
    assert_eq!(res.status, 202, "{}", res.text);
    let import_id = res.json()["id"].as_str().unwrap_or_default().to_string();
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    // Every attempt's worker dies before finishing.
    while let Some(job) = jobs::claim(&mut conn, "doomed", Duration::from_millis(1))
        .ok()
        .flatten()
    {
        assert_eq!(job.kind, "import.run");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(conn);
    let _ = jobs::work_once(&app.state.pool, &app.state.jobs, "reaper");
    let import = app
        .get(&format!("/api/v1/imports/{import_id}"), &app.admin_token)
        .json();
    assert_eq!(import["status"], "failed", "{import}");
    assert!(
        import["error"].as_str().unwrap_or("").contains("stopped"),
        "{import}"
    );
}

/// A server that stopped in the middle of an `Idempotency-Key` request leaves its claim
/// without a stored response. The database states such a stop leaves are set up directly.
#[test]
fn an_idempotency_key_whose_request_never_finished_runs_once_and_only_once() {
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.idempotency_lease = Duration::from_secs(1)
    });
    let send = |key: &str, name: &str| {
        let body = json!({ "name": name }).to_string();
        let headers = [("Idempotency-Key", key)];
        app.send(
            "POST",
            "/api/v1/teams",
            Some(&app.admin_token),
            &headers,
            Some(&body),
        )
    };
    // The claim as a stop leaves it: no response, claimed a little longer ago than the lease.
    let stopped = |key: &str| {
        let claimed = crm_core::ids::now_plus(chrono::Duration::seconds(-10));
        app.execute(&format!(
            "UPDATE idempotency_keys SET status_code = NULL, response_body = NULL, \
             response_headers = NULL, created_at = '{claimed}' WHERE idem_key = '{key}'"
        ))
    };

    // Stopped after the write committed: the claim says so (it was marked in the write's
    // own transaction), so a retry is refused instead of creating the team twice.
    assert_eq!(send("after-commit", "Ops").status, 201);
    let marked = "UPDATE idempotency_keys SET write_committed = TRUE WHERE write_committed";
    assert_eq!(app.execute(marked), 1, "the write marked its claim");
    assert_eq!(stopped("after-commit"), 1);
    let retry = send("after-commit", "Ops").problem(409);
    assert!(
        retry["detail"]
            .as_str()
            .unwrap_or("")
            .contains("carried out"),
        "{retry}"
    );
    assert_eq!(app.count("teams"), 1);

    // Stopped before the write committed (it rolled back): once the lease is over, the
    // retry runs the request instead of answering 409 for a day.
    assert_eq!(send("before-commit", "Support").status, 201);
    stopped("before-commit");
    app.execute(
        "UPDATE idempotency_keys SET write_committed = FALSE WHERE idem_key = 'before-commit'",
    );
    app.execute("DELETE FROM teams WHERE name = 'Support'");
    let retry = send("before-commit", "Support");
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(app.count("teams"), 2);
    // And from then on it replays like any finished request.
    let replay = send("before-commit", "Support");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("teams"), 2);
}
