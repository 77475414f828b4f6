//! Inbound social messages: matched to the contact whose social profile has the author's
//! handle (however the connector spells it), stored once however often pushed, logged as
//! an activity and a journey touchpoint, optionally opening a ticket; unmatched ones are
//! matched by hand; the handle table follows profile edits, archives and the migration's
//! backfill agrees with the listener.

use crate::marketing::{created, errors as fields};
use crm_tests::TestApp;
use serde_json::{json, Value};

fn contact(app: &TestApp, first: &str, x_profile: &str) -> String {
    created(
        app,
        "/api/v1/contacts",
        json!({"first_name": first, "last_name": "Social",
            "emails": [{"email": format!("{}@example.com", first.to_lowercase())}],
            "social_profiles": {"x": x_profile, "linkedin": format!("https://www.linkedin.com/in/{first}-social/")}}),
    )
}

fn push(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app.post("/api/v1/social-messages", &app.admin_token, &body);
    (res.status, res.json())
}

#[test]
fn a_message_finds_its_contact_by_profile_once_and_shows_in_the_journey() {
    let app = TestApp::start();
    let ada = contact(&app, "Ada", "https://x.com/Ada_L");
    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Launch post", "channel": "social"}),
    );
    let message = json!({"network": "X", "external_id": "1850001", "author_handle": "@ada_l",
        "author_name": "Ada", "body": "Loving the new release!\nWhen is the webinar?",
        "url": "https://x.com/ada_l/status/1850001", "sent_at": "2026-12-03T10:00:00+01:00",
        "campaign_id": campaign, "open_ticket": true});
    let (status, m) = push(&app, message.clone());
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        (m["contact_id"].as_str(), m["matched_by"].as_str()),
        (Some(ada.as_str()), Some("profile"))
    );
    assert_eq!(m["network"], "x");
    assert_eq!(m["sent_at"], "2026-12-03T09:00:00.000000Z");
    // The connector pushes it again (a retry, a re-sync): nothing new.
    let (_, again) = push(&app, message);
    assert_eq!(again["id"], m["id"]);
    assert_eq!(app.count("social_messages"), 1);
    assert_eq!(app.count("activities WHERE kind = 'social_message'"), 1);
    assert_eq!(app.count("tickets"), 1);
    // The activity is on Ada's timeline of activities.
    let acts = app
        .get("/api/v1/activities?kind=social_message", &app.admin_token)
        .json();
    assert_eq!(acts["data"][0]["id"], m["activity_id"]);
    // The ticket is Ada's, on the social channel.
    let t = app.get(
        &format!(
            "/api/v1/tickets/{}",
            m["ticket_id"].as_str().unwrap_or_default()
        ),
        &app.admin_token,
    );
    assert_eq!(t.status, 200, "{}", t.text);
    let t = t.json();
    assert_eq!(
        (t["channel"].as_str(), t["contact_id"].as_str()),
        (Some("social"), Some(ada.as_str()))
    );
    assert_eq!(t["subject"], "x: Loving the new release!");
    // Ada's journey has the message, credited to the campaign.
    let j = app
        .get(&format!("/api/v1/contacts/{ada}/journey"), &app.admin_token)
        .json();
    let touches: Vec<(&str, &str)> = j["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["kind"].as_str().unwrap_or_default(),
                t["campaign_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(touches, [("social_message", campaign.as_str())]);
    // LinkedIn profiles end in a slash; the handle is still found.
    let (_, li) = push(
        &app,
        json!({"network": "linkedin", "external_id": "urn:li:1", "author_handle": "https://linkedin.com/in/ada-social",
            "body": "Congrats on the launch"}),
    );
    assert_eq!(li["contact_id"].as_str(), Some(ada.as_str()), "{li}");
    assert!(li["ticket_id"].is_null());
}

#[test]
fn unmatched_messages_are_matched_by_hand_and_handles_follow_profile_edits() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let ada = contact(&app, "Ada", "https://x.com/ada_l");
    // Two contacts share a handle: the message is not guessed onto either.
    contact(&app, "Bea", "https://x.com/twin");
    contact(&app, "Cy", "https://x.com/Twin/");
    let (_, twin) = push(
        &app,
        json!({"network": "x", "external_id": "t1", "author_handle": "twin", "body": "hi"}),
    );
    assert!(twin["contact_id"].is_null(), "{twin}");
    let (_, nobody) = push(
        &app,
        json!({"network": "x", "external_id": "n1", "author_handle": "@nobody", "body": "hello?"}),
    );
    assert!(nobody["contact_id"].is_null() && nobody["activity_id"].is_null());
    let unmatched = app.get("/api/v1/social-messages?matched=false", t).json();
    assert_eq!(unmatched["data"].as_array().map(Vec::len), Some(2));
    // A user matches it by hand: activity and touchpoint follow.
    let id = nobody["id"].as_str().unwrap_or_default();
    let res = app.patch(
        &format!("/api/v1/social-messages/{id}"),
        t,
        &json!({"contact_id": ada}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let m = res.json();
    assert_eq!(
        (m["matched_by"].as_str(), m["activity_id"].is_string()),
        (Some("hand"), true)
    );
    assert_eq!(
        app.count(&format!(
            "touchpoints WHERE subject_id = '{ada}' AND kind = 'social_message'"
        )),
        1
    );
    // Once matched it stays with its contact.
    let bea = contact(&app, "Dee", "https://x.com/dee");
    let res = app.patch(
        &format!("/api/v1/social-messages/{id}"),
        t,
        &json!({"contact_id": bea}),
    );
    assert_eq!(res.status, 409, "{}", res.text);
    // Ada changes her handle: the new one matches, the old one no longer does.
    let res = app.patch(
        &format!("/api/v1/contacts/{ada}"),
        t,
        &json!({"social_profiles": {"x": "https://x.com/ada_new"}}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let (_, new) = push(
        &app,
        json!({"network": "x", "external_id": "a2", "author_handle": "ada_new", "body": "new me"}),
    );
    assert_eq!(new["contact_id"].as_str(), Some(ada.as_str()));
    let (_, old) = push(
        &app,
        json!({"network": "x", "external_id": "a3", "author_handle": "ada_l", "body": "old me"}),
    );
    assert!(old["contact_id"].is_null());
    // An archived contact is matched no more.
    assert_eq!(
        app.delete(&format!("/api/v1/contacts/{ada}"), t).status / 100,
        2
    );
    let (_, gone) = push(
        &app,
        json!({"network": "x", "external_id": "a4", "author_handle": "ada_new", "body": "?"}),
    );
    assert!(gone["contact_id"].is_null());
    assert_eq!(
        app.count(&format!("social_handles WHERE contact_id = '{ada}'")),
        0
    );
}

#[test]
fn bad_messages_are_refused_naming_the_fields_and_write_nothing() {
    let app = TestApp::start();
    let (status, p) = push(&app, json!({"network": "x", "body": "no ids"}));
    assert_eq!(status, 422);
    let mut got = fields(&p);
    got.sort();
    assert_eq!(got, ["author_handle", "external_id"]);
    let (status, p) = push(
        &app,
        json!({"network": "x", "external_id": "1", "author_handle": "/", "body": "b",
            "sent_at": "yesterday", "url": "javascript:alert(1)", "contact_id": "nope"}),
    );
    assert_eq!(status, 422);
    let mut got = fields(&p);
    got.sort();
    assert_eq!(got, ["author_handle", "contact_id", "sent_at", "url"]);
    let (status, p) = push(
        &app,
        json!({"network": "x", "external_id": "1", "author_handle": "a", "body": "b",
            "campaign_id": "0190a0a0-0000-7000-8000-000000000000"}),
    );
    assert_eq!((status, fields(&p)), (422, vec!["campaign_id".to_string()]));
    assert_eq!(app.count("social_messages"), 0);
    let (_, partner) = app.user("partner");
    let res = app.post(
        "/api/v1/social-messages",
        &partner,
        &json!({"network": "x", "external_id": "1", "author_handle": "a", "body": "b"}),
    );
    assert_eq!(res.status, 403);
}

#[test]
fn the_migration_backfill_finds_the_same_handles_as_the_listener() {
    let app = TestApp::start();
    contact(&app, "Ada", "https://x.com/Ada_L?ref=bio");
    contact(&app, "Bo", "https://mastodon.social/@Bo");
    let expected = [
        ("x", "ada_l"),
        ("linkedin", "ada-social"),
        ("x", "bo"),
        ("linkedin", "bo-social"),
    ];
    let check = |when: &str| {
        assert_eq!(app.count("social_handles"), 4, "{when}");
        for (network, handle) in expected {
            let n = app.count(&format!(
                "social_handles WHERE network = '{network}' AND handle = '{handle}'"
            ));
            assert_eq!(n, 1, "{when}: {network} {handle}");
        }
    };
    check("kept by the listener");
    app.execute("DELETE FROM social_handles");
    let backend = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    };
    let up = std::fs::read_to_string(format!(
        "{}/../migrations/{backend}/2026-12-04-000027_social_messages/up.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_default();
    let backfill = up
        .split("-- The handles of the profiles")
        .nth(1)
        .unwrap_or_default();
    let statement = backfill
        .split_once('\n')
        .map(|(_, s)| s)
        .unwrap_or_default();
    app.execute(statement);
    check("after the backfill");
}

#[test]
fn the_readme_snippet_matches_the_message_and_opens_a_ticket() {
    let app = TestApp::start();
    let ada = contact(&app, "Ada", "https://x.com/Ada_L");
    let stdout = crate::readme::run(&app, &crate::readme::snippet("social"));
    let m: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert_eq!(m["contact_id"].as_str(), Some(ada.as_str()), "{stdout}");
    assert_eq!(m["matched_by"], "profile");
    assert!(
        m["activity_id"].is_string() && m["ticket_id"].is_string(),
        "{stdout}"
    );
}
