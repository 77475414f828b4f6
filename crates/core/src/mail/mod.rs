//! The platform's mail. A domain writes a message with `queue` in its own transaction: the
//! message exists only if the change does, and a `mail.send` job carries it out. The job
//! sends through SMTP (`SMTP_URL`, with lettre) or, without one, leaves it in the outbox
//! (`GET /api/v1/outbox`). Each message has its `Message-ID` before the first attempt and is
//! marked sent in the same step that records the SMTP server's acceptance, so a retry or a
//! restart never sends a message the server already took. (A process killed in the instant
//! between the server's "250 OK" and that write sends it again, under the same Message-ID,
//! which receiving systems use to drop duplicates.)

pub mod outbox;
pub mod templates;

use crate::config::Config;
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::jobs::{JobFailure, JobRegistry, JobResult, RetryPolicy};
use crate::schema::mail_messages;
use diesel::prelude::*;
use lettre::message::{header, Mailbox};
use lettre::{Message, SmtpTransport, Transport};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

pub use outbox::{configure, resource_document, Api, OPERATIONS, RESOURCE_OPERATIONS};

pub const SEND: &str = "mail.send";
pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const OUTBOX: &str = "outbox";
pub const FAILED: &str = "failed";

/// A message the server wrote.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = mail_messages)]
pub struct MailMessage {
    pub id: String,
    /// The RFC 5322 `Message-ID`, without angle brackets.
    pub message_id: String,
    pub to_address: String,
    pub from_address: String,
    pub subject: String,
    pub body_text: String,
    /// The `Message-ID` this one answers (threads in the customer's mail program).
    pub in_reply_to: Option<String>,
    /// `queued`, `sent` (accepted by the SMTP server), `outbox` (no SMTP configured: kept
    /// here) or `failed` (every attempt refused).
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// The template it was written from.
    pub template: String,
    /// What it is about: `ticket` and its id, …
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Marketing mail's one-click unsubscribe URL, sent as `List-Unsubscribe` with
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
    pub list_unsubscribe: Option<String>,
}

/// What a domain asks to send.
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub template: &'a str,
    pub entity: Option<(&'a str, &'a str)>,
    pub in_reply_to: Option<&'a str>,
    /// The one-click unsubscribe URL of marketing mail.
    pub list_unsubscribe: Option<&'a str>,
}

/// The domain part of generated Message-IDs: the sender's.
fn message_domain(from: &str) -> String {
    from.parse::<Mailbox>()
        .ok()
        .map(|m| m.email.domain().to_string())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `address` is one a mail can go to.
pub fn valid_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

/// Queue a message in the caller's transaction; returns it with its `Message-ID`.
pub fn queue(c: &mut DbConn, from: &str, m: &Outgoing<'_>) -> ApiResult<MailMessage> {
    if !valid_address(m.to) {
        return Err(ApiError::field(
            "to",
            "email",
            format!("{:?} is not an email address", m.to),
        ));
    }
    let id = ids::new_id();
    let msg = MailMessage {
        message_id: format!("{id}@{}", message_domain(from)),
        id,
        to_address: m.to.to_string(),
        from_address: from.to_string(),
        subject: m.subject.to_string(),
        body_text: m.body.to_string(),
        in_reply_to: m.in_reply_to.map(str::to_string),
        status: QUEUED.into(),
        attempts: 0,
        last_error: None,
        template: m.template.to_string(),
        entity_type: m.entity.map(|e| e.0.to_string()),
        entity_id: m.entity.map(|e| e.1.to_string()),
        created_at: ids::now(),
        sent_at: None,
        list_unsubscribe: m.list_unsubscribe.map(str::to_string),
    };
    diesel::insert_into(mail_messages::table)
        .values((
            mail_messages::id.eq(&msg.id),
            mail_messages::message_id.eq(&msg.message_id),
            mail_messages::to_address.eq(&msg.to_address),
            mail_messages::from_address.eq(&msg.from_address),
            mail_messages::subject.eq(&msg.subject),
            mail_messages::body_text.eq(&msg.body_text),
            mail_messages::in_reply_to.eq(&msg.in_reply_to),
            mail_messages::status.eq(&msg.status),
            mail_messages::attempts.eq(0),
            mail_messages::template.eq(&msg.template),
            mail_messages::entity_type.eq(&msg.entity_type),
            mail_messages::entity_id.eq(&msg.entity_id),
            mail_messages::created_at.eq(&msg.created_at),
            mail_messages::list_unsubscribe.eq(&msg.list_unsubscribe),
        ))
        .execute(c)?;
    crate::jobs::enqueue(c, SEND, &json!({ "mail_id": msg.id }), MAX_ATTEMPTS)?;
    Ok(msg)
}

/// About a day of retries with the backoff below.
const MAX_ATTEMPTS: i32 = 12;

/// Where mail goes: an SMTP server, or nowhere beyond the outbox.
pub struct Mailer {
    smtp: Option<SmtpTransport>,
}

impl Mailer {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let smtp = config
            .smtp_url
            .as_ref()
            .map(|url| {
                SmtpTransport::from_url(url.expose())
                    .map(|b| b.timeout(Some(Duration::from_secs(30))).build())
                    // The URL may carry a password: never echo it.
                    .map_err(|e| format!("SMTP_URL is not a usable SMTP URL ({e})"))
            })
            .transpose()?;
        Ok(Mailer { smtp })
    }

    fn deliver(&self, m: &MailMessage) -> Result<bool, JobFailure> {
        let Some(smtp) = &self.smtp else {
            return Ok(false);
        };
        let email = build(m).map_err(|e| JobFailure::from(format!("unsendable: {e}")))?;
        smtp.send(&email)
            .map_err(|e| JobFailure::from(format!("SMTP: {e}")))?;
        Ok(true)
    }
}

