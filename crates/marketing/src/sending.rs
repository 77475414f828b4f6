//! Sending a campaign's mail, and what recipients do with it.
//!
//! `POST /campaigns/{id}/send` queues a `campaign.send` job. Each run of the job takes the
//! next batch of `targeted` members and, one member per transaction, either skips them (no
//! email, no email consent, suppressed: counted in the metrics) or moves them to `sent` with a
//! conditional update and queues their mail in the same transaction. The mail exists exactly
//! when the member is `sent`, so a retry, a second worker or a restart mid-send never mails a
//! member twice. A full batch re-queues the job after a pause: that is the throttle.
//!
//! Every mail carries a per-member token (only its digest is stored) in a one-click
//! unsubscribe link (RFC 8058 `List-Unsubscribe` and `List-Unsubscribe-Post` headers), an
//! open pixel and click links. Click links redirect only to URLs written in the campaign's own
//! text, so they can't be turned into an open redirect; a wrong token is a 403, checked before
//! anything else. Opening the unsubscribe link (GET) changes nothing: mail scanners and link
//! previews fetch links. It shows a page whose button POSTs, as RFC 8058 mail programs do.

use crate::campaigns::{self, Campaign, Status};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::path_id;
use crm_core::ids;
use crm_core::jobs::{JobFailure, JobResult};
use crm_core::mail::{self, Outgoing};
use crm_core::respond::WriteProblems;
use crm_core::schema::{
    accounts, campaign_members as cm, campaigns as k, contact_accounts as ca,
    contact_consents as cc, contact_emails as ce, contact_phones as cp, contacts, sms_opt_outs,
    suppressions,
};
use crm_core::state::AppState;
use crm_customers::contacts::{record_consent, Channel as ConsentChannel, ConsentStatus};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

pub const SEND: &str = "campaign.send";
/// Members mailed per run of the job, and the pause before the next run.
const BATCH: i64 = 200;
const PAUSE: Duration = Duration::from_secs(1);

/// What a send started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendStarted {
    pub campaign_id: String,
    /// Members waiting to be mailed.
    pub targeted: i64,
}

fn start(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<SendStarted> {
    db::write_tx(c, |c| {
        db::lock_row(c, "campaigns", id)?;
        let campaign = campaigns::find(c, id)?;
        if !campaign.channel.sends() {
            return Err(ApiError::Conflict(
                "only email, newsletter and sms campaigns are sent by the server".into(),
            ));
        }
        if campaign.archived_at.is_some()
            || matches!(campaign.status, Status::Completed | Status::Aborted)
        {
            return Err(ApiError::Conflict("the campaign is closed".into()));
        }
        let mut errors = crate::common::required(&[
            (
                "subject",
                campaign.channel.mails() && campaign.subject.is_none(),
            ),
            ("body_text", campaign.body_text.is_none()),
        ]);
        if !errors.is_empty() {
            errors
                .iter_mut()
                .for_each(|e| e.message = "set it on the campaign before sending".into());
            return Err(ApiError::validation(errors));
        }
        let targeted: i64 = cm::table
            .filter(cm::campaign_id.eq(id))
            .filter(cm::status.eq("targeted"))
            .count()
            .get_result(c)?;
        let now = ids::now();
        diesel::update(k::table.find(id))
            .set((
                k::status.eq("active"),
                k::send_started_at.eq(campaign.send_started_at.clone().unwrap_or(now)),
            ))
            .execute(c)?;
        crm_core::jobs::enqueue(c, SEND, &json!({ "campaign_id": id }), 20)?;
        crate::common::audit_change(
            c,
            me,
            "campaign",
            "send_started",
            id,
            json!({"targeted": targeted}),
            &campaign,
        )?;
        Ok(SendStarted {
            campaign_id: id.to_string(),
            targeted,
        })
    })
}

/// Send a campaign
///
/// Starts mailing the campaign's `targeted` members through the platform's mail sender, in
/// throttled batches, and answers 202 with how many are waiting. Members without an email
/// address, without email consent or on the suppression list are skipped and counted, never
/// mailed. An `sms` campaign texts its `body_text` (with tracked links and an opt-out link)
/// to each member's primary phone instead, through the SMS provider (`CRM_SMS_URL`, or only
/// logged); members without a phone or sms consent are skipped. Members added later are
/// reached by calling this again; nobody gets the campaign twice. 409 for a campaign on
/// another channel or a closed one; 422 without text (or, for mail, a subject).
/// Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/send", tag = "campaigns", operation_id = "send_campaign",
    params(("id" = String, Path, format = "uuid", description = "Campaign id")),
    responses((status = 202, description = "Sending", body = SendStarted), WriteProblems))]
