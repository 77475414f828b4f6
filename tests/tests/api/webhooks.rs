//! Webhooks: signed deliveries to a real HTTP listener, retries, no retry after a 4xx,
//! filters, redelivery, ping, the delivery log, and disabling a failing subscription.

use crm_tests::receiver::{Received, Receiver};
use crm_tests::TestApp;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const SECRET: &str = "whsec_test_secret_0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

fn subscribe(app: &TestApp, url: &str, types: Value, filters: Value) -> String {
    let res = app.post(
        "/api/v1/webhooks",
        &app.admin_token,
        &json!({"url": url, "event_types": types, "filters": filters, "secret": SECRET}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(
        res.json()["secret"],
        SECRET,
        "the secret is shown on create"
    );
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

/// Check a request's signature the way a receiver would.
#[track_caller]
fn assert_signed(r: &Received) {
    let ts = &r.headers["x-crm-timestamp"];
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.headers["x-crm-signature"], format!("v1={expected}"));
    let age = chrono_age(ts);
    assert!(age < 60, "timestamp is current");
}

fn chrono_age(ts: &str) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    now - ts.parse::<i64>().unwrap_or(0)
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    let res = app.get(
        &format!("/api/v1/webhooks/{hook}/deliveries"),
        &app.admin_token,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    res.json().as_array().cloned().unwrap_or_default()
}

#[test]
fn delivery_is_signed_retried_after_a_500_and_logged() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let receiver = Receiver::start(&[(500, None)]);
    let hook = subscribe(&app, &receiver.url, json!(["contact.*"]), json!({}));
    let contact = app
        .post("/api/v1/contacts", t, &json!({"first_name": "Grace"}))
        .json();
    app.post("/api/v1/accounts", t, &json!({"name": "Not subscribed"}));

    let got = receiver.wait_for(2, WAIT);
    assert_eq!(got.len(), 2, "one failed attempt, one retry");
    for r in &got {
        assert_signed(r);
        assert_eq!(r.headers["x-crm-event-type"], "contact.created");
        assert_eq!(body(r)["data"]["id"], contact["id"]);
        assert_eq!(body(r)["data"]["first_name"], "Grace");
    }
    assert_eq!(
        got[0].headers["x-crm-event-id"],
        got[1].headers["x-crm-event-id"]
    );
    assert_eq!(got[0].body, got[1].body, "a retry sends the same body");

    // The log: one delivery, delivered on the second attempt, each attempt with its status.
    std::thread::sleep(Duration::from_millis(300));
    let list = deliveries(&app, &hook);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "delivered");
    assert_eq!(list[0]["attempts"], 2);
    let detail = app
        .get(
            &format!(
                "/api/v1/webhooks/{hook}/deliveries/{}",
                list[0]["id"].as_str().unwrap_or("")
            ),
            t,
        )
        .json();
    let codes: Vec<Value> = detail["attempts_log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(200)]);
    assert!(detail["attempts_log"][0]["latency_ms"].is_i64());

    // Writes through a batch fire webhooks too.
    app.post(
        "/api/v1/contacts/batch",
        t,
        &json!({"items": [{"op": "create", "body": {"first_name": "Via batch"}}]}),
    );
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(body(&got[2])["data"]["first_name"], "Via batch");
}

#[test]
fn a_400_is_not_retried_and_redelivery_and_ping_work() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let receiver = Receiver::start(&[(400, None)]);
    let hook = subscribe(
        &app,
        &receiver.url,
        json!(["account.created"]),
        json!({"industry": "Retail"}),
    );
    app.post(
        "/api/v1/accounts",
        t,
        &json!({"name": "Filtered out", "industry": "Energy"}),
    );
    app.post(
        "/api/v1/accounts",
        t,
        &json!({"name": "Shop", "industry": "Retail"}),
    );
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(
        body(&got[0])["data"]["name"],
        "Shop",
        "the filter let only Retail through"
    );
    // Retries would come within a second (base 200 ms); none does after a 400.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.received().len(), 1);
    let list = deliveries(&app, &hook);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["status"].clone(), list[0]["attempts"].clone()),
        (json!("failed"), json!(1))
    );
    assert_eq!(list[0]["last_status_code"], 400);

    // Redeliver by hand: the same event again, now accepted.
    let id = list[0]["id"].as_str().unwrap_or_default();
    let res = app.post(
        &format!("/api/v1/webhooks/{hook}/deliveries/{id}/redeliver"),
        t,
        &json!({}),
    );
    assert_eq!(res.status, 202, "{}", res.text);
    let got = receiver.wait_for(2, WAIT);
    assert_eq!(
        got[1].headers["x-crm-event-id"],
        got[0].headers["x-crm-event-id"]
    );
    assert_signed(&got[1]);

    let res = app.post(&format!("/api/v1/webhooks/{hook}/ping"), t, &json!({}));
    assert_eq!(res.status, 202);
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(got[2].headers["x-crm-event-type"], "webhook.ping");
    assert_signed(&got[2]);
}

