//! Journeys: the touchpoints where a contact or lead met the company — a form submission, a
//! campaign response, an email click, a meeting, a social message — recorded as they happen
//! and shown in order. Attribution (`attribution.rs`) credits campaigns with opportunities
//! from them.

use actix_web::{get, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{DbConn, MultiBackend};
use crm_core::error::ApiResult;
use crm_core::extract::path_id;
use crm_core::ids;
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::respond::ReadProblems;
use crm_core::schema::{activities as act, activity_links as al, campaigns, contacts, leads};
use crm_core::schema::{touchpoints as tp, touchpoints};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of moment a touchpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TouchKind {
    FormSubmission,
    CampaignResponse,
    EmailClick,
    Meeting,
    SocialMessage,
}

/// A touchpoint to record.
pub struct Touch<'a> {
    /// `contact` or `lead`, and its id.
    pub subject: (&'a str, &'a str),
    pub kind: TouchKind,
    pub campaign_id: Option<&'a str>,
    /// What recorded it (`form_submission`, `campaign_member`, `activity`, `social_message`)
    /// and its id: one touchpoint per source and subject.
    pub source: (&'a str, &'a str),
    pub summary: String,
    pub occurred_at: &'a str,
}

/// Record a touchpoint once: a retried or repeated source adds nothing.
pub fn record(c: &mut DbConn, t: &Touch) -> ApiResult<()> {
    let kind = crate::enum_text(t.kind);
    let known: i64 = tp::table
        .filter(tp::kind.eq(&kind))
        .filter(tp::source_id.eq(t.source.1))
        .filter(tp::subject_id.eq(t.subject.1))
        .count()
        .get_result(c)?;
    if known > 0 {
        return Ok(());
    }
    diesel::insert_into(tp::table)
        .values((
            tp::id.eq(ids::new_id()),
            tp::subject_type.eq(t.subject.0),
            tp::subject_id.eq(t.subject.1),
            tp::kind.eq(&kind),
            tp::campaign_id.eq(t.campaign_id),
            tp::source_type.eq(t.source.0),
            tp::source_id.eq(t.source.1),
            tp::summary.eq(&t.summary),
            tp::occurred_at.eq(t.occurred_at),
            tp::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    Ok(())
}

/// The `crm_core::hooks` listener on activities: a live meeting is a touchpoint of each
/// contact and lead it is linked to. Rewritten on every change, so relinking or archiving a
/// meeting moves or removes its touchpoints.
pub fn on_activity_change(c: &mut DbConn, _entity: &str, id: &str, action: &str) -> ApiResult<()> {
    let Some((kind, subject, starts_at, created_at, archived_at)) = act::table
        .find(id)
        .select((
            act::kind,
            act::subject,
            act::starts_at,
            act::created_at,
            act::archived_at,
        ))
        .first::<(String, String, Option<String>, String, Option<String>)>(c)
        .optional()?
    else {
        return Ok(());
    };
    let meeting = kind == "meeting";
    if !meeting && action == "created" {
        return Ok(());
    }
    diesel::delete(
        tp::table
            .filter(tp::source_type.eq("activity"))
            .filter(tp::source_id.eq(id)),
    )
    .execute(c)?;
    if !meeting || archived_at.is_some() {
        return Ok(());
    }
    let linked: Vec<(String, String)> = al::table
        .filter(al::activity_id.eq(id))
        .filter(al::entity_type.eq_any(["contact", "lead"]))
        .select((al::entity_type, al::entity_id))
        .load(c)?;
    let at = starts_at.unwrap_or(created_at);
    for (entity_type, entity_id) in &linked {
        record(
            c,
            &Touch {
                subject: (entity_type, entity_id),
                kind: TouchKind::Meeting,
                campaign_id: None,
                source: ("activity", id),
                summary: format!("Meeting: {subject}"),
                occurred_at: &at,
            },
        )?;
    }
    Ok(())
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = touchpoints)]
struct Row {
    id: String,
    subject_type: String,
    subject_id: String,
    kind: String,
    campaign_id: Option<String>,
    source_type: String,
    source_id: String,
    summary: String,
    occurred_at: String,
}

/// A moment in a contact's or lead's journey.
#[derive(Debug, Serialize, ToSchema)]
pub struct Touchpoint {
    #[schema(format = "uuid")]
    pub id: String,
    pub kind: TouchKind,
    /// `contact` or `lead`: a contact's journey includes the leads converted into it and
    /// the contacts merged into it.
    pub subject_type: String,
    #[schema(format = "uuid")]
    pub subject_id: String,
    /// The campaign it counts for in attribution.
    #[schema(format = "uuid")]
    pub campaign_id: Option<String>,
    pub campaign_name: Option<String>,
    /// `form_submission`, `campaign_member` (`<campaign id>:<contact id>`), `activity` or
    /// `social_message`.
    pub source_type: String,
    pub source_id: String,
    pub summary: String,
    pub occurred_at: String,
}

pub const JOURNEY: ListSpec = ListSpec {
    sort_fields: &["occurred_at"],
    default_sort: "occurred_at",
    filters: &[Filter::of::<TouchKind>("kind", "Touchpoints of this kind")],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(tp::table, tp::BoxedQuery<'static, MultiBackend>, {
    "occurred_at" => tp::occurred_at,
    "id" => tp::id,
});

/// The ids whose touchpoints make up a contact's journey: its own, those of the leads
/// converted into it and of the contacts merged into it. Resolved first, so the touchpoint
/// query is one index lookup per id.
fn contact_subjects(c: &mut DbConn, contact: &str) -> ApiResult<Vec<String>> {
    let mut ids: Vec<String> = leads::table
        .filter(leads::converted_contact_id.eq(contact))
        .select(leads::id)
        .load(c)?;
    ids.extend(
        contacts::table
            .filter(contacts::merged_into.eq(contact))
            .select(contacts::id)
            .load::<String>(c)?,
    );
    ids.push(contact.to_string());
    Ok(ids)
}

fn page_of(c: &mut DbConn, subjects: Vec<String>, p: &ListParams) -> ApiResult<Page<Touchpoint>> {
    let mut q = tp::table
        .into_boxed::<MultiBackend>()
        .filter(tp::subject_id.eq_any(subjects));
    if let Some(k) = crate::enum_filter::<TouchKind>(p, "kind")? {
        q = q.filter(tp::kind.eq(crate::enum_text(k)));
    }
    let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
    let ids: Vec<&String> = rows.iter().filter_map(|r| r.campaign_id.as_ref()).collect();
    let names: Vec<(String, String)> = if ids.is_empty() {
        vec![]
    } else {
        campaigns::table
            .filter(campaigns::id.eq_any(ids))
            .select((campaigns::id, campaigns::name))
            .load(c)?
    };
    let out = rows
        .into_iter()
        .map(|r| Touchpoint {
            campaign_name: names
                .iter()
                .find(|n| Some(&n.0) == r.campaign_id.as_ref())
                .map(|n| n.1.clone()),
            id: r.id,
            kind: crate::enum_from(&r.kind, TouchKind::Meeting),
            subject_type: r.subject_type,
            subject_id: r.subject_id,
            campaign_id: r.campaign_id,
            source_type: r.source_type,
            source_id: r.source_id,
            summary: r.summary,
            occurred_at: r.occurred_at,
        })
        .collect();
    list::page(out, p)
}

/// A contact's journey
///
/// The contact's touchpoints in the order they happened — form submissions, campaign
/// responses, email clicks, meetings, social messages — with those of the leads converted
/// into it and the contacts merged into it; `kind=` for one kind. Everyone inside the
/// company who sees the contact (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/journey", tag = "journeys", operation_id = "get_contact_journey",
    params(
        ("id" = String, Path, format = "uuid", description = "Contact id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?occurred_at$", description = "occurred_at (default) or -occurred_at"),
        ("kind" = Option<TouchKind>, Query, nullable = false, description = "Touchpoints of this kind"),
    ),
    responses((status = 200, description = "A page of touchpoints", body = Page<Touchpoint>), ReadProblems))]
#[get("/contacts/{id}/journey")]
pub async fn contact_journey(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &JOURNEY)?;
    let page = state
        .db(move |c| {
            crm_customers::contacts::find_row(c, &me, &id)?;
            let subjects = contact_subjects(c, &id)?;
            page_of(c, subjects, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A lead's journey
///
/// The lead's touchpoints in order, and once it is converted, those of its contact.
/// Everyone inside the company who sees the lead (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/leads/{id}/journey", tag = "journeys", operation_id = "get_lead_journey",
    params(
        ("id" = String, Path, format = "uuid", description = "Lead id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?occurred_at$", description = "occurred_at (default) or -occurred_at"),
        ("kind" = Option<TouchKind>, Query, nullable = false, description = "Touchpoints of this kind"),
    ),
    responses((status = 200, description = "A page of touchpoints", body = Page<Touchpoint>), ReadProblems))]
#[get("/leads/{id}/journey")]
pub async fn lead_journey(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &JOURNEY)?;
    let page = state
        .db(move |c| {
            let lead = crm_sales::leads::find(c, &me, &id)?;
            let subjects = match &lead.converted_contact_id {
                Some(contact) => contact_subjects(c, contact)?,
                None => vec![id.clone()],
            };
            page_of(c, subjects, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
