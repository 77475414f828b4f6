//! The change feed and its event stream: order, state after the change, type filters,
//! visibility, a cursor that never skips under concurrent writers, retention (410), SSE.

use crm_tests::TestApp;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn events(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/events?{query}"), token);
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()
}

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn feed_gives_each_change_once_in_order_with_the_state_after_it() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let start = events(&app, t, "")["next_cursor"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let account = app
        .post("/api/v1/accounts", t, &json!({"name": "Acme"}))
        .json();
    let id = account["id"].as_str().unwrap_or_default();
    app.patch(
        &format!("/api/v1/accounts/{id}"),
        t,
        &json!({"name": "Acme Ltd"}),
    );
    app.post("/api/v1/contacts", t, &json!({"first_name": "Ada"}));

    let page = events(&app, t, &format!("after={start}&types=account.*"));
    assert_eq!(types(&page), vec!["account.created", "account.updated"]);
    assert_eq!(
        page["data"][1]["data"]["name"], "Acme Ltd",
        "the state after the change"
    );
    assert_eq!(page["data"][1]["entity_id"], id);
    let all = events(
        &app,
        t,
        &format!("after={start}&types=account.created,contact.*"),
    );
    assert_eq!(types(&all), vec!["account.created", "contact.created"]);

    // Paging by cursor: limit 1 walks the same events one by one, then nothing more.
    let mut cursor = start.clone();
    let mut seen = vec![];
    loop {
        let page = events(&app, t, &format!("after={cursor}&types=account.*&limit=1"));
        seen.extend(types(&page));
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_string();
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(seen, vec!["account.created", "account.updated"]);
    assert!(events(&app, t, &format!("after={cursor}"))["data"]
        .as_array()
        .is_some_and(|d| d.is_empty()));
    app.get("/api/v1/events?after=abc", t).problem(400);
    app.get("/api/v1/events?types=Contact", t).problem(400);
}

#[test]
fn feed_shows_each_caller_only_what_they_may_see() {
    let app = TestApp::start();
    let t = &app.admin_token;
    app.post("/api/v1/accounts", t, &json!({"name": "Acme"}));
    let (_, analyst) = app.user("analyst");
    let (_, partner) = app.user("partner");
    let admin_types = types(&events(&app, t, ""));
    assert!(admin_types.contains(&"user.created".to_string()));
    let analyst_types = types(&events(&app, &analyst, ""));
    assert!(analyst_types.contains(&"account.created".to_string()));
    assert!(
        !analyst_types.iter().any(|t| t.starts_with("user.")),
        "{analyst_types:?}"
    );
    let partner_types = types(&events(&app, &partner, ""));
    assert!(partner_types.is_empty(), "{partner_types:?}");
}

/// A cursor as the feed orders it: `tx.seq`, or `seq` (transaction 0).
fn position(cursor: &str) -> (i64, i64) {
    let number = |n: &str| n.parse::<i64>().unwrap_or(-1);
    match cursor.split_once('.') {
        Some((tx, seq)) => (number(tx), number(seq)),
        None => (0, number(cursor)),
    }
}

#[test]
fn feed_cursor_never_skips_or_repeats_under_concurrent_writers() {
    let app = TestApp::start();
    let token = app.admin_token.clone();
    let start = events(&app, &token, "")["next_cursor"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let (writers, per_writer) = (8, 20);
    let seen = std::thread::scope(|s| {
        for w in 0..writers {
            let (app, token) = (&app, &token);
            s.spawn(move || {
                for i in 0..per_writer {
                    let res = app.post(
                        "/api/v1/accounts",
                        token,
                        &json!({"name": format!("w{w}-{i}")}),
                    );
                    assert_eq!(res.status, 201, "{}", res.text);
                }
            });
        }
        // Read concurrently with the writers, small pages, storing only the cursor.
        let mut cursor = start.clone();
        let mut seen: Vec<((i64, i64), String)> = vec![];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.len() < writers * per_writer && std::time::Instant::now() < deadline {
            let page = events(
                &app,
                &token,
                &format!("after={cursor}&types=account.created&limit=7"),
            );
            for e in page["data"].as_array().into_iter().flatten() {
                let at = position(e["cursor"].as_str().unwrap_or("0"));
                seen.push((at, e["data"]["name"].as_str().unwrap_or("").to_string()));
            }
            cursor = page["next_cursor"].as_str().unwrap_or_default().to_string();
        }
        seen
    });
    let names: HashSet<&String> = seen.iter().map(|(_, n)| n).collect();
    assert_eq!(
        seen.len(),
        writers * per_writer,
        "every change exactly once"
    );
    assert_eq!(names.len(), writers * per_writer, "no change twice");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in commit order");
}

#[test]
fn an_expired_cursor_is_410_with_how_to_resync() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let old = events(&app, t, "")["next_cursor"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    app.post("/api/v1/accounts", t, &json!({"name": "Soon pruned"}));
    {
        let mut conn = app.state.pool.get().unwrap_or_else(|e| panic!("{e}"));
        // Retention of "minus one day": everything is older than that.
        let pruned =
            crm_core::integrations::feed::prune(&mut conn, chrono::Duration::days(-1)).unwrap_or(0);
        assert!(pruned > 0);
    }
    let p = app
        .get(&format!("/api/v1/events?after={old}"), t)
        .problem(410);
    assert!(p["detail"].as_str().unwrap_or("").contains("exports"));
    let resync = p["resync_cursor"].as_str().unwrap_or_default().to_string();
    app.post("/api/v1/accounts", t, &json!({"name": "After resync"}));
    let page = events(&app, t, &format!("after={resync}"));
    assert_eq!(types(&page), vec!["account.created"]);
    assert_eq!(page["data"][0]["data"]["name"], "After resync");
}

/// Read server-sent events until one of `event_type` arrives; returns (id, data).
fn next_event(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    event_type: &str,
) -> (String, Value) {
    let (mut id, mut kind) = (String::new(), String::new());
    for line in lines {
        let line = line.unwrap_or_else(|e| panic!("stream: {e}"));
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            if kind == event_type {
                return (id, serde_json::from_str(v).unwrap_or(Value::Null));
            }
        }
    }
    panic!("the stream ended before a {event_type} event");
}

fn open_stream(
    app: &TestApp,
    query: &str,
    last_id: Option<&str>,
) -> impl Iterator<Item = std::io::Result<String>> {
    open_stream_as(app, &app.admin_token, query, last_id)
}

fn open_stream_as(
    app: &TestApp,
    token: &str,
    query: &str,
    last_id: Option<&str>,
) -> impl Iterator<Item = std::io::Result<String>> {
    let agent = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(20))
        .build();
    let mut req = agent
        .get(&format!("{}/api/v1/events/stream?{query}", app.base))
        .set("Authorization", &format!("Bearer {token}"));
    if let Some(id) = last_id {
        req = req.set("Last-Event-ID", id);
    }
    let res = req.call().unwrap_or_else(|e| panic!("stream: {e}"));
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let mut lines = BufReader::new(res.into_reader()).lines();
    // The stream is live once its first frame arrives.
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("retry: 2000")
    );
    lines
}

