//! The platform's text messages. A domain writes one with `queue` in its own transaction,
//! and an `sms.send` job hands it to the provider once: a message is marked `sent` (or
//! `logged`) in the step that records the provider's answer, and a message no longer
//! `queued` is never handed over again.
//!
//! Providers implement `SmsProvider`. With `CRM_SMS_URL` set, `HttpGateway` posts each
//! message as JSON to the operator's gateway (their relay to Twilio, Vonage, an operator's
//! SMPP bridge…). Without it, `LogOnly` delivers nothing: it logs that a message would have
//! gone out (the number masked, never the text) and marks it `logged`. Another provider
//! plugs in with `register_jobs_with`.

use crate::config::{Config, Secret};
use crate::db::{self, DbConn};
use crate::error::ApiResult;
use crate::ids;
use crate::jobs::{self, JobFailure, JobRegistry, JobResult, RetryPolicy};
use crate::schema::sms_messages as sms;
use diesel::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const SEND: &str = "sms.send";
pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const LOGGED: &str = "logged";
pub const FAILED: &str = "failed";

/// Where text messages go.
pub trait SmsProvider: Send + Sync {
    /// Stored with each message it handled.
    fn name(&self) -> &'static str;
    /// Hand one message (our id, E.164 number, text) over: the provider's id for it, if it
    /// gave one. An `Err` is retried with backoff.
    fn send(&self, id: &str, to: &str, body: &str) -> Result<Option<String>, String>;
    /// Whether messages it takes are really sent (`sent`) or only logged (`logged`).
    fn delivers(&self) -> bool {
        true
    }
}

/// The default provider: logs, sends nothing.
pub struct LogOnly;

impl SmsProvider for LogOnly {
    fn name(&self) -> &'static str {
        "log"
    }

    fn delivers(&self) -> bool {
        false
    }

    fn send(&self, _id: &str, to: &str, body: &str) -> Result<Option<String>, String> {
        tracing::info!(
            to = %masked(to),
            chars = body.chars().count(),
            "text message logged, not sent: no SMS provider is configured"
        );
        Ok(None)
    }
}

/// Posts `{"id", "to", "body"}` to the configured URL with `Idempotency-Key: <id>`: the
/// message is handed over before its new status is written, so a server stopped between the
/// two posts it again on restart, and the key lets the gateway drop that copy. A 2xx is
/// accepted (its JSON `id`, `sid` or `message_id` is kept); anything else is retried.
pub struct HttpGateway {
    url: Secret,
    agent: ureq::Agent,
}

impl HttpGateway {
    pub fn new(url: Secret) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirects(0)
            .build();
        HttpGateway { url, agent }
    }
}

impl SmsProvider for HttpGateway {
    fn name(&self) -> &'static str {
        "http"
    }

    fn send(&self, id: &str, to: &str, body: &str) -> Result<Option<String>, String> {
        let answer = self
            .agent
            .post(self.url.expose())
            .set("Idempotency-Key", id)
            .set("User-Agent", "crm-sms/1")
            .set("Content-Type", "application/json")
            .send_string(&json!({ "id": id, "to": to, "body": body }).to_string());
        // Errors name the status or the kind of failure, never the URL: it may carry a key.
        match answer {
            Ok(res) => {
                let reply: Value = res
                    .into_string()
                    .ok()
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(Value::Null);
                Ok(["id", "sid", "message_id"].iter().find_map(|k| {
                    reply
                        .get(*k)
                        .and_then(Value::as_str)
                        .filter(|pid| !pid.is_empty())
                        .map(str::to_string)
                }))
            }
            Err(ureq::Error::Status(code, _)) => Err(format!("the SMS gateway answered {code}")),
            Err(ureq::Error::Transport(t)) => Err(format!(
                "the SMS gateway could not be reached: {}",
                t.kind()
            )),
        }
    }
}

/// `+3361234****`: enough to tell numbers apart in a log, not to call one.
fn masked(number: &str) -> String {
    let keep = number.chars().count().saturating_sub(4);
    number
        .chars()
        .enumerate()
        .map(|(i, ch)| if i < keep { ch } else { '*' })
        .collect()
}

