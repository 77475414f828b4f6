//! GDPR requests: everything held about a person, and erasure. Erasure anonymises the
//! personal fields everywhere they are kept — the contact, its emails, phones and
//! consents, activities about the person, the timeline, the audit log, the event log,
//! stored idempotent responses, webhook deliveries, the search index, and the contacts
//! merged into this one — keeps non-personal aggregates
//! (account links, activity counts and dates), cannot be undone, and is audited.

use crate::common;
use crate::contacts::{self, Contact};
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::path_id;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{
    activities as act, activity_links as al, audit_log, contact_consents as cc,
    contact_emails as ce, contact_phones as cp, contacts as con, custom_values, events,
    idempotency_keys, timeline_entries as te, webhook_deliveries,
};
use crm_core::state::AppState;
use crm_core::{ids, search};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Everything held about one person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalData {
    pub contact: Contact,
    /// Activities linked to the person.
    #[schema(value_type = Vec<Object>)]
    pub activities: Vec<Value>,
    /// The person's timeline.
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<Value>,
    /// Every audited change to the person's record.
    #[schema(value_type = Vec<Object>)]
    pub audit_log: Vec<Value>,
    pub exported_at: String,
}

fn activity_ids(conn: &mut DbConn, contact_id: &str) -> ApiResult<Vec<String>> {
    Ok(al::table
        .filter(al::entity_type.eq("contact"))
        .filter(al::entity_id.eq(contact_id))
        .select(al::activity_id)
        .load(conn)?)
}

fn export(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<PersonalData> {
    let contact = contacts::find(conn, me, id)?;
    let act_ids = activity_ids(conn, id)?;
    type ActRow = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );
    let activities: Vec<ActRow> = act::table
        .filter(act::id.eq_any(&act_ids))
        .order(act::created_at.asc())
        .select((
            act::id,
            act::kind,
            act::subject,
            act::body,
            act::outcome,
            act::due_at,
            act::created_at,
        ))
        .load(conn)?;
    let timeline: Vec<(String, String, String, String)> = te::table
        .filter(te::entity_type.eq("contact"))
        .filter(te::entity_id.eq(id))
        .order(te::occurred_at.asc())
        .select((te::occurred_at, te::kind, te::summary, te::data))
        .load(conn)?;
    let audit: Vec<(String, String, Option<String>, String)> = audit_log::table
        .filter(audit_log::entity_type.eq("contact"))
        .filter(audit_log::entity_id.eq(id))
        .order(audit_log::occurred_at.asc())
        .select((
            audit_log::occurred_at,
            audit_log::action,
            audit_log::actor_id,
            audit_log::changes,
        ))
        .load(conn)?;
    let json = |raw: &str| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
    Ok(PersonalData {
        contact,
        activities: activities.into_iter().map(|(id, kind, subject, body, outcome, due_at, created_at)| serde_json::json!({"id": id, "kind": kind, "subject": subject, "body": body, "outcome": outcome, "due_at": due_at, "created_at": created_at})).collect(),
        timeline: timeline.into_iter().map(|(at, kind, summary, data)| serde_json::json!({"occurred_at": at, "kind": kind, "summary": summary, "data": json(&data)})).collect(),
        audit_log: audit.into_iter().map(|(at, action, actor, changes)| serde_json::json!({"occurred_at": at, "action": action, "actor_id": actor, "changes": json(&changes)})).collect(),
        exported_at: ids::now(),
    })
}

const ERASED: &str = "{\"erased\":true}";

