//! The mail the service domain writes, through the platform's mail (`crm_core::mail`):
//! acknowledgements, public replies, solved notices and SLA escalations, each from a
//! template with merge fields that `/mail-templates` can override.

use crate::tickets::Ticket;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::mail::templates::{self, Template};
use crm_core::mail::{self, Outgoing};
use crm_core::schema::{contact_emails, contacts, mail_messages, ticket_messages, users};
use diesel::prelude::*;
use serde_json::{json, Value};

pub const ACKNOWLEDGEMENT: Template = Template {
    key: "ticket_acknowledgement",
    description: "Sent to the contact when a ticket is opened",
    subject: "[#{{ ticket.number }}] {{ ticket.subject }}",
    body: "Hello {{ contact.first_name }},\n\nWe received your request and gave it the number #{{ ticket.number }}. \
Reply to this mail to add to it.\n{% if articles %}\nThese articles may already help:\n{% for a in articles %}- {{ a.title }}\n{% endfor %}{% endif %}",
    fields: &[
        "ticket.number",
        "ticket.subject",
        "ticket.status",
        "ticket.priority",
        "ticket.description",
        "contact.first_name",
        "contact.last_name",
        "articles",
    ],
};

pub const REPLY: Template = Template {
    key: "ticket_reply",
    description: "An agent's public reply, sent to the contact",
    subject: "Re: [#{{ ticket.number }}] {{ ticket.subject }}",
    body: "{{ message.body }}\n\n-- \n{{ agent.name }}\nTicket #{{ ticket.number }}",
    fields: &[
        "ticket.number",
        "ticket.subject",
        "ticket.status",
        "ticket.priority",
        "ticket.description",
        "contact.first_name",
        "contact.last_name",
        "message.body",
        "agent.name",
    ],
};

pub const SOLVED: Template = Template {
    key: "ticket_solved",
    description: "Sent to the contact when a ticket is solved, with the satisfaction survey link",
    subject: "[#{{ ticket.number }}] solved: {{ ticket.subject }}",
    body: "Hello {{ contact.first_name }},\n\nWe marked ticket #{{ ticket.number }} as solved. \
If it isn't, reply to this mail and we will pick it up again.\n\nHow did we do? {{ survey.url }}\n",
    fields: &[
        "ticket.number",
        "ticket.subject",
        "ticket.status",
        "ticket.priority",
        "ticket.description",
        "contact.first_name",
        "contact.last_name",
        "survey.url",
    ],
};

pub const ESCALATION: Template = Template {
    key: "sla_escalation",
    description: "Sent to the queue's manager (breach) or the assignee (warning) by the SLA check",
    subject: "[#{{ ticket.number }}] SLA {{ sla.event }}: {{ sla.clock }} due {{ sla.due_at }}",
    body: "Ticket #{{ ticket.number }} ({{ ticket.subject }}, now {{ ticket.priority }}): \
the {{ sla.clock }} target {{ sla.event }} at {{ sla.due_at }}.\n",
    fields: &[
        "ticket.number",
        "ticket.subject",
        "ticket.status",
        "ticket.priority",
        "ticket.description",
        "contact.first_name",
        "contact.last_name",
        "sla.event",
        "sla.clock",
        "sla.due_at",
    ],
};

/// Every template this domain mails from.
pub const TEMPLATES: &[&Template] = &[&ACKNOWLEDGEMENT, &REPLY, &SOLVED, &ESCALATION];

/// A contact's primary email (or first one) and first name.
pub fn contact_address(
    c: &mut DbConn,
    contact: &str,
) -> ApiResult<Option<(String, String, String)>> {
    let row: Option<(String, String, String)> = contact_emails::table
        .inner_join(contacts::table)
        .filter(contact_emails::contact_id.eq(contact))
        .filter(contacts::erased_at.is_null())
        .order((contact_emails::is_primary.desc(), contact_emails::email))
        .select((
            contact_emails::email,
            contacts::first_name,
            contacts::last_name,
        ))
        .first(c)
        .optional()?;
    Ok(row)
}

