//! Marketing: segments evaluated in the database against hand-computed expectations, static
//! lists, and a campaign mailed through a real SMTP server to consenting members only, once
//! each, with one-click unsubscribe, open and click tracking, and live metrics.

use crm_core::jobs::JobRegistry;
use crm_tests::receiver::Receiver;
use crm_tests::smtp::SmtpServer;
use crm_tests::{Resp, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub(crate) fn id_of(res: &Resp) -> String {
    assert!(res.status == 201 || res.status == 200, "{}", res.text);
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

pub(crate) fn created(app: &TestApp, path: &str, body: Value) -> String {
    id_of(&app.post(path, &app.admin_token, &body))
}

pub(crate) fn errors(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_string))
        .collect()
}

/// Every id on every page of a member list (two a page, so paging is exercised).
fn all_ids(app: &TestApp, path: &str) -> BTreeSet<String> {
    ids_paged(app, path, 2)
}

/// Every id on every page of a member list, `limit` a page.
fn ids_paged(app: &TestApp, path: &str, limit: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut url = format!("{path}?limit={limit}");
    loop {
        let page = app.get(&url, &app.admin_token);
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        for m in page["data"].as_array().into_iter().flatten() {
            out.insert(m["id"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{path}?limit={limit}&cursor={c}"),
            None => return out,
        }
    }
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn segments_select_exactly_the_contacts_their_criteria_describe() {
    let app = TestApp::start();
    created(
        &app,
        "/api/v1/meta/objects/contact/fields",
        json!({"key": "seats", "label": "Seats", "field_type": "number"}),
    );
    let acme = created(
        &app,
        "/api/v1/accounts",
        json!({"name": "Acme", "industry": "Retail", "employee_count": 500}),
    );
    let tiny = created(
        &app,
        "/api/v1/accounts",
        json!({"name": "Tiny", "industry": "Retail", "employee_count": 3}),
    );
    let product = created(
        &app,
        "/api/v1/products",
        json!({"sku": "CRM", "name": "CRM", "family": "software"}),
    );
    created(
        &app,
        "/api/v1/orders",
        json!({"account_id": acme, "currency": "EUR", "ordered_on": "2026-11-20",
            "lines": [{"product_id": product, "quantity": 2, "unit_price": 60000}]}),
    );
    let person = |first: &str, stage: &str, account: &str, extra: Value| {
        let mut body = json!({"first_name": first, "last_name": "Test", "lifecycle_stage": stage,
            "emails": [{"email": format!("{}@example.com", first.to_lowercase())}],
            "accounts": [{"account_id": account, "role": "buyer"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        created(&app, "/api/v1/contacts", body)
    };
    let ada = person(
        "Ada",
        "customer",
        &acme,
        json!({"job_title": "Head of Purchasing", "custom": {"seats": 40}}),
    );
    let bob = person(
        "Bob",
        "customer",
        &tiny,
        json!({"job_title": "Owner", "tags": ["vip"]}),
    );
    let cy = person(
        "Cy",
        "lead",
        &acme,
        json!({"consents": {"email": {"status": "granted", "source": "web_form"}}}),
    );
    let dee = person("Dee", "customer", &tiny, json!({"custom": {"seats": 5}}));

    let preview = |criteria: Value| {
        let res = app.post(
            "/api/v1/segments/preview",
            &app.admin_token,
            &json!({"criteria": criteria}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
        let v = res.json();
        let ids: BTreeSet<String> = v["sample"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["id"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(v["count"], ids.len() as i64);
        ids
    };
    let cond =
        |field: &str, op: &str, value: Value| json!({"field": field, "op": op, "value": value});

    // Three conditions: customers at retailers who bought over 1,000.00 of software.
    let three = json!({"and": [
        cond("lifecycle_stage", "eq", json!("customer")),
        cond("account.industry", "eq", json!("Retail")),
        cond("total_spent", "gt", json!(100000)),
    ]});
    assert_eq!(preview(three.clone()), set(&[&ada]));
    assert_eq!(
        preview(json!({"not": three.clone()})),
        set(&[&bob, &cy, &dee])
    );
    assert_eq!(
        preview(
            json!({"or": [cond("tags", "eq", json!("vip")), cond("custom.seats", "gte", json!(10))]})
        ),
        set(&[&ada, &bob])
    );
    assert_eq!(
        preview(cond(
            "families_bought",
            "in",
            json!(["software", "hardware"])
        )),
        set(&[&ada, &cy])
    );
    assert_eq!(
        preview(cond("last_order_date", "gte", json!("-30d"))),
        set(&[&ada, &cy])
    );
    assert_eq!(
        preview(cond("consent.email", "eq", json!("granted"))),
        set(&[&cy])
    );
    assert_eq!(
        preview(cond("job_title", "contains", json!("PURCHAS"))),
        set(&[&ada])
    );
    // Without a value, `ne` keeps the contact (as `not eq` does); `not_exists` finds them.
    assert_eq!(
        preview(cond("job_title", "ne", json!("Owner"))),
        set(&[&ada, &cy, &dee])
    );
    assert_eq!(
        preview(json!({"field": "job_title", "op": "not_exists"})),
        set(&[&cy, &dee])
    );
    assert_eq!(
        preview(cond("email", "eq", json!("BOB@example.com"))),
        set(&[&bob])
    );
    assert_eq!(preview(cond("created_at", "gte", json!("-1d"))).len(), 4);

    // A saved segment pages through the same contacts in the database.
    let seg = created(
        &app,
        "/api/v1/segments",
        json!({"name": "Retail customers", "criteria": {"and": [
            cond("lifecycle_stage", "eq", json!("customer")),
            cond("account.industry", "eq", json!("Retail"))]}}),
    );
    assert_eq!(
        all_ids(&app, &format!("/api/v1/segments/{seg}/members")),
        set(&[&ada, &bob, &dee])
    );

    // Bad criteria are a 422 naming every problem by its path, and nothing is saved.
    let before = app.count("segments");
    let bad = app
        .post(
            "/api/v1/segments",
            &app.admin_token,
            &json!({"name": "Bad", "criteria": {"and": [
                cond("colour", "eq", json!("red")),
                {"field": "total_spent", "op": "around", "value": 5},
                cond("custom.nope", "eq", json!(1)),
                cond("total_spent", "gt", json!("lots")),
            ]}}),
        )
        .problem(422);
    assert_eq!(
        errors(&bad),
        [
            "criteria.and[0].field",
            "criteria.and[1].op",
            "criteria.and[2].field",
            "criteria.and[3].value"
        ]
    );
    assert_eq!(app.count("segments"), before);
    app.post(
        "/api/v1/segments/preview",
        &app.admin_token,
        &json!({"criteria": [1]}),
    )
    .problem(422);

    // Static lists: add (twice is once), list, remove.
    let list = created(&app, "/api/v1/lists", json!({"name": "Fair visitors"}));
    let added = app.post(
        &format!("/api/v1/lists/{list}/members"),
        &app.admin_token,
        &json!({"contact_ids": [ada, bob, ada]}),
    );
    assert_eq!(added.json()["added"], 2, "{}", added.text);
    let again = app.post(
        &format!("/api/v1/lists/{list}/members"),
        &app.admin_token,
        &json!({"contact_ids": [bob, cy]}),
    );
    assert_eq!(
        (
            again.json()["added"].clone(),
            again.json()["already"].clone()
        ),
        (json!(1), json!(1))
    );
    let unknown = app
        .post(
            &format!("/api/v1/lists/{list}/members"),
            &app.admin_token,
            &json!({"contact_ids": [dee, "0190b3b4-1d7c-7e54-9d7e-6d1b5a8f0000"]}),
        )
        .problem(422);
    assert_eq!(errors(&unknown), ["contact_ids[1]"]);
    let path = format!("/api/v1/lists/{list}/members");
    assert_eq!(all_ids(&app, &path), set(&[&ada, &bob, &cy]));
    let gone = app.delete(&format!("{path}/{bob}"), &app.admin_token);
    assert_eq!(gone.status, 204, "{}", gone.text);
    app.delete(&format!("{path}/{bob}"), &app.admin_token)
        .problem(404);
    assert_eq!(all_ids(&app, &path), set(&[&ada, &cy]));

    // An analyst reads segments but does not change them.
    let (_, analyst) = app.user("analyst");
    assert_eq!(
        app.get(&format!("/api/v1/segments/{seg}/members"), &analyst)
            .status,
        200
    );
    app.post(
        "/api/v1/segments",
        &analyst,
        &json!({"name": "x", "criteria": cond("job_title", "exists", Value::Null)}),
    )
    .problem(403);
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path and query of a URL the server wrote (`http://host:port/api/...`).
fn path_of(url: &str) -> String {
    let at = url.find("/api/v1/").unwrap_or(0);
    url[at..].to_string()
}

#[test]
fn a_campaign_mails_each_consenting_member_once_and_counts_what_followed() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = TestApp::start_with(JobRegistry::default(), |c| c.smtp_url = Some(url.into()));
    let acme = created(&app, "/api/v1/accounts", json!({"name": "Acme"}));
    let person = |first: &str, consent: Option<&str>| {
        let mut body = json!({"first_name": first, "last_name": "Test",
            "emails": [{"email": format!("{}@example.com", first.to_lowercase())}],
            "accounts": [{"account_id": acme, "role": "buyer"}]});
        if let Some(status) = consent {
            body["consents"] = json!({"email": {"status": status, "source": "web_form"}});
        }
        created(&app, "/api/v1/contacts", body)
    };
    let (ann, ben, cat, dan) = (
        person("Ann", Some("granted")),
        person("Ben", Some("granted")),
        person("Cat", Some("withdrawn")),
        person("Dan", None),
    );
    let nomail = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "No", "last_name": "Mail",
        "consents": {"email": {"status": "granted", "source": "web_form"}}}),
    );

    // A merge field the campaign can't fill is a 422 naming it.
    let bad = app
        .post(
            "/api/v1/campaigns",
            &app.admin_token,
            &json!({"name": "Bad", "channel": "email", "body_text": "Hi {{ contact.shoe_size }}"}),
        )
        .problem(422);
    assert_eq!(errors(&bad), ["body_text"]);

    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Winter offer", "channel": "email", "currency": "EUR", "budget": 50000,
            "actual_cost": 20000, "subject": "Hello {{ contact.first_name }}",
            "body_text": "Dear {{ contact.first_name }} at {{ account.name }},\nsee https://shop.example/winter today."}),
    );
    let list = created(&app, "/api/v1/lists", json!({"name": "Everyone"}));
    app.post(
        &format!("/api/v1/lists/{list}/members"),
        &app.admin_token,
        &json!({"contact_ids": [ann, ben, cat, dan, nomail]}),
    );
    let added = app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"list_id": list}),
    );
    assert_eq!(added.json()["added"], 5, "{}", added.text);
    // Adding the same people again adds nobody.
    let again = app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"list_id": list, "contact_ids": [ann]}),
    );
    assert_eq!(again.json()["added"], 0, "{}", again.text);

    let send = app.post(
        &format!("/api/v1/campaigns/{campaign}/send"),
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(send.status, 202, "{}", send.text);
    assert_eq!(send.json()["targeted"], 5);
    // Sending again while (or after) the first send runs mails nobody twice.
    assert_eq!(
        app.post(
            &format!("/api/v1/campaigns/{campaign}/send"),
            &app.admin_token,
            &json!({})
        )
        .status,
        202
    );

    let mails = smtp.wait_for(2);
    let metrics = |app: &TestApp| {
        app.get(
            &format!("/api/v1/campaigns/{campaign}/metrics"),
            &app.admin_token,
        )
        .json()
    };
    wait_for("every member to be mailed or skipped", || {
        metrics(&app)["targeted"] == 0
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut to: Vec<String> = smtp.wait_for(2).iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["ann@example.com", "ben@example.com"],
        "only consenting members, once each"
    );
    let m = metrics(&app);
    assert_eq!(
        (
            m["members"].clone(),
            m["reached"].clone(),
            m["skipped"].clone()
        ),
        (json!(5), json!(2), json!(3))
    );
    assert_eq!(
        skip_reasons(&app, &campaign),
        ["Cat:no_consent", "Dan:no_consent", "No:no_email"]
            .map(String::from)
            .into()
    );

    let ann_mail = mails
        .iter()
        .find(|m| m.to.contains(&"ann@example.com".to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("no mail to Ann"));
    assert_eq!(ann_mail.header("Subject").as_deref(), Some("Hello Ann"));
    assert!(
        ann_mail.body().contains("Dear Ann at Acme"),
        "{}",
        ann_mail.body()
    );
    assert_eq!(
        ann_mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = ann_mail.header("List-Unsubscribe").unwrap_or_default();
    let unsubscribe = path_of(unsubscribe.trim_matches(['<', '>']));
    assert!(
        unsubscribe.contains("/unsubscribe?contact="),
        "{unsubscribe}"
    );

    // The open pixel and the click link count once; a link elsewhere or a wrong token is refused.
    let body = ann_mail.body();
    let word = |prefix: &str| {
        body.split_whitespace()
            .find(|w| w.contains(prefix))
            .map(|w| path_of(w.trim_end_matches(['.', ','])))
            .unwrap_or_else(|| panic!("no {prefix} link in {body}"))
    };
    let (open, click) = (word("/open?"), word("/click?"));
    let pixel = app.send("GET", &open, None, &[], None);
    assert_eq!(
        (pixel.status, pixel.header("content-type")),
        (200, Some("image/gif"))
    );
    let go = app.send("GET", &click, None, &[], None);
    assert_eq!(
        (go.status, go.header("location")),
        (302, Some("https://shop.example/winter"))
    );
    let elsewhere = click.replace("shop.example", "evil.example");
    assert_eq!(app.send("GET", &elsewhere, None, &[], None).status, 403);
    let forged = open.replace("token=", "token=x");
    assert_eq!(app.send("GET", &forged, None, &[], None).status, 403);

    // One-click unsubscribe, as a mail program sends it; a tampered link is a 403.
    let tampered = unsubscribe.replace("token=", "token=0");
    let no = app.send(
        "POST",
        &tampered,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("List-Unsubscribe=One-Click"),
    );
    assert_eq!(no.status, 403, "{}", no.text);
    let yes = app.send(
        "POST",
        &unsubscribe,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("List-Unsubscribe=One-Click"),
    );
    assert_eq!(yes.status, 200, "{}", yes.text);
    let contact = app
        .get(&format!("/api/v1/contacts/{ann}"), &app.admin_token)
        .json();
    assert_eq!(contact["consents"]["email"]["status"], "withdrawn");

    // Responses with a lead and an opportunity; leads naming the campaign count.
    let lead = created(
        &app,
        "/api/v1/leads",
        json!({"first_name": "Ben", "last_name": "Test", "campaign_id": campaign}),
    );
    created(
        &app,
        "/api/v1/leads",
        json!({"first_name": "Other", "last_name": "Lead", "campaign_id": campaign}),
    );
    let pipeline = created(
        &app,
        "/api/v1/pipelines",
        json!({"name": "New business", "stages": [
            {"key": "qualify", "name": "Qualify", "probability": 10, "forecast_category": "pipeline"},
            {"key": "won", "name": "Won", "probability": 100, "forecast_category": "closed_won"},
            {"key": "lost", "name": "Lost", "probability": 0, "forecast_category": "closed_lost"}]}),
    );
    let deal = created(
        &app,
        "/api/v1/opportunities",
        json!({"name": "Ben's deal", "account_id": acme, "pipeline_id": pipeline, "currency": "EUR",
            "amount": 120000}),
    );
    let r = app.post(
        &format!("/api/v1/campaigns/{campaign}/responses"),
        &app.admin_token,
        &json!({"contact_id": ben, "lead_id": lead, "opportunity_id": deal}),
    );
    assert_eq!(r.json()["status"], "converted", "{}", r.text);
    app.post(
        &format!("/api/v1/campaigns/{campaign}/responses"),
        &app.admin_token,
        &json!({"contact_id": nomail, "opportunity_id": "0190b3b4-1d7c-7e54-9d7e-6d1b5a8f0000"}),
    )
    .problem(422);

    let m = metrics(&app);
    assert_eq!(m["opened"], 1, "{m}");
    assert_eq!(m["clicked"], 1, "{m}");
    assert_eq!(m["unsubscribed"], 1, "{m}");
    assert_eq!(m["responded"], 1, "{m}");
    assert_eq!(m["converted"], 1, "{m}");
    assert_eq!(m["response_rate"], 0.5, "{m}");
    assert_eq!(m["leads"], 2, "{m}");
    assert_eq!(m["cost_per_lead"], 10000, "{m}");
    assert_eq!(m["pipeline_influenced"], 120000, "{m}");
    assert_eq!(m["revenue_influenced"], 0, "{m}");
    assert_eq!(m["roi"], -1.0, "{m}");

    // Ann grants consent again, but her address is suppressed: the next campaign skips her.
    app.patch(
        &format!("/api/v1/contacts/{ann}"),
        &app.admin_token,
        &json!({"consents": {"email": {"status": "granted", "source": "phone_call"}}}),
    );
    let next = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Spring", "channel": "newsletter", "subject": "Spring", "body_text": "News"}),
    );
    app.post(
        &format!("/api/v1/campaigns/{next}/members"),
        &app.admin_token,
        &json!({"contact_ids": [ann, ben]}),
    );
    app.post(
        &format!("/api/v1/campaigns/{next}/send"),
        &app.admin_token,
        &json!({}),
    );
    let all = smtp.wait_for(3);
    wait_for("the second campaign", || {
        metrics_of(&app, &next)["targeted"] == 0
    });
    let last = all.last().map(|m| m.to.clone()).unwrap_or_default();
    assert_eq!(last, ["ben@example.com"]);
    let skipped = app
        .get(
            &format!("/api/v1/campaigns/{next}/members?status=skipped"),
            &app.admin_token,
        )
        .json();
    assert_eq!(skipped["data"][0]["skip_reason"], "suppressed", "{skipped}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.mails().len(), 3, "nobody mailed twice");
}

#[test]
fn opening_the_unsubscribe_link_changes_nothing_and_a_bad_click_token_reveals_nothing() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = TestApp::start_with(JobRegistry::default(), |c| c.smtp_url = Some(url.into()));
    let ann = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Ann", "last_name": "Test", "emails": [{"email": "ann@example.com"}],
            "consents": {"email": {"status": "granted", "source": "web_form"}}}),
    );
    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Spring <offer>", "channel": "email", "subject": "Hello",
            "body_text": "See https://shop.example/spring today."}),
    );
    let added = app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"contact_ids": [ann]}),
    );
    assert_eq!(added.status, 200, "{}", added.text);
    let send = app.post(
        &format!("/api/v1/campaigns/{campaign}/send"),
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(send.status, 202, "{}", send.text);
    let mail = smtp
        .wait_for(1)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no mail"));
    let body = mail.body();
    let link = |prefix: &str| {
        body.split_whitespace()
            .find(|w| w.contains(prefix))
            .map(|w| path_of(w.trim_end_matches(['.', ','])))
            .unwrap_or_else(|| panic!("no {prefix} link in {body}"))
    };
    let (click, unsubscribe) = (link("/click?"), link("/unsubscribe?"));

    // A click link with a wrong token is answered the same whether or not its URL is one of
    // the campaign's: the token is checked first.
    let forged = click.replace("token=", "token=x");
    let theirs = app.send("GET", &forged, None, &[], None).problem(403);
    let elsewhere = app
        .send(
            "GET",
            &forged.replace("shop.example", "evil.example"),
            None,
            &[],
            None,
        )
        .problem(403);
    assert_eq!(theirs, elsewhere);

    // Opening the unsubscribe link (what a mail scanner does) shows a page and changes nothing.
    let status = |app: &TestApp| {
        app.get(&format!("/api/v1/contacts/{ann}"), &app.admin_token)
            .json()["consents"]["email"]["status"]
            .clone()
    };
    for _ in 0..2 {
        let page = app.send("GET", &unsubscribe, None, &[], None);
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(page.text.contains("<form method=\"post\""), "{}", page.text);
        assert!(page.text.contains("Spring &lt;offer&gt;"), "{}", page.text);
        assert!(!page.text.contains("<offer>"), "the name is escaped");
    }
    assert_eq!(status(&app), "granted");
    assert_eq!(metrics_of(&app, &campaign)["unsubscribed"], 0);
    assert_eq!(app.count("suppressions"), 0);
    // A wrong token shows no page.
    app.send(
        "GET",
        &unsubscribe.replace("token=", "token=0"),
        None,
        &[],
        None,
    )
    .problem(403);

    // The page's button: a form POST from a browser, answered with a page.
    let action = {
        let page = app.send("GET", &unsubscribe, None, &[], None).text;
        let (_, rest) = page.split_once("action=\"").unwrap_or(("", ""));
        let (action, _) = rest.split_once('"').unwrap_or(("", ""));
        action.replace("&amp;", "&")
    };
    let (path, _) = unsubscribe.split_once('?').unwrap_or_default();
    let target = format!("{}{}", path.trim_end_matches("unsubscribe"), action);
    assert_eq!(target, unsubscribe, "the form posts back to the link");
    let done = app.send(
        "POST",
        &target,
        None,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "text/html,application/xhtml+xml"),
        ],
        Some("List-Unsubscribe=One-Click"),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("unsubscribed"), "{}", done.text);
    assert_eq!(status(&app), "withdrawn");
    assert_eq!(metrics_of(&app, &campaign)["unsubscribed"], 1);
    let again = app.send("GET", &unsubscribe, None, &[], None);
    assert!(
        again.text.contains("already unsubscribed"),
        "{}",
        again.text
    );
}