/// Scrub the logs that describe a record: its audit rows, events and timeline entries.
fn scrub_logs(conn: &mut DbConn, entity_type: &str, entity_id: &str) -> ApiResult<()> {
    // Take the webhook relay's lock first (`webhooks::relay` takes it before reading events):
    // otherwise a relay that read the events before this scrub could write their deliveries,
    // unscrubbed, after it commits (seen on PostgreSQL under load).
    diesel::update(crm_core::schema::webhook_relay::table.find(1))
        .set(crm_core::schema::webhook_relay::tx.eq(crm_core::schema::webhook_relay::tx))
        .execute(conn)?;
    diesel::update(
        audit_log::table
            .filter(audit_log::entity_type.eq(entity_type))
            .filter(audit_log::entity_id.eq(entity_id)),
    )
    .set(audit_log::changes.eq(ERASED))
    .execute(conn)?;
    diesel::update(
        events::table
            .filter(events::entity_type.eq(entity_type))
            .filter(events::entity_id.eq(entity_id)),
    )
    .set(events::payload.eq(format!("{{\"id\":\"{entity_id}\",\"erased\":true}}")))
    .execute(conn)?;
    // Webhook deliveries of those events: a redelivery resends the stored body.
    let its_events: Vec<String> = events::table
        .filter(events::entity_type.eq(entity_type))
        .filter(events::entity_id.eq(entity_id))
        .select(events::id)
        .load(conn)?;
    let body = format!(
        "{{\"entity_type\":\"{entity_type}\",\"entity_id\":\"{entity_id}\",\"erased\":true}}"
    );
    for some in its_events.chunks(500) {
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::event_id.eq_any(some)))
            .set(webhook_deliveries::body.eq(&body))
            .execute(conn)?;
    }
    diesel::update(
        te::table
            .filter(te::source_type.eq(entity_type))
            .filter(te::source_id.eq(entity_id)),
    )
    .set((te::data.eq(ERASED), te::summary.eq("erased")))
    .execute(conn)?;
    diesel::update(
        te::table
            .filter(te::entity_type.eq(entity_type))
            .filter(te::entity_id.eq(entity_id)),
    )
    .set((te::data.eq(ERASED), te::summary.eq("erased")))
    .execute(conn)?;
    // Stored replays of requests that created or changed the record hold its data too.
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::response_body.like(format!("%{entity_id}%"))),
    )
    .execute(conn)?;
    Ok(())
}

/// The contacts merged into this one, and those merged into them: the same person's
/// earlier records, which erasure must reach too.
fn merged_away(conn: &mut DbConn, id: &str) -> ApiResult<Vec<String>> {
    let (mut found, mut frontier) = (vec![], vec![id.to_string()]);
    while !frontier.is_empty() {
        let next: Vec<String> = con::table
            .filter(con::merged_into.eq_any(&frontier))
            .select(con::id)
            .load(conn)?;
        found.extend(next.iter().cloned());
        frontier = next;
    }
    Ok(found)
}

fn erase(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Contact> {
    db::write_tx(conn, |c| {
        db::lock_row(c, "contacts", id)?;
        let row = contacts::find_row(c, me, id)?;
        if row.erased_at.is_some() {
            return Err(ApiError::Conflict("this contact was already erased".into()));
        }
        anonymise(c, &row)?;
        for duplicate in merged_away(c, id)? {
            let dup = con::table
                .find(&duplicate)
                .first::<contacts::ContactRow>(c)?;
            anonymise(c, &dup)?;
        }
        let after = contacts::find(c, me, id)?;
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "erased",
                entity_type: "contact",
                entity_id: id,
                changes: serde_json::json!({"erased": true}),
                record: serde_json::json!({"id": id, "erased": true}),
            },
        )?;
        Ok(after)
    })
}

/// Anonymise one contact record and everything written about it.
fn anonymise(c: &mut DbConn, row: &contacts::ContactRow) -> ApiResult<()> {
    let (id, now) = (row.id.as_str(), ids::now());
    scrub_messages(c, id)?;
    diesel::delete(ce::table.filter(ce::contact_id.eq(id))).execute(c)?;
    diesel::delete(cp::table.filter(cp::contact_id.eq(id))).execute(c)?;
    diesel::delete(cc::table.filter(cc::contact_id.eq(id))).execute(c)?;
    diesel::delete(
        custom_values::table
            .filter(custom_values::object.eq("contact"))
            .filter(custom_values::record_id.eq(id)),
    )
    .execute(c)?;
    search::remove(c, "contact", id)?;
    crate::common::write_tags(c, "contact", id, &[])?;
    diesel::update(con::table.find(id))
        .set((
            con::first_name.eq("Erased"),
            con::last_name.eq("Contact"),
            con::job_title.eq(None::<String>),
            con::tags.eq("[]"),
            con::preferred_language.eq(None::<String>),
            con::social_profiles.eq("{}"),
            con::custom.eq("{}"),
            con::external_source.eq(None::<String>),
            con::external_id.eq(None::<String>),
            con::erased_at.eq(&now),
            con::archived_at.eq(row.archived_at.clone().unwrap_or(now.clone())),
            con::version.eq(row.version + 1),
            con::updated_at.eq(&now),
        ))
        .execute(c)?;
    // Activities about the person keep their kind, dates and links (aggregates) but
    // lose what was written about them.
    for activity in activity_ids(c, id)? {
        diesel::update(act::table.find(&activity))
            .set((
                act::subject.eq("[erased]"),
                act::body.eq(None::<String>),
                act::outcome.eq(None::<String>),
                act::next_step.eq(None::<String>),
            ))
            .execute(c)?;
        scrub_logs(c, "activity", &activity)?;
    }
    scrub_logs(c, "contact", id)
}