fn build(m: &MailMessage) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(m.from_address.parse().map_err(|e| format!("from: {e}"))?)
        .to(m.to_address.parse().map_err(|e| format!("to: {e}"))?)
        .subject(&m.subject)
        .message_id(Some(format!("<{}>", m.message_id)))
        .header(header::ContentType::TEXT_PLAIN);
    if let Some(parent) = &m.in_reply_to {
        b = b
            .in_reply_to(format!("<{parent}>"))
            .references(format!("<{parent}>"));
    }
    if let Some(url) = &m.list_unsubscribe {
        b = b
            .raw_header(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    b.body(m.body_text.clone()).map_err(|e| e.to_string())
}

/// The `mail.send` job: send one queued message, once.
fn send(c: &mut DbConn, payload: &Value, mailer: &Mailer) -> JobResult {
    let id = payload["mail_id"].as_str().unwrap_or_default().to_string();
    let m: Option<MailMessage> = mail_messages::table
        .find(&id)
        .select(MailMessage::as_select())
        .first(c)
        .optional()
        .map_err(|e| JobFailure::from(e.to_string()))?;
    let Some(m) = m.filter(|m| m.status == QUEUED) else {
        return Ok(()); // already sent (or gone): never twice
    };
    let outcome = mailer.deliver(&m);
    let (status, error) = match &outcome {
        Ok(true) => (SENT, None),
        Ok(false) => (OUTBOX, None),
        Err(f) => (QUEUED, Some(f.message.clone())),
    };
    db::write_tx(c, |c| {
        diesel::update(mail_messages::table.find(&id))
            .set((
                mail_messages::status.eq(status),
                mail_messages::attempts.eq(m.attempts + 1),
                mail_messages::last_error.eq(&error),
                mail_messages::sent_at.eq((status != QUEUED).then(ids::now)),
            ))
            .execute(c)
    })
    .map_err(|e| JobFailure::from(e.to_string()))?;
    outcome.map(|_| ())
}

/// A message given up on stays visible as `failed`.
fn give_up(c: &mut DbConn, payload: &Value, why: &str) {
    let id = payload["mail_id"].as_str().unwrap_or_default();
    let _ = diesel::update(mail_messages::table.find(id))
        .filter(mail_messages::status.eq(QUEUED))
        .set((
            mail_messages::status.eq(FAILED),
            mail_messages::last_error.eq(why),
        ))
        .execute(c);
}

static SENDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static PUBLIC_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Where customers reach the API, for links in mail (`CRM_PUBLIC_URL`).
pub fn public_url() -> String {
    PUBLIC_URL
        .get()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
}

/// The `From` of the mail the server writes (`CRM_MAIL_FROM`).
pub fn sender() -> String {
    SENDER
        .get()
        .cloned()
        .unwrap_or_else(|| "CRM <crm@localhost>".into())
}

/// The `mail.send` job kind, sending with this configuration.
pub fn register_jobs(registry: &mut JobRegistry, config: &Config) -> Result<(), String> {
    let _ = SENDER.set(config.mail_from.clone());
    let _ = PUBLIC_URL.set(config.public_url.clone());
    let mailer = Arc::new(Mailer::from_config(config)?);
    registry.register_with_policy(
        SEND,
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        },
        move |c, p| send(c, p, &mailer),
    );
    registry.on_dead(SEND, give_up);
    Ok(())
}
