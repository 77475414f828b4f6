//! Service: tickets routed and assigned, acknowledged by mail through a real SMTP server,
//! status rules, the atomic queue pull, SLA due times with pause and resume, and the breach
//! escalation firing once.

use crm_core::jobs::JobRegistry;
use crm_tests::smtp::SmtpServer;
use crm_tests::TestApp;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn with_smtp() -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = TestApp::start_with(JobRegistry::default(), |c| c.smtp_url = Some(url.into()));
    (app, smtp)
}

fn id_of(res: &crm_tests::Resp) -> String {
    assert!(res.status == 201 || res.status == 200, "{}", res.text);
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

fn contact(app: &TestApp, email: &str) -> String {
    id_of(&app.post(
        "/api/v1/contacts",
        &app.admin_token,
        &json!({"first_name": "Kari", "last_name": "Nordmann", "emails": [{"email": email}]}),
    ))
}

fn queue(app: &TestApp, mode: &str, members: &[&str], manager: Option<&str>) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"user_id": m})).collect();
    id_of(&app.post(
        "/api/v1/queues",
        &app.admin_token,
        &json!({"name": format!("Q {mode}"), "assignment": mode, "members": members, "manager_id": manager}),
    ))
}

fn ticket(app: &TestApp, body: Value) -> Value {
    let res = app.post("/api/v1/tickets", &app.admin_token, &body);
    assert_eq!(res.status, 201, "{}", res.text);
    res.json()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn minutes_between(a: &Value, b: &Value) -> i64 {
    let parse = |v: &Value| {
        v.as_str()
            .unwrap_or_default()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap_or_default()
    };
    (parse(b) - parse(a)).num_minutes()
}

#[test]
fn routing_rules_and_queue_members_refuse_longer_lists_than_the_spec_allows() {
    let app = TestApp::start();
    let (agent, _) = app.user("agent");
    let billing = queue(&app, "round_robin", &[&agent], None);
    let many: Vec<String> = (0..51).map(|i| format!("c{i}")).collect();
    let p = app
        .post(
            "/api/v1/routing-rules",
            &app.admin_token,
            &json!({"name": "Wide", "conditions": {"categories": many}, "queue_id": billing}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "conditions.categories", "{p}");
    assert_eq!(p["errors"][0]["message"], "at most 50 values", "{p}");
    let p = app
        .post(
            "/api/v1/queues",
            &app.admin_token,
            &json!({"name": "Skilled", "members": [{"user_id": agent, "skills": many}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "members[0].skills", "{p}");
    assert_eq!(p["errors"][0]["message"], "at most 50 skills", "{p}");
}

#[test]
fn routed_tickets_go_round_robin_and_are_acknowledged_over_smtp() {
    let (app, smtp) = with_smtp();
    let (a1, _) = app.user("agent");
    let (a2, _) = app.user("agent");
    let billing = queue(&app, "round_robin", &[&a1, &a2], None);
    let rule = app.post(
        "/api/v1/routing-rules",
        &app.admin_token,
        &json!({"name": "Billing", "position": 1, "conditions": {"categories": ["billing"]}, "queue_id": billing}),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let kari = contact(&app, "kari@example.net");

    let tickets: Vec<Value> = (0..3)
        .map(|i| ticket(&app, json!({"subject": format!("Invoice {i}"), "category": "billing", "channel": "web", "contact_id": kari})))
        .collect();
    let assignees: Vec<&str> = tickets
        .iter()
        .map(|t| t["assignee_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(assignees, [a1.as_str(), a2.as_str(), a1.as_str()]);
    assert!(tickets
        .iter()
        .all(|t| t["queue_id"] == billing.as_str() && t["status"] == "open"));
    let numbers: Vec<i64> = tickets
        .iter()
        .map(|t| t["number"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(numbers[1], numbers[0] + 1);
    assert_eq!(numbers[2], numbers[1] + 1);

    // Not routed: no queue, nobody assigned, still new.
    let other = ticket(&app, json!({"subject": "Hello", "category": "other"}));
    assert_eq!(other["queue_id"], Value::Null);
    assert_eq!(other["status"], "new");

    let mails = smtp.wait_for(3);
    assert_eq!(
        mails.len(),
        3,
        "one acknowledgement per ticket with a contact"
    );
    // Two job workers send: the mails arrive in any order.
    let tag = format!("[#{}]", numbers[0]);
    let first = mails
        .iter()
        .find(|m| m.header("Subject").unwrap_or_default().contains(&tag))
        .unwrap_or_else(|| panic!("no acknowledgement for {tag}: {mails:?}"));
    assert_eq!(first.to, ["kari@example.net"]);
    assert!(
        first.body().contains(&format!("#{}", numbers[0])),
        "{}",
        first.body()
    );
    let ack_id = first.header("Message-ID").unwrap_or_default();
    wait_for("the outbox to show the mail as sent", || {
        app.get("/api/v1/outbox?status=sent", &app.admin_token)
            .json()["data"]
            .as_array()
            .map_or(0, Vec::len)
            == 3
    });

    // A public reply is mailed threaded under the acknowledgement and stops the first-response clock.
    let t0 = tickets[0]["id"].as_str().unwrap_or_default();
    let reply = app.post(
        &format!("/api/v1/tickets/{t0}/messages"),
        &app.admin_token,
        &json!({"kind": "public", "body": "We refunded the invoice."}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let note = app.post(
        &format!("/api/v1/tickets/{t0}/messages"),
        &app.admin_token,
        &json!({"kind": "internal", "body": "Refund approved by finance"}),
    );
    assert_eq!(note.status, 201, "{}", note.text);
    let mails = smtp.wait_for(4);
    assert_eq!(mails.len(), 4, "the internal note is not mailed");
    let replied = &mails[3];
    assert_eq!(replied.header("In-Reply-To"), Some(ack_id));
    assert!(replied.body().contains("We refunded the invoice."));
    let t = app
        .get(&format!("/api/v1/tickets/{t0}"), &app.admin_token)
        .json();
    assert!(t["first_responded_at"].is_string());
    let convo = app
        .get(&format!("/api/v1/tickets/{t0}/messages"), &app.admin_token)
        .json();
    let kinds: Vec<&str> = convo["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["public", "internal"]);

    // The ticket is on the contact's timeline.
    let timeline = app.get(
        &format!("/api/v1/contacts/{kari}/timeline"),
        &app.admin_token,
    );
    assert!(
        timeline.text.contains("ticket.created"),
        "{}",
        timeline.text
    );
}

#[test]
fn status_moves_only_along_the_lifecycle() {
    let app = TestApp::start();
    let t = ticket(&app, json!({"subject": "Broken"}));
    let id = t["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/tickets/{id}/status");
    let p = app
        .post(&path, &app.admin_token, &json!({"status": "closed"}))
        .problem(409);
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("open, pending_customer, on_hold, solved"),
        "{p}"
    );
    assert_eq!(
        p["allowed"],
        json!(["open", "pending_customer", "on_hold", "solved"])
    );
    for s in ["open", "solved", "open", "solved", "closed"] {
        let res = app.post(&path, &app.admin_token, &json!({"status": s}));
        assert_eq!(res.status, 200, "to {s}: {}", res.text);
    }
    let p = app
        .post(&path, &app.admin_token, &json!({"status": "open"}))
        .problem(409);
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("final"),
        "{p}"
    );
    // A PATCH cannot move the status; an unknown status is a 400/422, not a 500.
    let bad = app.post(&path, &app.admin_token, &json!({"status": "done"}));
    assert!(bad.status == 400 || bad.status == 422, "{}", bad.text);
    // A ticket for a contact that doesn't exist (or the caller may not see) is a 404.
    app.post(
        "/api/v1/tickets",
        &app.admin_token,
        &json!({"subject": "x", "contact_id": "0190b4a0-0000-7000-8000-000000000000"}),
    )
    .problem(404);
}

#[test]
fn twenty_concurrent_pulls_hand_out_each_ticket_once() {
    let app = TestApp::start();
    let agents: Vec<(String, String)> = (0..20).map(|_| app.user("agent")).collect();
    let ids: Vec<&str> = agents.iter().map(|(id, _)| id.as_str()).collect();
    let q = queue(&app, "pull", &ids, None);
    for i in 0..15 {
        let prio = if i % 5 == 0 { "urgent" } else { "normal" };
        let t = ticket(
            &app,
            json!({"subject": format!("T{i}"), "queue_id": q, "priority": prio}),
        );
        assert_eq!(t["assignee_id"], Value::Null, "a pull queue assigns nobody");
    }
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter()
            .map(|(_, token)| {
                let (app, q) = (&app, &q);
                s.spawn(move || {
                    let r = app.post(&format!("/api/v1/queues/{q}/next"), token, &json!({}));
                    (r.status, r.json())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let got: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| t)
        .collect();
    let empty = outcomes.iter().filter(|(s, _)| *s == 204).count();
    assert_eq!((got.len(), empty), (15, 5), "{outcomes:?}");
    let mut handed: Vec<&str> = got
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default())
        .collect();
    handed.sort_unstable();
    handed.dedup();
    assert_eq!(handed.len(), 15, "a ticket went to two agents");
    let mut owners: Vec<&str> = got
        .iter()
        .map(|t| t["assignee_id"].as_str().unwrap_or_default())
        .collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 15, "an agent got two tickets");

    // Priority first, then age: a fresh queue's first pull is its oldest urgent ticket.
    let q2 = queue(&app, "pull", &[&agents[0].0], None);
    let old_normal = ticket(&app, json!({"subject": "old", "queue_id": q2}));
    let urgent = ticket(
        &app,
        json!({"subject": "urgent", "queue_id": q2, "priority": "urgent"}),
    );
    let first = app.post(
        &format!("/api/v1/queues/{q2}/next"),
        &agents[0].1,
        &json!({}),
    );
    assert_eq!(first.json()["id"], urgent["id"]);
    let second = app.post(
        &format!("/api/v1/queues/{q2}/next"),
        &agents[0].1,
        &json!({}),
    );
    assert_eq!(second.json()["id"], old_normal["id"]);
    // Someone outside the queue may not pull from it.
    let (_, outsider) = app.user("agent");
    app.post(&format!("/api/v1/queues/{q2}/next"), &outsider, &json!({}))
        .problem(403);
}

fn round_the_clock(app: &TestApp) -> String {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hours: Vec<Value> = days
        .iter()
        .map(|d| json!({"day": d, "start": "00:00", "end": "24:00"}))
        .collect();
    id_of(&app.post(
        "/api/v1/business-calendars",
        &app.admin_token,
        &json!({"name": "24/7", "time_zone": "UTC", "weekly_hours": hours}),
    ))
}

#[test]
fn due_times_follow_the_policy_and_pending_customer_stops_the_clock() {
    let app = TestApp::start();
    let cal = round_the_clock(&app);
    let policy = app.post(
        "/api/v1/sla-policies",
        &app.admin_token,
        &json!({"name": "Standard", "calendar_id": cal,
                "targets": {"normal": {"first_response_minutes": 60, "resolution_minutes": 480},
                            "urgent": {"first_response_minutes": 15, "resolution_minutes": 120}}}),
    );
    assert_eq!(policy.status, 201, "{}", policy.text);
    let t = ticket(&app, json!({"subject": "Slow"}));
    let id = t["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        minutes_between(&t["created_at"], &t["first_response_due_at"]),
        60
    );
    assert_eq!(
        minutes_between(&t["created_at"], &t["resolution_due_at"]),
        480
    );

    let path = format!("/api/v1/tickets/{id}/status");
    let paused = app.post(
        &path,
        &app.admin_token,
        &json!({"status": "pending_customer"}),
    );
    assert_eq!(paused.status, 200, "{}", paused.text);
    assert!(paused.json()["sla_paused_at"].is_string());
    // Two hours waiting on the customer.
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::minutes(120);
    let stamp = two_hours_ago.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(
        app.execute(&format!(
            "UPDATE tickets SET sla_paused_at = '{stamp}' WHERE id = '{id}'"
        )),
        1
    );
    let resumed = app
        .post(&path, &app.admin_token, &json!({"status": "open"}))
        .json();
    assert_eq!(resumed["sla_paused_at"], Value::Null);
    assert_eq!(resumed["sla_paused_minutes"], 120);
    assert_eq!(
        minutes_between(&t["created_at"], &resumed["resolution_due_at"]),
        600
    );
    assert_eq!(
        minutes_between(&t["created_at"], &resumed["first_response_due_at"]),
        180
    );

    // Raising the priority recomputes the targets, keeping the pause.
    let urgent = app
        .patch(
            &format!("/api/v1/tickets/{id}"),
            &app.admin_token,
            &json!({"priority": "urgent"}),
        )
        .json();
    assert_eq!(
        minutes_between(&t["created_at"], &urgent["resolution_due_at"]),
        240
    );

    // Bad calendars are refused, naming the fields.
    let bad = app
        .post(
            "/api/v1/business-calendars",
            &app.admin_token,
            &json!({"name": "x", "time_zone": "Mars/Base", "weekly_hours": [
                {"day": "mon", "start": "09:00", "end": "12:00"}, {"day": "mon", "start": "11:00", "end": "13:00"}]}),
        )
        .problem(422);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["time_zone", "weekly_hours"]);
}

#[test]
fn a_breach_escalates_once_to_the_queue_manager() {
    let (app, smtp) = with_smtp();
    let (manager, _) = app.user("manager");
    let (agent, _) = app.user("agent");
    let q = queue(&app, "round_robin", &[&agent], Some(&manager));
    let cal = round_the_clock(&app);
    let res = app.post(
        "/api/v1/sla-policies",
        &app.admin_token,
        &json!({"name": "Std", "calendar_id": cal, "targets": {"normal": {"resolution_minutes": 480}}}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let t = ticket(&app, json!({"subject": "Down", "queue_id": q}));
    let id = t["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(t["assignee_id"], agent.as_str());
    assert_eq!(app.execute(&format!("UPDATE tickets SET resolution_due_at = '2026-01-01T00:00:00.000000Z' WHERE id = '{id}'")), 1);
    let stale = ticket(&app, json!({"subject": "Forgotten", "queue_id": q}));
    let stale_id = stale["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(app.execute(&format!("UPDATE tickets SET created_at = '2025-06-01T00:00:00.000000Z', sla_policy_id = NULL, resolution_due_at = NULL WHERE id = '{stale_id}'")), 1);

    for _ in 0..2 {
        let run = app.post(
            "/api/v1/schedules/sla.check/run",
            &app.admin_token,
            &json!({}),
        );
        assert_eq!(run.status, 202, "{}", run.text);
        let job = run.json()["job_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        wait_for("the SLA check", || {
            app.get(&format!("/api/v1/jobs/{job}"), &app.admin_token)
                .json()["status"]
                == "succeeded"
        });
    }
    let after = app
        .get(&format!("/api/v1/tickets/{id}"), &app.admin_token)
        .json();
    assert_eq!(after["priority"], "high", "raised one step, once");
    assert_eq!(after["assignee_id"], manager.as_str());
    let audit = app
        .get(
            &format!("/api/v1/audit-log?entity_id={id}&action=sla_breached"),
            &app.admin_token,
        )
        .json();
    assert_eq!(audit["data"].as_array().map_or(0, Vec::len), 1);
    // The long-forgotten ticket is reported once too.
    let notices = app
        .get(
            &format!("/api/v1/audit-log?entity_id={stale_id}&action=unresolved_notice"),
            &app.admin_token,
        )
        .json();
    assert_eq!(notices["data"].as_array().map_or(0, Vec::len), 1);
    let escalations = app
        .get("/api/v1/outbox?template=sla_escalation", &app.admin_token)
        .json();
    assert_eq!(
        escalations["data"].as_array().map_or(0, Vec::len),
        2,
        "one breach, one unresolved notice"
    );
    let mails = smtp.wait_for(2);
    assert!(
        mails
            .iter()
            .any(|m| m.header("Subject").unwrap_or_default().contains("breached")),
        "{mails:?}"
    );

    let report = app.get(
        &format!(
            "/api/v1/sla/compliance?period={}&group_by=queue",
            &t["created_at"].as_str().unwrap_or_default()[..7]
        ),
        &app.admin_token,
    );
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.json()["groups"][0]["resolution_breached"], 1);
    app.get("/api/v1/sla/compliance?period=2026-13", &app.admin_token)
        .problem(400);
}

#[test]
fn mail_templates_refuse_unknown_merge_fields() {
    let (app, smtp) = with_smtp();
    let bad = app
        .post(
            "/api/v1/mail-templates",
            &app.admin_token,
            &json!({"key": "ticket_acknowledgement", "subject": "#{{ ticket.number }} {{ ticket.secret }}", "body_text": "{{ nope }}"}),
        )
        .problem(422);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["subject", "body_text"]);
    assert!(bad.to_string().contains("ticket.secret"));
    let ok = app.post(
        "/api/v1/mail-templates",
        &app.admin_token,
        &json!({"key": "ticket_acknowledgement", "subject": "Case {{ ticket.number }} opened", "body_text": "Hi {{ contact.first_name }}"}),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    let kari = contact(&app, "kari@example.org");
    let t = ticket(&app, json!({"subject": "Hi", "contact_id": kari}));
    let mails = smtp.wait_for(1);
    assert_eq!(
        mails[0].header("Subject"),
        Some(format!("Case {} opened", t["number"]))
    );
    assert!(mails[0].body().contains("Hi Kari"));
    let keys = app
        .get("/api/v1/mail-template-keys", &app.admin_token)
        .json();
    assert!(keys.as_array().is_some_and(|k| k.len() >= 4));
}

fn inbound(app: &TestApp, key: &str, mail: Value) -> crm_tests::Resp {
    app.post_with(
        "/api/v1/inbound/email",
        &[("X-Gateway-Key", key), ("Content-Type", "application/json")],
        mail.to_string().as_bytes(),
    )
}

#[test]
fn inbound_mail_opens_threads_and_follows_up_tickets() {
    let (app, smtp) = with_smtp();
    let gw = app.post(
        "/api/v1/mail-gateways",
        &app.admin_token,
        &json!({"name": "Postfix"}),
    );
    assert_eq!(gw.status, 201, "{}", gw.text);
    let key = gw.json()["key"].as_str().unwrap_or_default().to_string();
    assert!(key.starts_with("crm_mgw_"));
    let gw_id = gw.json()["id"].as_str().unwrap_or_default().to_string();
    let listed = app.get(&format!("/api/v1/mail-gateways/{gw_id}"), &app.admin_token);
    assert!(listed.json().get("key").is_none(), "the key is shown once");
    assert_eq!(
        inbound(&app, "wrong", json!({"from": "a@b.example"})).status,
        401
    );
    let no_key = app.post_with(
        "/api/v1/inbound/email",
        &[("Content-Type", "application/json")],
        br#"{"from": "a@b.example", "subject": "hi"}"#,
    );
    no_key.problem(401);
    let p = inbound(&app, &key, json!({"subject": "No sender"})).problem(422);
    assert_eq!(p["errors"][0]["field"], "from");

    // A stranger writes in: a ticket on the email channel, acknowledged to the sender.
    let first = inbound(
        &app,
        &key,
        json!({"from": "Ola@Example.COM", "subject": "Printer on fire",
        "text": "It is burning.", "message_id": "<m1@mail.example.com>"}),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json()["outcome"], "created");
    let tid = first.json()["ticket_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let number = first.json()["ticket_number"].as_i64().unwrap_or_default();
    let t = app
        .get(&format!("/api/v1/tickets/{tid}"), &app.admin_token)
        .json();
    assert_eq!(t["channel"], "email");
    assert_eq!(t["description"], "It is burning.");
    let ack = smtp.wait_for(1);
    assert_eq!(ack[0].to, ["ola@example.com"]);
    assert_eq!(
        ack[0].header("In-Reply-To").as_deref(),
        Some("<m1@mail.example.com>")
    );
    let ack_id = ack[0].header("Message-ID").unwrap_or_default();

    // The gateway retries the same message: not recorded twice.
    let again = inbound(
        &app,
        &key,
        json!({"from": "ola@example.com", "subject": "Printer on fire", "message_id": "m1@mail.example.com"}),
    );
    assert_eq!(again.json()["outcome"], "duplicate", "{}", again.text);

    // A reply to our acknowledgement threads by header.
    let reply = inbound(
        &app,
        &key,
        json!({"from": "ola@example.com", "subject": "Re: whatever",
        "text": "Still burning", "message_id": "m2@mail.example.com", "in_reply_to": ack_id}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["outcome"], "threaded");
    assert_eq!(reply.json()["ticket_id"], tid.as_str());

    // An out-of-office answer is ignored.
    let auto = inbound(
        &app,
        &key,
        json!({"from": "ola@example.com", "subject": "Out of office",
        "headers": {"Auto-Submitted": "auto-replied"}}),
    );
    assert_eq!(auto.json()["outcome"], "ignored", "{}", auto.text);
    let convo = app
        .get(&format!("/api/v1/tickets/{tid}/messages"), &app.admin_token)
        .json();
    assert_eq!(convo["data"].as_array().map_or(0, Vec::len), 2);

    // A contact's raw RFC 5322 reply threads by the number in the subject, reopening the
    // solved ticket; once closed, a reply opens a follow-up.
    let kari = contact(&app, "kari@example.net");
    let theirs = inbound(
        &app,
        &key,
        json!({"from": "kari@example.net", "subject": "Login fails"}),
    );
    let kt = theirs.json()["ticket_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kn = theirs.json()["ticket_number"].as_i64().unwrap_or_default();
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{kt}"), &app.admin_token)
            .json()["contact_id"],
        kari.as_str()
    );
    let path = format!("/api/v1/tickets/{kt}/status");
    assert_eq!(
        app.post(&path, &app.admin_token, &json!({"status": "solved"}))
            .status,
        200
    );
    let raw = format!(
        "From: Kari Nordmann <kari@example.net>\r\nTo: support@example.com\r\nSubject: Re: [#{kn}] Login fails\r\n\
Message-ID: <raw1@example.net>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIt broke again.\r\n"
    );
    let threaded = app.post_with(
        "/api/v1/inbound/email",
        &[("X-Gateway-Key", &key), ("Content-Type", "message/rfc822")],
        raw.as_bytes(),
    );
    assert_eq!(threaded.status, 200, "{}", threaded.text);
    assert_eq!(threaded.json()["outcome"], "threaded");
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{kt}"), &app.admin_token)
            .json()["status"],
        "open"
    );
    // The subject number only threads for that ticket's contact.
    let stranger = inbound(
        &app,
        &key,
        json!({"from": "eve@example.org", "subject": format!("Re: [#{kn}]")}),
    );
    assert_eq!(stranger.json()["outcome"], "created");
    for s in ["solved", "closed"] {
        assert_eq!(
            app.post(&path, &app.admin_token, &json!({"status": s}))
                .status,
            200
        );
    }
    let late = inbound(
        &app,
        &key,
        json!({"from": "kari@example.net", "subject": format!("Re: [#{kn}] Login fails"), "text": "Again!"}),
    );
    assert_eq!(late.status, 201, "{}", late.text);
    assert_eq!(late.json()["outcome"], "follow_up");
    let follow = late.json()["ticket_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let f = app
        .get(&format!("/api/v1/tickets/{follow}"), &app.admin_token)
        .json();
    assert_eq!(f["follow_up_of"], kt.as_str());
    assert_ne!(f["number"], json!(number));
}

fn article(app: &TestApp, title: &str, body: &str, status: &str) -> String {
    id_of(&app.post(
        "/api/v1/kb/articles",
        &app.admin_token,
        &json!({"title": title, "body": body, "status": status, "language": "en"}),
    ))
}

fn titles(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r["article"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn articles_are_searched_ranked_and_suggested_for_tickets() {
    let (app, smtp) = with_smtp();
    let printer = article(
        &app,
        "Printer jams",
        "Open the tray and remove the paper.",
        "published",
    );
    let _toner = article(
        &app,
        "Replacing toner",
        "If the printer shows streaks, replace the toner.",
        "published",
    );
    let _draft = article(&app, "Printer firmware (draft)", "Not ready.", "draft");
    let vpn = article(
        &app,
        "VPN does not connect",
        "Check the VPN client version.",
        "published",
    );

    let found = app
        .get("/api/v1/kb/search?q=printer", &app.admin_token)
        .json();
    assert_eq!(
        titles(&found),
        ["Printer jams", "Replacing toner"],
        "title matches first; drafts never"
    );

    let kari = contact(&app, "kari@example.net");
    let t = ticket(
        &app,
        json!({"subject": "My printer jams all the time", "description": "Paper stuck", "contact_id": kari, "language": "en"}),
    );
    let tid = t["id"].as_str().unwrap_or_default();
    let suggested = app
        .get(
            &format!("/api/v1/tickets/{tid}/suggested-articles"),
            &app.admin_token,
        )
        .json();
    assert_eq!(
        titles(&suggested).first().map(String::as_str),
        Some("Printer jams")
    );
    assert!(!titles(&suggested).contains(&"VPN does not connect".to_string()));
    // The acknowledgement carries the top suggestions.
    let ack = smtp.wait_for(1);
    assert!(
        ack[0].body().contains("- Printer jams"),
        "{}",
        ack[0].body()
    );

    // Revisions, votes, links.
    let edited = app.patch(
        &format!("/api/v1/kb/articles/{vpn}"),
        &app.admin_token,
        &json!({"body": "Update the VPN client to 5.2."}),
    );
    assert_eq!(edited.json()["revision"], 2);
    let revs = app
        .get(
            &format!("/api/v1/kb/articles/{vpn}/revisions"),
            &app.admin_token,
        )
        .json();
    assert_eq!(revs.as_array().map_or(0, Vec::len), 2);
    assert_eq!(
        titles(
            &app.get("/api/v1/kb/search?q=client", &app.admin_token)
                .json()
        ),
        ["VPN does not connect"]
    );
    let (_, agent) = app.user("agent");
    app.post(
        &format!("/api/v1/kb/articles/{printer}/votes"),
        &agent,
        &json!({"helpful": false}),
    );
    app.post(
        &format!("/api/v1/kb/articles/{printer}/votes"),
        &agent,
        &json!({"helpful": true}),
    );
    let voted = app
        .post(
            &format!("/api/v1/kb/articles/{printer}/votes"),
            &app.admin_token,
            &json!({"helpful": true}),
        )
        .json();
    assert_eq!(
        (
            voted["helpful_votes"].as_i64(),
            voted["unhelpful_votes"].as_i64()
        ),
        (Some(2), Some(0))
    );
    let linked = app.post(
        &format!("/api/v1/tickets/{tid}/articles"),
        &agent,
        &json!({"article_id": printer}),
    );
    assert_eq!(linked.status, 200, "{}", linked.text);
    assert_eq!(linked.json()[0]["id"], printer.as_str());

    // An archived article is no longer found.
    assert_eq!(
        app.delete(&format!("/api/v1/kb/articles/{printer}"), &app.admin_token)
            .status,
        204
    );
    assert_eq!(
        titles(
            &app.get("/api/v1/kb/search?q=printer", &app.admin_token)
                .json()
        ),
        ["Replacing toner"]
    );
}

/// The body of the solved notice of ticket `number` (mails arrive in any order).
fn solved_mail(mails: &[crm_tests::smtp::Mail], number: &Value) -> String {
    let tag = format!("[#{number}] solved");
    mails
        .iter()
        .find(|m| m.header("Subject").unwrap_or_default().contains(&tag))
        .map(|m| m.body())
        .unwrap_or_else(|| panic!("no {tag} mail in {mails:?}"))
}

#[test]
fn a_solved_ticket_mails_a_single_use_survey() {
    let (app, smtp) = with_smtp();
    let (agent, agent_token) = app.user("agent");
    let q = queue(&app, "round_robin", &[&agent], None);
    let kari = contact(&app, "kari@example.net");
    let t = ticket(
        &app,
        json!({"subject": "Slow app", "contact_id": kari, "queue_id": q}),
    );
    let id = t["id"].as_str().unwrap_or_default();
    let solved = app.post(
        &format!("/api/v1/tickets/{id}/status"),
        &agent_token,
        &json!({"status": "solved"}),
    );
    assert_eq!(solved.status, 200, "{}", solved.text);
    let body = solved_mail(&smtp.wait_for(2), &t["number"]);
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/api/v1/surveys/"))
        .unwrap_or_else(|| panic!("no survey link in {body}"))
        .to_string();
    let path = link
        .split_once("/api/v1/")
        .map(|(_, p)| format!("/api/v1/{p}"))
        .unwrap_or_default();
    let (survey_path, token) = path.split_once("?token=").unwrap_or_default();
    let survey_path = survey_path.to_string();

    // No login: the link is the credential.
    let shown = app.send("GET", &path, None, &[], None);
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json()["ticket_number"], t["number"]);
    let answer = |tok: &str, rating: i64| {
        app.post_with(
            &survey_path,
            &[("Content-Type", "application/json")],
            json!({"token": tok, "rating": rating, "nps": 9, "comment": "Quick"})
                .to_string()
                .as_bytes(),
        )
    };
    answer(&format!("{token}x"), 5).problem(403);
    answer(token, 6).problem(422);
    assert_eq!(answer(token, 5).status, 200);
    answer(token, 1).problem(410);

    let period = &t["created_at"].as_str().unwrap_or_default()[..7];
    let report = app
        .get(
            &format!("/api/v1/csat?period={period}&group_by=agent"),
            &app.admin_token,
        )
        .json();
    let g = &report["groups"][0];
    assert_eq!(g["key"], agent.as_str());
    assert_eq!(
        (
            g["responses"].as_i64(),
            g["average_rating"].as_f64(),
            g["csat_percent"].as_f64(),
            g["nps"].as_f64()
        ),
        (Some(1), Some(5.0), Some(100.0), Some(100.0))
    );

    // An expired link is gone.
    let t2 = ticket(&app, json!({"subject": "Again", "contact_id": kari}));
    let id2 = t2["id"].as_str().unwrap_or_default();
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{id2}/status"),
            &app.admin_token,
            &json!({"status": "solved"})
        )
        .status,
        200
    );
    let body = solved_mail(&smtp.wait_for(4), &t2["number"]);
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/api/v1/surveys/"))
        .unwrap_or_default()
        .to_string();
    let path2 = link
        .split_once("/api/v1/")
        .map(|(_, p)| format!("/api/v1/{p}"))
        .unwrap_or_default();
    assert_eq!(app.execute(&format!("UPDATE surveys SET expires_at = '2026-01-01T00:00:00.000000Z' WHERE ticket_id = '{id2}'")), 1);
    app.send("GET", &path2, None, &[], None).problem(410);
}

#[test]
fn caller_lookup_finds_the_caller_in_any_format_and_calls_open_tickets() {
    let app = TestApp::start();
    let acme = id_of(&app.post(
        "/api/v1/accounts",
        &app.admin_token,
        &json!({"name": "Acme AS"}),
    ));
    let kari = id_of(&app.post(
        "/api/v1/contacts",
        &app.admin_token,
        &json!({"first_name": "Kari", "last_name": "Nordmann", "phones": [{"number": "+47 22 33 44 55"}],
                "accounts": [{"account_id": acme, "role": "user"}]}),
    ));
    let lead = id_of(&app.post(
        "/api/v1/leads",
        &app.admin_token,
        &json!({"last_name": "Hansen", "phone": "+4791234567"}),
    ));
    let open = ticket(&app, json!({"subject": "Broken", "contact_id": kari}));
    let solved = ticket(&app, json!({"subject": "Done", "contact_id": kari}));
    let sid = solved["id"].as_str().unwrap_or_default();
    assert_eq!(
        app.post(
            &format!("/api/v1/tickets/{sid}/status"),
            &app.admin_token,
            &json!({"status": "solved"})
        )
        .status,
        200
    );

    for (phone, region) in [
        ("%2B47%2022%2033%2044%2055", ""),
        ("0047%2022334455", "&region=NO"),
        ("22334455", "&region=no"),
    ] {
        let found = app.get(
            &format!("/api/v1/caller-lookup?phone={phone}{region}"),
            &app.admin_token,
        );
        assert_eq!(found.status, 200, "{phone}: {}", found.text);
        let f = found.json();
        assert_eq!(f["e164"], "+4722334455");
        assert_eq!(f["contacts"][0]["id"], kari.as_str(), "{phone}");
        assert_eq!(f["accounts"][0]["id"], acme.as_str());
        let open_ids: Vec<&Value> = f["open_tickets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| &t["id"])
            .collect();
        assert_eq!(open_ids, [&open["id"]], "only unsolved tickets");
    }
    let f = app
        .get(
            "/api/v1/caller-lookup?phone=91234567&region=NO",
            &app.admin_token,
        )
        .json();
    assert_eq!(f["leads"][0]["id"], lead.as_str());
    assert_eq!(f["contacts"], json!([]));
    app.get("/api/v1/caller-lookup?phone=12", &app.admin_token)
        .problem(422);

    // The list filter says the same, both ways, and refuses what is not a boolean.
    let listed = |query: &str| -> Vec<Value> {
        app.get(&format!("/api/v1/tickets?{query}"), &app.admin_token)
            .json()["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["id"].clone())
            .collect()
    };
    assert_eq!(listed("unsolved=true"), [open["id"].clone()]);
    assert_eq!(listed("unsolved=false"), [json!(sid)]);
    app.get("/api/v1/tickets?unsolved=maybe", &app.admin_token)
        .problem(400);

    // Logging the call records an activity on the only contact with the number and opens a ticket.
    let (_, agent) = app.user("agent");
    let call = app.post(
        "/api/v1/calls",
        &agent,
        &json!({"phone": "22 33 44 55", "region": "NO", "subject": "Router down", "notes": "Red light", "open_ticket": true}),
    );
    assert_eq!(call.status, 201, "{}", call.text);
    let logged = call.json();
    assert_eq!(logged["ticket"]["channel"], "phone");
    assert_eq!(logged["ticket"]["contact_id"], kari.as_str());
    assert_eq!(logged["ticket"]["account_id"], acme.as_str());
    assert_eq!(logged["activity"]["kind"], "call");
    let f = app
        .get(
            "/api/v1/caller-lookup?phone=%2B4722334455",
            &app.admin_token,
        )
        .json();
    assert_eq!(f["recent_activities"][0]["subject"], "Router down");
    assert_eq!(f["open_tickets"].as_array().map_or(0, Vec::len), 2);
}

#[test]
fn numbers_written_with_the_00_international_prefix_are_accepted_in_the_default_region() {
    // The default region (US) dials out with 011, but `00…` is how most of the world writes
    // an international number, and how README and spec say a number may come.
    let app = TestApp::start();
    let contact = app.post(
        "/api/v1/contacts",
        &app.admin_token,
        &json!({"first_name": "Ola", "last_name": "Nordmann",
                "phones": [{"number": "0047 98 76 54 32"}]}),
    );
    assert_eq!(contact.status, 201, "{}", contact.text);
    assert_eq!(contact.json()["phones"][0]["e164"], "+4798765432");
    let ola = id_of(&contact);

    // A region that is no country is refused, not read as the default.
    let p = app
        .get(
            "/api/v1/caller-lookup?phone=98765432&region=ZZ",
            &app.admin_token,
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "region", "{p}");
    for phone in [
        "0047%2098%2076%2054%2032",
        "004798765432",
        "011%2047%2098765432",
    ] {
        let found = app.get(
            &format!("/api/v1/caller-lookup?phone={phone}"),
            &app.admin_token,
        );
        assert_eq!(found.status, 200, "{phone}: {}", found.text);
        assert_eq!(found.json()["e164"], "+4798765432", "{phone}");
        assert_eq!(found.json()["contacts"][0]["id"], ola.as_str(), "{phone}");
    }
    let (_, agent) = app.user("agent");
    let call = app.post(
        "/api/v1/calls",
        &agent,
        &json!({"phone": "0047 98 76 54 32", "subject": "Billing question"}),
    );
    assert_eq!(call.status, 201, "{}", call.text);
    assert_eq!(call.json()["activity"]["kind"], "call");
    // Still no number: `00` and then nothing a country code can be.
    app.get("/api/v1/caller-lookup?phone=000%2012", &app.admin_token)
        .problem(422);
}

#[test]
fn work_orders_make_a_technicians_day_and_warranty_claims_are_checked() {
    let app = TestApp::start();
    let acme = id_of(&app.post(
        "/api/v1/accounts",
        &app.admin_token,
        &json!({"name": "Acme AS", "shipping_address": {"street": "Storgata 1", "city": "Oslo", "country": "NO"}}),
    ));
    let boiler = id_of(&app.post(
        "/api/v1/products",
        &app.admin_token,
        &json!({"sku": "BOILER", "name": "Boiler", "warranty_months": 24}),
    ));
    let valve = id_of(&app.post(
        "/api/v1/products",
        &app.admin_token,
        &json!({"sku": "VALVE", "name": "Valve"}),
    ));
    let pump = id_of(&app.post(
        "/api/v1/products",
        &app.admin_token,
        &json!({"sku": "PUMP", "name": "Pump", "warranty_months": 12}),
    ));
    let today = chrono::Utc::now().date_naive();
    let recent = (today - chrono::Duration::days(200)).to_string();
    let old = (today - chrono::Duration::days(800)).to_string();
    let order = |on: &str, products: &[&str]| {
        let lines: Vec<Value> = products
            .iter()
            .map(|p| json!({"product_id": p, "quantity": 1, "unit_price": 1000}))
            .collect();
        id_of(&app.post(
            "/api/v1/orders",
            &app.admin_token,
            &json!({"account_id": acme, "currency": "NOK", "ordered_on": on, "lines": lines}),
        ))
    };
    let new_order = order(&recent, &[&boiler, &valve]);
    let old_order = order(&old, &[&pump]);

    let t = ticket(&app, json!({"subject": "Boiler leaks", "account_id": acme}));
    let tid = t["id"].as_str().unwrap_or_default();
    let claim = |order: &str, product: &str| {
        app.post(
            "/api/v1/warranty-claims",
            &app.admin_token,
            &json!({"order_id": order, "product_id": product, "ticket_id": tid}),
        )
    };
    let ok = claim(&new_order, &boiler);
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.json()["status"], "approved");
    let late = claim(&old_order, &pump).json();
    assert_eq!(late["status"], "rejected");
    assert!(
        late["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("12-month warranty ended"),
        "{late}"
    );
    assert_eq!(
        claim(&new_order, &valve).json()["reason"],
        "the product has no warranty"
    );
    let p = claim(&new_order, &pump).problem(422);
    assert_eq!(p["errors"][0]["field"], "product_id");

    // A technician's day.
    let (tech, tech_token) = app.user("agent");
    let day = "2027-03-01";
    let wo = |start: &str, end: &str| {
        app.post(
            "/api/v1/work-orders",
            &app.admin_token,
            &json!({"ticket_id": tid, "kind": "repair", "technician_id": tech, "window_start": start, "window_end": end,
                    "parts": [{"product_id": valve, "quantity": 2}]}),
        )
    };
    let afternoon = wo(&format!("{day}T13:00:00Z"), &format!("{day}T15:00:00Z"));
    assert_eq!(afternoon.status, 201, "{}", afternoon.text);
    let w = afternoon.json();
    assert_eq!(w["account_id"], acme.as_str(), "from the ticket");
    assert_eq!(
        w["site_address"]["city"], "Oslo",
        "the account's shipping address"
    );
    assert_eq!(
        wo(&format!("{day}T08:00:00Z"), &format!("{day}T10:00:00Z")).status,
        201
    );
    assert_eq!(
        wo("2027-03-02T08:00:00Z", "2027-03-02T09:00:00Z").status,
        201
    );
    let bad = wo(&format!("{day}T10:00:00Z"), &format!("{day}T09:00:00Z")).problem(422);
    assert_eq!(bad["errors"][0]["field"], "window_end");

    let mine = app
        .get(
            &format!("/api/v1/work-orders?technician_id=me&date={day}"),
            &tech_token,
        )
        .json();
    let starts: Vec<&str> = mine["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["window_start"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        starts,
        [
            format!("{day}T08:00:00.000000Z"),
            format!("{day}T13:00:00.000000Z")
        ]
    );
    let wid = w["id"].as_str().unwrap_or_default();
    let done = app.patch(
        &format!("/api/v1/work-orders/{wid}"),
        &tech_token,
        &json!({"status": "completed", "notes": "Replaced two valves"}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.json()["completed_at"].is_string());
    let timeline = app
        .get(
            &format!("/api/v1/accounts/{acme}/timeline"),
            &app.admin_token,
        )
        .text;
    assert!(
        timeline.contains("work_order.created") && timeline.contains("warranty_claim.created"),
        "{timeline}"
    );
}

/// Linking the same article to a ticket several times at once (a double click) links it
/// once and answers every request, with no spurious conflict.
#[test]
fn linking_one_article_to_a_ticket_several_times_at_once_links_it_once() {
    let app = TestApp::start();
    let t = ticket(&app, json!({"subject": "Printer jammed"}));
    let tid = t["id"].as_str().unwrap_or_default().to_string();
    let printer = article(&app, "Printer jams", "Open the tray.", "published");
    let url = format!("/api/v1/tickets/{tid}/articles");
    let body = json!({"article_id": printer});
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..4)
            .map(|_| s.spawn(|| app.post(&url, &app.admin_token, &body).status))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap_or(0)).collect()
    });
    assert_eq!(statuses, vec![200; 4]);
    assert_eq!(app.count("ticket_articles"), 1);
}