#[test]
fn an_sms_campaign_texts_each_consenting_member_once_through_the_gateway() {
    // The operator's SMS gateway, on loopback: it fails the first message once.
    let gateway = Receiver::start(&[(503, None)]);
    let url = gateway.url.clone();
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.sms_url = Some(url.as_str().into())
    });
    let person = |first: &str, phone: Option<&str>, sms: &str| {
        let mut body = json!({"first_name": first, "last_name": "Test",
            "consents": {"sms": {"status": sms, "source": "web_form"},
                         "email": {"status": "granted", "source": "web_form"}}});
        if let Some(number) = phone {
            body["phones"] = json!([{"number": "+1 202 555 0143", "label": "old"},
                {"number": number, "primary": true}]);
        }
        created(&app, "/api/v1/contacts", body)
    };
    let ann = person("Ann", Some("+33 6 12 34 56 78"), "granted");
    let ben = person("Ben", Some("+44 7911 123456"), "granted");
    let cat = person("Cat", Some("+33 6 98 76 54 32"), "withdrawn");
    let dan = person("Dan", None, "granted");

    // An sms campaign needs text, not a subject.
    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Flash sale", "channel": "sms",
            "body_text": "Hi {{ contact.first_name }}, 20% off today: https://shop.example/flash"}),
    );
    app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"contact_ids": [ann, ben, cat, dan]}),
    );
    for _ in 0..2 {
        let send = app.post(
            &format!("/api/v1/campaigns/{campaign}/send"),
            &app.admin_token,
            &json!({}),
        );
        assert_eq!(send.status, 202, "{}", send.text);
    }
    // Two messages, one of them posted twice (the gateway's 503, then the retry).
    gateway.wait_for(3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let got = gateway.received();
    assert_eq!(got.len(), 3, "{got:?}");
    let texts: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap_or_default())
        .collect();
    for (r, t) in got.iter().zip(&texts) {
        assert_eq!(
            r.headers.get("idempotency-key").map(String::as_str),
            t["id"].as_str()
        );
    }
    let ids: BTreeSet<&str> = texts.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "a retry carries the same id");
    let to: BTreeSet<&str> = texts.iter().filter_map(|t| t["to"].as_str()).collect();
    assert_eq!(
        to,
        BTreeSet::from(["+33612345678", "+447911123456"]),
        "primary numbers, E.164"
    );
    let to_ann = texts
        .iter()
        .find(|t| t["to"] == "+33612345678")
        .map(|t| t["body"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(to_ann.starts_with("Hi Ann, 20% off today: "), "{to_ann}");
    assert!(
        !to_ann.contains("https://shop.example/flash"),
        "links are tracked: {to_ann}"
    );

    let m = metrics_of(&app, &campaign);
    assert_eq!(
        (m["reached"].clone(), m["skipped"].clone()),
        (json!(2), json!(2)),
        "{m}"
    );
    assert_eq!(
        skip_reasons(&app, &campaign),
        ["Cat:no_consent", "Dan:no_phone"].map(String::from).into()
    );

    // The opt-out link withdraws Ann's sms consent and leaves her email consent alone; a
    // tampered one is a 403.
    let opt_out = to_ann
        .split_whitespace()
        .find(|w| w.contains("/unsubscribe?"))
        .map(path_of)
        .unwrap_or_else(|| panic!("no opt-out link in {to_ann}"));
    let forged = opt_out.replace("token=", "token=0");
    assert_eq!(app.send("GET", &forged, None, &[], None).status, 403);
    // Opening the link shows the page; its button (a POST) opts out.
    assert_eq!(app.send("GET", &opt_out, None, &[], None).status, 200);
    assert_eq!(app.send("POST", &opt_out, None, &[], None).status, 200);
    let consents = app
        .get(&format!("/api/v1/contacts/{ann}"), &app.admin_token)
        .json()["consents"]
        .clone();
    assert_eq!(consents["sms"]["status"], "withdrawn", "{consents}");
    assert_eq!(consents["email"]["status"], "granted", "{consents}");
    assert_eq!(metrics_of(&app, &campaign)["unsubscribed"], 1);
    assert_eq!(gateway.received().len(), 3, "nobody texted twice");

    // An automation's send_sms step texts an sms campaign (a mail campaign is a 422).
    let mail = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Mail", "channel": "email", "subject": "S", "body_text": "T"}),
    );
    let follow_up = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Follow-up", "channel": "sms", "body_text": "Thanks {{ contact.first_name }}"}),
    );
    let automation = |campaign: &str| {
        json!({"name": "Thank by text", "status": "active", "trigger": {"event": "order.created"},
            "steps": [{"type": "send_sms", "campaign_id": campaign}]})
    };
    let bad = app
        .post("/api/v1/automations", &app.admin_token, &automation(&mail))
        .problem(422);
    assert_eq!(errors(&bad), ["steps[0].campaign_id"]);
    let flow = created(&app, "/api/v1/automations", automation(&follow_up));
    let enrolled = app.post(
        &format!("/api/v1/automations/{flow}/enrolments"),
        &app.admin_token,
        &json!({"contact_ids": [ben]}),
    );
    assert_eq!(enrolled.json()["enrolled"], 1, "{}", enrolled.text);
    let got = gateway.wait_for(4, Duration::from_secs(20));
    let last = got.last().map(|r| r.body.as_str()).unwrap_or_default();
    let last: Value = serde_json::from_str(last).unwrap_or_default();
    assert_eq!(last["to"], "+447911123456");
    assert!(
        last["body"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Thanks Ben"),
        "{last}"
    );

    // Erasing Ben leaves neither his number nor what he was texted in the database.
    let before = app.all_stored_text();
    assert!(before.contains("447911123456") && before.contains("Thanks Ben"));
    let erased = app.post(
        &format!("/api/v1/contacts/{ben}/erase"),
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(erased.status, 200, "{}", erased.text);
    let after = app.all_stored_text();
    for secret in ["447911123456", "7911 123456", "Thanks Ben", "Hi Ben"] {
        let hits: Vec<&str> = after.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            hits.is_empty(),
            "{secret:?} still stored:\n{}",
            hits.join("\n")
        );
    }
}

