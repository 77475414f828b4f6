//! Test harness: a real gateway on a loopback port over a fresh database per test —
//! a temporary SQLite file, or a new database on the PostgreSQL server named by
//! `TEST_DATABASE_URL` (dropped afterwards).

pub mod receiver;
pub mod smtp;

use crm_core::config::Config;
use crm_core::jobs::{JobRegistry, WorkerPool};
use crm_core::AppState;
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::thread::JoinHandle;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// The key webhook signing secrets are sealed with, in every test server.
pub const SECRETS_KEY: &str = "test-secrets-key-of-at-least-thirty-two-chars";

enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server_url: String, name: String },
}

impl TestDb {
    fn create() -> (TestDb, String) {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => {
                let name = format!("crm_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = diesel::PgConnection::establish(&url)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("create test database: {e}"));
                let (base, _) = url.rsplit_once('/').unwrap_or((&url, ""));
                let db_url = format!("{base}/{name}");
                (
                    TestDb::Postgres {
                        server_url: url,
                        name,
                    },
                    db_url,
                )
            }
            _ => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let url = format!("sqlite://{}", dir.path().join("crm.db").display());
                (TestDb::Sqlite(dir), url)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { server_url, name } = self {
            if let Ok(mut conn) = diesel::PgConnection::establish(server_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

/// An HTTP response, read fully.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }

    /// Assert this is a problem document with the given status; return it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem document: {}",
            self.text
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["type"].is_string() && p["title"].is_string() && p["detail"].is_string());
        p
    }
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub admin_token: String,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    workers: Option<WorkerPool>,
    agent: ureq::Agent,
    _db: TestDb,
}

impl TestApp {
    pub fn start() -> Self {
        Self::start_with(JobRegistry::default(), |_| {})
    }

    /// Start with extra job kinds and a chance to adjust the configuration.
    pub fn start_with(registry: JobRegistry, tweak: impl FnOnce(&mut Config)) -> Self {
        let (db, url) = TestDb::create();
        let mut config = Config::for_database(&url);
        config.jwt_secret = Some(JWT_SECRET.into());
        config.secrets_key = Some(SECRETS_KEY.into());
        config.admin_email = Some(ADMIN_EMAIL.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.db_pool_size = 4;
        tweak(&mut config);
        let workers_n = config.job_workers;
        let (state, _) = crm_gateway::build_state(config, registry)
            .unwrap_or_else(|e| panic!("start-up failed: {e}"));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let base = format!(
            "http://{}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            let result = system.block_on(async move {
                let server = crm_gateway::serve(server_state, listener)?;
                let _ = tx.send(server.handle());
                server.await
            });
            if let Err(e) = result {
                eprintln!("server stopped with {e}");
            }
        });
        let handle = rx
            .recv()
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let workers = WorkerPool::start(state.pool.clone(), state.jobs.clone(), workers_n);
        // Redirects are answers to check (a click link), not to follow.
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut app = TestApp {
            base,
            state,
            admin_token: String::new(),
            handle: Some(handle),
            thread: Some(thread),
            workers: Some(workers),
            agent,
            _db: db,
        };
        app.admin_token = app.login(ADMIN_EMAIL, ADMIN_PASSWORD);
        app
    }

