//! Inbound email. A mail gateway (`/mail-gateways`, each with its own key, kept as a digest)
//! posts every message it receives to `POST /api/v1/inbound/email`, as parsed JSON fields or
//! as the raw RFC 5322 message (`Content-Type: message/rfc822`, parsed with mail-parser).
//! A message threads into its ticket by `In-Reply-To`/`References` (ours or the customer's
//! earlier messages) or by `[#1234]` in the subject when the sender is that ticket's
//! contact; otherwise it opens a ticket. Auto-replies, bulk mail and our own mail are
//! ignored, and a message already received (a gateway retry) is not recorded twice.

use crate::common::{audit_change, record_as, required};
use crate::messages;
use crate::tickets::{self, Channel, Status, TicketInput};
use actix_web::{post, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::respond::WriteProblems;
use crm_core::schema::{contact_emails, contacts, mail_gateways, mail_messages, ticket_messages};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_gateways)]
struct Row {
    id: String,
    name: String,
    key_prefix: String,
    default_queue_id: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

impl From<Row> for MailGateway {
    fn from(r: Row) -> Self {
        MailGateway {
            id: r.id,
            name: r.name,
            key_prefix: r.key_prefix,
            default_queue_id: r.default_queue_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
            key: None,
        }
    }
}

/// A mail gateway allowed to post inbound mail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailGateway {
    pub id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub key_prefix: String,
    /// Where tickets it opens go when no routing rule matches.
    pub default_queue_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    /// The key to send as `X-Gateway-Key`: in the create response only, never again.
    // Listed in the gateway's SOMETIMES_SENT, so the spec does not promise it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A gateway as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailGatewayInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(format = "uuid")]
    pub default_queue_id: Option<String>,
}

const KEY_PREFIX: &str = "crm_mgw_";

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(mail_gateways::table, mail_gateways::BoxedQuery<'static, MultiBackend>, {
    "name" => mail_gateways::name,
    "created_at" => mail_gateways::created_at,
    "id" => mail_gateways::id,
});

fn find(c: &mut DbConn, id: &str) -> ApiResult<MailGateway> {
    mail_gateways::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(MailGateway::from)
        .ok_or_else(|| ApiError::not_found("mail gateway"))
}

fn queue_field(c: &mut DbConn, raw: &Option<String>) -> ApiResult<Option<String>> {
    raw.as_deref()
        .map(|q| crate::queues::active(c, "default_queue_id", q).map(|q| q.id))
        .transpose()
}