#[post("/campaigns/{id}/send")]
pub async fn send(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let out = state.db(move |c| start(c, &me, &id)).await?;
    Ok(HttpResponse::Accepted().json(out))
}

/// The `campaign.send` job: one batch, then itself again while members wait.
pub fn run(c: &mut DbConn, payload: &Value) -> JobResult {
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let id = payload["campaign_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Ok(campaign) = campaigns::find(c, &id) else {
        return Ok(());
    };
    if matches!(campaign.status, Status::Aborted) || campaign.archived_at.is_some() {
        return Ok(());
    }
    let batch: Vec<String> = cm::table
        .filter(cm::campaign_id.eq(&id))
        .filter(cm::status.eq("targeted"))
        .order(cm::contact_id)
        .limit(BATCH)
        .select(cm::contact_id)
        .load(c)
        .map_err(|e| fail(e.into()))?;
    for contact in &batch {
        db::write_tx(c, |c| mail_member(c, &campaign, contact)).map_err(fail)?;
    }
    if batch.len() as i64 == BATCH {
        db::write_tx(c, |c| {
            crm_core::jobs::enqueue_after(c, SEND, payload, 20, PAUSE).map(|_| ())
        })
        .map_err(fail)?;
    }
    Ok(())
}

/// Why a member can't be mailed, or the address to mail.
fn address(c: &mut DbConn, contact: &str) -> ApiResult<Result<String, &'static str>> {
    let email: Option<String> = ce::table
        .filter(ce::contact_id.eq(contact))
        .order((ce::is_primary.desc(), ce::email))
        .select(ce::email)
        .first(c)
        .optional()?;
    let Some(email) = email.filter(|e| mail::valid_address(e)) else {
        return Ok(Err("no_email"));
    };
    if !consented(c, contact, "email")? {
        return Ok(Err("no_consent"));
    }
    let suppressed: i64 = suppressions::table
        .filter(suppressions::email.eq(email.to_lowercase()))
        .count()
        .get_result(c)?;
    if suppressed > 0 {
        return Ok(Err("suppressed"));
    }
    Ok(Ok(email))
}

/// Whether the contact granted consent on this channel (`email`, `sms`).
fn consented(c: &mut DbConn, contact: &str, channel: &str) -> ApiResult<bool> {
    let consent: Option<String> = cc::table
        .filter(cc::contact_id.eq(contact))
        .filter(cc::channel.eq(channel))
        .select(cc::status)
        .first(c)
        .optional()?;
    Ok(consent.as_deref() == Some("granted"))
}

/// Why a member can't be texted, or the number (E.164, the primary first) to text.
fn phone(c: &mut DbConn, contact: &str) -> ApiResult<Result<String, &'static str>> {
    let number: Option<String> = cp::table
        .filter(cp::contact_id.eq(contact))
        .order((cp::is_primary.desc(), cp::e164))
        .select(cp::e164)
        .first(c)
        .optional()?;
    let Some(number) = number else {
        return Ok(Err("no_phone"));
    };
    if !consented(c, contact, "sms")? {
        return Ok(Err("no_consent"));
    }
    let opted_out: i64 = sms_opt_outs::table.find(&number).count().get_result(c)?;
    if opted_out > 0 {
        return Ok(Err("suppressed"));
    }
    Ok(Ok(number))
}

/// Claim a targeted member as `sent` with a fresh link token: the token, or `None` when
/// someone else already handled the member.
fn claim(c: &mut DbConn, campaign: &str, contact: &str) -> ApiResult<Option<String>> {
    let token = auth::random_token(24)?;
    let claimed = diesel::update(
        cm::table
            .filter(cm::campaign_id.eq(campaign))
            .filter(cm::contact_id.eq(contact))
            .filter(cm::status.eq("targeted")),
    )
    .set((
        cm::status.eq("sent"),
        cm::sent_at.eq(ids::now()),
        cm::token_hash.eq(auth::secret_digest(&token)),
    ))
    .execute(c)?;
    Ok((claimed > 0).then_some(token))
}