const UNSENT: &str = "not sent: the recipient was erased";

/// Mail and text messages the server wrote to the person (campaigns, automations, ticket
/// replies) lose their address, number and text; one still waiting is never sent.
fn scrub_messages(c: &mut DbConn, id: &str) -> ApiResult<()> {
    use crm_core::schema::{mail_messages as mm, sms_messages as sms};
    let emails: Vec<String> = ce::table
        .filter(ce::contact_id.eq(id))
        .select(ce::email)
        .load(c)?;
    let numbers: Vec<String> = cp::table
        .filter(cp::contact_id.eq(id))
        .select(cp::e164)
        .load(c)?;
    let to_them = mm::table.filter(mm::to_address.eq_any(&emails));
    diesel::update(to_them.clone().filter(mm::status.eq("queued")))
        .set((mm::status.eq("failed"), mm::last_error.eq(UNSENT)))
        .execute(c)?;
    diesel::update(to_them)
        .set((
            mm::to_address.eq("erased@invalid"),
            mm::subject.eq("[erased]"),
            mm::body_text.eq(""),
            mm::list_unsubscribe.eq(None::<String>),
        ))
        .execute(c)?;
    let texted = sms::table.filter(sms::to_number.eq_any(&numbers));
    diesel::update(texted.clone().filter(sms::status.eq("queued")))
        .set((sms::status.eq("failed"), sms::last_error.eq(UNSENT)))
        .execute(c)?;
    diesel::update(texted)
        .set((sms::to_number.eq("[erased]"), sms::body.eq("")))
        .execute(c)?;
    Ok(())
}

/// Export everything held about a contact (GDPR access).
///
/// Returns the contact (emails, phones, consents, custom fields), the activities linked to it, its
/// timeline and every audited change to it, stamped with `exported_at`. Admins only
/// (`PersonalData`); the export itself is not audited.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/personal-data", tag = "contacts",
    params(("id" = String, Path, format = "uuid", description = "Contact id")),
    responses((status = 200, description = "Everything held about the person (GDPR access request)", body = PersonalData), ReadProblems))]
#[get("/contacts/{id}/personal-data")]
pub async fn personal_data(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::PersonalData)?;
    let id = path_id(&id)?;
    let data = state.db(move |c| export(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(data))
}

/// Erase a contact's personal data (GDPR erasure).
///
/// Irreversibly anonymises and archives the contact and the contacts merged into it: the name
/// becomes "Erased Contact", emails, phones, consents, tags, custom values and external key are
/// deleted, and linked activities lose their subject, body and outcome. Their audit entries,
/// events, timeline, webhook delivery bodies and stored idempotent replays are scrubbed, while
/// account links and activity kinds and dates are kept. A contact already erased is a 409. Admins
/// only (`PersonalData`); audited as `contact.erased`.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "contacts",
    params(("id" = String, Path, format = "uuid", description = "Contact id")),
    responses((status = 200, description = "Erased: personal fields anonymised everywhere; cannot be undone", body = Contact), WriteProblems))]
#[post("/contacts/{id}/erase")]
pub async fn erase_route(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::PersonalData)?;
    let id = path_id(&id)?;
    let contact = state.db(move |c| erase(c, &me, &id)).await?;
    let _ = common::to_json(&contact);
    Ok(HttpResponse::Ok().json(contact))
}