fn create(c: &mut DbConn, me: &Principal, input: &MailGatewayInput) -> ApiResult<MailGateway> {
    input.validate()?;
    let errors = required(&[("name", input.name.is_none())]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let key = format!("{KEY_PREFIX}{}", auth::random_token(32)?);
    db::write_tx(c, |c| {
        let queue = queue_field(c, &input.default_queue_id)?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(mail_gateways::table)
            .values((
                mail_gateways::id.eq(&id),
                mail_gateways::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                mail_gateways::key_hash.eq(auth::secret_digest(&key)),
                mail_gateways::key_prefix.eq(key.get(..12).unwrap_or_default()),
                mail_gateways::default_queue_id.eq(&queue),
                mail_gateways::version.eq(1),
                mail_gateways::created_at.eq(&now),
                mail_gateways::updated_at.eq(&now),
            ))
            .execute(c)?;
        let g = find(c, &id)?;
        audit_change(c, me, "mail_gateway", "created", &id, to_json(&g), &g)?;
        Ok(MailGateway {
            key: Some(key.clone()),
            ..g
        })
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<MailGateway> {
    let input: MailGatewayInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<MailGateways>(c, me, id)?;
        etag::check(expected, before.version)?;
        let queue = match raw.get("default_queue_id") {
            Some(Value::Null) => None,
            Some(_) => queue_field(c, &input.default_queue_id)?,
            None => before.default_queue_id.clone(),
        };
        let changed = diesel::update(mail_gateways::table.find(id))
            .filter(mail_gateways::version.eq(before.version))
            .set((
                mail_gateways::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                mail_gateways::default_queue_id.eq(&queue),
                mail_gateways::version.eq(before.version + 1),
                mail_gateways::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "mail_gateway", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Mail gateways on the resource kernel: service managers add them; archiving one revokes
/// its key.
pub struct MailGateways;

impl Resource for MailGateways {
    type Record = MailGateway;
    type Input = MailGatewayInput;
    type Patch = MailGatewayInput;
    crm_core::resource_paths!("mail-gateways");
    const ENTITY: &'static str = "mail_gateway";
    const TABLE: &'static str = "mail_gateways";
    const TAG: &'static str = "inbound";
    const READ: Permission = Permission::ServiceManage;
    const WRITE: Permission = Permission::ServiceManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];
    const ARCHIVED: &'static str = "Archived: its key no longer posts mail";

    crm_core::record_meta!(MailGateway);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<MailGateway> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<MailGateway>> {
        let mut q = mail_gateways::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(mail_gateways::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(MailGateway::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &MailGatewayInput) -> ApiResult<MailGateway> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<MailGateway> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(mail_gateways);
}

/// An inbound message as parsed JSON fields (what most mail gateways post).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundEmail {
    /// The sender's address; required.
    #[validate(length(min = 3, max = 320))]
    #[schema(min_length = 3, max_length = 320)]
    pub from: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub from_name: Option<String>,
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub subject: Option<String>,
    /// The plain-text body.
    #[validate(length(max = 1000000))]
    #[schema(max_length = 1000000)]
    pub text: Option<String>,
    /// `Message-ID`, with or without angle brackets.
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub message_id: Option<String>,
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub in_reply_to: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub references: Option<Vec<String>>,
    /// Other headers by name (`Auto-Submitted`, `Precedence`, …), for loop detection.
    #[schema(value_type = Option<Object>)]
    pub headers: Option<serde_json::Map<String, Value>>,
}

/// What became of an inbound message.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundOutcome {
    /// `created` (a new ticket), `threaded` (added to its ticket), `follow_up` (a new ticket
    /// following up a closed one), `duplicate` (already received) or `ignored`.
    pub outcome: String,
    pub ticket_id: Option<String>,
    pub ticket_number: Option<i64>,
    /// Why it was ignored.
    pub reason: Option<String>,
}

/// A message reduced to what the service needs, from either form.
struct Parsed {
    from: String,
    from_name: Option<String>,
    subject: String,
    text: String,
    message_id: Option<String>,
    parents: Vec<String>,
    auto: Option<String>,
}

fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Why a message is an automatic one we must not answer (RFC 3834 and the usual headers).
fn automatic(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(v) = get("auto-submitted").filter(|v| !v.trim().eq_ignore_ascii_case("no")) {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) = get("precedence").filter(|v| {
        ["bulk", "junk", "list", "auto_reply"].contains(&v.trim().to_lowercase().as_str())
    }) {
        return Some(format!("Precedence: {v}"));
    }
    for h in ["x-autoreply", "x-autorespond", "x-auto-response-suppress"] {
        if get(h).is_some() {
            return Some(format!("{h} header"));
        }
    }
    None
}

fn from_json(body: &[u8]) -> ApiResult<Parsed> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let m: InboundEmail = crm_core::objects::input(&raw)?;
    m.validate()?;
    let headers = m.headers.clone().unwrap_or_default();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
    };
    let mut parents: Vec<String> = m.in_reply_to.iter().map(|p| bare(p)).collect();
    parents.extend(m.references.iter().flatten().map(|r| bare(r)));
    Ok(Parsed {
        from: m.from.clone().unwrap_or_default().trim().to_lowercase(),
        from_name: m.from_name.clone(),
        subject: m.subject.clone().unwrap_or_default(),
        text: m.text.clone().unwrap_or_default(),
        message_id: m.message_id.as_deref().map(bare),
        parents,
        auto: automatic(&get),
    })
}

fn from_raw(body: &[u8]) -> ApiResult<Parsed> {
    let msg = mail_parser::MessageParser::default()
        .parse(body)
        .ok_or_else(|| ApiError::BadRequest("the body is not an RFC 5322 message".into()))?;
    let sender = msg.from().and_then(|a| a.first());
    let list = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        v.as_text_list()
            .map(|l| l.iter().map(|s| bare(s)).collect())
            .unwrap_or_default()
    };
    let mut parents = list(msg.in_reply_to());
    parents.extend(list(msg.references()));
    let get = |name: &str| msg.header_raw(name).map(|v| v.trim().to_string());
    Ok(Parsed {
        from: sender
            .and_then(|s| s.address())
            .unwrap_or_default()
            .trim()
            .to_lowercase(),
        from_name: sender.and_then(|s| s.name()).map(str::to_string),
        subject: msg.subject().unwrap_or_default().to_string(),
        text: msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
        message_id: msg.message_id().map(bare),
        parents,
        auto: automatic(&get),
    })
}

/// Post an inbound email.
///
/// For mail gateways: send the key of a `/mail-gateways` entry as `X-Gateway-Key` (401
/// without a valid one) and the message as JSON (`InboundEmail`) or raw (`Content-Type:
/// message/rfc822`). The message threads into its ticket by `In-Reply-To`/`References` or by
/// `[#number]` in the subject when the sender is that ticket's contact, reopening it if it was
/// solved (within 14 days) or pending the customer; a reply to a closed ticket opens a follow-up.
/// Otherwise it opens a ticket on the email channel for the contact with the sender's address,
/// routed by the routing rules (or to the gateway's default queue) and acknowledged by mail.
/// Auto-replies (`Auto-Submitted`, `Precedence: bulk`, …) and mail from the server's own address
/// are ignored (200, `ignored`); a message already received is not recorded again (200,
/// `duplicate`). A message without a sender is a 422.
#[utoipa::path(post, path = "/api/v1/inbound/email", tag = "inbound", operation_id = "post_inbound_email",
    params(("X-Gateway-Key" = String, Header, description = "The mail gateway's key")),
    request_body(description = "The message as JSON, or raw RFC 5322 as message/rfc822", content(
        (InboundEmail = "application/json"),
        (String = "message/rfc822"),
    )),
    responses(
        (status = 201, description = "A ticket was opened (created or follow_up)", body = InboundOutcome),
        (status = 200, description = "Threaded into its ticket, a duplicate, or ignored", body = InboundOutcome),
        WriteProblems,
    ),
    security(()))]
#[post("/inbound/email")]
pub async fn inbound_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let raw = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("message/rfc822"));
    let parsed = if raw {
        from_raw(&body)?
    } else {
        from_json(&body)?
    };
    if parsed.from.is_empty() || !crm_core::mail::valid_address(&parsed.from) {
        return Err(ApiError::validation(vec![FieldError::new(
            "from",
            "required",
            "the message has no sender address",
        )]));
    }
    // The body is read before the key is checked: a bad message gets the same problem with
    // or without a key, and only the key decides whether anything is recorded.
    let key = req
        .headers()
        .get("x-gateway-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::Unauthorized("send the mail gateway's key as X-Gateway-Key".into())
        })?;
    let outcome = state.db(move |c| receive(c, &key, parsed)).await?;
    let created = matches!(outcome.outcome.as_str(), "created" | "follow_up");
    Ok(if created {
        HttpResponse::Created().json(outcome)
    } else {
        HttpResponse::Ok().json(outcome)
    })
}

