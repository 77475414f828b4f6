//! A lead's emails and phones, kept as a contact's are: several of each, labelled, one
//! primary. The primary ones are also on the lead row (`email`, `phone`), which is what
//! assignment rules, list filters and the recycle policy read. Unlike a contact, a lead keeps
//! a phone number that doesn't parse (web forms and trade-show scans are messy): its `e164` is
//! then the number as written.

use crate::leads::{Lead, LeadInput};
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::list::by_parent;
use crm_core::schema::{lead_emails as le, lead_phones as lp};
use crm_customers::common;
use crm_customers::contacts::{Email, EmailInput, Phone, PhoneInput};
use diesel::prelude::*;

/// The emails and phones an input asks for: `None` leaves the stored ones. `email` and
/// `phone` are shorthand for a list of one; `null` (or `[]`) removes them all.
pub struct Requested {
    pub emails: Option<Vec<EmailInput>>,
    pub phones: Option<Vec<PhoneInput>>,
}

pub fn requested(input: &LeadInput, raw: Option<&serde_json::Value>) -> ApiResult<Requested> {
    let cleared = |f: &str| raw.is_some_and(|r| r.get(f).is_some_and(|v| v.is_null()));
    for (one, many, both) in [
        (
            "email",
            "emails",
            input.email.is_some() && input.emails.is_some(),
        ),
        (
            "phone",
            "phones",
            input.phone.is_some() && input.phones.is_some(),
        ),
    ] {
        if both {
            return Err(common::invalid(
                one,
                "exclusive",
                &format!("send {one} or {many}, not both"),
            ));
        }
    }
    let emails = match (&input.emails, &input.email) {
        (Some(list), _) => Some(list.clone()),
        (None, Some(email)) => Some(vec![EmailInput {
            email: email.clone(),
            label: None,
            primary: true,
        }]),
        (None, None) if cleared("email") || cleared("emails") => Some(vec![]),
        (None, None) => None,
    };
    let phones = match (&input.phones, &input.phone) {
        (Some(list), _) => Some(list.clone()),
        (None, Some(number)) => Some(vec![PhoneInput {
            number: number.clone(),
            label: None,
            primary: true,
        }]),
        (None, None) if cleared("phone") || cleared("phones") => Some(vec![]),
        (None, None) => None,
    };
    Ok(Requested { emails, phones })
}

/// The primary email (the one marked, else the first), as stored: trimmed, lowercased.
pub fn primary_email(emails: &[EmailInput]) -> Option<String> {
    emails
        .iter()
        .find(|e| e.primary)
        .or(emails.first())
        .map(|e| e.email.trim().to_lowercase())
}

/// The primary phone as written, and its E.164 form when it parses.
pub fn primary_phone(phones: &[PhoneInput]) -> (Option<String>, Option<String>) {
    let p = phones.iter().find(|p| p.primary).or(phones.first());
    (
        p.map(|p| p.number.trim().to_string()),
        p.and_then(|p| common::to_e164(&p.number)),
    )
}

/// Replace the lead's emails and phones with the requested ones (those requested).
pub fn write(c: &mut DbConn, lead: &str, r: &Requested) -> ApiResult<()> {
    if let Some(emails) = &r.emails {
        diesel::delete(le::table.filter(le::lead_id.eq(lead))).execute(c)?;
        let primary = primary_email(emails);
        let mut seen = vec![];
        for e in emails {
            let email = e.email.trim().to_lowercase();
            if seen.contains(&email) {
                continue;
            }
            diesel::insert_into(le::table)
                .values((
                    le::lead_id.eq(lead),
                    le::email.eq(&email),
                    le::label.eq(&e.label),
                    le::is_primary.eq(Some(&email) == primary.as_ref()),
                ))
                .execute(c)?;
            seen.push(email);
        }
    }
    if let Some(phones) = &r.phones {
        diesel::delete(lp::table.filter(lp::lead_id.eq(lead))).execute(c)?;
        let primary = phones.iter().position(|p| p.primary).unwrap_or(0);
        let mut seen = vec![];
        for (i, p) in phones.iter().enumerate() {
            let number = p.number.trim();
            let e164 = common::to_e164(number).unwrap_or_else(|| number.to_string());
            if seen.contains(&e164) {
                continue;
            }
            diesel::insert_into(lp::table)
                .values((
                    lp::lead_id.eq(lead),
                    lp::number.eq(number),
                    lp::e164.eq(&e164),
                    lp::label.eq(&p.label),
                    lp::is_primary.eq(i == primary),
                ))
                .execute(c)?;
            seen.push(e164);
        }
    }
    Ok(())
}

/// Leads with their emails and phones: two queries for a whole page.
pub fn attach(c: &mut DbConn, mut leads: Vec<Lead>) -> ApiResult<Vec<Lead>> {
    let ids: Vec<&str> = leads.iter().map(|l| l.id.as_str()).collect();
    let mut emails = by_parent::<Email>(
        le::table
            .filter(le::lead_id.eq_any(&ids))
            .order((le::is_primary.desc(), le::email.asc()))
            .select((le::lead_id, (le::email, le::label, le::is_primary)))
            .load(c)?,
    );
    let mut phones = by_parent::<Phone>(
        lp::table
            .filter(lp::lead_id.eq_any(&ids))
            .order((lp::is_primary.desc(), lp::e164.asc()))
            .select((
                lp::lead_id,
                (lp::number, lp::e164, lp::label, lp::is_primary),
            ))
            .load(c)?,
    );
    for l in &mut leads {
        l.emails = emails.remove(&l.id).unwrap_or_default();
        l.phones = phones.remove(&l.id).unwrap_or_default();
    }
    Ok(leads)
}

/// Every email and every E.164 number of a lead, for duplicate detection.
pub fn of_lead(c: &mut DbConn, lead: &str) -> ApiResult<(Vec<String>, Vec<String>)> {
    let emails = le::table
        .filter(le::lead_id.eq(lead))
        .select(le::email)
        .load(c)?;
    let phones = lp::table
        .filter(lp::lead_id.eq(lead))
        .select(lp::e164)
        .load(c)?;
    Ok((emails, phones))
}

/// Leads other than `lead` sharing an email or a number, as (lead id, same email, same phone).
pub fn leads_sharing(
    c: &mut DbConn,
    lead: &str,
    emails: &[String],
    phones: &[String],
) -> ApiResult<Vec<(String, bool, bool)>> {
    let by_email: Vec<String> = le::table
        .filter(le::email.eq_any(emails))
        .filter(le::lead_id.ne(lead))
        .select(le::lead_id)
        .load(c)?;
    let by_phone: Vec<String> = lp::table
        .filter(lp::e164.eq_any(phones))
        .filter(lp::lead_id.ne(lead))
        .select(lp::lead_id)
        .load(c)?;
    let mut out: Vec<(String, bool, bool)> = vec![];
    for id in by_email.iter().chain(&by_phone) {
        if !out.iter().any(|(o, _, _)| o == id) {
            out.push((id.clone(), by_email.contains(id), by_phone.contains(id)));
        }
    }
    Ok(out)
}
