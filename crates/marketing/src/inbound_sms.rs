//! Text messages people send back (`POST /inbound/sms`): the SMS gateway pushes each reply.
//! A reply is logged as an inbound `sms` activity on every live contact with that number.
//! A `STOP` (or another carrier opt-out word) puts the number on the opt-out list and
//! withdraws those contacts' sms consent, so no later campaign or automation texts it, even
//! for a contact who gets the number later; a `START` takes it off and grants their consent.

use actix_web::{post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::Json;
use crm_core::ids;
use crm_core::respond::WriteProblems;
use crm_core::schema::{contact_phones as cp, contacts, sms_opt_outs as opt};
use crm_core::state::AppState;
use crm_customers::activities::{self, ActivityInput, Direction, Kind, Link, LinkType};
use crm_customers::common::to_e164;
use crm_customers::contacts::{record_consent, Channel as ConsentChannel, ConsentStatus};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

/// First words that opt a number out, as carriers define them (case-insensitive).
const OPT_OUT_WORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "ARRET",
    "ARRÊT",
];

/// First words that take a number off the opt-out list.
const OPT_IN_WORDS: [&str; 3] = ["START", "UNSTOP", "YES"];

/// A reply as the gateway pushes it.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSms {
    /// The sender's number, in any written form (`+33 6 12 34 56 78`).
    #[validate(length(min = 3, max = 50))]
    #[schema(min_length = 3, max_length = 50)]
    pub from: String,
    #[validate(length(min = 1, max = 2000))]
    #[schema(min_length = 1, max_length = 2000)]
    pub body: String,
    /// When it arrived; now when left out.
    #[schema(format = DateTime)]
    pub received_at: Option<String>,
}

/// What a reply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundSmsResult {
    /// The sender's number in E.164.
    pub from: String,
    /// Whether it was an opt-out (`STOP`…): the number is on the opt-out list and the
    /// contacts' sms consent is withdrawn.
    pub opted_out: bool,
    /// Whether it was an opt-in (`START`, `UNSTOP`): the number is off the list and the
    /// contacts' sms consent is granted.
    pub opted_in: bool,
    /// The live contacts with this number.
    pub contact_ids: Vec<String>,
    /// The inbound `sms` activity logged on each of them.
    pub activity_ids: Vec<String>,
}

/// The reply's first word, upper case, without punctuation.
fn keyword(body: &str) -> String {
    let first = body.split_whitespace().next().unwrap_or_default();
    first
        .trim_matches(|ch: char| !ch.is_alphanumeric())
        .to_uppercase()
}

fn is_opt_out(body: &str) -> bool {
    OPT_OUT_WORDS.contains(&keyword(body).as_str())
}

fn is_opt_in(body: &str) -> bool {
    OPT_IN_WORDS.contains(&keyword(body).as_str())
}