fn skip(c: &mut DbConn, campaign: &str, contact: &str, reason: &str) -> ApiResult<()> {
    diesel::update(
        cm::table
            .filter(cm::campaign_id.eq(campaign))
            .filter(cm::contact_id.eq(contact))
            .filter(cm::status.eq("targeted")),
    )
    .set((cm::status.eq("skipped"), cm::skip_reason.eq(reason)))
    .execute(c)?;
    Ok(())
}

/// Text one member of an sms campaign or skip them, like `mail_member`: the message with
/// its tracked links and an opt-out link goes to the SMS provider's queue.
fn text_member(c: &mut DbConn, campaign: &Campaign, contact: &str) -> ApiResult<()> {
    let to = match phone(c, contact)? {
        Err(reason) => return skip(c, &campaign.id, contact, reason),
        Ok(to) => to,
    };
    let Some(token) = claim(c, &campaign.id, contact)? else {
        return Ok(());
    };
    let links = Links::new(&campaign.id, contact, &token);
    let context = context(c, campaign, contact, "", &links)?;
    let body = mail::templates::render_source(
        campaign.body_text.as_deref().unwrap_or_default(),
        &context,
    )?;
    let body = format!(
        "{}\nOpt out: {}",
        track_links(&body, &links),
        links.unsubscribe
    );
    crm_core::sms::queue(
        c,
        &crm_core::sms::OutgoingSms {
            to: &to,
            body: &body,
            entity: Some(("campaign", &campaign.id)),
        },
    )?;
    Ok(())
}

/// Mail one member or skip them, in the caller's transaction; a member someone else already
/// handled is left alone. Members of sms campaigns are texted instead.
pub(crate) fn mail_member(c: &mut DbConn, campaign: &Campaign, contact: &str) -> ApiResult<()> {
    if campaign.channel == campaigns::Channel::Sms {
        return text_member(c, campaign, contact);
    }
    match address(c, contact)? {
        Err(reason) => skip(c, &campaign.id, contact, reason)?,
        Ok(to) => {
            let Some(token) = claim(c, &campaign.id, contact)? else {
                return Ok(());
            };
            let links = Links::new(&campaign.id, contact, &token);
            let context = context(c, campaign, contact, &to, &links)?;
            let subject = mail::templates::render_source(
                campaign.subject.as_deref().unwrap_or_default(),
                &context,
            )?
            .replace(['\r', '\n'], " ");
            let body = mail::templates::render_source(
                campaign.body_text.as_deref().unwrap_or_default(),
                &context,
            )?;
            let body = format!(
                "{}\n\n--\nUnsubscribe: {}\n",
                track_links(&body, &links),
                links.unsubscribe
            );
            let body = format!("{body}{}\n", links.pixel_note());
            let sent = mail::queue(
                c,
                &mail::sender(),
                &Outgoing {
                    to: &to,
                    subject: &subject,
                    body: &body,
                    template: "campaign",
                    entity: Some(("campaign", &campaign.id)),
                    in_reply_to: None,
                    list_unsubscribe: Some(&links.unsubscribe),
                },
            )?;
            diesel::update(
                cm::table
                    .filter(cm::campaign_id.eq(&campaign.id))
                    .filter(cm::contact_id.eq(contact)),
            )
            .set(cm::mail_id.eq(&sent.id))
            .execute(c)?;
        }
    }
    Ok(())
}

/// The merge fields of one member's mail.
fn context(
    c: &mut DbConn,
    campaign: &Campaign,
    contact: &str,
    email: &str,
    links: &Links,
) -> ApiResult<Value> {
    let (first, last, title): (String, String, Option<String>) = contacts::table
        .find(contact)
        .select((
            contacts::first_name,
            contacts::last_name,
            contacts::job_title,
        ))
        .first(c)?;
    let account: Option<(String, Option<String>)> = accounts::table
        .filter(
            accounts::id.eq_any(
                ca::table
                    .filter(ca::contact_id.eq(contact))
                    .select(ca::account_id),
            ),
        )
        .order(accounts::name)
        .select((accounts::name, accounts::industry))
        .first(c)
        .optional()?;
    Ok(json!({
        "contact": {"first_name": first, "last_name": last, "email": email, "job_title": title},
        "account": account.map(|(name, industry)| json!({"name": name, "industry": industry})),
        "campaign": {"name": campaign.name},
        "unsubscribe_url": links.unsubscribe,
    }))
}