/// A message to write.
pub struct OutgoingSms<'a> {
    /// E.164.
    pub to: &'a str,
    pub body: &'a str,
    /// What it is about (`campaign`, its id).
    pub entity: Option<(&'a str, &'a str)>,
}

/// Write a message and its `sms.send` job, in the caller's transaction: its id.
pub fn queue(c: &mut DbConn, m: &OutgoingSms<'_>) -> ApiResult<String> {
    let id = ids::new_id();
    diesel::insert_into(sms::table)
        .values((
            sms::id.eq(&id),
            sms::to_number.eq(m.to),
            sms::body.eq(m.body),
            sms::status.eq(QUEUED),
            sms::attempts.eq(0),
            sms::entity_type.eq(m.entity.map(|e| e.0)),
            sms::entity_id.eq(m.entity.map(|e| e.1)),
            sms::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    jobs::enqueue(c, SEND, &json!({ "sms_id": id }), 10)?;
    Ok(id)
}

/// The `sms.send` job: hand one queued message to the provider, once.
fn send(c: &mut DbConn, payload: &Value, provider: &dyn SmsProvider) -> JobResult {
    let fail = |e: diesel::result::Error| JobFailure::from(e.to_string());
    let id = payload["sms_id"].as_str().unwrap_or_default().to_string();
    let found: Option<(String, String, String, i32)> = sms::table
        .find(&id)
        .select((sms::to_number, sms::body, sms::status, sms::attempts))
        .first(c)
        .optional()
        .map_err(fail)?;
    let Some((to, body, _, attempts)) = found.filter(|m| m.2 == QUEUED) else {
        return Ok(()); // already handed over (or gone): never twice
    };
    let outcome = provider.send(&id, &to, &body);
    let handed = if provider.delivers() { SENT } else { LOGGED };
    let (status, provider_id, error) = match &outcome {
        Ok(pid) => (handed, pid.clone(), None),
        Err(e) => (QUEUED, None, Some(e.clone())),
    };
    db::write_tx(c, |c| {
        diesel::update(sms::table.find(&id))
            .set((
                sms::status.eq(status),
                sms::provider.eq(provider.name()),
                sms::provider_message_id.eq(&provider_id),
                sms::attempts.eq(attempts + 1),
                sms::last_error.eq(&error),
                sms::sent_at.eq((status != QUEUED).then(ids::now)),
            ))
            .execute(c)
    })
    .map_err(fail)?;
    outcome.map(|_| ()).map_err(JobFailure::from)
}

/// A message given up on stays visible as `failed`.
fn give_up(c: &mut DbConn, payload: &Value, why: &str) {
    let id = payload["sms_id"].as_str().unwrap_or_default();
    let _ = diesel::update(sms::table.find(id))
        .filter(sms::status.eq(QUEUED))
        .set((sms::status.eq(FAILED), sms::last_error.eq(why)))
        .execute(c);
}

/// The `sms.send` job kind with the configured provider: the HTTP gateway at `CRM_SMS_URL`,
/// or the log-only one.
pub fn register_jobs(registry: &mut JobRegistry, config: &Config) {
    let provider: Arc<dyn SmsProvider> = match &config.sms_url {
        Some(url) => Arc::new(HttpGateway::new(url.clone())),
        None => Arc::new(LogOnly),
    };
    register_jobs_with(registry, provider);
}

/// The `sms.send` job kind with this provider.
pub fn register_jobs_with(registry: &mut JobRegistry, provider: Arc<dyn SmsProvider>) {
    registry.register_with_policy(
        SEND,
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        },
        move |c, p| send(c, p, provider.as_ref()),
    );
    registry.on_dead(SEND, give_up);
}

#[cfg(test)]
mod tests {
    #[test]
    fn masked_numbers_keep_all_but_the_last_four_digits() {
        assert_eq!(super::masked("+33612345678"), "+3361234****");
        assert_eq!(super::masked("123"), "***");
    }
}
