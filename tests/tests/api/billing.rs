//! Invoices and payments pushed in from an accounting system, and account balances.

use crm_tests::TestApp;
use serde_json::{json, Value};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

fn numbers(page: &Value) -> Vec<String> {
    let mut out: Vec<String> = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["number"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

#[track_caller]
fn created(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let res = app.post(path, token, &body);
    assert_eq!(res.status, 201, "POST {path}: {}", res.text);
    res.json()
}

fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> crm_tests::Resp {
    app.send("PUT", path, Some(token), &[], Some(&body.to_string()))
}

fn account(app: &TestApp, name: &str) -> String {
    id(&created(
        app,
        "/api/v1/accounts",
        &app.admin_token,
        json!({"name": name}),
    ))
}

fn invoice(app: &TestApp, token: &str, account: &str, number: &str, extra: Value) -> Value {
    let mut body = json!({
        "account_id": account, "number": number, "currency": "USD", "amount_total": 10000,
        "issued_on": "2026-01-05", "due_on": "2099-02-04",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    created(app, "/api/v1/invoices", token, body)
}

#[test]
fn an_accounting_system_upserts_an_invoice_and_payments_settle_it() {
    let app = TestApp::start();
    let (_, erp) = app.user("manager");
    let acme = account(&app, "Acme");

    // The invoice arrives by its key in the accounting system: created, then updated.
    let body = json!({
        "account_id": acme, "number": "INV-1001", "currency": "EUR", "amount_total": 100000,
        "issued_on": "2026-01-10", "due_on": "2099-02-09",
    });
    let first = put(&app, "/api/v1/invoices/external/erp/INV-1001", &erp, &body);
    assert_eq!(first.status, 201, "{}", first.text);
    let inv = first.json();
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["amount_paid"], 0);
    assert_eq!(inv["amount_due"], 100000);
    assert_eq!(inv["external_id"], "INV-1001");
    let again = put(
        &app,
        "/api/v1/invoices/external/erp/INV-1001",
        &erp,
        &json!({"notes": "net 30"}),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["id"], inv["id"]);
    assert_eq!(again.json()["version"], 2);
    assert_eq!(app.count("invoices"), 1);
    let url = format!("/api/v1/invoices/{}", id(&inv));

    // A partial payment: account and currency come from the invoice.
    let part = created(
        &app,
        "/api/v1/payments",
        &erp,
        json!({"invoice_id": id(&inv), "amount": 40000, "received_on": "2026-01-20",
               "method": "bank_transfer", "external_source": "erp", "external_id": "PAY-1"}),
    );
    assert_eq!(part["account_id"], acme.as_str());
    assert_eq!(part["currency"], "EUR");
    let now = app.get(&url, &erp).json();
    assert_eq!(now["amount_paid"], 40000);
    assert_eq!(now["amount_due"], 60000);
    assert_eq!(now["status"], "open");

    // The rest, upserted by its own key: the invoice is paid.
    let rest = put(
        &app,
        "/api/v1/payments/external/erp/PAY-2",
        &erp,
        &json!({"invoice_id": id(&inv), "account_id": acme, "currency": "EUR",
                "amount": 60000, "received_on": "2026-02-01"}),
    );
    assert_eq!(rest.status, 201, "{}", rest.text);
    assert_eq!(rest.json()["method"], "other");
    let paid = app.get(&url, &erp).json();
    assert_eq!(paid["amount_paid"], 100000);
    assert_eq!(paid["amount_due"], 0);
    assert_eq!(paid["status"], "paid");
    let page = app.get("/api/v1/invoices?status=paid", &erp).json();
    assert_eq!(numbers(&page), vec!["INV-1001"]);

    // Each settlement is an audited invoice change (and so an invoice.updated event).
    let log = app
        .get(
            &format!(
                "/api/v1/audit-log?entity_id={}&action=updated&sort=occurred_at",
                id(&inv)
            ),
            &app.admin_token,
        )
        .json();
    let entries = log["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 3, "{log}");
    assert_eq!(entries[2]["changes"]["status"]["to"], "paid");

    // Archiving the second payment reopens the invoice; restoring it pays it again.
    let pay2 = format!("/api/v1/payments/{}", id(&rest.json()));
    assert_eq!(app.delete(&pay2, &erp).status, 204);
    let reopened = app.get(&url, &erp).json();
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["amount_paid"], 40000);
    let restored = app.post(&format!("{pay2}/restore"), &erp, &json!({}));
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(app.get(&url, &erp).json()["status"], "paid");

    // Un-applying a payment (invoice_id: null) makes it unapplied and reopens the invoice.
    let unapply = app.patch(&pay2, &erp, &json!({"invoice_id": null}));
    assert_eq!(unapply.status, 200, "{}", unapply.text);
    assert_eq!(app.get(&url, &erp).json()["amount_paid"], 40000);
    let balance = app
        .get(&format!("/api/v1/accounts/{acme}/balance"), &erp)
        .json();
    assert_eq!(balance["balances"][0]["currency"], "EUR");
    assert_eq!(balance["balances"][0]["open_balance"], 60000);
    assert_eq!(balance["balances"][0]["unapplied_payments"], 60000);
}

#[test]
fn overdue_invoices_count_in_the_balance_and_void_ones_do_not() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = account(&app, "Acme");
    let late = invoice(
        &app,
        t,
        &acme,
        "A-LATE",
        json!({"amount_total": 5000, "issued_on": "2020-01-01", "due_on": "2020-02-01"}),
    );
    assert_eq!(late["status"], "overdue");
    let current = invoice(&app, t, &acme, "B-CURRENT", json!({"amount_total": 7000}));
    created(
        &app,
        "/api/v1/payments",
        t,
        json!({"invoice_id": id(&current), "amount": 2000, "received_on": "2026-01-06"}),
    );
    let voided = invoice(&app, t, &acme, "C-VOID", json!({"amount_total": 9999}));
    let res = app.patch(
        &format!("/api/v1/invoices/{}", id(&voided)),
        t,
        &json!({"status": "void"}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["status"], "void");
    assert_eq!(res.json()["amount_due"], 0);
    let euro = invoice(
        &app,
        t,
        &acme,
        "D-EURO",
        json!({"currency": "EUR", "amount_total": 3000}),
    );
    created(
        &app,
        "/api/v1/payments",
        t,
        json!({"account_id": acme, "currency": "USD", "amount": 1500, "received_on": "2026-01-07", "method": "check"}),
    );
    // Another account's invoices are not this account's balance.
    let other = account(&app, "Other");
    invoice(
        &app,
        t,
        &other,
        "E-OTHER",
        json!({"due_on": "2020-03-01", "issued_on": "2020-01-01"}),
    );

    let balance = app
        .get(&format!("/api/v1/accounts/{acme}/balance"), t)
        .json();
    assert_eq!(
        balance["balances"],
        json!([
            {"currency": "EUR", "open_balance": 3000, "overdue_amount": 0,
             "invoices_open": 1, "invoices_overdue": 0, "unapplied_payments": 0},
            {"currency": "USD", "open_balance": 10000, "overdue_amount": 5000,
             "invoices_open": 2, "invoices_overdue": 1, "unapplied_payments": 1500},
        ]),
        "{balance}"
    );

    // The derived status filters in SQL.
    let list = |q: &str| {
        numbers(
            &app.get(&format!("/api/v1/invoices?account_id={acme}&{q}"), t)
                .json(),
        )
    };
    assert_eq!(list("status=overdue"), vec!["A-LATE"]);
    assert_eq!(list("status=open"), vec!["B-CURRENT", "D-EURO"]);
    assert_eq!(list("status=void"), vec!["C-VOID"]);
    app.get("/api/v1/invoices?status=late", t).problem(400);

    // Clients set open or void only; paid follows the payments.
    let url = format!("/api/v1/invoices/{}", id(&late));
    let p = app.patch(&url, t, &json!({"status": "paid"})).problem(422);
    assert_eq!(p["errors"][0]["field"], "status");
    app.patch(&url, t, &json!({"status": "overdue"}))
        .problem(422);
    app.patch(&url, t, &json!({"amount_paid": 5000}))
        .problem(422);
    app.patch(&url, t, &json!({"due_on": "2019-12-31"}))
        .problem(422);

    // Archived invoices leave the balance.
    assert_eq!(
        app.delete(&format!("/api/v1/invoices/{}", id(&euro)), t)
            .status,
        204
    );
    let balance = app
        .get(&format!("/api/v1/accounts/{acme}/balance"), t)
        .json();
    assert_eq!(balance["balances"].as_array().map(Vec::len), Some(1));
    assert_eq!(balance["balances"][0]["currency"], "USD");
}

#[test]
fn payments_must_match_their_invoice_and_only_managers_write_billing() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = account(&app, "Acme");
    let other = account(&app, "Other");
    let inv = invoice(&app, t, &acme, "INV-1", json!({}));

    let p = app
        .post(
            "/api/v1/payments",
            t,
            &json!({"invoice_id": id(&inv), "currency": "EUR", "amount": 100, "received_on": "2026-01-06"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "currency");
    let p = app
        .post(
            "/api/v1/payments",
            t,
            &json!({"invoice_id": id(&inv), "account_id": other, "amount": 100, "received_on": "2026-01-06"}),
        )
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "account_id");
    app.post(
        "/api/v1/payments",
        t,
        &json!({"account_id": acme, "currency": "USD", "amount": 0, "received_on": "2026-01-06"}),
    )
    .problem(422);
    app.post(
        "/api/v1/payments",
        t,
        &json!({"account_id": acme, "currency": "USD", "amount": 5, "received_on": "06/01/2026"}),
    )
    .problem(422);
    assert_eq!(app.count("payments"), 0);

    // An invoice cannot change currency under its payments.
    created(
        &app,
        "/api/v1/payments",
        t,
        json!({"invoice_id": id(&inv), "amount": 100, "received_on": "2026-01-06"}),
    );
    let url = format!("/api/v1/invoices/{}", id(&inv));
    let p = app.patch(&url, t, &json!({"currency": "EUR"})).problem(422);
    assert_eq!(p["errors"][0]["field"], "currency");
    app.post(
        "/api/v1/invoices",
        t,
        &json!({"account_id": "01900000-0000-7000-8000-0000000000cc", "number": "X",
                "currency": "USD", "amount_total": 1, "issued_on": "2026-01-01", "due_on": "2026-01-31"}),
    )
    .problem(422);
    let missing = app.post("/api/v1/invoices", t, &json!({})).problem(422);
    assert_eq!(missing["errors"].as_array().map(Vec::len), Some(6));

    // Sales reps read accounting data but do not write it; partners see none of it.
    let (_, rep) = app.user("sales_rep");
    app.post(
        "/api/v1/invoices",
        &rep,
        &json!({"account_id": acme, "number": "R-1", "currency": "USD", "amount_total": 1,
                "issued_on": "2026-01-01", "due_on": "2026-01-31"}),
    )
    .problem(403);
    app.patch(&url, &rep, &json!({"status": "void"}))
        .problem(403);
    put(
        &app,
        "/api/v1/invoices/external/erp/R-1",
        &rep,
        &json!({"account_id": acme}),
    )
    .problem(403);
    assert_eq!(app.get(&url, &rep).status, 200);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{acme}/balance"), &rep)
            .status,
        200
    );
    let (_, partner) = app.user("partner");
    app.get(&format!("/api/v1/accounts/{acme}/balance"), &partner)
        .problem(404);
    app.get(&url, &partner).problem(404);
    let page = app.get("/api/v1/invoices", &partner).json();
    assert_eq!(page["data"], json!([]));
    app.get(
        "/api/v1/accounts/01900000-0000-7000-8000-0000000000dd/balance",
        t,
    )
    .problem(404);
}

#[test]
fn concurrent_payments_on_one_invoice_are_all_counted() {
    let app = TestApp::start();
    let t = &app.admin_token;
    let acme = account(&app, "Acme");
    let inv = invoice(&app, t, &acme, "INV-C", json!({"amount_total": 800}));
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, inv) = (&app, id(&inv));
            s.spawn(move || {
                let res = app.post(
                    "/api/v1/payments",
                    t,
                    &json!({"invoice_id": inv, "amount": 100, "received_on": "2026-01-06",
                            "reference": format!("R-{i}")}),
                );
                assert_eq!(res.status, 201, "{}", res.text);
            });
        }
    });
    let now = app.get(&format!("/api/v1/invoices/{}", id(&inv)), t).json();
    assert_eq!(now["amount_paid"], 800, "{now}");
    assert_eq!(now["status"], "paid");
}
