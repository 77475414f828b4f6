//! A ticket's conversation: public replies (mailed to the contact, threaded under the
//! conversation's last Message-ID), internal notes (agents only), and inbound messages
//! from the customer (`crate::inbound`). The first public reply stops the first-response
//! clock; a customer message starts the next-response clock, an agent's reply stops it.

use crate::common::record_as;
use crate::tickets::{self, Status, Ticket};
use crate::{mailing, sla_policies};
use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::ids;
use crm_core::list::{self, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{ticket_messages as m, tickets as t};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = MessageKind)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An agent's reply, mailed to the contact.
    Public,
    /// A note between agents; never leaves the company.
    Internal,
    /// From the customer (inbound mail).
    Inbound,
}

/// One message of a ticket's conversation.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = m)]
pub struct Message {
    pub id: String,
    pub ticket_id: String,
    /// `public`, `internal` or `inbound`.
    pub kind: String,
    pub author_id: Option<String>,
    /// The sender of an inbound message.
    pub from_address: Option<String>,
    pub body: String,
    /// The mail's Message-ID (inbound, or the public reply as mailed).
    pub message_id: Option<String>,
    pub created_at: String,
}

/// A reply or note as sent.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// `public` (mailed to the contact) or `internal`.
    pub kind: Kind,
    #[validate(length(min = 1, max = 100000))]
    #[schema(min_length = 1, max_length = 100000)]
    pub body: String,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at"],
    default_sort: "created_at",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(m::table, m::BoxedQuery<'static, MultiBackend>, {
    "created_at" => m::created_at,
    "id" => m::id,
});

/// Record a message (in the caller's transaction).
pub fn insert(
    c: &mut DbConn,
    ticket: &str,
    kind: Kind,
    author: Option<&str>,
    from: Option<&str>,
    body: &str,
    message_id: Option<&str>,
) -> ApiResult<Message> {
    let msg = Message {
        id: ids::new_id(),
        ticket_id: ticket.to_string(),
        kind: crate::enum_text(kind),
        author_id: author.map(str::to_string),
        from_address: from.map(str::to_string),
        body: body.to_string(),
        message_id: message_id.map(str::to_string),
        created_at: ids::now(),
    };
    diesel::insert_into(m::table)
        .values((
            m::id.eq(&msg.id),
            m::ticket_id.eq(&msg.ticket_id),
            m::kind.eq(&msg.kind),
            m::author_id.eq(&msg.author_id),
            m::from_address.eq(&msg.from_address),
            m::body.eq(&msg.body),
            m::message_id.eq(&msg.message_id),
            m::created_at.eq(&msg.created_at),
        ))
        .execute(c)?;
    Ok(msg)
}

/// An agent's reply or note.
fn post_message(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    input: &NewMessage,
) -> ApiResult<Message> {
    input.validate()?;
    db::write_tx(c, |c| {
        let ticket = crm_core::resource::find_for_write::<tickets::Tickets>(c, me, id)?;
        match input.kind {
            Kind::Inbound => Err(ApiError::field(
                "kind",
                "invalid",
                "inbound messages arrive through POST /api/v1/inbound/email",
            )),
            Kind::Internal => {
                let msg = insert(
                    c,
                    id,
                    Kind::Internal,
                    Some(&me.user_id),
                    None,
                    &input.body,
                    None,
                )?;
                record_as(
                    c,
                    &Actor::from(me),
                    "ticket_message",
                    "created",
                    &msg.id,
                    json!({"ticket_id": id, "kind": "internal"}),
                    &msg,
                )?;
                Ok(msg)
            }
            Kind::Public => public_reply(c, me, &ticket, &input.body),
        }
    })
}