#[test]
fn event_stream_pushes_changes_live_and_resumes_with_last_event_id() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let mut lines = open_stream(&app, "types=account.*", None);
    app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "Filtered out"}),
    );
    app.post("/api/v1/accounts", t, &json!({"name": "Live"}));
    let (id, event) = next_event(&mut lines, "account.created");
    assert_eq!(event["data"]["name"], "Live");
    drop(lines);

    // Changes made while disconnected arrive on reconnect, after the last id seen.
    app.post("/api/v1/accounts", t, &json!({"name": "While away"}));
    let mut lines = open_stream(&app, "types=account.*", Some(&id));
    let (next_id, event) = next_event(&mut lines, "account.created");
    assert_eq!(event["data"]["name"], "While away");
    assert!(position(&next_id) > position(&id), "{next_id} after {id}");
}

#[test]
fn an_open_stream_closes_when_its_api_key_is_revoked() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let key = app
        .post("/api/v1/api-keys", t, &json!({"name": "dashboard"}))
        .json();
    let secret = key["secret"].as_str().unwrap_or_default().to_string();
    let mut lines = open_stream_as(&app, &secret, "types=account.*", None);
    app.post("/api/v1/accounts", t, &json!({"name": "Before"}));
    let (_, event) = next_event(&mut lines, "account.created");
    assert_eq!(event["data"]["name"], "Before");

    let key_id = key["id"].as_str().unwrap_or_default();
    let revoked = app.delete(&format!("/api/v1/api-keys/{key_id}"), t);
    assert!(revoked.status < 300, "{}", revoked.text);
    app.post("/api/v1/accounts", t, &json!({"name": "After"}));
    // The stream says why and ends; nothing written after the revocation reaches it.
    let mut rest = vec![];
    for line in lines {
        match line {
            Ok(l) => rest.push(l),
            Err(e) => panic!("the stream broke instead of ending: {e}"),
        }
    }
    let text = rest.join("\n");
    assert!(text.contains("event: revoked"), "{text}");
    assert!(!text.contains("\"After\""), "{text}");
}