    /// Send a request; `body` is sent as JSON text when given.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        Self::read_response(method, path, result)
    }

    /// GET a binary document (a PDF…): its status, content type and bytes.
    pub fn download(&self, path: &str, token: &str, accept: &str) -> (u16, String, Vec<u8>) {
        let result = self
            .agent
            .get(&format!("{}{}", self.base, path))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Accept", accept)
            .call();
        let res = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let (status, kind) = (res.status(), res.content_type().to_string());
        let mut bytes = vec![];
        std::io::Read::read_to_end(&mut res.into_reader(), &mut bytes).unwrap_or_default();
        (status, kind, bytes)
    }

    /// Send a body of any type as it is (a CSV file, NDJSON…), as the admin.
    pub fn upload(&self, path: &str, content_type: &str, body: &[u8]) -> Resp {
        self.upload_as(&self.admin_token, path, content_type, body)
    }

    /// `upload` with another caller's token.
    pub fn upload_as(&self, token: &str, path: &str, content_type: &str, body: &[u8]) -> Resp {
        let result = self
            .agent
            .post(&format!("{}{}", self.base, path))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", content_type)
            .send_bytes(body);
        Self::read_response("POST", path, result)
    }

    /// POST a body as it is with only the given headers (no credentials): what a mail
    /// gateway or another machine without a login sends.
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut req = self.agent.post(&format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        Self::read_response("POST", path, req.send_bytes(body))
    }

    fn read_response(
        method: &str,
        path: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Resp {
        let res = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = res.status();
        let headers = res
            .headers_names()
            .into_iter()
            .filter_map(|n| res.header(&n).map(|v| (n.to_lowercase(), v.to_string())))
            .collect();
        // An event stream never ends: its headers are all a probe can read.
        let text = if res.content_type() == "text/event-stream" {
            String::new()
        } else {
            res.into_string().unwrap_or_default()
        };
        Resp {
            status,
            headers,
            text,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Resp {
        self.send("GET", path, Some(token), &[], None)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(token), &[], Some(&body.to_string()))
    }

    /// The same POST sent twice at once (a race a user can cause with a double click):
    /// the two statuses, sorted.
    pub fn post_twice_at_once(&self, path: &str, token: &str, body: &Value) -> Vec<u16> {
        let mut statuses: Vec<u16> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..2)
                .map(|_| s.spawn(|| self.post(path, token, body).status))
                .collect();
            calls.into_iter().map(|c| c.join().unwrap_or(0)).collect()
        });
        statuses.sort_unstable();
        statuses
    }

    pub fn patch(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send("PATCH", path, Some(token), &[], Some(&body.to_string()))
    }

    pub fn put(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(token), &[], Some(&body.to_string()))
    }

    /// A JSON request with extra headers (`If-Match`…).
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send(method, path, Some(token), headers, Some(&body.to_string()))
    }

    pub fn delete(&self, path: &str, token: &str) -> Resp {
        self.send("DELETE", path, Some(token), &[], None)
    }

    #[track_caller]
    pub fn login(&self, email: &str, password: &str) -> String {
        let body = json!({"email": email, "password": password}).to_string();
        let res = self.send("POST", "/api/v1/auth/login", None, &[], Some(&body));
        assert_eq!(res.status, 200, "login failed: {}", res.text);
        res.json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Create a user with a role (as the admin) and return (user id, access token).
    #[track_caller]
    pub fn user(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = "a-long-enough-password";
        let res = self.post(
            "/api/v1/users",
            &self.admin_token,
            &json!({"email": email, "name": format!("A {role}"), "role": role, "password": password}),
        );
        assert_eq!(res.status, 201, "create user: {}", res.text);
        let id = res.json()["id"].as_str().unwrap_or_default().to_string();
        (id, self.login(&email, password))
    }

    /// A pipeline with one open stage (`open`) and its closed-won (`won`) and closed-lost
    /// (`lost`) stages, made by the admin; returns its id.
    #[track_caller]
    pub fn simple_pipeline(&self) -> String {
        let stage = |key: &str, p: i32, cat: &str| json!({"key": key, "name": key, "probability": p, "forecast_category": cat});
        let res = self.post(
            "/api/v1/pipelines",
            &self.admin_token,
            &json!({"name": "Sales", "stages": [stage("open", 10, "pipeline"),
                stage("won", 100, "closed_won"), stage("lost", 0, "closed_lost")]}),
        );
        assert_eq!(res.status, 201, "create pipeline: {}", res.text);
        res.json()["id"].as_str().unwrap_or_default().to_string()
    }

    /// A product and a price book listing it at `unit_price` EUR (minor units), made by the
    /// admin; returns (product id, price book id). `sku` must be unique in the test.
    #[track_caller]
    pub fn priced_product(&self, sku: &str, unit_price: i64) -> (String, String) {
        let t = &self.admin_token;
        let product = self.post("/api/v1/products", t, &json!({"sku": sku, "name": sku}));
        assert_eq!(product.status, 201, "create product: {}", product.text);
        let product = product.json()["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let book = self.post(
            "/api/v1/price-books",
            t,
            &json!({"name": format!("List {sku}"),
                "prices": [{"product_id": product, "currency": "EUR", "unit_price": unit_price}]}),
        );
        assert_eq!(book.status, 201, "create price book: {}", book.text);
        let book = book.json()["id"].as_str().unwrap_or_default().to_string();
        (product, book)
    }

    /// Count rows of a table straight from the database (to prove nothing was written).
    pub fn count(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self
            .state
            .pool
            .get()
            .unwrap_or_else(|e| panic!("pool: {e}"));
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<N>(&mut *conn)
            .map(|r| r.n)
            .unwrap_or_else(|e| panic!("count {table}: {e}"))
    }
}

impl TestApp {
    /// Run a statement straight on the database: to set up a state only a crash leaves.
    pub fn execute(&self, sql: &str) -> usize {
        use diesel::RunQueryDsl;
        let mut conn = self
            .state
            .pool
            .get()
            .unwrap_or_else(|e| panic!("pool: {e}"));
        diesel::sql_query(sql)
            .execute(&mut *conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every row of every table, as text: to prove a value is stored nowhere.
    pub fn all_stored_text(&self) -> String {
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::Text)]
            n: String,
        }
        let mut conn = self
            .state
            .pool
            .get()
            .unwrap_or_else(|e| panic!("pool: {e}"));
        let sqlite = crm_core::db::backend_of(&conn) == crm_core::db::BackendKind::Sqlite;
        let load = |conn: &mut crm_core::db::DbConn, sql: String| -> Vec<String> {
            diesel::sql_query(sql.clone())
                .load::<S>(conn)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_iter()
                .map(|s| s.n)
                .collect()
        };
        let tables = if sqlite {
            load(&mut conn, "SELECT name AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'".into())
        } else {
            load(&mut conn, "SELECT CAST(table_name AS TEXT) AS n FROM information_schema.tables WHERE table_schema = 'public'".into())
        };
        let mut out = String::new();
        for table in tables {
            let columns = if sqlite {
                load(
                    &mut conn,
                    format!("SELECT name AS n FROM pragma_table_info('{table}')"),
                )
            } else {
                load(&mut conn, format!("SELECT CAST(column_name AS TEXT) AS n FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}'"))
            };
            let row = columns
                .iter()
                .map(|c| format!("COALESCE(CAST({c} AS TEXT), '')"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            for line in load(&mut conn, format!("SELECT {row} AS n FROM {table}")) {
                out.push_str(&table);
                out.push_str(": ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            drop(h.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(w) = self.workers.take() {
            w.shutdown();
        }
    }
}
