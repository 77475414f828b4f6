//! Line items on deals, quote revisions (a proposal negotiated through several versions,
//! only the latest of which can be accepted) and the proposal as a PDF.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    let id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "not created: {v}");
    id
}

/// A sent quote for 2 × 100.00 seats, and the rep's token.
fn sent_quote(app: &TestApp) -> (Value, String, String) {
    let t = &app.admin_token;
    let (_, rep) = app.user("sales_rep");
    let seat = id(&app
        .post(
            "/api/v1/products",
            t,
            &json!({"sku": "SEAT", "name": "Seat"}),
        )
        .json());
    let book = app
        .post(
            "/api/v1/price-books",
            t,
            &json!({"name": "List", "prices": [{"product_id": seat, "currency": "EUR", "unit_price": 10000}]}),
        )
        .json();
    let acme = app
        .post("/api/v1/accounts", &rep, &json!({"name": "Acme"}))
        .json();
    let deal = app
        .post(
            "/api/v1/opportunities",
            &rep,
            &json!({"name": "Seats", "account_id": id(&acme), "pipeline_id": app.simple_pipeline(), "currency": "EUR"}),
        )
        .json();
    let q = app.post(
        "/api/v1/quotes",
        &rep,
        &json!({"opportunity_id": id(&deal), "price_book_id": id(&book),
            "lines": [{"product_id": seat, "quantity": 2}]}),
    );
    assert_eq!(q.status, 201, "{}", q.text);
    let q = q.json();
    let sent = app.post(
        &format!("/api/v1/quotes/{}/status", id(&q)),
        &rep,
        &json!({"status": "sent"}),
    );
    assert_eq!(sent.status, 200, "{}", sent.text);
    (sent.json(), rep, seat)
}