/// Add a merge field group to a template context.
fn put(ctx: &mut Value, key: &str, value: Value) {
    if let Some(map) = ctx.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn context(c: &mut DbConn, t: &Ticket) -> ApiResult<(Option<String>, Value)> {
    let contact = match &t.contact_id {
        Some(id) => contact_address(c, id)?,
        None => None,
    };
    let (first, last) = contact
        .as_ref()
        .map(|(_, f, l)| (f.clone(), l.clone()))
        .unwrap_or_default();
    // A ticket opened by mail from someone who is not a contact answers the sender.
    let address = match contact {
        Some((e, _, _)) => Some(e),
        None => ticket_messages::table
            .filter(ticket_messages::ticket_id.eq(&t.id))
            .filter(ticket_messages::kind.eq("inbound"))
            .order(ticket_messages::created_at)
            .select(ticket_messages::from_address)
            .first::<Option<String>>(c)
            .optional()?
            .flatten(),
    };
    Ok((
        address,
        json!({
            "ticket": {
                "number": t.number,
                "subject": t.subject,
                "status": crate::enum_text(t.status),
                "priority": crate::enum_text(t.priority),
                "description": t.description,
            },
            "contact": {"first_name": first, "last_name": last},
        }),
    ))
}

/// The Message-ID a mail to the customer about this ticket should answer: the last one
/// the conversation saw, so it threads in their mail program.
fn thread_parent(c: &mut DbConn, t: &Ticket) -> ApiResult<Option<String>> {
    let last_message: Option<Option<String>> = ticket_messages::table
        .filter(ticket_messages::ticket_id.eq(&t.id))
        .filter(ticket_messages::message_id.is_not_null())
        .order((
            ticket_messages::created_at.desc(),
            ticket_messages::id.desc(),
        ))
        .select(ticket_messages::message_id)
        .first(c)
        .optional()?;
    if let Some(Some(m)) = last_message {
        return Ok(Some(m));
    }
    Ok(mail_messages::table
        .filter(mail_messages::entity_id.eq(&t.id))
        .order(mail_messages::created_at)
        .select(mail_messages::message_id)
        .first(c)
        .optional()?)
}

fn send(
    c: &mut DbConn,
    t: &Ticket,
    to: &str,
    template: &Template,
    ctx: &Value,
) -> ApiResult<mail::MailMessage> {
    let (subject, body) = templates::render(c, template, ctx)?;
    let parent = thread_parent(c, t)?;
    let from = mail::sender();
    mail::queue(
        c,
        &from,
        &Outgoing {
            to,
            subject: &subject,
            body: &body,
            template: template.key,
            entity: Some(("ticket", &t.id)),
            in_reply_to: parent.as_deref(),
            list_unsubscribe: None,
        },
    )
}

/// The acknowledgement of a new ticket, when its contact has an address.
pub fn acknowledge(c: &mut DbConn, t: &Ticket) -> ApiResult<()> {
    let (to, mut ctx) = context(c, t)?;
    let Some(to) = to else { return Ok(()) };
    let articles: Vec<Value> = crate::kb::suggest_for(c, t, 3)?
        .into_iter()
        .map(|(a, _)| json!({"id": a.id, "title": a.title}))
        .collect();
    put(&mut ctx, "articles", json!(articles));
    send(c, t, &to, &ACKNOWLEDGEMENT, &ctx)?;
    Ok(())
}

/// An agent's public reply; returns the sent mail's Message-ID for the conversation.
pub fn reply(c: &mut DbConn, t: &Ticket, agent: &str, body: &str) -> ApiResult<Option<String>> {
    let (to, mut ctx) = context(c, t)?;
    let Some(to) = to else { return Ok(None) };
    let name: Option<String> = users::table
        .find(agent)
        .select(users::name)
        .first(c)
        .optional()?;
    put(&mut ctx, "message", json!({"body": body}));
    put(&mut ctx, "agent", json!({"name": name.unwrap_or_default()}));
    Ok(Some(send(c, t, &to, &REPLY, &ctx)?.message_id))
}

/// The solved notice with its satisfaction survey.
pub fn solved(c: &mut DbConn, t: &Ticket) -> ApiResult<()> {
    let (to, mut ctx) = context(c, t)?;
    let Some(to) = to else { return Ok(()) };
    let url = crate::surveys::create_for(c, t)?;
    put(&mut ctx, "survey", json!({"url": url}));
    send(c, t, &to, &SOLVED, &ctx)?;
    Ok(())
}

/// An SLA escalation to a user.
pub fn escalation(
    c: &mut DbConn,
    t: &Ticket,
    user: &str,
    event: &str,
    clock: &str,
    due: &str,
) -> ApiResult<()> {
    let to: Option<String> = users::table
        .find(user)
        .select(users::email)
        .first(c)
        .optional()?;
    let Some(to) = to else { return Ok(()) };
    let (_, mut ctx) = context(c, t)?;
    put(
        &mut ctx,
        "sla",
        json!({
        "event": match event {
            "sla_breached" => "breached",
            "unresolved" => "still unresolved",
            _ => "breaches soon",
        },
        "clock": clock.replace('_', " "),
        "due_at": due,
        }),
    );
    let (subject, body) = templates::render(c, &ESCALATION, &ctx)?;
    mail::queue(
        c,
        &mail::sender(),
        &Outgoing {
            to: &to,
            subject: &subject,
            body: &body,
            template: ESCALATION.key,
            entity: Some(("ticket", &t.id)),
            in_reply_to: None,
            list_unsubscribe: None,
        },
    )?;
    Ok(())
}
