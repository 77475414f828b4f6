//! A real HTTP server on loopback that receives webhooks: it records every request and
//! answers with a scripted sequence of statuses (then 200).

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// Status and optional Retry-After seconds for the next requests.
    script: VecDeque<(u16, Option<u64>)>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.received.push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let (status, retry_after) = s.script.pop_front().unwrap_or((200, None));
    let mut res =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default());
    if let Some(secs) = retry_after {
        res.insert_header(("Retry-After", secs.to_string()));
    }
    res.body("ok")
}

impl Receiver {
    /// Start a receiver answering `script` in order, then 200 to everything.
    pub fn start(script: &[(u16, Option<u64>)]) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            received: vec![],
            script: script.iter().copied().collect(),
        }));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!(
            "http://{}/hook",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let data = web::Data::new(shared.clone());
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            let _ = system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(receive))
                })
                .workers(1)
                .listen(listener)?
                .run();
                let _ = tx.send(server.handle());
                server.await
            });
        });
        let handle = rx
            .recv()
            .unwrap_or_else(|e| panic!("receiver did not start: {e}"));
        Receiver {
            url,
            shared,
            handle,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// Wait until at least `n` requests arrived (or panic after `timeout`).
    #[track_caller]
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "expected {n} webhook requests, got {}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
