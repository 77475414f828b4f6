//! Duplicate detection for leads: other leads, and contacts, that share the lead's email or
//! phone number — the check to run before working a lead someone may already own, and
//! before converting one whose person is already a customer.

use crate::lead_channels;
use crate::leads::{self, Lead, LeadRow};
use actix_web::{get, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::extract::path_id;
use crm_core::respond::ReadProblems;
use crm_core::schema::{contact_emails, contact_phones, contacts, leads as lead_rows};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// The most matches of each kind returned.
const LIMIT: i64 = 50;

/// A contact who looks like the lead's person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactMatch {
    pub contact_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `same_email` and/or `same_phone`.
    pub reasons: Vec<String>,
}

fn named(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A lead that looks like the same person.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadMatch {
    pub lead: Lead,
    /// `same_email` and/or `same_phone`.
    pub reasons: Vec<String>,
}

/// What a lead may duplicate.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadDuplicates {
    pub leads: Vec<LeadMatch>,
    pub contacts: Vec<ContactMatch>,
}

fn reasons(same_email: bool, same_phone: bool) -> Vec<String> {
    [(same_email, "same_email"), (same_phone, "same_phone")]
        .into_iter()
        .filter(|(hit, _)| *hit)
        .map(|(_, r)| r.to_string())
        .collect()
}

pub fn find_duplicates(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<LeadDuplicates> {
    leads::find(c, me, id)?;
    let (emails, phones) = lead_channels::of_lead(c, id)?;
    let sharing = lead_channels::leads_sharing(c, id, &emails, &phones)?;
    let rows: Vec<LeadRow> = lead_rows::table
        .filter(lead_rows::id.eq_any(sharing.iter().map(|(l, _, _)| l)))
        .filter(lead_rows::archived_at.is_null())
        .order(lead_rows::created_at.asc())
        .limit(LIMIT)
        .select(LeadRow::as_select())
        .load(c)?;
    let found = lead_channels::attach(c, rows.into_iter().map(Lead::from).collect())?;
    let by_email: Vec<String> = contact_emails::table
        .filter(contact_emails::email.eq_any(&emails))
        .select(contact_emails::contact_id)
        .load(c)?;
    let by_phone: Vec<String> = contact_phones::table
        .filter(contact_phones::e164.eq_any(&phones))
        .select(contact_phones::contact_id)
        .load(c)?;
    let people: Vec<(String, String, String)> = contacts::table
        .filter(contacts::id.eq_any(by_email.iter().chain(&by_phone)))
        .filter(contacts::archived_at.is_null())
        .order(contacts::id.asc())
        .limit(LIMIT)
        .select((contacts::id, contacts::first_name, contacts::last_name))
        .load(c)?;
    Ok(LeadDuplicates {
        leads: found
            .into_iter()
            .map(|lead| {
                let (_, email, phone) = sharing
                    .iter()
                    .find(|(l, _, _)| *l == lead.id)
                    .cloned()
                    .unwrap_or_default();
                LeadMatch {
                    reasons: reasons(email, phone),
                    lead,
                }
            })
            .collect(),
        contacts: people
            .into_iter()
            .map(|(id, first_name, last_name)| ContactMatch {
                reasons: reasons(by_email.contains(&id), by_phone.contains(&id)),
                contact_id: id,
                first_name: named(first_name),
                last_name: named(last_name),
            })
            .collect(),
    })
}

/// Find leads and contacts that look like this lead.
///
/// Other live leads, and live contacts, with any of the lead's emails (case-insensitively) or
/// any of its phone numbers (compared in E.164, so `+44 20 7946 0958` matches `020 7946 0958` written in the UK),
/// each with its `reasons`; up to 50 of each. Needs `SalesRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/leads/{id}/duplicates", tag = "leads",
    params(("id" = String, Path, format = "uuid", description = "Lead id")),
    responses((status = 200, description = "Leads and contacts that look like the same person", body = LeadDuplicates), ReadProblems))]
#[get("/leads/{id}/duplicates")]
pub async fn lead_duplicates(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = path_id(&id)?;
    let found = state.db(move |c| find_duplicates(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(found))
}