fn gateway(c: &mut DbConn, key: &str) -> ApiResult<MailGateway> {
    mail_gateways::table
        .filter(mail_gateways::key_hash.eq(auth::secret_digest(key)))
        .filter(mail_gateways::archived_at.is_null())
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(MailGateway::from)
        .ok_or_else(|| ApiError::Unauthorized("the mail gateway key is not valid".into()))
}

fn outcome(kind: &str, t: Option<&tickets::Ticket>, reason: Option<String>) -> InboundOutcome {
    InboundOutcome {
        outcome: kind.into(),
        ticket_id: t.map(|t| t.id.clone()),
        ticket_number: t.map(|t| t.number),
        reason,
    }
}

/// The contact with this address, if exactly one active contact has it.
fn contact_by_email(c: &mut DbConn, email: &str) -> ApiResult<Option<String>> {
    let found: Vec<String> = contact_emails::table
        .inner_join(contacts::table)
        // Contacts keep their addresses in lower case.
        .filter(contact_emails::email.eq(email))
        .filter(contacts::archived_at.is_null())
        .filter(contacts::erased_at.is_null())
        .select(contacts::id)
        .limit(2)
        .load(c)?;
    Ok(match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// The ticket a message answers, by the Message-IDs it names.
fn by_headers(c: &mut DbConn, parents: &[String]) -> ApiResult<Option<String>> {
    if parents.is_empty() {
        return Ok(None);
    }
    let ours: Option<Option<String>> = mail_messages::table
        .filter(mail_messages::message_id.eq_any(parents))
        .filter(mail_messages::entity_type.eq("ticket"))
        .select(mail_messages::entity_id)
        .first(c)
        .optional()?;
    if let Some(Some(t)) = ours {
        return Ok(Some(t));
    }
    Ok(ticket_messages::table
        .filter(ticket_messages::message_id.eq_any(parents))
        .select(ticket_messages::ticket_id)
        .first(c)
        .optional()?)
}

/// The ticket named as `#1234` in a subject, when the sender is its contact.
fn by_subject(c: &mut DbConn, subject: &str, contact: Option<&str>) -> ApiResult<Option<String>> {
    let number = subject.split('#').skip(1).find_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<i64>().ok()
    });
    let Some(number) = number else {
        return Ok(None);
    };
    let ticket = tickets::by_number(c, number)?;
    Ok(ticket
        .filter(|t| contact.is_some() && t.contact_id.as_deref() == contact)
        .map(|t| t.id))
}