#[test]
fn a_subscriber_csv_imported_into_a_static_list_adds_each_contact_once() {
    let app = TestApp::start();
    let list = created(&app, "/api/v1/lists", json!({"name": "Newsletter"}));
    let known = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Ann", "last_name": "Known", "emails": [{"email": "ann@example.com"}]}),
    );
    // A spreadsheet as people export it: their headers, an opt-in column, a bad row.
    let csv = "First name,Last name,Email,Opt-in\n\
        Ann,Known,ANN@example.com,granted\n\
        Ben,New,ben@example.com,granted\n\
        Cy,Broken,not-an-email,granted\n\
        Dee,New,dee@example.com,withdrawn\n";
    let mapping = crate::imports::urlencode(
        r#"{"First name":"first_name","Last name":"last_name","Email":"email","Opt-in":"consents.email.status"}"#,
    );
    let path = |list: &str| {
        format!("/api/v1/imports?object=contacts&mode=upsert&match_on=email&list_id={list}&mapping={mapping}")
    };
    // A list that isn't there, or a list for another object, is refused before anything runs.
    let nowhere = app
        .upload(
            &path("0190b3b4-1d7c-7e54-9d7e-6d1b5a8f0000"),
            "text/csv",
            csv.as_bytes(),
        )
        .problem(422);
    assert_eq!(errors(&nowhere), ["list_id"]);
    app.upload(
        &format!("/api/v1/imports?object=accounts&list_id={list}"),
        "text/csv",
        b"name\nAcme\n",
    )
    .problem(400);

    for _ in 0..2 {
        let res = app.upload(&path(&list), "text/csv", csv.as_bytes());
        assert_eq!(res.status, 202, "{}", res.text);
        assert_eq!(res.json()["list_id"], json!(list));
        let id = res.json()["id"].as_str().unwrap_or_default().to_string();
        let import = crate::imports::finished(&app, &id, Duration::from_secs(30));
        assert_eq!(import["status"], "succeeded", "{import}");
        assert_eq!(import["failed"], 1, "{import}");
        assert_eq!(import["errors"][0]["line"], 4, "{import}");
    }
    let members = all_ids(&app, &format!("/api/v1/lists/{list}/members"));
    assert_eq!(
        members.len(),
        3,
        "Ann (matched by email), Ben, Dee; the bad row joins nobody"
    );
    assert!(
        members.contains(&known),
        "the known contact was matched, not duplicated"
    );
    assert_eq!(app.count("contacts"), 3);
    // The consent column landed: a campaign to the list mails Ann and Ben, skips Dee.
    let ben = app
        .get("/api/v1/contacts?email=ben@example.com", &app.admin_token)
        .json();
    assert_eq!(
        ben["data"][0]["consents"]["email"]["status"], "granted",
        "{ben}"
    );
}