/// A member's links.
struct Links {
    unsubscribe: String,
    open: String,
    click: String,
}

impl Links {
    fn new(campaign: &str, contact: &str, token: &str) -> Self {
        let base = format!("{}/api/v1/campaigns/{campaign}", mail::public_url());
        let q = format!("contact={contact}&token={token}");
        Links {
            unsubscribe: format!("{base}/unsubscribe?{q}"),
            open: format!("{base}/open?{q}"),
            click: format!("{base}/click?{q}"),
        }
    }

    /// Text mail has no images: the open "pixel" is a link a mail program may fetch.
    fn pixel_note(&self) -> String {
        format!("Seen online: {}", self.open)
    }
}

/// Percent-encode a URL for a query parameter.
fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The http(s) URLs written in a text, in order.
fn urls(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches(['.', ',', ')', ';', '!', '?']))
        .filter(|w| w.starts_with("https://") || w.starts_with("http://"))
        .collect()
}

/// Each URL of the text through the member's click link.
fn track_links(text: &str, links: &Links) -> String {
    let mut out = text.to_string();
    let mut seen: Vec<&str> = vec![];
    for url in urls(text) {
        if seen.contains(&url) {
            continue;
        }
        seen.push(url);
        out = out.replace(url, &format!("{}&url={}", links.click, encode(url)));
    }
    out
}

/// The member a link names, if its token is theirs (403 otherwise).
fn member_by_token(
    c: &mut DbConn,
    campaign: &str,
    contact: &str,
    token: &str,
) -> ApiResult<(String, String)> {
    let found: Option<(Option<String>, String)> = cm::table
        .filter(cm::campaign_id.eq(campaign))
        .filter(cm::contact_id.eq(contact))
        .select((cm::token_hash, cm::status))
        .first(c)
        .optional()?;
    match found {
        Some((Some(hash), status)) if hash == auth::secret_digest(token) => {
            Ok((contact.to_string(), status))
        }
        _ => Err(ApiError::Forbidden("this link is not valid".into())),
    }
}

/// What a recipient's link carries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkParams {
    /// The recipient.
    #[param(format = "uuid")]
    pub contact: String,
    /// The token from the mail.
    pub token: String,
}

/// Statuses a later event does not overwrite.
const FINAL: &[&str] = &["responded", "converted", "unsubscribed", "bounced"];

/// Opting out of a campaign withdraws the consent of its channel: `sms` for text messages,
/// `email` (with the addresses put on the suppression list) for mail.
fn unsubscribe_member(c: &mut DbConn, campaign: &str, p: &LinkParams) -> ApiResult<()> {
    db::write_tx(c, |c| {
        let (contact, _) = member_by_token(c, campaign, &p.contact, &p.token)?;
        let texted = campaigns::find(c, campaign)?.channel == campaigns::Channel::Sms;
        let (channel, name) = if texted {
            (ConsentChannel::Sms, "sms")
        } else {
            (ConsentChannel::Email, "email")
        };
        let now = ids::now();
        diesel::update(
            cm::table
                .filter(cm::campaign_id.eq(campaign))
                .filter(cm::contact_id.eq(&contact))
                .filter(cm::unsubscribed_at.is_null()),
        )
        .set((cm::status.eq("unsubscribed"), cm::unsubscribed_at.eq(&now)))
        .execute(c)?;
        record_consent(
            c,
            &contact,
            channel,
            ConsentStatus::Withdrawn,
            "unsubscribe",
            &now,
        )?;
        let emails: Vec<String> = if texted {
            vec![]
        } else {
            ce::table
                .filter(ce::contact_id.eq(&contact))
                .select(ce::email)
                .load(c)?
        };
        for email in emails {
            let email = email.to_lowercase();
            db::lock_key(c, &format!("suppression:{email}"))?;
            let known: i64 = suppressions::table
                .filter(suppressions::email.eq(&email))
                .count()
                .get_result(c)?;
            if known == 0 {
                diesel::insert_into(suppressions::table)
                    .values((
                        suppressions::email.eq(&email),
                        suppressions::reason.eq("unsubscribed"),
                        suppressions::campaign_id.eq(campaign),
                        suppressions::created_at.eq(&now),
                    ))
                    .execute(c)?;
            }
        }
        crm_core::audit::record(
            c,
            crm_core::audit::Change {
                actor: &crm_core::audit::Actor::system(),
                action: "unsubscribed",
                entity_type: "contact",
                entity_id: &contact,
                changes: json!({"consent": {name: "withdrawn"}, "campaign_id": campaign}),
                record: json!({"id": contact}),
            },
        )
    })
}

