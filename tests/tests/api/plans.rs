//! Every documented filter and sort has an index its query uses. The server records the
//! statements it runs while the hot operations are called as a client would call them; each
//! statement on a big table is then explained on the same database: no full scan of a big
//! table (SQLite `SCAN t` without an index; PostgreSQL a `Seq Scan` even with sequential
//! scans disabled, i.e. no index could serve it).

use crm_core::db::{self, DbConn};
use crm_core::jobs::JobRegistry;
use crm_tests::TestApp;
use diesel::RunQueryDsl;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Tables that grow with the customer base.
const BIG: &[&str] = &[
    "accounts",
    "contacts",
    "contact_emails",
    "contact_phones",
    "contact_accounts",
    "contact_consents",
    "activities",
    "activity_links",
    "timeline_entries",
    "search_terms",
    "events",
    "audit_log",
    "invoices",
    "payments",
    "custom_values",
    "leads",
    "opportunities",
    "opportunity_stage_history",
    "campaign_members",
    "list_members",
    "touchpoints",
    "loyalty_members",
    "loyalty_ledger",
    "social_messages",
    "social_handles",
];

fn id(v: &Value) -> String {
    let id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "not created: {v}");
    id
}

/// The hot operations, as clients call them.
fn hot_paths(app: &TestApp) -> Vec<String> {
    let t = &app.admin_token;
    let (owner, _) = app.user("sales_rep");
    let acme = app
        .post(
            "/api/v1/accounts",
            t,
            &json!({"name": "Acme", "industry": "Tools",
        "domain": "acme.example", "tags": ["vip"]}),
        )
        .json();
    let home = app
        .post("/api/v1/households", t, &json!({"name": "The Lovelaces"}))
        .json();
    let ada = app
        .post(
            "/api/v1/contacts",
            t,
            &json!({"first_name": "Ada", "last_name": "Lovelace", "tags": ["vip"],
                "emails": [{"email": "ada@example.com"}], "phones": [{"number": "+1 415 555 2671"}],
                "accounts": [{"account_id": id(&acme), "role": "decision_maker"}], "household_id": id(&home)}),
        )
        .json();
    let invoice = app
        .post(
            "/api/v1/invoices",
            t,
            &json!({"account_id": id(&acme), "number": "INV-1", "currency": "EUR",
                "amount_total": 1000, "issued_on": "2026-01-10", "due_on": "2026-02-09"}),
        )
        .json();
    let pl = app.simple_pipeline();
    let opportunity = app
        .post(
            "/api/v1/opportunities",
            t,
            &json!({"name": "Acme deal", "account_id": id(&acme), "pipeline_id": pl,
                "currency": "EUR", "amount": 100, "close_date": "2027-01-10"}),
        )
        .json();
    let lead = app
        .post(
            "/api/v1/leads",
            t,
            &json!({"last_name": "Prospect", "email": "p@prospect.example", "phone": "+1 415 555 2671"}),
        )
        .json();
    let (a, c, i, o) = (id(&acme), id(&ada), id(&invoice), owner);
    let (l, op) = (id(&lead), id(&opportunity));
    let mut paths = vec![
        format!("/api/v1/contacts/{c}"),
        format!("/api/v1/accounts/{a}"),
        format!("/api/v1/contacts/{c}/timeline"),
        format!("/api/v1/accounts/{a}/timeline"),
        format!("/api/v1/accounts/{a}/balance"),
        "/api/v1/events?limit=50".to_string(),
        "/api/v1/events?types=contact.*".to_string(),
        format!("/api/v1/leads/{l}/duplicates"),
        format!("/api/v1/opportunities/{op}/stage-history"),
        format!("/api/v1/opportunities/{op}/attribution"),
        format!("/api/v1/contacts/{c}/journey"),
        format!("/api/v1/contacts/{c}/journey?kind=meeting&sort=-occurred_at"),
        format!("/api/v1/leads/{l}/journey"),
        "/api/v1/forecasts?period=2027-Q1".to_string(),
        format!("/api/v1/forecasts?period=2027&pipeline_id={pl}&group_by=team"),
    ];
    for (list, filters, sorts) in [
        (
            "contacts",
            vec![
                format!("owner_id={o}"),
                format!("account_id={a}"),
                format!("household_id={}", id(&home)),
                "lifecycle_stage=lead".into(),
                "email=ADA@example.com".into(),
                "phone=(415)%20555-2671".into(),
                "tag=vip".into(),
                "created_after=2026-01-01T00:00:00Z".into(),
                "q=lov".into(),
            ],
            vec!["last_name", "-first_name", "created_at", "-updated_at"],
        ),
        (
            "accounts",
            vec![
                format!("owner_id={o}"),
                format!("parent_id={a}"),
                "industry=Tools".into(),
                "domain=acme.example".into(),
                "tag=vip".into(),
                "created_before=2099-01-01T00:00:00Z".into(),
                "q=acm".into(),
            ],
            vec!["name", "-created_at", "updated_at"],
        ),
        (
            "activities",
            vec![
                "assignee_id=me".into(),
                format!("contact_id={c}"),
                format!("account_id={a}"),
                "due_before=2099-01-01T00:00:00Z".into(),
                "status=open".into(),
            ],
            vec!["-created_at", "due_at", "updated_at"],
        ),
        (
            "invoices",
            vec![
                format!("account_id={a}"),
                "status=open".into(),
                "number=INV-1".into(),
                "due_before=2099-01-01".into(),
            ],
            vec!["-issued_on", "due_on", "amount_total", "number"],
        ),
        (
            "payments",
            vec![format!("account_id={a}"), format!("invoice_id={i}")],
            vec!["-received_on", "amount"],
        ),
        (
            "leads",
            vec![
                format!("owner_id={o}"),
                "status=new".into(),
                "source=other".into(),
                "email=P@prospect.example".into(),
                "created_after=2026-01-01T00:00:00Z".into(),
            ],
            vec!["-created_at", "updated_at", "-score"],
        ),
        (
            "opportunities",
            vec![
                format!("account_id={a}"),
                format!("pipeline_id={pl}&stage=open"),
                "status=open".into(),
                format!("owner_id={o}"),
                "close_before=2027-02-01".into(),
                "close_after=2026-12-01".into(),
                "created_after=2026-01-01T00:00:00Z".into(),
            ],
            vec!["-created_at", "updated_at", "-amount", "name"],
        ),
    ] {
        paths.push(format!("/api/v1/{list}"));
        paths.extend(filters.iter().map(|f| format!("/api/v1/{list}?{f}")));
        paths.extend(sorts.iter().map(|s| format!("/api/v1/{list}?sort={s}")));
    }
    paths.extend(marketing_paths(app, &id(&ada)));
    paths
}