#[test]
fn leads_that_cool_off_go_to_nurturing_where_the_recycle_policy_ends_them() {
    let app = TestApp::start();
    let (rep_id, _) = app.user("sales_rep");
    created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "Hot leads", "assign_to": "user", "user_id": rep_id,
            "conditions": [{"field": "score", "op": "gte", "value": 40}]}),
    );
    let rules = json!([{"kind": "behaviour", "event": "form_submitted", "points": 24}]);
    // Nurturing starts below the hand-off, and only leads are nurtured.
    for bad in [
        json!({"name": "x", "applies_to": "lead", "handoff_score": 40, "nurture_below": 50, "rules": rules}),
        json!({"name": "x", "applies_to": "contact", "nurture_below": 10, "rules": rules}),
    ] {
        let p = app
            .post("/api/v1/scoring-models", &app.admin_token, &bad)
            .problem(422);
        assert_eq!(errors(&p), ["nurture_below"]);
    }
    let model = created(
        &app,
        "/api/v1/scoring-models",
        json!({"name": "Interest", "applies_to": "lead", "half_life_days": 30,
            "handoff_score": 40, "nurture_below": 20, "rules": rules}),
    );
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Guide", "fields": [{"name": "name", "maps_to": "last_name"},
                {"name": "mail", "maps_to": "email"}]}),
        )
        .json();
    let url = format!(
        "/api/v1/forms/{}/submissions",
        form["public_key"].as_str().unwrap_or_default()
    );
    let submit = |who: &str| {
        let body = json!({"name": who, "mail": format!("{}@example.com", who.to_lowercase())});
        let res = app.send("POST", &url, None, &[], Some(&body.to_string()));
        assert_eq!(res.status, 201, "{}", res.text);
    };
    submit("Ames");
    submit("Bell");
    let lead = |name: &str| {
        let email = format!("{}@example.com", name.to_lowercase());
        app.get(&format!("/api/v1/leads?email={email}"), &app.admin_token)
            .json()["data"][0]
            .clone()
    };
    assert_eq!(
        (
            lead("Ames")["score"].clone(),
            lead("Ames")["status"].clone()
        ),
        (json!(24), json!("new"))
    );

    // A month later the submissions count half: 12, below 20, so both go to nurturing.
    age_submissions_and_recompute(&app, &model, 30);
    wait_for("both leads in nurturing", || {
        lead("Ames")["status"] == "nurturing" && lead("Bell")["status"] == "nurturing"
    });
    assert_eq!(
        lead("Ames")["recycle_reason"],
        "score 12 fell below 20 (Interest)"
    );

    // Bell comes back twice: 12 + 24 + 24 = 60 brings her back from nurturing to sales.
    submit("Bell");
    submit("Bell");
    let bell = lead("Bell");
    assert_eq!(
        (bell["score"].clone(), bell["status"].clone()),
        (json!(60), json!("new")),
        "{bell}"
    );
    assert_eq!(bell["owner_id"], rep_id.as_str(), "handed to sales");

    // Ames stays in nurturing past the policy's week: disqualified by the recycle task.
    let res = app.put(
        "/api/v1/lead-recycle-policy",
        &app.admin_token,
        &json!({"rules": [{"status": "nurturing", "after_days": 7, "action": "disqualify",
            "reason": "Nurturing failed"}]}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let ames = lead("Ames")["id"].as_str().unwrap_or_default().to_string();
    app.execute(&format!(
        "UPDATE leads SET updated_at = '2026-01-01T00:00:00.000000Z' WHERE id = '{ames}'"
    ));
    let run = app.post(
        "/api/v1/schedules/lead-recycle/run",
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(run.status, 202, "{}", run.text);
    wait_for("the recycle run", || {
        lead("Ames")["status"] == "disqualified"
    });
    assert_eq!(lead("Ames")["disqualified_reason"], "Nurturing failed");
    assert_eq!(
        lead("Bell")["status"],
        "new",
        "a lead back with sales is left alone"
    );
}

#[test]
fn a_stop_reply_withdraws_sms_consent_and_every_reply_is_logged() {
    let gateway = Receiver::start(&[]);
    let url = gateway.url.clone();
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.sms_url = Some(url.as_str().into())
    });
    let person = |first: &str, number: &str| {
        created(
            &app,
            "/api/v1/contacts",
            json!({"first_name": first, "last_name": "Test", "phones": [{"number": number}],
                "consents": {"sms": {"status": "granted", "source": "shop"}}}),
        )
    };
    let ann = person("Ann", "+33 6 12 34 56 78");
    let ben = person("Ben", "+44 7911 123456");
    let reply = |from: &str, body: &str, key: &str| {
        let payload = json!({"from": from, "body": body}).to_string();
        let headers = [
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ];
        app.send(
            "POST",
            "/api/v1/inbound/sms",
            Some(&app.admin_token),
            &headers,
            Some(&payload),
        )
    };

    // "Stop." from Ann's number, as her phone writes it, pushed twice by a retrying gateway.
    let first = reply("+33612345678", "Stop.", "gw-1");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(reply("+33612345678", "Stop.", "gw-1").json(), first.json());
    let out = first.json();
    assert_eq!(out["opted_out"], true, "{out}");
    assert_eq!(out["contact_ids"], json!([ann]));
    let consents = app
        .get(&format!("/api/v1/contacts/{ann}"), &app.admin_token)
        .json()["consents"]
        .clone();
    assert_eq!(consents["sms"]["status"], "withdrawn", "{consents}");
    assert_eq!(consents["sms"]["source"], "sms_reply", "{consents}");

    // Ben's question is kept as an inbound sms activity; his consent stands.
    let asked = reply("+44 7911 123456", "What time do you open?", "gw-2").json();
    assert_eq!(asked["opted_out"], false, "{asked}");
    assert_eq!(asked["contact_ids"], json!([ben]), "{asked}");
    let activity = asked["activity_ids"][0].as_str().unwrap_or_default();
    let activity = app
        .get(&format!("/api/v1/activities/{activity}"), &app.admin_token)
        .json();
    assert_eq!(
        (
            activity["kind"].clone(),
            activity["direction"].clone(),
            activity["body"].clone()
        ),
        (
            json!("sms"),
            json!("inbound"),
            json!("What time do you open?")
        ),
        "{activity}"
    );
    assert_eq!(app.count("activities"), 2, "one per reply, not per retry");

    // A STOP from a number nobody has yet is kept: whoever gets it is not texted. A number
    // that is no number is a 422; a sales rep may not push replies.
    let unknown = reply("+1 202 555 0143", "STOP", "gw-3").json();
    assert_eq!(
        (unknown["opted_out"].clone(), unknown["contact_ids"].clone()),
        (json!(true), json!([]))
    );
    let bad = reply("12", "STOP", "gw-4").problem(422);
    assert_eq!(errors(&bad), ["from"]);
    let (_, rep) = app.user("sales_rep");
    let denied = app.send(
        "POST",
        "/api/v1/inbound/sms",
        Some(&rep),
        &[("content-type", "application/json")],
        Some(r#"{"from": "+33612345678", "body": "STOP"}"#),
    );
    assert_eq!(denied.status, 403, "{}", denied.text);
    person("Cy", "(202) 555-0143");

    // The next sms campaign, to all three, texts Ben only.
    let send = |name: &str| {
        let campaign = created(
            &app,
            "/api/v1/campaigns",
            json!({"name": name, "channel": "sms", "body_text": "We open at 9"}),
        );
        let all: Vec<Value> = app
            .get("/api/v1/contacts?limit=10", &app.admin_token)
            .json()["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(all.len(), 3);
        app.post(
            &format!("/api/v1/campaigns/{campaign}/members"),
            &app.admin_token,
            &json!({ "contact_ids": all }),
        );
        app.post(
            &format!("/api/v1/campaigns/{campaign}/send"),
            &app.admin_token,
            &json!({}),
        );
        wait_for("the send", || metrics_of(&app, &campaign)["targeted"] == 0);
        skip_reasons(&app, &campaign)
    };
    assert_eq!(
        send("Opening hours"),
        ["Ann:no_consent", "Cy:suppressed"].map(String::from).into()
    );
    // START from Ann: off the list, consent granted; the next campaign reaches her again.
    let back = reply("+33 6 12 34 56 78", "Start", "gw-5").json();
    assert_eq!(
        (back["opted_in"].clone(), back["contact_ids"].clone()),
        (json!(true), json!([ann]))
    );
    assert_eq!(
        send("Late opening"),
        ["Cy:suppressed"].map(String::from).into()
    );
    gateway.wait_for(3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let mut to: Vec<String> = gateway
        .received()
        .iter()
        .map(|t| serde_json::from_str::<Value>(&t.body).unwrap_or_default()["to"].to_string())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["\"+33612345678\"", "\"+447911123456\"", "\"+447911123456\""]
    );
}

/// Date every form submission `days` back, and rescore the model's records.
fn age_submissions_and_recompute(app: &TestApp, model: &str, days: i64) {
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    app.execute(&format!(
        "UPDATE form_submissions SET created_at = '{}'",
        then.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    let res = app.post(
        &format!("/api/v1/scoring-models/{model}/recompute"),
        &app.admin_token,
        &json!({}),
    );
    assert_eq!(res.status, 202, "{}", res.text);
}

/// `first_name:skip_reason` of each skipped member.
fn skip_reasons(app: &TestApp, campaign: &str) -> BTreeSet<String> {
    let skipped = app
        .get(
            &format!("/api/v1/campaigns/{campaign}/members?status=skipped&limit=10"),
            &app.admin_token,
        )
        .json();
    skipped["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}:{}",
                m["first_name"].as_str().unwrap_or_default(),
                m["skip_reason"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn metrics_of(app: &TestApp, campaign: &str) -> Value {
    app.get(
        &format!("/api/v1/campaigns/{campaign}/metrics"),
        &app.admin_token,
    )
    .json()
}

/// A `crm serve` process on the test's database, mailing through `smtp`.
fn spawn_sender(app: &TestApp, smtp: &str) -> std::process::Child {
    std::process::Command::new(crate::imports::crm_binary())
        .arg("serve")
        .env("DATABASE_URL", &app.state.config.database_url)
        .env("CRM_LISTEN", "127.0.0.1:0")
        .env("CRM_JWT_SECRET", crm_tests::JWT_SECRET)
        .env("CRM_SECRETS_KEY", crm_tests::SECRETS_KEY)
        .env("SMTP_URL", smtp)
        .env("CRM_JOB_WORKERS", "2")
        .env("CRM_JOB_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start crm: {e}"))
}

#[test]
fn a_send_killed_midway_resumes_without_mailing_anyone_twice() {
    const PEOPLE: usize = 600;
    let smtp = SmtpServer::start();
    // This server takes the API calls; real `crm` processes do the sending.
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    for chunk in 0..PEOPLE / 200 {
        let items: Vec<Value> = (0..200)
            .map(|i| {
                let n = chunk * 200 + i;
                json!({"op": "create", "body": {"first_name": format!("P{n}"), "last_name": "Bulk",
                    "emails": [{"email": format!("p{n}@example.com")}],
                    "consents": {"email": {"status": "granted", "source": "import"}}}})
            })
            .collect();
        let res = app.post(
            "/api/v1/contacts/batch",
            &app.admin_token,
            &json!({"items": items}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
    }
    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Bulk", "channel": "newsletter", "subject": "News", "body_text": "Hi {{ contact.first_name }}"}),
    );
    let seg = created(
        &app,
        "/api/v1/segments",
        json!({"name": "Bulk", "criteria": {"field": "last_name", "op": "eq", "value": "Bulk"}}),
    );
    let added = app.post(
        &format!("/api/v1/campaigns/{campaign}/members"),
        &app.admin_token,
        &json!({"segment_id": seg}),
    );
    assert_eq!(added.json()["added"], PEOPLE, "{}", added.text);
    assert_eq!(
        app.post(
            &format!("/api/v1/campaigns/{campaign}/send"),
            &app.admin_token,
            &json!({})
        )
        .status,
        202
    );

    // Kill the sender without warning once some mail is out, and start another.
    let mut server = spawn_sender(&app, &smtp.url());
    wait_for("the first mails", || smtp.mails().len() >= 50);
    server.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = server.wait();
    let before = smtp.mails().len();
    assert!(before < PEOPLE, "killed before the end ({before} mails)");
    let mut server = spawn_sender(&app, &smtp.url());
    let until = Instant::now() + Duration::from_secs(120);
    while smtp.mails().len() < PEOPLE && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = server.kill();
    let _ = server.wait();

    // Everyone got the campaign; a mail the SMTP server took in the instant of the kill may
    // come again, but only under its first Message-ID, which mail systems drop.
    let mails = smtp.mails();
    let mut by_person: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for m in &mails {
        for to in &m.to {
            by_person
                .entry(to.clone())
                .or_default()
                .insert(m.header("Message-ID").unwrap_or_default());
        }
    }
    assert_eq!(
        by_person.len(),
        PEOPLE,
        "{} mails to {} people",
        mails.len(),
        by_person.len()
    );
    assert!(
        by_person.values().all(|ids| ids.len() == 1),
        "someone got two different mails"
    );
    assert!(
        mails.len() <= PEOPLE + 2,
        "{} mails for {PEOPLE} people",
        mails.len()
    );
    let m = app
        .get(
            &format!("/api/v1/campaigns/{campaign}/metrics"),
            &app.admin_token,
        )
        .json();
    assert_eq!(
        (m["reached"].clone(), m["targeted"].clone()),
        (json!(PEOPLE), json!(0)),
        "{m}"
    );
}

#[test]
fn a_web_form_captures_leads_and_consent_and_refuses_what_it_should() {
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.anonymous_rate_limit_per_minute = 12
    });
    let campaign = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Webinar", "channel": "webinar"}),
    );
    let bad = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Bad", "fields": [{"name": "mail", "maps_to": "shoe_size"}],
                "allowed_origins": ["https://www.example.com/path"]}),
        )
        .problem(422);
    assert_eq!(errors(&bad), ["fields[0].maps_to", "allowed_origins[0]"]);
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Sign up", "campaign_id": campaign, "consent_text": "Send me news",
                "allowed_origins": ["https://www.example.com"], "fields": [
                {"name": "name", "maps_to": "last_name", "required": true},
                {"name": "mail", "maps_to": "email", "required": true},
                {"name": "firm", "maps_to": "company"}]}),
        )
        .json();
    let key = form["public_key"].as_str().unwrap_or_default().to_string();
    let url = format!("/api/v1/forms/{key}/submissions");
    let json_post = |origin: &str, body: Value| {
        app.send(
            "POST",
            &url,
            None,
            &[("content-type", "application/json"), ("origin", origin)],
            Some(&body.to_string()),
        )
    };

    // A new visitor becomes a lead of the campaign, from the web form.
    let ok = json_post(
        "https://www.example.com",
        json!({"name": "Hopper", "mail": "Grace@Navy.example", "firm": "Navy"}),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    let leads = app.get("/api/v1/leads", &app.admin_token).json();
    let lead = &leads["data"][0];
    assert_eq!(
        (
            lead["last_name"].clone(),
            lead["source"].clone(),
            lead["campaign_id"].clone()
        ),
        (json!("Hopper"), json!("web_form"), json!(campaign)),
        "{leads}"
    );
    // The same person again matches the lead instead of making another.
    assert_eq!(
        json_post(
            "https://www.example.com",
            json!({"name": "Hopper", "mail": "grace@navy.example"})
        )
        .status,
        201
    );
    assert_eq!(app.count("leads"), 1);

    // A known contact's submission with consent grants it, form-encoded as browsers send it.
    let ada = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Ada", "last_name": "L", "emails": [{"email": "ada@example.com"}]}),
    );
    let encoded = app.send(
        "POST",
        &url,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("name=Lovelace&mail=ada%40example.com&consent=on"),
    );
    assert_eq!(encoded.status, 201, "{}", encoded.text);
    let contact = app
        .get(&format!("/api/v1/contacts/{ada}"), &app.admin_token)
        .json();
    assert_eq!(
        contact["consents"]["email"]["status"], "granted",
        "{contact}"
    );
    assert_eq!(
        app.count("leads"),
        1,
        "a contact's submission makes no lead"
    );
    assert_eq!(app.count("form_submissions"), 3);

    // Missing and unknown fields are named; another origin is refused; robots get nowhere.
    let missing = json_post("https://www.example.com", json!({"name": "X", "age": 3})).problem(422);
    assert_eq!(errors(&missing), ["mail", "age"]);
    json_post(
        "https://evil.example",
        json!({"name": "X", "mail": "x@example.com"}),
    )
    .problem(403);
    let robot = json_post(
        "https://www.example.com",
        json!({"name": "Bot", "mail": "bot@example.com", "_hp": "http://spam"}),
    );
    assert_eq!(robot.status, 201);
    assert_eq!(
        app.count("form_submissions"),
        3,
        "the honeypot records nothing"
    );
    app.send(
        "POST",
        "/api/v1/forms/frm_nope/submissions",
        None,
        &[("content-type", "application/json")],
        Some("{}"),
    )
    .problem(404);

    // A flood from one client meets the anonymous rate limit.
    let statuses: Vec<u16> = (0..15)
        .map(|_| {
            json_post(
                "https://www.example.com",
                json!({"name": "F", "mail": "flood@example.com"}),
            )
            .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn scores_add_up_decay_hand_hot_leads_to_sales_and_keep_their_history() {
    let app = TestApp::start();
    let (rep_id, _) = app.user("sales_rep");
    created(
        &app,
        "/api/v1/lead-assignment-rules",
        json!({"name": "Hot leads", "assign_to": "user", "user_id": rep_id,
            "conditions": [{"field": "score", "op": "gte", "value": 40}]}),
    );
    let bad = app
        .post(
            "/api/v1/scoring-models",
            &app.admin_token,
            &json!({"name": "Bad", "applies_to": "lead", "rules": [
                {"kind": "attribute", "field": "shoe_size", "op": "eq", "value": "44", "points": 1},
                {"kind": "behaviour", "event": "dancing", "points": 1}]}),
        )
        .problem(422);
    assert_eq!(errors(&bad), ["rules[0].field", "rules[1].event"]);
    let model = created(
        &app,
        "/api/v1/scoring-models",
        json!({"name": "Leads", "applies_to": "lead", "half_life_days": 30, "handoff_score": 40, "rules": [
            {"kind": "attribute", "field": "job_title", "op": "contains", "value": "head", "points": 20},
            {"kind": "attribute", "field": "employee_count", "op": "gte", "value": 100, "points": 10},
            {"kind": "behaviour", "event": "form_submitted", "points": 16}]}),
    );
    let form = app
        .post(
            "/api/v1/forms",
            &app.admin_token,
            &json!({"name": "Demo", "fields": [{"name": "name", "maps_to": "last_name"},
                {"name": "mail", "maps_to": "email"}, {"name": "title", "maps_to": "job_title"}]}),
        )
        .json();
    let url = format!(
        "/api/v1/forms/{}/submissions",
        form["public_key"].as_str().unwrap_or_default()
    );
    let submit = |body: Value| {
        let res = app.send("POST", &url, None, &[], Some(&body.to_string()));
        assert_eq!(res.status, 201, "{}", res.text);
    };
    submit(json!({"name": "Lamarr", "mail": "hedy@example.com", "title": "Head of Radio"}));
    let lead = || app.get("/api/v1/leads", &app.admin_token).json()["data"][0].clone();
    // 20 for the title and 16 for the submission: 36, below the hand-off.
    assert_eq!(lead()["score"], 36, "{}", lead());
    assert_ne!(lead()["owner_id"], rep_id.as_str());
    // A second submission crosses 40: the assignment rules hand the lead to the rep.
    submit(json!({"name": "Lamarr", "mail": "hedy@example.com"}));
    assert_eq!(lead()["score"], 52);
    assert_eq!(lead()["owner_id"], rep_id.as_str(), "handed to sales");
    let id = lead()["id"].as_str().unwrap_or_default().to_string();
    let history = app
        .get(
            &format!("/api/v1/score-history?entity_type=lead&entity_id={id}"),
            &app.admin_token,
        )
        .json();
    let steps: Vec<(i64, i64)> = history
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
    assert_eq!(steps, [(36, 52), (0, 36)], "{history}");
    assert!(history[0]["reasons"]
        .as_str()
        .unwrap_or_default()
        .contains("form_submitted"));

    // Thirty days on, the submissions count half: 20 + 8 + 8.
    age_submissions_and_recompute(&app, &model, 30);
    wait_for("the decayed score", || lead()["score"] == 36);

    // Contacts score on opens, and segments read the score.
    let contact_model = created(
        &app,
        "/api/v1/scoring-models",
        json!({"name": "Engagement", "applies_to": "contact", "rules": [
            {"kind": "behaviour", "event": "form_submitted", "points": 7}]}),
    );
    let ada = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Ada", "last_name": "L", "emails": [{"email": "ada@example.com"}]}),
    );
    submit(json!({"name": "Lovelace", "mail": "ada@example.com"}));
    let seg = app.post(
        "/api/v1/segments/preview",
        &app.admin_token,
        &json!({"criteria": {"field": "score", "op": "gte", "value": 7}}),
    );
    assert_eq!(seg.json()["count"], 1, "{}", seg.text);
    assert_eq!(seg.json()["sample"][0]["id"], ada.as_str());
    let archived = app.delete(
        &format!("/api/v1/scoring-models/{contact_model}"),
        &app.admin_token,
    );
    assert_eq!(archived.status, 204, "{}", archived.text);
}

// ---- Criteria that cost: `in` lists, time budgets, turns ----

/// Create records through `/{collection}/batch`, 200 at a time; their ids in order.
fn create_many(app: &TestApp, collection: &str, bodies: Vec<Value>) -> Vec<String> {
    let mut ids = vec![];
    for chunk in bodies.chunks(200) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|b| json!({"op": "create", "body": b}))
            .collect();
        let res = app.post(
            &format!("/api/v1/{collection}/batch"),
            &app.admin_token,
            &json!({"items": items}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
        let body = res.json();
        assert_eq!(body["failed"], 0, "{}", res.text);
        for r in body["results"].as_array().into_iter().flatten() {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(ids.len(), bodies.len());
    ids
}

/// A customer base for heavy criteria: `contacts` contacts over 400 accounts, 200 products
/// in 20 families, one order of two products for four accounts in five. Contact `j` works at
/// account `j % 400` as `title-{j % 150}`, is tagged `t{j % 120}` and has tier `tier-{j % 130}`;
/// account `a` bought products `a % 200` and `(7a + 3) % 200` unless `a % 5 == 4`.
struct Base {
    contacts: Vec<String>,
    products: Vec<String>,
}

fn bought(account: usize) -> Vec<usize> {
    if account % 5 == 4 {
        vec![]
    } else {
        vec![account % 200, (7 * account + 3) % 200]
    }
}

fn customer_base(app: &TestApp, contacts: usize) -> Base {
    created(
        app,
        "/api/v1/meta/objects/contact/fields",
        json!({"key": "tier", "label": "Tier", "field_type": "text"}),
    );
    let products = create_many(
        app,
        "products",
        (0..200)
            .map(|k| json!({"sku": format!("P{k}"), "name": format!("Product {k}"), "family": format!("fam-{}", k % 20)}))
            .collect(),
    );
    let accounts = create_many(
        app,
        "accounts",
        (0..400)
            .map(|a| json!({"name": format!("Account {a}"), "industry": format!("ind-{}", a % 30)}))
            .collect(),
    );
    let orders: Vec<Value> = (0..400)
        .filter(|a| !bought(*a).is_empty())
        .map(|a| {
            let lines: Vec<Value> = bought(a)
                .into_iter()
                .map(|k| json!({"product_id": products[k], "quantity": 1, "unit_price": 1000}))
                .collect();
            json!({"account_id": accounts[a], "currency": "EUR", "ordered_on": "2026-11-20", "lines": lines})
        })
        .collect();
    create_many(app, "orders", orders);
    let contacts = create_many(
        app,
        "contacts",
        (0..contacts)
            .map(|j| {
                json!({"first_name": format!("C{j}"), "last_name": "Base",
                    "job_title": format!("title-{}", j % 150), "tags": [format!("t{}", j % 120)],
                    "custom": {"tier": format!("tier-{}", j % 130)},
                    "accounts": [{"account_id": accounts[j % 400], "role": "buyer"}]})
            })
            .collect(),
    );
    Base { contacts, products }
}

/// Every member of a saved segment, 200 a page.
fn segment_members(app: &TestApp, criteria: &Value) -> BTreeSet<String> {
    let seg = created(
        app,
        "/api/v1/segments",
        json!({"name": "Heavy", "criteria": criteria}),
    );
    ids_paged(app, &format!("/api/v1/segments/{seg}/members"), 200)
}

/// Five conditions of 100 values each over 2,000 contacts: one subquery per condition, so
/// the preview and the members are the exact contacts the conditions describe (and the
/// server answers them in a moment, where it used to take minutes).
#[test]
fn in_lists_of_a_hundred_values_select_exactly_their_contacts() {
    let app = TestApp::start();
    let base = customer_base(&app, 2000);
    let hundred = |f: &dyn Fn(usize) -> String| (0..100).map(f).collect::<Vec<String>>();
    let products: Vec<String> = base.products.iter().take(100).cloned().collect();
    // Ten real families, ninety that no product has.
    let families = hundred(&|i| {
        if i < 10 {
            format!("fam-{i}")
        } else {
            format!("none-{i}")
        }
    });
    let criteria = json!({"and": [
        {"field": "products_bought", "op": "in", "value": products},
        {"field": "families_bought", "op": "in", "value": families},
        {"field": "job_title", "op": "in", "value": hundred(&|i| format!("title-{i}"))},
        {"field": "tags", "op": "in", "value": hundred(&|i| format!("t{i}"))},
        {"field": "custom.tier", "op": "not_in", "value": hundred(&|i| format!("tier-{}", i + 30))},
    ]});
    let expected: BTreeSet<String> = (0..2000)
        .filter(|j| {
            let got = bought(j % 400);
            got.iter().any(|k| *k < 100)
                && got.iter().any(|k| k % 20 < 10)
                && j % 150 < 100
                && j % 120 < 100
                && !(30..130).contains(&(j % 130))
        })
        .map(|j| base.contacts[j].clone())
        .collect();
    assert!(
        expected.len() > 50 && expected.len() < 1000,
        "a discriminating test: {}",
        expected.len()
    );

    let started = Instant::now();
    let res = app.post(
        "/api/v1/segments/preview",
        &app.admin_token,
        &json!({"criteria": criteria}),
    );
    eprintln!("heavy preview: {:?}", started.elapsed());
    assert_eq!(res.status, 200, "{}", res.text);
    let preview = res.json();
    assert_eq!(preview["count"], expected.len() as i64);
    let sample: Vec<String> = preview["sample"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(sample.len(), 10);
    assert!(sample.iter().all(|id| expected.contains(id)), "{sample:?}");
    assert_eq!(segment_members(&app, &criteria), expected);

    // `not_in` over purchase history keeps the contacts without any purchase.
    let none_of =
        json!({"field": "products_bought", "op": "not_in", "value": base.products[..100]});
    let expected: BTreeSet<String> = (0..2000)
        .filter(|j| bought(j % 400).iter().all(|k| *k >= 100))
        .map(|j| base.contacts[j].clone())
        .collect();
    assert_eq!(segment_members(&app, &none_of), expected);
}

/// Criteria past their time budget stop: a 422 naming the criteria as too expensive, the
/// connection back in the pool, nothing half-written by a campaign add.
#[test]
fn criteria_past_their_time_budget_are_a_422_and_hold_nothing() {
    // No time at all: the first contact read is past the deadline (PostgreSQL: 1 ms).
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.criteria_timeout = Duration::ZERO;
    });
    customer_base(&app, 600);
    let everything: Vec<String> = (0..100).map(|i| format!("title-{i}")).collect();
    let criteria = json!({"or": [
        {"field": "job_title", "op": "in", "value": everything},
        {"field": "families_bought", "op": "in", "value": ["fam-1", "fam-2"]},
        {"field": "total_spent", "op": "gte", "value": 0},
    ]});
    let p = app
        .post(
            "/api/v1/segments/preview",
            &app.admin_token,
            &json!({"criteria": criteria}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "criteria", "{p}");
    assert_eq!(p["errors"][0]["code"], "too_expensive", "{p}");
    let seg = created(
        &app,
        "/api/v1/segments",
        json!({"name": "Costly", "criteria": criteria}),
    );
    app.get(&format!("/api/v1/segments/{seg}/members"), &app.admin_token)
        .problem(422);
    let k = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "Costly", "channel": "email"}),
    );
    app.post(
        &format!("/api/v1/campaigns/{k}/members"),
        &app.admin_token,
        &json!({"segment_id": seg}),
    )
    .problem(422);
    assert_eq!(app.count("campaign_members"), 0);
    // Every connection is usable again, by every kind of request, many times over the pool.
    for _ in 0..12 {
        assert_eq!(app.get("/health/ready", "").status, 200);
        let list = app.get("/api/v1/contacts?limit=5", &app.admin_token);
        assert_eq!(list.status, 200, "{}", list.text);
        let added = app.post(
            &format!("/api/v1/campaigns/{k}/members"),
            &app.admin_token,
            &json!({"contact_ids": [list.json()["data"][0]["id"]]}),
        );
        assert_eq!(added.status, 200, "{}", added.text);
    }
}