#[test]
fn a_sent_quote_is_revised_into_a_new_draft_and_only_the_latest_can_be_accepted() {
    let app = TestApp::start();
    let (first, rep, seat) = sent_quote(&app);
    let first_url = format!("/api/v1/quotes/{}", id(&first));
    assert_eq!(
        (first["revision"].as_i64(), &first["family_id"]),
        (Some(1), &first["id"])
    );

    let second = app.post(&format!("{first_url}/revise"), &rep, &json!({}));
    assert_eq!(second.status, 201, "{}", second.text);
    let second = second.json();
    assert_eq!(second["status"], "draft");
    assert_eq!(second["revision"], 2);
    assert_eq!(second["family_id"], first["id"]);
    assert_eq!(second["supersedes_id"], first["id"]);
    assert_eq!(
        (&second["lines"], &second["total"]),
        (&first["lines"], &first["total"])
    );
    let old = app.get(&first_url, &rep).json();
    assert_eq!(old["status"], "superseded");
    // The superseded revision can neither be accepted nor revised again.
    app.post(
        &format!("{first_url}/status"),
        &rep,
        &json!({"status": "accepted"}),
    )
    .problem(409);
    let p = app
        .post(&format!("{first_url}/revise"), &rep, &json!({}))
        .problem(409);
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&id(&second)),
        "{p}"
    );
    // A draft is edited, not revised.
    let second_url = format!("/api/v1/quotes/{}", id(&second));
    app.post(&format!("{second_url}/revise"), &rep, &json!({}))
        .problem(409);

    // The customer negotiates a third seat; that revision is rejected, then revised again.
    let edited = app.patch(
        &second_url,
        &rep,
        &json!({"lines": [{"product_id": seat, "quantity": 3, "discount_percent": 10}]}),
    );
    assert_eq!(edited.json()["total"], 27000, "{}", edited.text);
    for status in ["sent", "rejected"] {
        let r = app.post(
            &format!("{second_url}/status"),
            &rep,
            &json!({"status": status}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let third = app
        .post(&format!("{second_url}/revise"), &rep, &json!({}))
        .json();
    assert_eq!(
        (third["revision"].as_i64(), third["total"].as_i64()),
        (Some(3), Some(27000))
    );
    let third_url = format!("/api/v1/quotes/{}", id(&third));
    for status in ["sent", "accepted"] {
        let r = app.post(
            &format!("{third_url}/status"),
            &rep,
            &json!({"status": status}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    app.post(&format!("{third_url}/revise"), &rep, &json!({}))
        .problem(409);

    let family = app
        .get(
            &format!("/api/v1/quotes?family_id={}&sort=created_at", id(&first)),
            &rep,
        )
        .json();
    let statuses: Vec<&str> = family["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| q["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["superseded", "rejected", "accepted"]);
    assert_eq!(app.count("orders"), 1);
    // The order's line is also a row of purchase history.
    assert_eq!(app.count("order_lines"), 1);
}

#[test]
fn two_reps_revising_the_same_quote_at_once_make_one_revision() {
    let app = TestApp::start();
    let (first, rep, _) = sent_quote(&app);
    let url = format!("/api/v1/quotes/{}/revise", id(&first));
    let statuses = app.post_twice_at_once(&url, &rep, &json!({}));
    assert_eq!(statuses, [201, 409]);
    assert_eq!(app.count("quotes"), 2);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_proposal_comes_as_a_pdf_a_page_per_45_lines_with_the_totals() {
    let app = TestApp::start();
    let (q, rep, seat) = sent_quote(&app);
    let url = format!("/api/v1/quotes/{}/document", id(&q));
    let (status, kind, pdf) = app.download(&url, &rep, "application/pdf");
    assert_eq!((status, kind.as_str()), (200, "application/pdf"));
    assert!(pdf.starts_with(b"%PDF-1.7") && contains(&pdf, "%%EOF"));
    assert!(contains(&pdf, "/Count 1") && contains(&pdf, "(Quote for Acme)"));
    assert!(contains(&pdf, "(200.00)"), "the total is printed");
    // `format` wins over Accept; HTML stays the default.
    let (_, kind, _) = app.download(&format!("{url}?format=html"), &rep, "application/pdf");
    assert!(kind.starts_with("text/html"), "{kind}");
    let (_, kind, _) = app.download(&url, &rep, "*/*");
    assert!(kind.starts_with("text/html"), "{kind}");
    app.get(&format!("{url}?format=docx"), &rep).problem(400);

    // 100 lines make three pages (45 + 45 + 10).
    let draft = app
        .post(
            &format!("/api/v1/quotes/{}/revise", id(&q)),
            &rep,
            &json!({}),
        )
        .json();
    let lines: Vec<Value> = (1..=100)
        .map(|n| json!({"product_id": seat, "quantity": n}))
        .collect();
    let edited = app.patch(
        &format!("/api/v1/quotes/{}", id(&draft)),
        &rep,
        &json!({"lines": lines}),
    );
    // 100.00 × (1 + … + 100) = 505,000.00
    assert_eq!(edited.json()["total"], 50_500_000, "{}", edited.text);
    let (_, _, pdf) = app.download(
        &format!("/api/v1/quotes/{}/document?format=pdf", id(&draft)),
        &rep,
        "*/*",
    );
    assert!(contains(&pdf, "/Count 3") && contains(&pdf, "page 3 of 3"));
    assert!(contains(&pdf, "(505,000.00)"));
}

#[test]
fn a_deal_with_line_items_is_worth_what_its_lines_come_to() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let (_, rep) = app.user("sales_rep");
    let product = |sku: &str| {
        id(&app
            .post("/api/v1/products", t, &json!({"sku": sku, "name": sku}))
            .json())
    };
    let (seat, support) = (product("SEAT"), product("SUPPORT"));
    let book = id(&app
        .post(
            "/api/v1/price-books",
            t,
            &json!({"name": "List", "prices": [
                {"product_id": seat, "currency": "EUR", "unit_price": 10000},
                {"product_id": support, "currency": "EUR", "unit_price": 2500}]}),
        )
        .json());
    let acme = id(&app
        .post("/api/v1/accounts", &rep, &json!({"name": "Acme"}))
        .json());
    let body = json!({"name": "Seats", "account_id": acme, "pipeline_id": app.simple_pipeline(),
        "currency": "EUR", "price_book_id": book,
        // 10 × 100.00 less 10% = 900.00; 4 × 25.00 = 100.00; tax is not part of the amount.
        "lines": [{"product_id": seat, "quantity": 10, "discount_percent": 10, "tax_rate": 25},
                  {"product_id": support, "quantity": 4}]});
    let deal = app.post("/api/v1/opportunities", &rep, &body);
    assert_eq!(deal.status, 201, "{}", deal.text);
    let deal = deal.json();
    assert_eq!(deal["amount"], 100_000);
    assert_eq!(deal["lines"][0]["net"], 90_000);
    let url = format!("/api/v1/opportunities/{}", id(&deal));

    // An amount that disagrees with the lines is refused; so is a line the book can't price.
    let mut wrong = body.clone();
    wrong["amount"] = json!(5);
    let p = app.post("/api/v1/opportunities", &rep, &wrong).problem(422);
    assert_eq!(p["errors"][0]["field"], "amount", "{p}");
    app.patch(&url, &rep, &json!({"amount": 5})).problem(422);
    let p = app
        .patch(&url, &rep, &json!({"currency": "USD"}))
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "lines", "{p}");
    let p = app
        .patch(
            &url,
            &rep,
            &json!({"currency": "USD", "lines": [{"product_id": seat, "quantity": 1}]}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "lines[0].product_id", "{p}");

    // Changing a line re-prices the deal; other edits keep the amount.
    let more = app.patch(
        &url,
        &rep,
        &json!({"lines": [{"product_id": seat, "quantity": 12}]}),
    );
    assert_eq!(more.json()["amount"], 120_000, "{}", more.text);
    let renamed = app
        .patch(&url, &rep, &json!({"name": "Seats, more"}))
        .json();
    assert_eq!(renamed["amount"], 120_000);
    // Without lines the amount is the rep's again.
    let bare = app
        .patch(&url, &rep, &json!({"lines": null, "amount": 7_000}))
        .json();
    assert_eq!(
        (
            bare["amount"].as_i64(),
            bare["lines"].as_array().map(Vec::len)
        ),
        (Some(7_000), Some(0))
    );
}

/// What another rep's deal looks like to a rep outside its team: an account, a deal, a
/// draft and a sent quote, an order on the deal (keyed `erp/O-1`) and a quote keyed
/// `erp/Q-1`, all rep B's.
struct ForeignDeal {
    deal: String,
    draft: String,
    sent: String,
    order: String,
    book: String,
    seat: String,
}

fn foreign_deal(app: &TestApp, owner: &str) -> ForeignDeal {
    let (seat, book) = app.priced_product("SEAT", 10000);
    let acme = id(&app
        .post("/api/v1/accounts", owner, &json!({"name": "Acme"}))
        .json());
    let deal = id(&app
        .post(
            "/api/v1/opportunities",
            owner,
            &json!({"name": "Seats", "account_id": acme, "pipeline_id": app.simple_pipeline(), "currency": "EUR"}),
        )
        .json());
    let quote = |key: Value| {
        let mut body = json!({"opportunity_id": deal, "price_book_id": book,
            "lines": [{"product_id": seat, "quantity": 2}]});
        if let Some(k) = key.as_str() {
            body["external_source"] = json!("erp");
            body["external_id"] = json!(k);
        }
        id(&app.post("/api/v1/quotes", owner, &body).json())
    };
    let draft = quote(json!("Q-1"));
    let sent = quote(Value::Null);
    let res = app.post(
        &format!("/api/v1/quotes/{sent}/status"),
        owner,
        &json!({"status": "sent"}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let order = id(&app
        .post(
            "/api/v1/orders",
            owner,
            &json!({"account_id": acme, "opportunity_id": deal, "currency": "EUR",
                "ordered_on": "2026-11-30", "price_book_id": book, "external_source": "erp",
                "external_id": "O-1", "lines": [{"product_id": seat, "quantity": 1}]}),
        )
        .json());
    ForeignDeal {
        deal,
        draft,
        sent,
        order,
        book,
        seat,
    }
}

#[test]
fn another_reps_deal_cannot_be_quoted_accepted_ordered_or_cancelled_on_any_write_path() {
    let app = TestApp::start();
    let (_, b) = app.user("sales_rep");
    let (_, a) = app.user("sales_rep");
    let (_, marketer) = app.user("marketer");
    let d = foreign_deal(&app, &b);
    let snapshot = |app: &TestApp| {
        [
            format!("/api/v1/quotes/{}", d.draft),
            format!("/api/v1/quotes/{}", d.sent),
            format!("/api/v1/orders/{}", d.order),
        ]
        .map(|u| app.get(&u, &app.admin_token).json())
    };
    let before = snapshot(&app);
    let quotes_before = app.count("quotes");
    let new_quote = json!({"opportunity_id": d.deal, "price_book_id": d.book,
        "lines": [{"product_id": d.seat, "quantity": 1}]});

    // The API, as rep A and as a marketer.
    for (caller, method, path, body) in [
        (&a, "POST", "/api/v1/quotes".to_string(), new_quote.clone()),
        (
            &a,
            "PATCH",
            format!("/api/v1/quotes/{}", d.draft),
            json!({"notes": "mine now"}),
        ),
        (
            &a,
            "POST",
            format!("/api/v1/quotes/{}/status", d.draft),
            json!({"status": "sent"}),
        ),
        (
            &a,
            "POST",
            format!("/api/v1/quotes/{}/status", d.sent),
            json!({"status": "accepted"}),
        ),
        (
            &a,
            "POST",
            format!("/api/v1/quotes/{}/revise", d.sent),
            json!({}),
        ),
        (
            &a,
            "DELETE",
            format!("/api/v1/quotes/{}", d.draft),
            Value::Null,
        ),
        (
            &a,
            "PATCH",
            format!("/api/v1/orders/{}", d.order),
            json!({"status": "cancelled"}),
        ),
        (
            &a,
            "DELETE",
            format!("/api/v1/orders/{}", d.order),
            Value::Null,
        ),
        (
            &marketer,
            "PATCH",
            format!("/api/v1/orders/{}", d.order),
            json!({"notes": "x"}),
        ),
        (
            &marketer,
            "POST",
            format!("/api/v1/quotes/{}/status", d.draft),
            json!({"status": "sent"}),
        ),
    ] {
        let body = (!body.is_null()).then(|| body.to_string());
        let res = app.send(method, &path, Some(caller), &[], body.as_deref());
        res.problem(403);
    }

    // Batch, composite and upserts by external key.
    let batch = app
        .post(
            "/api/v1/quotes/batch",
            &a,
            &json!({"items": [
                {"op": "create", "body": new_quote},
                {"op": "update", "id": d.draft, "body": {"notes": "mine"}},
                {"op": "delete", "id": d.draft},
                {"op": "upsert", "external_source": "erp", "external_id": "Q-1", "body": {"notes": "mine"}},
            ]}),
        )
        .json();
    let statuses: Vec<Value> = batch["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(403); 4], "{batch}");
    let orders = app
        .post(
            "/api/v1/orders/batch",
            &a,
            &json!({"items": [{"op": "update", "id": d.order, "body": {"status": "cancelled"}}]}),
        )
        .json();
    assert_eq!(orders["results"][0]["status"], 403, "{orders}");
    app.put(
        "/api/v1/orders/external/erp/O-1",
        &a,
        &json!({"status": "cancelled"}),
    )
    .problem(403);
    app.put("/api/v1/quotes/external/erp/Q-9", &a, &new_quote)
        .problem(403);
    let composite = app.post(
        "/api/v1/composite",
        &a,
        &json!({"requests": [{"reference_id": "cancel", "method": "PATCH",
            "path": format!("/api/v1/orders/{}", d.order), "body": {"status": "cancelled"}}]}),
    );
    assert_eq!(composite.status, 403, "{}", composite.text);

    // An import of updates by rep A: every row refused, none written.
    let rows = format!(
        "{}\n{}\n",
        json!({"id": d.order, "status": "cancelled"}),
        json!({"id": d.order, "notes": "mine"})
    );
    let import = app.upload_as(
        &a,
        "/api/v1/imports?object=orders&mode=update",
        "application/x-ndjson",
        rows.as_bytes(),
    );
    assert_eq!(import.status, 202, "{}", import.text);
    let url = format!("/api/v1/imports/{}", id(&import.json()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let i = app.get(&url, &a).json();
        if i["status"] == "succeeded" || i["status"] == "failed" {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import never ended: {i}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        (&done["failed"], &done["updated"]),
        (&json!(2), &json!(0)),
        "{done}"
    );

    assert_eq!(snapshot(&app), before, "nothing of rep B's changed");
    assert_eq!(app.count("quotes"), quotes_before);

    // Rep B and a manager still can.
    let (_, manager) = app.user("manager");
    for caller in [&b, &manager] {
        let res = app.post("/api/v1/quotes", caller, &new_quote);
        assert_eq!(res.status, 201, "{}", res.text);
    }
    let res = app.patch(
        &format!("/api/v1/orders/{}", d.order),
        &b,
        &json!({"status": "cancelled"}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
}