fn receive(c: &mut DbConn, key: &str, m: Parsed) -> ApiResult<InboundOutcome> {
    let gw = gateway(c, key)?;
    if let Some(reason) = &m.auto {
        return Ok(outcome(
            "ignored",
            None,
            Some(format!("an automatic message ({reason})")),
        ));
    }
    let own = crm_core::mail::sender().to_lowercase();
    if own.contains(&format!("<{}>", m.from)) || own == m.from {
        return Ok(outcome(
            "ignored",
            None,
            Some("sent by this server (a mail loop)".into()),
        ));
    }
    db::write_tx(c, |c| {
        if let Some(mid) = &m.message_id {
            db::lock_key(c, &format!("inbound:{mid}"))?;
            let seen: Option<String> = ticket_messages::table
                .filter(ticket_messages::message_id.eq(mid))
                .select(ticket_messages::ticket_id)
                .first(c)
                .optional()?;
            if let Some(t) = seen {
                let t = tickets::find_any(c, &t)?;
                return Ok(outcome("duplicate", Some(&t), None));
            }
        }
        let actor = Actor {
            id: Some(gw.id.clone()),
            kind: "mail_gateway",
        };
        let contact = contact_by_email(c, &m.from)?;
        let thread = match by_headers(c, &m.parents)? {
            Some(t) => Some(t),
            None => by_subject(c, &m.subject, contact.as_deref())?,
        };
        if let Some(id) = thread {
            let ticket = tickets::find_any(c, &id)?;
            let closed = ticket.status == Status::Closed
                || (ticket.status == Status::Solved && !tickets::reopenable(&ticket));
            if !closed {
                messages::customer_message(
                    c,
                    &actor,
                    &ticket,
                    &m.from,
                    &m.text,
                    m.message_id.as_deref(),
                )?;
                let after = tickets::find_any(c, &id)?;
                return Ok(outcome("threaded", Some(&after), None));
            }
            let t = open(
                c,
                &actor,
                &gw,
                &m,
                contact.or(ticket.contact_id.clone()),
                Some(&ticket.id),
            )?;
            return Ok(outcome("follow_up", Some(&t), None));
        }
        let t = open(c, &actor, &gw, &m, contact, None)?;
        Ok(outcome("created", Some(&t), None))
    })
}

fn open(
    c: &mut DbConn,
    actor: &Actor,
    gw: &MailGateway,
    m: &Parsed,
    contact: Option<String>,
    follow_up_of: Option<&str>,
) -> ApiResult<tickets::Ticket> {
    let account = match &contact {
        Some(ct) => crm_core::schema::contact_accounts::table
            .filter(crm_core::schema::contact_accounts::contact_id.eq(ct))
            .select(crm_core::schema::contact_accounts::account_id)
            .order(crm_core::schema::contact_accounts::account_id)
            .first(c)
            .optional()?,
        None => None,
    };
    let subject = if m.subject.trim().is_empty() {
        "(no subject)".to_string()
    } else {
        m.subject.trim().chars().take(500).collect()
    };
    let input = TicketInput {
        subject: Some(subject),
        description: Some(m.text.clone()),
        channel: Some(Channel::Email),
        contact_id: contact.clone(),
        ..TicketInput::default()
    };
    // The first message goes in before the acknowledgement so that it threads under it and
    // reaches a sender who is not a contact yet.
    let ticket = tickets::open_with(
        c,
        actor,
        &input,
        account,
        follow_up_of,
        gw.default_queue_id.as_deref(),
        |c, id| {
            messages::insert(
                c,
                id,
                messages::Kind::Inbound,
                None,
                Some(&m.from),
                &m.text,
                m.message_id.as_deref(),
            )
            .map(|_| ())
        },
    )?;
    let changes = json!({"from": m.from, "from_name": m.from_name, "gateway_id": gw.id});
    record_as(c, actor, "ticket", "received", &ticket.id, changes, &ticket)?;
    Ok(ticket)
}