/// Unsubscribe (one click)
///
/// The link in every campaign mail and its `List-Unsubscribe` header (RFC 8058: mail
/// programs POST `List-Unsubscribe=One-Click` here), and the button of the page the link
/// shows. Withdraws the contact's email consent, puts their addresses on the suppression list
/// and marks the member `unsubscribed` (for an sms campaign's opt-out link: withdraws the sms
/// consent); doing it again changes nothing. Answers JSON, or a short page when the client
/// asks for `text/html` (a browser sending the form). No login: the token from the mail is the
/// credential (403 when it isn't this member's). Public.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/unsubscribe", tag = "campaigns", operation_id = "unsubscribe",
    params(("id" = String, Path, format = "uuid", description = "Campaign id"), LinkParams),
    security(()),
    responses((status = 200, description = "Unsubscribed", content(
        (Object = "application/json"),
        (String = "text/html"),
    )), WriteProblems))]
#[post("/campaigns/{id}/unsubscribe")]
pub async fn unsubscribe_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LinkParams>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let p = q.into_inner();
    state.db(move |c| unsubscribe_member(c, &id, &p)).await?;
    if wants_html(&req) {
        return Ok(page(
            "Unsubscribed",
            "<p>You are unsubscribed: you will get no more of these messages.</p>",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"unsubscribed": true})))
}

/// Unsubscribe (link)
///
/// What opening the link in a mail or text shows: a page asking to confirm, whose button
/// POSTs to the same link (the one-click unsubscribe). Opening it changes nothing, so a mail
/// scanner or a link preview that fetches it unsubscribes nobody. A token that isn't the
/// member's is a 403. Public.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/unsubscribe", tag = "campaigns", operation_id = "unsubscribe_link",
    params(("id" = String, Path, format = "uuid", description = "Campaign id"), LinkParams),
    security(()),
    responses((status = 200, description = "A page with the button that unsubscribes", content_type = "text/html", body = String), crm_core::respond::ReadProblems))]
#[get("/campaigns/{id}/unsubscribe")]
pub async fn unsubscribe_get(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LinkParams>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let p = q.into_inner();
    let action = format!(
        "unsubscribe?contact={}&amp;token={}",
        encode(&p.contact),
        encode(&p.token)
    );
    let (name, status) = state
        .db(move |c| {
            let (_, status) = member_by_token(c, &id, &p.contact, &p.token)?;
            Ok::<_, ApiError>((campaigns::find(c, &id)?.name, status))
        })
        .await?;
    if status == "unsubscribed" {
        return Ok(page(
            "Unsubscribed",
            "<p>You are already unsubscribed: you will get no more of these messages.</p>",
        ));
    }
    Ok(page(
        "Unsubscribe",
        &format!(
            "<p>Stop receiving {}?</p>\n<form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n\
             <button type=\"submit\">Unsubscribe</button>\n</form>",
            escape_html(&name)
        ),
    ))
}

/// Whether the client would rather read a page (a browser) than JSON.
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A small self-contained page (no scripts, styles or other assets).
fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n</head>\n\
             <body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
        ))
}

fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Stamp an engagement (`opened_at`, `clicked_at`) once, moving the status forward.
fn engage(c: &mut DbConn, campaign: &str, p: &LinkParams, clicked: bool) -> ApiResult<()> {
    db::write_tx(c, |c| {
        let (contact, status) = member_by_token(c, campaign, &p.contact, &p.token)?;
        let now = ids::now();
        let member = cm::table
            .filter(cm::campaign_id.eq(campaign))
            .filter(cm::contact_id.eq(&contact));
        diesel::update(member.filter(cm::opened_at.is_null()))
            .set(cm::opened_at.eq(&now))
            .execute(c)?;
        if clicked {
            let first = diesel::update(member.filter(cm::clicked_at.is_null()))
                .set(cm::clicked_at.eq(&now))
                .execute(c)?;
            if first == 1 {
                click_touchpoint(c, campaign, &contact, &now)?;
            }
        }
        // Statuses only move forward: an open after a click leaves `clicked`.
        let forward = clicked || status != "clicked";
        if !FINAL.contains(&status.as_str()) && forward {
            diesel::update(member)
                .set(cm::status.eq(if clicked { "clicked" } else { "opened" }))
                .execute(c)?;
        }
        crate::scoring::on_behaviour(c, crate::scoring::AppliesTo::Contact, &contact)
    })
}