/// Put the number on the opt-out list (once) or take it off.
fn set_opted_out(c: &mut DbConn, number: &str, out: bool, now: &str) -> ApiResult<()> {
    db::lock_key(c, &format!("sms_opt_out:{number}"))?;
    diesel::delete(opt::table.find(number)).execute(c)?;
    if out {
        diesel::insert_into(opt::table)
            .values((
                opt::e164.eq(number),
                opt::source.eq("sms_reply"),
                opt::created_at.eq(now),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// Live contacts with this number, as far as the caller sees them.
fn contacts_with(c: &mut DbConn, me: &Principal, number: &str) -> ApiResult<Vec<String>> {
    let holders = cp::table.filter(cp::e164.eq(number)).select(cp::contact_id);
    let q = contacts::table
        .into_boxed::<MultiBackend>()
        .filter(contacts::id.eq_any(holders))
        .filter(contacts::archived_at.is_null())
        .filter(contacts::merged_into.is_null());
    Ok(crm_core::visible!(q, me, contacts::id)
        .order(contacts::id)
        .select(contacts::id)
        .load(c)?)
}

fn take_reply(c: &mut DbConn, me: &Principal, input: &InboundSms) -> ApiResult<InboundSmsResult> {
    let from = to_e164(&input.from)
        .ok_or_else(|| ApiError::field("from", "phone", "is not a valid phone number"))?;
    let received = match &input.received_at {
        Some(raw) => ids::normalise_ts(raw).ok_or_else(|| {
            ApiError::field("received_at", "date_time", "must be an RFC 3339 timestamp")
        })?,
        None => ids::now(),
    };
    let (opted_out, opted_in) = (is_opt_out(&input.body), is_opt_in(&input.body));
    db::write_tx(c, |c| {
        if opted_out || opted_in {
            set_opted_out(c, &from, opted_out, &received)?;
        }
        let contact_ids = contacts_with(c, me, &from)?;
        let mut activity_ids = vec![];
        for contact in &contact_ids {
            activity_ids.push(log_reply(c, me, contact, &from, input, &received)?);
            if opted_out || opted_in {
                record_opt(c, me, contact, opted_out, &received)?;
            }
        }
        Ok(InboundSmsResult {
            from: from.clone(),
            opted_out,
            opted_in,
            contact_ids,
            activity_ids,
        })
    })
}

fn log_reply(
    c: &mut DbConn,
    me: &Principal,
    contact: &str,
    from: &str,
    input: &InboundSms,
    received: &str,
) -> ApiResult<String> {
    let activity = activities::create_activity(
        c,
        me,
        &ActivityInput {
            kind: Some(Kind::Sms),
            direction: Some(Direction::Inbound),
            subject: Some(format!("Text message from {from}")),
            body: Some(input.body.clone()),
            starts_at: Some(received.to_string()),
            links: Some(vec![Link {
                entity_type: LinkType::Contact,
                entity_id: contact.to_string(),
            }]),
            ..ActivityInput::default()
        },
    )?;
    Ok(activity.id)
}

/// The contact's sms consent as the reply said: withdrawn (`STOP`) or granted (`START`).
fn record_opt(
    c: &mut DbConn,
    me: &Principal,
    contact: &str,
    out: bool,
    received: &str,
) -> ApiResult<()> {
    let (status, name) = if out {
        (ConsentStatus::Withdrawn, "withdrawn")
    } else {
        (ConsentStatus::Granted, "granted")
    };
    record_consent(
        c,
        contact,
        ConsentChannel::Sms,
        status,
        "sms_reply",
        received,
    )?;
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action: if out { "unsubscribed" } else { "consented" },
            entity_type: "contact",
            entity_id: contact,
            changes: json!({"consent": {"sms": name}, "source": "sms_reply"}),
            record: json!({"id": contact}),
        },
    )
}

/// Take in a text message reply
///
/// For the SMS gateway: each reply it receives, with the sender's number. The reply is logged
/// as an inbound `sms` activity on every live contact with that number. One starting with
/// `STOP` (or `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`, `ARRET`) puts the number on
/// the opt-out list and withdraws their sms consent, so no campaign or automation texts it
/// again, whoever holds it; `START` (or `UNSTOP`, `YES`) takes it off and grants their
/// consent. A number no contact has is answered with no contacts; only its opt-out is kept. Send an `Idempotency-Key` (the gateway's
/// message id) so a retried push counts once. A number that isn't one is a 422. Marketers,
/// managers and admins (`MarketingWrite`); give the gateway an API key.
#[utoipa::path(post, path = "/api/v1/inbound/sms", tag = "campaigns", operation_id = "inbound_sms",
    request_body = InboundSms,
    responses((status = 200, description = "What the reply did", body = InboundSmsResult), WriteProblems))]
#[post("/inbound/sms")]
pub async fn inbound_sms(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let input: InboundSms = crm_core::objects::input(&body.into_inner())?;
    input.validate()?;
    let out = state.db(move |c| take_reply(c, &me, &input)).await?;
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn carrier_opt_out_words_count_whatever_their_case_and_punctuation() {
        for body in [
            "STOP",
            "stop",
            " Stop.",
            "STOP please",
            "arrêt",
            "Unsubscribe!",
        ] {
            assert!(super::is_opt_out(body), "{body}");
        }
        for body in ["Don't stop", "stopping by tomorrow", "Thanks", ""] {
            assert!(!super::is_opt_out(body), "{body}");
        }
        assert!(super::is_opt_in("Start") && super::is_opt_in("UNSTOP"));
        assert!(!super::is_opt_in("STOP") && !super::is_opt_in("started"));
    }
}