#[test]
fn bad_subscriptions_are_refused_and_a_failing_one_is_disabled() {
    let app = TestApp::start_with(Default::default(), |c| c.webhook_max_attempts = 3);
    let t = &app.admin_token;
    for url in [
        "ftp://example.com/x",
        "example.com",
        "http://",
        "javascript:alert(1)",
    ] {
        let p = app
            .post(
                "/api/v1/webhooks",
                t,
                &json!({"url": url, "event_types": ["*"]}),
            )
            .problem(422);
        assert_eq!(p["errors"][0]["field"], "url", "{url}");
    }
    app.post(
        "/api/v1/webhooks",
        t,
        &json!({"url": "https://example.com/h", "event_types": ["Contact"]}),
    )
    .problem(422);
    let (_, manager) = app.user("manager");
    app.post(
        "/api/v1/webhooks",
        &manager,
        &json!({"url": "https://example.com/h", "event_types": ["*"]}),
    )
    .problem(403);
    assert_eq!(app.count("webhooks"), 0);

    // A receiver that always fails: three attempts, then the subscription is disabled.
    let receiver = Receiver::start(&[(503, None), (503, None), (503, None), (503, None)]);
    let hook = subscribe(&app, &receiver.url, json!(["account.*"]), json!({}));
    app.post("/api/v1/accounts", t, &json!({"name": "Trigger"}));
    receiver.wait_for(3, WAIT);
    let mut disabled = Value::Null;
    for _ in 0..100 {
        disabled = app.get(&format!("/api/v1/webhooks/{hook}"), t).json();
        if disabled["active"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(disabled["active"], false, "{disabled}");
    assert!(disabled["disabled_reason"].as_str().is_some());
    // Admins are told through the feed.
    let feed = app.get("/api/v1/events?types=webhook.disabled", t).json();
    assert_eq!(feed["data"][0]["entity_id"], hook.as_str());
    // Disabled: no more deliveries.
    app.post("/api/v1/accounts", t, &json!({"name": "After"}));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(receiver.received().len(), 3);
}

#[test]
fn webhooks_to_private_addresses_are_refused_unless_allowed() {
    let app = TestApp::start_with(Default::default(), |c| c.webhook_allow_private_urls = false);
    let t = &app.admin_token;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let p = app
            .post(
                "/api/v1/webhooks",
                t,
                &json!({"url": url, "event_types": ["*"]}),
            )
            .problem(422);
        assert_eq!(p["errors"][0]["code"], "private_address", "{url}");
    }
    assert_eq!(app.count("webhooks"), 0);
}

#[test]
fn other_spellings_of_private_hosts_are_refused_like_the_plain_ones() {
    let app = TestApp::start_with(Default::default(), |c| c.webhook_allow_private_urls = false);
    let t = &app.admin_token;
    // What an HTTP client (WHATWG URL parsing) connects to for each is a private address.
    for url in [
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://0/hook",
        "http://127.0.0.1./hook",
        "http://localhost./hook",
        "http://LOCALHOST/hook",
        "http://api.localhost./hook",
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]:8080/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
    ] {
        let p = app
            .post(
                "/api/v1/webhooks",
                t,
                &json!({"url": url, "event_types": ["*"]}),
            )
            .problem(422);
        assert_eq!(p["errors"][0]["code"], "private_address", "{url}: {p}");
    }
    assert_eq!(app.count("webhooks"), 0);
    // Other addresses written as IPv6 or as a number are still taken (inactive: nothing is
    // ever sent to them).
    for url in ["http://[2001:db8::1]:8443/hook", "http://3405803783/hook"] {
        let res = app.post(
            "/api/v1/webhooks",
            t,
            &json!({"url": url, "event_types": ["contact.merged"], "active": false}),
        );
        assert_eq!(res.status, 201, "{url}: {}", res.text);
    }
}

#[test]
fn signing_secrets_are_sealed_at_rest_and_older_plaintext_ones_are_sealed_at_start_up() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let receiver = Receiver::start(&[]);
    let hook = subscribe(&app, &receiver.url, json!(["account.*"]), json!({}));
    assert!(!app.all_stored_text().contains(SECRET), "sealed on create");

    // A row from before sealing existed holds its secret in plaintext; start-up seals it,
    // and deliveries still sign with it.
    app.execute(&format!(
        "UPDATE webhooks SET secret = '{SECRET}' WHERE id = '{hook}'"
    ));
    assert!(app.all_stored_text().contains(SECRET));
    let sealer =
        crm_core::sealed::Sealer::from_config(&app.state.config).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
    let sealed = crm_core::integrations::webhooks::seal_stored_secrets(&mut conn, &sealer);
    assert_eq!(sealed.ok(), Some(1));
    drop(conn);
    assert!(
        !app.all_stored_text().contains(SECRET),
        "sealed at start-up"
    );
    app.post("/api/v1/accounts", t, &json!({"name": "Signed"}));
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    assert_signed(&got[0]);
}