/// Campaigns, their members and metrics, list members, and a segment's members.
fn marketing_paths(app: &TestApp, contact: &str) -> Vec<String> {
    let t = &app.admin_token;
    let parent = id(&app
        .post(
            "/api/v1/campaigns",
            t,
            &json!({"name": "Parent", "channel": "email"}),
        )
        .json());
    let k = id(&app
        .post(
            "/api/v1/campaigns",
            t,
            &json!({"name": "Child", "channel": "email", "parent_id": parent}),
        )
        .json());
    let list = id(&app.post("/api/v1/lists", t, &json!({"name": "L"})).json());
    app.post(
        &format!("/api/v1/lists/{list}/members"),
        t,
        &json!({"contact_ids": [contact]}),
    );
    app.post(
        &format!("/api/v1/campaigns/{k}/members"),
        t,
        &json!({"list_id": list}),
    );
    let seg = id(&app
        .post(
            "/api/v1/segments",
            t,
            &json!({"name": "S", "criteria": {"and": [
                {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
                {"field": "account.industry", "op": "eq", "value": "Tools"},
                {"field": "consent.email", "op": "eq", "value": "granted"}]}}),
        )
        .json());
    let program = id(&app
        .post(
            "/api/v1/loyalty-programs",
            t,
            &json!({"name": "P", "currency": "EUR", "earn_rules": [{"points": 1, "per_amount": 100}]}),
        )
        .json());
    let member = id(&app
        .post(
            "/api/v1/loyalty-members",
            t,
            &json!({"program_id": program, "contact_id": contact}),
        )
        .json());
    app.post(
        "/api/v1/social-messages",
        t,
        &json!({"network": "x", "external_id": "1", "author_handle": "@ada", "body": "hi",
            "contact_id": contact, "campaign_id": k}),
    );
    vec![
        "/api/v1/social-messages".into(),
        "/api/v1/social-messages?network=x".into(),
        format!("/api/v1/social-messages?contact_id={contact}"),
        format!("/api/v1/social-messages?campaign_id={k}"),
        "/api/v1/social-messages?matched=false".into(),
        "/api/v1/loyalty-members".into(),
        format!("/api/v1/loyalty-members?program_id={program}&sort=-lifetime_points"),
        format!("/api/v1/loyalty-members?contact_id={contact}"),
        format!("/api/v1/loyalty-members?account_id={program}"),
        "/api/v1/loyalty-members?tier=Gold".into(),
        "/api/v1/loyalty-members?sort=-balance".into(),
        format!("/api/v1/loyalty-members/{member}/ledger"),
        "/api/v1/campaigns".into(),
        "/api/v1/campaigns?channel=email".into(),
        "/api/v1/campaigns?status=planned".into(),
        format!("/api/v1/campaigns?parent_id={parent}"),
        "/api/v1/campaigns?sort=name".into(),
        format!("/api/v1/campaigns/{k}/members"),
        format!("/api/v1/campaigns/{k}/members?status=targeted&sort=last_name"),
        format!("/api/v1/campaigns/{k}/metrics"),
        format!("/api/v1/lists/{list}/members"),
        format!("/api/v1/segments/{seg}/members"),
    ]
}

/// SQL of every recorded statement that reads a big table, once each.
fn statements_on_big_tables() -> BTreeSet<String> {
    db::take_captured()
        .into_iter()
        .map(|s| s.split(" -- binds:").next().unwrap_or_default().to_string())
        .filter(|sql| sql.trim_start().to_uppercase().starts_with("SELECT"))
        // `IN ()` of nothing: the database answers it without reading a row.
        .filter(|sql| !sql.contains("(1=0)"))
        .filter(|sql| {
            BIG.iter().any(|t| {
                sql.contains(&format!("FROM `{t}`"))
                    || sql.contains(&format!("FROM \"{t}\""))
                    || sql.contains(&format!("JOIN `{t}`"))
                    || sql.contains(&format!("JOIN \"{t}\""))
            })
        })
        .collect()
}

#[derive(diesel::QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

#[derive(diesel::QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The plan of one statement, one line per node.
fn plan(conn: &mut DbConn, sql: &str, n: usize) -> Vec<String> {
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<PlanRow>(c)
            .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
            .into_iter()
            .map(|r| r.detail)
            .collect(),
        DbConn::Pg(c) => {
            // The generic plan (what a prepared statement runs for any values), with
            // sequential scans priced out: one that remains had no index to use.
            let setup = "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; \
                         DEALLOCATE ALL";
            diesel::connection::SimpleConnection::batch_execute(c, setup)
                .unwrap_or_else(|e| panic!("{e}"));
            diesel::sql_query(format!("PREPARE hot AS {sql}"))
                .execute(c)
                .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
            let nulls = vec!["NULL"; n].join(", ");
            let execute = if n == 0 {
                "EXPLAIN EXECUTE hot".to_string()
            } else {
                format!("EXPLAIN EXECUTE hot({nulls})")
            };
            diesel::sql_query(execute)
                .load::<PgPlanRow>(c)
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
                .into_iter()
                .map(|r| r.line)
                .collect()
        }
    }
}