/// Criteria evaluations take turns (`CRM_CRITERIA_CONCURRENCY`, fewer than the pool's
/// connections): beyond them a preview waits a moment, then gets a 503 with Retry-After,
/// while the health check and every other request go on.
#[test]
fn criteria_evaluations_beyond_their_turns_get_503_while_the_rest_answers() {
    let app = TestApp::start_with(JobRegistry::default(), |c| {
        c.criteria_concurrency = Some(2);
        c.criteria_wait = Duration::from_millis(300);
    });
    assert_eq!(app.state.criteria_slots.size(), 2);
    let base = customer_base(&app, 400);
    let criteria = json!({"and": [
        {"field": "products_bought", "op": "in", "value": base.products[..100]},
        {"field": "tags", "op": "in", "value": (0..100).map(|i| format!("t{i}")).collect::<Vec<_>>()},
    ]});
    let body = json!({"criteria": criteria});
    let preview = || app.post("/api/v1/segments/preview", &app.admin_token, &body);
    let expected = preview();
    assert_eq!(expected.status, 200, "{}", expected.text);

    // Both turns taken (as by two long previews): twelve more previews at once get a 503,
    // and meanwhile the health check, a list and a write answer.
    let held: Vec<_> = (0..2)
        .filter_map(|_| app.state.criteria_slots.try_take())
        .collect();
    assert_eq!(held.len(), 2);
    let (refused, others) = std::thread::scope(|s| {
        let previews: Vec<_> = (0..12).map(|_| s.spawn(preview)).collect();
        let others = s.spawn(|| {
            vec![
                app.get("/health/ready", "").status,
                app.get("/health/live", "").status,
                app.get("/api/v1/contacts?limit=50", &app.admin_token)
                    .status,
                app.post(
                    "/api/v1/contacts",
                    &app.admin_token,
                    &json!({"first_name": "During", "last_name": "Previews"}),
                )
                .status,
            ]
        });
        let refused: Vec<Resp> = previews.into_iter().filter_map(|h| h.join().ok()).collect();
        (refused, others.join().unwrap_or_default())
    });
    assert_eq!(others, [200, 200, 200, 201]);
    assert_eq!(refused.len(), 12);
    for r in &refused {
        let p = r.problem(503);
        assert_eq!(p["code"], "unavailable");
        assert!(r
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    }
    // Saved segments' members and campaign adds from a segment take the same turns.
    let seg = created(
        &app,
        "/api/v1/segments",
        json!({"name": "S", "criteria": criteria}),
    );
    app.get(&format!("/api/v1/segments/{seg}/members"), &app.admin_token)
        .problem(503);
    let k = created(
        &app,
        "/api/v1/campaigns",
        json!({"name": "K", "channel": "email"}),
    );
    let add = |_: ()| {
        app.post(
            &format!("/api/v1/campaigns/{k}/members"),
            &app.admin_token,
            &json!({"segment_id": seg}),
        )
    };
    add(()).problem(503);
    drop(held);
    assert_eq!(preview().json(), expected.json());
    assert_eq!(add(()).status, 200);

    // Real previews at once: each is answered (200, or 503 when no turn freed up in time),
    // never the pool running dry, and the health check answers all along.
    let (answers, health) = std::thread::scope(|s| {
        let previews: Vec<_> = (0..12).map(|_| s.spawn(preview)).collect();
        let health = s.spawn(|| {
            (0..10)
                .map(|_| app.get("/health/ready", "").status)
                .collect::<Vec<u16>>()
        });
        let answers: Vec<Resp> = previews.into_iter().filter_map(|h| h.join().ok()).collect();
        (answers, health.join().unwrap_or_default())
    });
    assert_eq!(health, vec![200; 10]);
    assert_eq!(answers.len(), 12);
    for r in &answers {
        match r.status {
            200 => assert_eq!(r.json(), expected.json()),
            _ => {
                let p = r.problem(503);
                assert!(
                    p["detail"].as_str().unwrap_or("").contains("at once"),
                    "a turn refused, not the pool: {p}"
                );
            }
        }
    }
}

#[test]
fn rule_and_test_values_are_typed_in_the_spec_as_the_server_takes_them() {
    let app = TestApp::start();
    let t = &app.admin_token;
    // Strings, numbers and lists, as README's examples send them: never a JSON object.
    let spec = app.send("GET", "/openapi.json", None, &[], None).json();
    let schemas = &spec["components"]["schemas"];
    for name in [
        "ScoringRuleInput",
        "AutomationMatchInput",
        "AutomationStepInput",
    ] {
        let value = &schemas[name]["properties"]["value"];
        let types: Vec<&str> = value["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["type"].as_str())
            .collect();
        assert!(
            types.contains(&"string") && types.contains(&"number") && !types.contains(&"object"),
            "{name}.value: {value}"
        );
    }
    assert!(!schemas["AutomationMatchInput"]["required"]
        .as_array()
        .is_some_and(|r| r.contains(&json!("value"))));
    let model = app.post(
        "/api/v1/scoring-models",
        t,
        &json!({"name": "Fit", "applies_to": "lead", "rules": [
            {"kind": "attribute", "field": "industry", "op": "eq", "value": "retail", "points": 5},
            {"kind": "attribute", "field": "employee_count", "op": "gte", "value": 50, "points": 5},
            {"kind": "attribute", "field": "country", "op": "in", "value": ["NO", "SE"], "points": 5}]}),
    );
    assert_eq!(model.status, 201, "{}", model.text);
    let automation = app.post(
        "/api/v1/automations",
        t,
        &json!({"name": "Typed", "trigger": {"event": "lead.created", "when": [
                {"field": "country", "op": "in", "value": ["NO", "SE"]},
                {"field": "employee_count", "op": "gte", "value": 50},
                {"field": "email", "op": "exists"}]},
            "steps": [{"type": "set_field", "field": "job_title", "value": "Buyer"}]}),
    );
    assert_eq!(automation.status, 201, "{}", automation.text);
    // A list for `in` holds at most 200 values, as the spec says.
    let many: Vec<String> = (0..201).map(|i| format!("C{i}")).collect();
    let res = app.post(
        "/api/v1/scoring-models",
        t,
        &json!({"name": "Wide", "applies_to": "lead", "rules": [
            {"kind": "attribute", "field": "country", "op": "in", "value": many, "points": 1}]}),
    );
    assert_eq!(first_error(&res).0, "rules[0].value");
    let res = app.post(
        "/api/v1/automations",
        t,
        &json!({"name": "Wide", "trigger": {"event": "lead.created", "when": [
                {"field": "country", "op": "in", "value": many}]},
            "steps": [{"type": "wait", "days": 1}]}),
    );
    assert_eq!(first_error(&res).0, "trigger.when[0].value");
}

/// The first error of a 422: its field and message.
fn first_error(res: &Resp) -> (String, String) {
    let p = res.problem(422);
    (
        p["errors"][0]["field"].as_str().unwrap_or("-").to_string(),
        p["errors"][0]["message"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
    )
}

#[test]
fn scoring_models_and_forms_refuse_longer_lists_than_the_spec_allows() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let rule = json!({"kind": "behaviour", "event": "form_submitted", "points": 1});
    for n in [101, 10_000] {
        let res = app.post(
            "/api/v1/scoring-models",
            t,
            &json!({"name": "Huge", "applies_to": "lead", "rules": vec![rule.clone(); n]}),
        );
        assert_eq!(
            first_error(&res),
            ("rules".into(), "at most 100 rules".into()),
            "{n} rules"
        );
    }
    assert_eq!(app.count("scoring_models"), 0);
    let ok = app.post(
        "/api/v1/scoring-models",
        t,
        &json!({"name": "Full", "applies_to": "lead", "rules": vec![rule; 100]}),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);

    let fields: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("f{i}"), "maps_to": "company"}))
        .collect();
    let res = app.post(
        "/api/v1/forms",
        t,
        &json!({"name": "Long", "fields": fields}),
    );
    assert_eq!(
        first_error(&res),
        ("fields".into(), "at most 50 fields".into())
    );
    let origins: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
    let res = app.post(
        "/api/v1/forms",
        t,
        &json!({"name": "Everywhere", "fields": [{"name": "mail", "maps_to": "email"}],
            "allowed_origins": origins}),
    );
    assert_eq!(
        first_error(&res),
        ("allowed_origins".into(), "at most 20 origins".into())
    );
    assert_eq!(app.count("forms"), 0);
}
