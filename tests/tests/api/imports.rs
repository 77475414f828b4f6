//! Bulk imports: CSV and NDJSON, field mapping, create/update/upsert, dry runs, broken rows
//! reported by line while the rest go in, and limits.

use crm_tests::{Resp, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Wait for an import to finish; returns it.
#[track_caller]
pub fn finished(app: &TestApp, id: &str, timeout: Duration) -> Value {
    let start = Instant::now();
    loop {
        let import = app
            .get(&format!("/api/v1/imports/{id}"), &app.admin_token)
            .json();
        if import["status"] == "succeeded" || import["status"] == "failed" {
            return import;
        }
        assert!(
            start.elapsed() < timeout,
            "import still {} after {timeout:?}: {import}",
            import["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[track_caller]
fn accepted(res: Resp) -> String {
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.json()["status"], "queued");
    res.json()["id"].as_str().unwrap_or_default().to_string()
}

#[test]
fn csv_import_maps_types_reports_bad_rows_by_line_and_imports_the_rest() {
    let app = TestApp::start();
    let csv = "Company,Staff,Sector,Labels,ERP id\n\
               Acme,120,Retail,vip;eu,A-1\n\
               ,5,Retail,,A-2\n\
               \"Globex, Inc.\",many,Energy,,A-3\n\
               Initech,40,Software,,A-4\n\
               Broken row with too many cells,1,2,3,4,5\n";
    let mapping = json!({"Company": "name", "Staff": "employee_count", "Sector": "industry", "Labels": "tags", "ERP id": "external_id"}).to_string();
    let path = format!(
        "/api/v1/imports?object=accounts&mode=upsert&external_source=erp&mapping={}",
        urlencode(&mapping)
    );

    // A dry run checks everything and writes nothing.
    let id = accepted(app.upload(&format!("{path}&dry_run=true"), "text/csv", csv.as_bytes()));
    let dry = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(
        (
            dry["processed"].clone(),
            dry["created"].clone(),
            dry["failed"].clone()
        ),
        (json!(5), json!(2), json!(3))
    );
    assert_eq!(app.count("accounts"), 0, "a dry run writes nothing");

    let id = accepted(app.upload(&path, "text/csv", csv.as_bytes()));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(import["status"], "succeeded");
    assert_eq!(import["total_rows"], 5);
    assert_eq!(import["percent"], 100.0);
    assert_eq!(
        (import["created"].clone(), import["failed"].clone()),
        (json!(2), json!(3))
    );
    let lines: Vec<i64> = import["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["line"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(lines, vec![3, 4, 6], "{import}");
    assert_eq!(import["errors"][0]["field"], "name");
    assert_eq!(import["errors"][1]["field"], "employee_count");
    let acme = app.get("/api/v1/accounts?q=acme", &app.admin_token).json()["data"][0].clone();
    assert_eq!(acme["employee_count"], 120);
    assert_eq!(acme["tags"], json!(["vip", "eu"]));
    assert_eq!(
        (acme["external_source"].clone(), acme["external_id"].clone()),
        (json!("erp"), json!("A-1"))
    );

    // Importing again upserts: the same records are updated, none doubled.
    let again = finished(
        &app,
        &accepted(app.upload(&path, "text/csv", csv.as_bytes())),
        Duration::from_secs(30),
    );
    assert_eq!(
        (again["created"].clone(), again["updated"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(app.count("accounts"), 2);
}

#[test]
fn ndjson_import_upserts_contacts_by_email_and_fires_events() {
    let app = TestApp::start();
    let ndjson = "{\"email\": \"ada@example.com\", \"first_name\": \"Ada\", \"tags\": [\"vip\"]}\n\
                  \n\
                  {\"email\": \"grace@example.com\", \"first_name\": \"Grace\"}\n\
                  not json\n\
                  {\"email\": \"ada@example.com\", \"last_name\": \"Lovelace\"}\n";
    let id = accepted(app.upload(
        "/api/v1/imports?object=contacts&mode=upsert&match_on=email",
        "application/x-ndjson",
        ndjson.as_bytes(),
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(
        (
            import["created"].clone(),
            import["updated"].clone(),
            import["failed"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(import["errors"][0]["line"], 4);
    assert_eq!(app.count("contacts"), 2);
    let feed = app
        .get("/api/v1/events?types=contact.*", &app.admin_token)
        .json();
    let types: Vec<&str> = feed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        vec!["contact.created", "contact.created", "contact.updated"],
        "imports fire events like any write"
    );
}

#[test]
fn imports_refuse_what_they_cannot_read() {
    let app = TestApp::start_with(Default::default(), |c| c.import_max_bytes = 1000);
    app.upload(
        "/api/v1/imports?object=accounts",
        "application/pdf",
        b"%PDF",
    )
    .problem(415);
    app.upload("/api/v1/imports?object=widgets", "text/csv", b"name\nx\n")
        .problem(404);
    app.upload(
        "/api/v1/imports?object=accounts&mapping=nope",
        "text/csv",
        b"name\nx\n",
    )
    .problem(400);
    app.upload(
        "/api/v1/imports?object=accounts&mode=upsert&match_on=email",
        "text/csv",
        b"name\nx\n",
    )
    .problem(400);
    let big = "name\n".to_string() + &"x\n".repeat(600);
    app.upload(
        "/api/v1/imports?object=accounts",
        "text/csv",
        big.as_bytes(),
    )
    .problem(413);
    assert_eq!(
        (app.count("imports"), app.count("import_chunks")),
        (0, 0),
        "nothing half-stored"
    );
    // Another user's import is not theirs to see.
    let mine = accepted(app.upload(
        "/api/v1/imports?object=accounts",
        "text/csv",
        b"name\nAcme\n",
    ));
    let (_, rep) = app.user("sales_rep");
    app.send(
        "GET",
        &format!("/api/v1/imports/{mine}"),
        Some(&rep),
        &[],
        None,
    )
    .problem(404);
    let (_, analyst) = app.user("analyst");
    let res = app.send(
        "GET",
        "/api/v1/imports/01890000-0000-7000-8000-000000000000",
        Some(&analyst),
        &[],
        None,
    );
    res.problem(403);
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The server binary, built beside this test binary (`make test` builds it first).
pub fn crm_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let bin = dir.join("crm");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin crm` first",
        bin.display()
    );
    bin
}

/// A real `crm serve` process on the test's database, working the job queue.
pub fn spawn_server(app: &TestApp) -> std::process::Child {
    std::process::Command::new(crm_binary())
        .arg("serve")
        .env("DATABASE_URL", &app.state.config.database_url)
        .env("CRM_LISTEN", "127.0.0.1:0")
        .env("CRM_JWT_SECRET", crm_tests::JWT_SECRET)
        .env("CRM_SECRETS_KEY", crm_tests::SECRETS_KEY)
        .env("CRM_JOB_WORKERS", "1")
        .env("CRM_JOB_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start crm: {e}"))
}

#[test]
fn a_100k_row_import_with_bad_rows_survives_a_killed_server() {
    const ROWS: usize = 100_000;
    // This server only takes the upload; real `crm` processes do the work.
    let app = TestApp::start_with(Default::default(), |c| c.job_workers = 0);
    let bad: Vec<usize> = (1..=10).map(|i| i * 9_973).collect();
    let mut csv = String::from("name,domain,employee_count\n");
    for i in 0..ROWS {
        if bad.contains(&i) {
            csv.push_str(&format!(",bad{i}.example,1\n"));
        } else {
            csv.push_str(&format!("Company {i},c{i}.example,{}\n", i % 500));
        }
    }
    let id = accepted(app.upload(
        "/api/v1/imports?object=accounts",
        "text/csv",
        csv.as_bytes(),
    ));

    // Let a server get well into the import, then kill it without warning.
    let mut server = spawn_server(&app);
    let start = Instant::now();
    loop {
        let import = app
            .get(&format!("/api/v1/imports/{id}"), &app.admin_token)
            .json();
        if import["processed"].as_i64().unwrap_or(0) >= 5_000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no progress: {import}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = server.wait();
    let halfway = app
        .get(&format!("/api/v1/imports/{id}"), &app.admin_token)
        .json();
    let processed = halfway["processed"].as_i64().unwrap_or(0);
    assert!(processed < ROWS as i64, "killed before the end: {halfway}");
    assert_eq!(
        app.count("accounts"),
        halfway["created"].as_i64().unwrap_or(-1),
        "what was acknowledged is exactly what was written"
    );

    // A new server resumes where the last committed slice ended.
    let mut server = spawn_server(&app);
    let import = finished(&app, &id, Duration::from_secs(1200));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(import["status"], "succeeded", "{import}");
    assert_eq!(import["processed"], ROWS);
    assert_eq!(import["created"], ROWS - 10);
    assert_eq!(import["failed"], 10);
    let lines: Vec<i64> = import["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["line"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(lines, bad.iter().map(|i| *i as i64 + 2).collect::<Vec<_>>());
    assert_eq!(
        app.count("accounts"),
        (ROWS - 10) as i64,
        "no row imported twice"
    );
    assert_eq!(
        app.count("events WHERE event_type = 'account.created'"),
        (ROWS - 10) as i64
    );
}

#[test]
fn a_plain_people_csv_imports_contacts_with_their_email_and_phone() {
    let app = TestApp::start();
    let csv = "first_name,last_name,email,phone\n\
               Ada,Lovelace,ada@example.org,+44 20 7946 0958\n\
               Alan,Turing,alan@example.org,\n";
    let id = accepted(app.upload(
        "/api/v1/imports?object=contacts&mode=create",
        "text/csv",
        csv.as_bytes(),
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(import["status"], "succeeded", "{import}");
    assert_eq!(
        (import["created"].clone(), import["failed"].clone()),
        (json!(2), json!(0)),
        "{import}"
    );
    let ada = app
        .get("/api/v1/contacts?q=Lovelace", &app.admin_token)
        .json();
    let ada = &ada["data"][0];
    assert_eq!(ada["emails"][0]["email"], "ada@example.org", "{ada}");
    assert_eq!(ada["emails"][0]["primary"], true);
    assert_eq!(ada["phones"][0]["e164"], "+442079460958", "{ada}");

    // The same through a mapping whose targets are `email` and `phone`.
    let mapping =
        json!({"Given": "first_name", "Family": "last_name", "Mail": "email", "Tel": "phone"});
    let path = format!(
        "/api/v1/imports?object=contacts&mode=create&mapping={}",
        urlencode(&mapping.to_string())
    );
    let id = accepted(app.upload(
        &path,
        "text/csv",
        b"Given,Family,Mail,Tel\nGrace,Hopper,grace@example.org,+1 202 555 0143\n",
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(import["created"], 1, "{import}");
    let grace = app
        .get("/api/v1/contacts?q=Hopper", &app.admin_token)
        .json();
    assert_eq!(grace["data"][0]["emails"][0]["email"], "grace@example.org");
}

#[test]
fn a_spreadsheet_export_with_its_own_headers_bom_and_crlf_imports_as_written() {
    let app = TestApp::start();
    // What "Save as CSV (UTF-8)" writes: a byte-order mark, CRLF, the sheet's own headers.
    let csv = "\u{feff}First Name,Last Name,E-mail Address,Mobile Phone,Job Title\r\n\
               Ada,Lovelace,Ada@Example.org,+44 20 7946 0958,Countess\r\n\
               Alan,Turing,not-an-address,,\r\n\
               \"Hopper, Grace\",Hopper,grace@example.org,,Rear Admiral\r\n";
    let id = accepted(app.upload(
        "/api/v1/imports?object=contacts&mode=upsert&match_on=email",
        "text/csv",
        csv.as_bytes(),
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(
        (import["created"].clone(), import["failed"].clone()),
        (json!(2), json!(1)),
        "{import}"
    );
    // The broken row is named by the line a spreadsheet shows it on.
    assert_eq!(import["errors"][0]["line"], 3, "{import}");
    let ada = app
        .get("/api/v1/contacts?email=ada@example.org", &app.admin_token)
        .json();
    let ada = &ada["data"][0];
    assert_eq!(ada["first_name"], "Ada", "{ada}");
    assert_eq!(ada["job_title"], "Countess", "{ada}");
    assert_eq!(ada["phones"][0]["e164"], "+442079460958", "{ada}");
    // A header that means nothing is still reported as the file spelt it.
    let id = accepted(app.upload(
        "/api/v1/imports?object=contacts&mode=create",
        "text/csv",
        b"First Name,Shoe Size\r\nAda,38\r\n",
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(import["errors"][0]["field"], "Shoe Size", "{import}");
    assert_eq!(import["errors"][0]["line"], 2, "{import}");
}

#[test]
fn an_unknown_column_is_an_error_the_user_can_read_not_a_stuck_import() {
    let app = TestApp::start();
    let csv = "first_name,last_name,nickname\nAda,Lovelace,Countess\n";
    let id = accepted(app.upload(
        "/api/v1/imports?object=contacts&mode=create",
        "text/csv",
        csv.as_bytes(),
    ));
    let import = finished(&app, &id, Duration::from_secs(30));
    assert_eq!(
        import["status"], "succeeded",
        "the import ran to its end: {import}"
    );
    assert_eq!(import["failed"], 1);
    assert_eq!(import["errors"][0]["line"], 2);
    assert_eq!(import["errors"][0]["field"], "nickname");
    let message = import["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("not a field of contacts") && message.contains("first_name"),
        "{message}"
    );
    assert_eq!(app.count("contacts"), 0);
}

/// A long import takes the database's write lock one slice at a time, and other writers
/// get their turn between slices: on SQLite they used to wait out the busy timeout behind
/// it and fail with a 500.
#[test]
fn writes_keep_working_while_a_long_import_runs() {
    let app = TestApp::start();
    // Enough rows to outlast the writes below (PostgreSQL imports more slowly, and never
    // had the problem: its writers do not share one lock).
    let on_postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    let rows = if on_postgres { 3_000 } else { 12_000 };
    let mut csv = String::from("name,industry\n");
    for n in 0..rows {
        csv.push_str(&format!("Company {n},Retail\n"));
    }
    let id = accepted(app.upload(
        "/api/v1/imports?object=accounts&dry_run=true",
        "text/csv",
        csv.as_bytes(),
    ));
    let url = format!("/api/v1/imports/{id}");
    let start = Instant::now();
    while app.get(&url, &app.admin_token).json()["processed"].as_i64() < Some(500) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the import never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 0..10 {
        let res = app.post(
            "/api/v1/accounts",
            &app.admin_token,
            &json!({"name": format!("Written meanwhile {n}")}),
        );
        assert_eq!(res.status, 201, "write {n} during the import: {}", res.text);
    }
    let import = app.get(&url, &app.admin_token).json();
    assert_eq!(
        import["status"], "running",
        "the writes went in while the import ran, not after it: {import}"
    );
    let done = finished(&app, &id, Duration::from_secs(600));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        app.count("accounts"),
        10,
        "a dry run writes nothing of its own"
    );
}
