//! Journeys and attribution: touchpoints recorded as contacts and leads meet the company, shown
//! in order, and an opportunity's first-touch, last-touch and linear campaign attribution on a
//! fixture whose figures are worked out by hand.

use crate::marketing::created;
use crm_tests::TestApp;
use serde_json::{json, Value};

fn journey(app: &TestApp, path: &str) -> Vec<Value> {
    let res = app.get(path, &app.admin_token);
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()["data"].as_array().cloned().unwrap_or_default()
}

fn kinds(touches: &[Value]) -> Vec<(String, String)> {
    touches
        .iter()
        .map(|t| {
            let text = |k: &str| t[k].as_str().unwrap_or("-").to_string();
            (text("kind"), text("campaign_name"))
        })
        .collect()
}

fn respond(app: &TestApp, campaign: &str, contact: &str) {
    let added = app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"contact_ids": [contact]}),
    );
    assert_eq!(added.status, 200, "{}", added.text);
    let r = app.post(
        &format!("/api/v1/campaigns/{campaign}/responses"),
        &app.admin_token,
        &json!({"contact_id": contact}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// One credit of an attribution model, as (campaign, touchpoints, amount).
fn credits(model: &Value) -> Vec<(String, i64, i64)> {
    model
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["campaign_name"].as_str().unwrap_or_default().to_string(),
                c["touchpoints"].as_i64().unwrap_or(-1),
                c["amount"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn the_journey_shows_every_touchpoint_and_attribution_credits_campaigns_until_the_close() {
    let app = TestApp::start();
    let campaign = |name: &str, channel: &str| {
        created(
            &app,
            "/api/v1/campaigns",
            json!({"name": name, "channel": channel}),
        )
    };
    let (webinar, newsletter, show, ads) = (
        campaign("Webinar", "webinar"),
        campaign("Newsletter", "newsletter"),
        campaign("Trade show", "event"),
        campaign("Late ads", "ads"),
    );

    // A visitor signs up on the webinar's form and becomes a lead.
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Webinar sign-up", "campaign_id": webinar,
                "allowed_origins": ["https://www.example.com"], "fields": [
                {"name": "name", "maps_to": "last_name", "required": true},
                {"name": "firm", "maps_to": "company", "required": true},
                {"name": "mail", "maps_to": "email", "required": true}]}),
        )
        .json();
    let submitted = app.send(
        "POST",
        &format!(
            "/api/v1/forms/{}/submissions",
            form["public_key"].as_str().unwrap_or_default()
        ),
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("name=Lovelace&firm=Analytical+Engines&mail=ada%40engines.example"),
    );
    assert_eq!(submitted.status, 201, "{}", submitted.text);
    let leads = app.get("/api/v1/leads", &app.admin_token).json();
    let lead = leads["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let lead_journey = journey(&app, &format!("/api/v1/leads/{lead}/journey"));
    assert_eq!(
        kinds(&lead_journey),
        [("form_submission".into(), "Webinar".into())]
    );

    // Sales converts it: Ada is a contact of Analytical Engines with a deal of 1,000.01.
    let pipeline = created(
        &app,
        "/api/v1/pipelines",
        json!({"name": "New business", "stages": [
            {"key": "qualify", "name": "Qualify", "probability": 10, "forecast_category": "pipeline"},
            {"key": "won", "name": "Won", "probability": 100, "forecast_category": "closed_won"},
            {"key": "lost", "name": "Lost", "probability": 0, "forecast_category": "closed_lost"}]}),
    );
    let done = app.post(
        &format!("/api/v1/leads/{lead}/convert"),
        &app.admin_token,
        &json!({"opportunity": {"pipeline_id": pipeline, "amount": 100_001, "currency": "EUR"}}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let done = done.json();
    let ada = done["contact"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let account = done["account"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deal = done["opportunity"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A colleague at the same account.
    let bob = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Bob", "last_name": "Babbage",
            "accounts": [{"account_id": account, "role": "influencer"}]}),
    );

    respond(&app, &newsletter, &ada);
    respond(&app, &webinar, &ada);
    respond(&app, &show, &bob);
    // Recording Ada's newsletter response again adds no second touchpoint.
    let again = app.post(
        &format!("/api/v1/campaigns/{newsletter}/responses"),
        &app.admin_token,
        &json!({"contact_id": ada}),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    let meeting = created(
        &app,
        "/api/v1/activities",
        json!({"kind": "meeting", "subject": "Demo",
            "links": [{"entity_type": "contact", "entity_id": ada}]}),
    );
    // A call is not a touchpoint.
    created(
        &app,
        "/api/v1/activities",
        json!({"kind": "call", "subject": "Follow-up",
            "links": [{"entity_type": "contact", "entity_id": ada}]}),
    );

    // Ada's journey starts with the form she filled in as a lead.
    let path = format!("/api/v1/contacts/{ada}/journey");
    let ada_journey = journey(&app, &path);
    assert_eq!(
        kinds(&ada_journey),
        [
            ("form_submission".into(), "Webinar".into()),
            ("campaign_response".into(), "Newsletter".into()),
            ("campaign_response".into(), "Webinar".into()),
            ("meeting".into(), "-".into()),
        ]
    );
    assert_eq!(ada_journey[0]["subject_type"], "lead");
    assert_eq!(ada_journey[3]["summary"], "Meeting: Demo");
    // The converted lead's journey is the contact's.
    assert_eq!(
        journey(&app, &format!("/api/v1/leads/{lead}/journey")).len(),
        4
    );
    let meetings = journey(&app, &format!("{path}?kind=meeting"));
    assert_eq!(meetings.len(), 1);
    // Newest first, one per page.
    let page = app
        .get(
            &format!("{path}?sort=-occurred_at&limit=1"),
            &app.admin_token,
        )
        .json();
    assert_eq!(page["data"][0]["kind"], "meeting");
    assert!(page["next_cursor"].is_string(), "{page}");

    // Four campaign touches: webinar (form), newsletter, webinar, trade show (Bob).
    let url = format!("/api/v1/opportunities/{deal}/attribution");
    let a = app.get(&url, &app.admin_token);
    assert_eq!(a.status, 200, "{}", a.text);
    let a = a.json();
    assert_eq!(a["touchpoints"], 4, "{a}");
    assert_eq!(credits(&a["first_touch"]), [("Webinar".into(), 1, 100_001)]);
    assert_eq!(
        credits(&a["last_touch"]),
        [("Trade show".into(), 1, 100_001)]
    );
    // 100,001 / 4 = 25,000.25 per touch: the webinar's two make 50,000.5, and the unit left
    // after rounding down goes to the largest remainder, the webinar's.
    assert_eq!(
        credits(&a["linear"]),
        [
            ("Webinar".into(), 2, 50_001),
            ("Newsletter".into(), 1, 25_000),
            ("Trade show".into(), 1, 25_000),
        ]
    );
    assert_eq!(a["linear"][0]["share"], 0.5);

    // Once the deal is won, later touches don't change who gets the credit.
    let won = app.post(
        &format!("/api/v1/opportunities/{deal}/stage"),
        &app.admin_token,
        &json!({"stage": "won", "close_reason": "Loved the demo"}),
    );
    assert_eq!(won.status, 200, "{}", won.text);
    respond(&app, &ads, &bob);
    let after = app.get(&url, &app.admin_token).json();
    assert_eq!(after["touchpoints"], 4, "{after}");
    assert_eq!(after["window_end"], won.json()["closed_at"]);
    assert_eq!(after["linear"], a["linear"]);

    // Archiving the meeting takes it off the journey.
    let gone = app.delete(&format!("/api/v1/activities/{meeting}"), &app.admin_token);
    assert_eq!(gone.status, 204, "{}", gone.text);
    assert_eq!(journey(&app, &path).len(), 3);

    // Partners don't read marketing.
    let (_, partner) = app.user("partner");
    app.get(&path, &partner).problem(403);
    app.get("/api/v1/contacts/not-an-id/journey", &app.admin_token)
        .problem(400);
    let missing = "0190b3b4-1d7c-7e54-9d7e-6d1b5a8f0000";
    app.get(
        &format!("/api/v1/opportunities/{missing}/attribution"),
        &app.admin_token,
    )
    .problem(404);
    // A filter value that is not a touchpoint kind is a 400.
    app.get(&format!("{path}?kind=fax"), &app.admin_token)
        .problem(400);
}