/// A member's first click is a touchpoint of their journey, credited to the campaign.
fn click_touchpoint(c: &mut DbConn, campaign: &str, contact: &str, at: &str) -> ApiResult<()> {
    let name: String = crm_core::schema::campaigns::table
        .find(campaign)
        .select(crm_core::schema::campaigns::name)
        .first(c)?;
    crate::journeys::record(
        c,
        &crate::journeys::Touch {
            subject: ("contact", contact),
            kind: crate::journeys::TouchKind::EmailClick,
            campaign_id: Some(campaign),
            source: ("campaign_member", &format!("{campaign}:{contact}")),
            summary: format!("Clicked a link in {name}"),
            occurred_at: at,
        },
    )
}

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Open tracking
///
/// Records that the member opened the mail (once) and answers a 1×1 GIF. A token that isn't
/// the member's is a 403. Public.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/open", tag = "campaigns", operation_id = "track_open",
    params(("id" = String, Path, format = "uuid", description = "Campaign id"), LinkParams),
    security(()),
    responses((status = 200, description = "A 1×1 GIF", content_type = "image/gif", body = Vec<u8>), WriteProblems))]
#[get("/campaigns/{id}/open")]
pub async fn open(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<LinkParams>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let p = q.into_inner();
    state.db(move |c| engage(c, &id, &p, false)).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/gif")
        .insert_header(("Cache-Control", "no-store"))
        .body(PIXEL))
}

/// A click link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClickParams {
    #[param(format = "uuid")]
    pub contact: String,
    pub token: String,
    /// Where to go: one of the URLs written in the campaign's text.
    pub url: String,
}

/// Click tracking
///
/// Records the click (and the open it implies) and redirects (302) to `url`, which must be a
/// URL written in the campaign's own text: any other is a 403, so the link can't send people
/// elsewhere. A token that isn't the member's is a 403 whatever the URL (it is checked
/// first). Public.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/click", tag = "campaigns", operation_id = "track_click",
    params(("id" = String, Path, format = "uuid", description = "Campaign id"), ClickParams),
    security(()),
    responses((status = 302, description = "To the link's target"), WriteProblems))]
#[get("/campaigns/{id}/click")]
pub async fn click(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<ClickParams>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let p = q.into_inner();
    let target = state
        .db(move |c| {
            // The token first: a link that isn't the member's learns nothing, not even
            // whether the URL is one of the campaign's.
            member_by_token(c, &id, &p.contact, &p.token)?;
            let campaign = campaigns::find(c, &id)?;
            let body = campaign.body_text.unwrap_or_default();
            if !urls(&body).contains(&p.url.as_str()) {
                return Err(ApiError::Forbidden(
                    "this link does not lead anywhere the campaign does".into(),
                ));
            }
            let link = LinkParams {
                contact: p.contact,
                token: p.token,
            };
            engage(c, &id, &link, true)?;
            Ok(p.url)
        })
        .await?;
    Ok(HttpResponse::Found()
        .insert_header(("Location", target))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_the_text_go_through_the_click_link_once_each() {
        let links = Links {
            unsubscribe: String::new(),
            open: String::new(),
            click: "https://crm.example/c?contact=1&token=t".into(),
        };
        let text = "See https://shop.example/offer?a=1&b=2. Or https://shop.example/offer?a=1&b=2 again, not ftp://x";
        let out = track_links(text, &links);
        assert_eq!(
            out.matches("&url=https%3A%2F%2Fshop.example%2Foffer%3Fa%3D1%26b%3D2")
                .count(),
            2
        );
        assert!(out.contains("ftp://x"));
        assert_eq!(
            urls(text),
            [
                "https://shop.example/offer?a=1&b=2",
                "https://shop.example/offer?a=1&b=2"
            ]
        );
    }
}