fn public_reply(c: &mut DbConn, me: &Principal, ticket: &Ticket, body: &str) -> ApiResult<Message> {
    if ticket.status == Status::Closed {
        return Err(ApiError::Conflict(
            "the ticket is closed; open a follow-up".into(),
        ));
    }
    let mailed = mailing::reply(c, ticket, &me.user_id, body)?;
    let msg = insert(
        c,
        &ticket.id,
        Kind::Public,
        Some(&me.user_id),
        None,
        body,
        mailed.as_deref(),
    )?;
    let now = ids::now();
    diesel::update(t::table.find(&ticket.id))
        .set((
            t::first_responded_at.eq(ticket.first_responded_at.clone().unwrap_or(now.clone())),
            t::next_response_due_at.eq(None::<String>),
            t::status.eq(if ticket.status == Status::New {
                "open".to_string()
            } else {
                crate::enum_text(ticket.status)
            }),
            t::version.eq(ticket.version + 1),
            t::updated_at.eq(&now),
        ))
        .execute(c)?;
    let after = tickets::find_any(c, &ticket.id)?;
    let changes = json!({"message_id": msg.id, "kind": "public", "mailed": mailed.is_some()});
    record_as(
        c,
        &Actor::from(me),
        "ticket",
        "replied",
        &ticket.id,
        changes,
        &after,
    )?;
    Ok(msg)
}

/// A customer's message on an open ticket: recorded, the next-response clock started, and
/// the ticket moved back to open if it waited on them.
pub fn customer_message(
    c: &mut DbConn,
    actor: &Actor,
    ticket: &Ticket,
    from: &str,
    body: &str,
    message_id: Option<&str>,
) -> ApiResult<Message> {
    let msg = insert(
        c,
        &ticket.id,
        Kind::Inbound,
        None,
        Some(from),
        body,
        message_id,
    )?;
    if matches!(ticket.status, Status::PendingCustomer | Status::Solved) {
        tickets::change_status(c, actor, None, &ticket.id, None, Status::Open)?;
    }
    let ticket = tickets::find_any(c, &ticket.id)?;
    let next_due = match &ticket.sla_policy_id {
        Some(p) => {
            let (policy, clock) = sla_policies::policy_clock(c, p)?;
            policy
                .targets
                .get(&crate::enum_text(ticket.priority))
                .and_then(|tg| tg.next_response_minutes)
                .filter(|_| ticket.first_responded_at.is_some())
                .map(|mins| ids::format_ts(clock.add(Utc::now(), mins)))
        }
        None => None,
    };
    diesel::update(t::table.find(&ticket.id))
        .set((
            t::next_response_due_at.eq(ticket.next_response_due_at.clone().or(next_due)),
            t::version.eq(ticket.version + 1),
            t::updated_at.eq(ids::now()),
        ))
        .execute(c)?;
    let after = tickets::find_any(c, &ticket.id)?;
    record_as(
        c,
        actor,
        "ticket",
        "customer_replied",
        &ticket.id,
        json!({"message_id": msg.id, "from": from}),
        &after,
    )?;
    Ok(msg)
}

/// Reply to a ticket or add an internal note.
///
/// `public` mails the body to the ticket's contact (template `ticket_reply`), threaded under the
/// conversation's last message, stops the first-response clock the first time and the
/// next-response clock, and opens a new ticket; `internal` is a note only agents see. A closed
/// ticket takes no reply (409). Agents, managers and admins (`ServiceWrite`).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/messages", tag = "tickets", operation_id = "create_ticket_message",
    params(("id" = String, Path, format = "uuid", description = "Ticket id"), crm_core::params::IdempotencyParams),
    request_body = NewMessage,
    responses((status = 201, description = "The message", body = Message), WriteProblems))]
#[post("/tickets/{id}/messages")]
pub async fn create(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceWrite)?;
    let id = path_id(&id)?;
    let input: NewMessage = crm_core::objects::input(&body.into_inner())?;
    let msg = state.db(move |c| post_message(c, &me, &id, &input)).await?;
    Ok(HttpResponse::Created().json(msg))
}

/// List a ticket's conversation.
///
/// Its public replies, internal notes and inbound messages, oldest first. Everyone inside the
/// company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/tickets/{id}/messages", tag = "tickets", operation_id = "list_ticket_messages",
    params(
        ("id" = String, Path, format = "uuid", description = "Ticket id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at)(,-?(created_at))*$", description = "created_at (default) or -created_at"),
    ),
    responses((status = 200, description = "A page of messages", body = Page<Message>), ReadProblems))]
#[get("/tickets/{id}/messages")]
pub async fn list_messages(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &LIST)?;
    let page = state
        .db(move |c| {
            tickets::find(c, &me, &id)?;
            let q = m::table
                .filter(m::ticket_id.eq(id.clone()))
                .into_boxed::<MultiBackend>();
            let rows: Vec<Message> = apply_sort(q, &p)?.select(Message::as_select()).load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
