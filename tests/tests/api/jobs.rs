use crm_core::jobs::{enqueue, JobRegistry};
use crm_tests::TestApp;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fast_registry() -> (JobRegistry, Arc<AtomicUsize>) {
    let mut r = JobRegistry::default();
    r.backoff_base = Duration::from_millis(50);
    r.poll_interval = Duration::from_millis(20);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // Fails twice, then succeeds.
    r.register("test.flaky", move |_, _| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Err("not yet".into())
        } else {
            Ok(())
        }
    });
    r.register("test.broken", |_, payload| {
        Err(format!("cannot handle {payload}").into())
    });
    (r, calls)
}

/// Poll a job until it has `status` (or 20 s pass); returns it as last seen.
pub fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = app
            .get(&format!("/api/v1/jobs/{id}"), &app.admin_token)
            .json();
        if job["status"] == status || Instant::now() > deadline {
            return job;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_job_is_retried_with_backoff_until_it_succeeds() {
    let (registry, calls) = fast_registry();
    let app = TestApp::start_with(registry, |_| {});
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    let id = enqueue(&mut conn, "test.flaky", &json!({"n": 1}), 5).unwrap_or_default();
    let job = wait_for_status(&app, &id, "succeeded");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(job["payload"]["n"], 1);
}

#[test]
fn a_job_that_keeps_failing_is_kept_dead_and_can_be_retried() {
    let (registry, _) = fast_registry();
    let app = TestApp::start_with(registry, |_| {});
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    let id = enqueue(&mut conn, "test.broken", &json!({"x": true}), 2).unwrap_or_default();
    let unknown = enqueue(&mut conn, "test.no-such-kind", &json!({}), 1).unwrap_or_default();
    let job = wait_for_status(&app, &id, "dead");
    assert_eq!(job["status"], "dead", "{job}");
    assert_eq!(job["attempts"], 2);
    assert!(job["last_error"]
        .as_str()
        .unwrap_or("")
        .contains("cannot handle"));
    let other = wait_for_status(&app, &unknown, "dead");
    assert!(other["last_error"]
        .as_str()
        .unwrap_or("")
        .contains("no handler"));

    let dead = app.get("/api/v1/jobs?status=dead", &app.admin_token).json();
    assert_eq!(dead["data"].as_array().map(Vec::len), Some(2));

    let retried = app.post(
        &format!("/api/v1/jobs/{id}/retry"),
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(retried.status, 200, "{}", retried.text);
    let again = wait_for_status(&app, &id, "dead");
    assert_eq!(again["attempts"], 2, "a retried job gets fresh attempts");
    // Only dead jobs can be retried.
    let (r2, _) = fast_registry();
    drop(r2);
    let ok = enqueue(&mut conn, "test.flaky", &json!({}), 5).unwrap_or_default();
    let _ = wait_for_status(&app, &ok, "succeeded");
    app.post(
        &format!("/api/v1/jobs/{ok}/retry"),
        &app.admin_token,
        &json!({}),
    )
    .problem(409);
}

#[test]
fn an_expired_lease_lets_another_worker_take_the_job() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    let id = enqueue(&mut conn, "anything", &json!({}), 3).unwrap_or_default();
    let first = crm_core::jobs::claim(&mut conn, "crashed-worker", Duration::from_millis(1))
        .ok()
        .flatten();
    assert_eq!(first.map(|j| j.id), Some(id.clone()));
    // Held by a live lease: nobody else may take it.
    let mut conn2 = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(20));
    let second = crm_core::jobs::claim(&mut conn2, "rescuer", Duration::from_secs(60))
        .ok()
        .flatten();
    assert_eq!(
        second.as_ref().map(|j| (j.id.clone(), j.attempts)),
        Some((id, 2))
    );
    let third = crm_core::jobs::claim(&mut conn2, "third", Duration::from_secs(60))
        .ok()
        .flatten();
    assert!(
        third.is_none(),
        "a job under a live lease is not handed out twice"
    );
}

/// A flood of one slow kind (deliveries to a dead webhook receiver) does not hold up
/// another kind queued after it: a worker gives a kind that nobody runs the next turn.
#[test]
fn a_flood_of_one_job_kind_does_not_hold_up_the_others() {
    let mut registry = JobRegistry::default();
    registry.poll_interval = Duration::from_millis(20);
    let done: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (slow_done, quick_done) = (done.clone(), done.clone());
    registry.register("test.slow", move |_, _| {
        std::thread::sleep(Duration::from_millis(200));
        slow_done.lock().map(|mut d| d.push("slow".into())).ok();
        Ok(())
    });
    registry.register("test.quick", move |_, _| {
        quick_done.lock().map(|mut d| d.push("quick".into())).ok();
        Ok(())
    });
    let app = TestApp::start_with(registry, |_| {});
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    for n in 0..20 {
        enqueue(&mut conn, "test.slow", &json!({"n": n}), 1).unwrap_or_default();
    }
    let quick = enqueue(&mut conn, "test.quick", &json!({}), 1).unwrap_or_default();
    let job = wait_for_status(&app, &quick, "succeeded");
    assert_eq!(job["status"], "succeeded", "{job}");
    let order = done.lock().map(|d| d.clone()).unwrap_or_default();
    let position = order.iter().position(|k| k == "quick");
    // First-in-first-out would run it after all twenty; fair turns, after at most the
    // slow jobs the workers had already taken.
    assert!(
        position.is_some_and(|p| p <= 3),
        "the quick job ran at {position:?} in {order:?}"
    );
}