/// How many bind parameters a PostgreSQL statement has (`$1` … `$n`).
fn parameters(sql: &str) -> usize {
    (1..=400)
        .rev()
        .find(|n| sql.contains(&format!("${n}")))
        .unwrap_or(0)
}

fn full_scans(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            BIG.iter().any(|t| {
                let sqlite = l.trim() == format!("SCAN {t}") || l.ends_with(&format!("SCAN {t}"));
                let pg = l.contains(&format!("Seq Scan on {t} "))
                    || l.trim_end().ends_with(&format!("Seq Scan on {t}"));
                sqlite || pg
            })
        })
        .cloned()
        .collect()
}

#[test]
fn hot_queries_use_an_index_on_every_big_table() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let paths = hot_paths(&app);
    db::take_captured();
    db::capture_statements(true);
    for path in &paths {
        let res = app.get(path, &app.admin_token);
        assert_eq!(res.status, 200, "{path}: {}", res.text);
    }
    db::capture_statements(false);
    let statements = statements_on_big_tables();
    assert!(statements.len() > 20, "{statements:#?}");
    let mut conn =
        db::connect_once(&app.state.config.database_url).unwrap_or_else(|e| panic!("connect: {e}"));
    let mut failures = vec![];
    for sql in &statements {
        let lines = plan(&mut conn, sql, parameters(sql));
        let scans = full_scans(&lines);
        if !scans.is_empty() {
            failures.push(format!("{sql}\n    {}", lines.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} statements scan a big table:\n\n{}",
        failures.len(),
        statements.len(),
        failures.join("\n\n")
    );
}

/// Segment criteria over purchase history, tags, accounts and custom fields find each
/// contact's rows by index: every statement a preview and a members page run is explained,
/// and none reads one of these tables whole (the contacts themselves are read once, each).
#[test]
fn segment_criteria_search_each_contacts_rows_by_index() {
    let app = TestApp::start_with(JobRegistry::default(), |c| c.job_workers = 0);
    let t = &app.admin_token;
    app.post(
        "/api/v1/meta/objects/contact/fields",
        t,
        &json!({"key": "tier", "label": "Tier", "field_type": "text"}),
    );
    let product = id(&app
        .post(
            "/api/v1/products",
            t,
            &json!({"sku": "P1", "name": "P1", "family": "software"}),
        )
        .json());
    let acme = id(&app
        .post(
            "/api/v1/accounts",
            t,
            &json!({"name": "Acme", "industry": "Tools"}),
        )
        .json());
    app.post(
        "/api/v1/orders",
        t,
        &json!({"account_id": acme, "currency": "EUR", "ordered_on": "2026-11-20",
            "lines": [{"product_id": product, "quantity": 1, "unit_price": 100}]}),
    );
    app.post(
        "/api/v1/contacts",
        t,
        &json!({"first_name": "Ada", "last_name": "L", "tags": ["vip"], "custom": {"tier": "gold"},
            "accounts": [{"account_id": acme, "role": "buyer"}]}),
    );
    let criteria = json!({"and": [
        {"field": "products_bought", "op": "in", "value": [product, "p2", "p3"]},
        {"field": "families_bought", "op": "in", "value": ["software", "hardware"]},
        {"field": "account.industry", "op": "in", "value": ["Tools", "Retail"]},
        {"field": "tags", "op": "in", "value": ["vip", "new"]},
        {"field": "custom.tier", "op": "in", "value": ["gold", "silver"]},
        {"field": "total_spent", "op": "gte", "value": 1},
        {"field": "email", "op": "not_in", "value": ["a@example.com", "b@example.com"]},
    ]});
    let seg = id(&app
        .post(
            "/api/v1/segments",
            t,
            &json!({"name": "S", "criteria": criteria}),
        )
        .json());
    db::take_captured();
    db::capture_statements(true);
    let preview = app.post(
        "/api/v1/segments/preview",
        t,
        &json!({"criteria": criteria}),
    );
    let members = app.get(&format!("/api/v1/segments/{seg}/members"), t);
    db::capture_statements(false);
    assert_eq!(preview.json()["count"], 1, "{}", preview.text);
    assert_eq!(members.status, 200, "{}", members.text);
    let statements: Vec<String> = db::take_captured()
        .into_iter()
        .map(|s| s.split(" -- binds:").next().unwrap_or_default().to_string())
        .filter(|sql| sql.contains("order_lines"))
        .collect();
    assert!(statements.len() >= 3, "{statements:#?}");
    // Each table the criteria read, and its alias there (SQLite's plans name the alias).
    let searched = [
        ("order_lines", "ol"),
        ("contact_accounts", "ca"),
        ("products", "p"),
        ("orders", "o"),
        ("accounts", "a"),
        ("record_tags", "rt"),
        ("custom_values", "cv"),
        ("contact_emails", "ce"),
    ];
    let mut conn =
        db::connect_once(&app.state.config.database_url).unwrap_or_else(|e| panic!("connect: {e}"));
    let mut failures = vec![];
    for sql in &statements {
        let lines = plan(&mut conn, sql, parameters(sql));
        let scans: Vec<&String> = lines
            .iter()
            .filter(|l| {
                searched.iter().any(|(t, alias)| {
                    let l = l.trim_end();
                    l.ends_with(&format!("SCAN {alias}"))
                        || l.contains(&format!("SCAN {alias} USING"))
                        || l.contains(&format!("Seq Scan on {t} "))
                })
            })
            .collect();
        if !scans.is_empty() {
            failures.push(format!("{sql}\n    {}", lines.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
