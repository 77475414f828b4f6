//! Duplicates and merges. A merge keeps a survivor, moves every related record to it,
//! archives the merged records with a `merged_into` pointer, and emits
//! `contact.merged` / `account.merged` so other domains move what they own.

use crate::accounts::{self, Account};
use crate::common;
use crate::contacts::{self, Contact};
use actix_web::{get, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{path_id, Json};
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{
    accounts as acc, activity_links as al, contact_accounts as ca, contact_consents as cc,
    contact_emails as ce, contact_phones as cp, contacts as con,
};
use crm_core::state::AppState;
use crm_core::{ids, search, timeline};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A possible duplicate and why it looks like one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Duplicate {
    pub contact: Contact,
    /// `same_email`, `same_phone`, `similar_name_at_account`.
    pub reasons: Vec<String>,
}

fn name_key(first: &str, last: &str) -> (String, String) {
    (last.trim().to_lowercase(), first.trim().to_lowercase())
}

/// Same first initial and last name, or the same full name.
fn similar_names(a: &Contact, b: &Contact) -> bool {
    let (al, af) = name_key(&a.first_name, &a.last_name);
    let (bl, bf) = name_key(&b.first_name, &b.last_name);
    !al.is_empty() && al == bl && (af == bf || af.chars().next() == bf.chars().next())
}

fn find_duplicates(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Vec<Duplicate>> {
    let me_contact = contacts::find(conn, me, id)?;
    let emails: Vec<String> = me_contact.emails.iter().map(|e| e.email.clone()).collect();
    let phones: Vec<String> = me_contact.phones.iter().map(|p| p.e164.clone()).collect();
    let accounts: Vec<String> = me_contact
        .accounts
        .iter()
        .map(|a| a.account_id.clone())
        .collect();
    let by_email: Vec<String> = ce::table
        .filter(ce::email.eq_any(&emails))
        .filter(ce::contact_id.ne(id))
        .select(ce::contact_id)
        .load(conn)?;
    let by_phone: Vec<String> = cp::table
        .filter(cp::e164.eq_any(&phones))
        .filter(cp::contact_id.ne(id))
        .select(cp::contact_id)
        .load(conn)?;
    let colleagues: Vec<String> = ca::table
        .filter(ca::account_id.eq_any(&accounts))
        .filter(ca::contact_id.ne(id))
        .select(ca::contact_id)
        .load(conn)?;
    let mut candidates: Vec<String> = by_email
        .iter()
        .chain(&by_phone)
        .chain(&colleagues)
        .cloned()
        .collect();
    candidates.sort();
    candidates.dedup();
    let mut out = vec![];
    for cid in candidates {
        let row = con::table
            .find(&cid)
            .filter(con::archived_at.is_null())
            .first::<contacts::ContactRow>(conn)
            .optional()?;
        let Some(row) = row else { continue };
        let other = contacts::load(conn, row)?;
        let mut reasons = vec![];
        if by_email.contains(&cid) {
            reasons.push("same_email".to_string());
        }
        if by_phone.contains(&cid) {
            reasons.push("same_phone".to_string());
        }
        if colleagues.contains(&cid) && similar_names(&me_contact, &other) {
            reasons.push("similar_name_at_account".to_string());
        }
        if !reasons.is_empty() {
            out.push(Duplicate {
                contact: other,
                reasons,
            });
        }
    }
    Ok(out)
}

/// Find likely duplicates of a contact.
///
/// Returns, unpaged, the live contacts that share an email or phone number with this one, or that
/// are linked to one of its accounts under a similar name (same last name, same first name or
/// initial), each with its `reasons` (`same_email`, `same_phone`, `similar_name_at_account`). Needs
/// `CustomersRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/duplicates", tag = "contacts",
    params(("id" = String, Path, format = "uuid", description = "Contact id")),
    responses((status = 200, description = "Contacts that look like the same person, with the reasons", body = Vec<Duplicate>), ReadProblems))]
#[get("/contacts/{id}/duplicates")]
pub async fn duplicates(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let id = path_id(&id)?;
    let dups = state.db(move |c| find_duplicates(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(dups))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The record that stays.
    #[schema(format = "uuid")]
    pub survivor_id: String,
    /// Records merged into the survivor and archived.
    #[schema(min_items = 1, max_items = 10)]
    pub merged_ids: Vec<String>,
}

/// Lock every record a merge touches before reading any of them.
fn lock_request(c: &mut DbConn, table: &'static str, req: &MergeRequest) -> ApiResult<()> {
    let mut all: Vec<&str> = req.merged_ids.iter().map(String::as_str).collect();
    all.push(&req.survivor_id);
    Ok(db::lock_rows(c, table, &all)?)
}

/// Check a merge request: ids well formed, the survivor not among the merged, none archived.
fn check_request(
    req: &MergeRequest,
    mut archived: impl FnMut(&str) -> ApiResult<Option<bool>>,
) -> ApiResult<(String, Vec<String>)> {
    let bad = |field: &str, code: &str, msg: &str| {
        ApiError::validation(vec![FieldError::new(field, code, msg)])
    };
    let survivor = ids::parse_id(&req.survivor_id)
        .ok_or_else(|| bad("survivor_id", "reference", "no such record"))?;
    if req.merged_ids.is_empty() || req.merged_ids.len() > 10 {
        return Err(bad(
            "merged_ids",
            "length",
            "merge 1 to 10 records at a time",
        ));
    }
    let mut merged = vec![];
    for (i, raw) in req.merged_ids.iter().enumerate() {
        let field = format!("merged_ids[{i}]");
        let id = ids::parse_id(raw).ok_or_else(|| bad(&field, "reference", "no such record"))?;
        if id == survivor {
            return Err(bad(&field, "self", "a record cannot be merged into itself"));
        }
        match archived(&id)? {
            None => return Err(bad(&field, "reference", "no such record")),
            Some(true) => {
                return Err(bad(
                    &field,
                    "archived",
                    "this record is archived or already merged",
                ))
            }
            Some(false) => {}
        }
        if !merged.contains(&id) {
            merged.push(id);
        }
    }
    match archived(&survivor)? {
        None => Err(bad("survivor_id", "reference", "no such record")),
        Some(true) => Err(bad(
            "survivor_id",
            "archived",
            "cannot merge into an archived or merged record",
        )),
        Some(false) => Ok((survivor, merged)),
    }
}

fn move_activity_links(
    conn: &mut DbConn,
    entity_type: &str,
    from: &str,
    to: &str,
) -> ApiResult<()> {
    let already: Vec<String> = al::table
        .filter(al::entity_type.eq(entity_type))
        .filter(al::entity_id.eq(to))
        .select(al::activity_id)
        .load(conn)?;
    diesel::delete(
        al::table
            .filter(al::entity_type.eq(entity_type))
            .filter(al::entity_id.eq(from))
            .filter(al::activity_id.eq_any(&already)),
    )
    .execute(conn)?;
    diesel::update(
        al::table
            .filter(al::entity_type.eq(entity_type))
            .filter(al::entity_id.eq(from)),
    )
    .set(al::entity_id.eq(to))
    .execute(conn)?;
    Ok(())
}

fn merge_contact_into(conn: &mut DbConn, survivor: &Contact, merged: &str) -> ApiResult<()> {
    let emails: Vec<String> = survivor.emails.iter().map(|e| e.email.clone()).collect();
    diesel::delete(
        ce::table
            .filter(ce::contact_id.eq(merged))
            .filter(ce::email.eq_any(&emails)),
    )
    .execute(conn)?;
    diesel::update(ce::table.filter(ce::contact_id.eq(merged)))
        .set((
            ce::contact_id.eq(&survivor.id),
            ce::is_primary.eq(survivor.emails.is_empty()),
        ))
        .execute(conn)?;
    let phones: Vec<String> = survivor.phones.iter().map(|p| p.e164.clone()).collect();
    diesel::delete(
        cp::table
            .filter(cp::contact_id.eq(merged))
            .filter(cp::e164.eq_any(&phones)),
    )
    .execute(conn)?;
    diesel::update(cp::table.filter(cp::contact_id.eq(merged)))
        .set((
            cp::contact_id.eq(&survivor.id),
            cp::is_primary.eq(survivor.phones.is_empty()),
        ))
        .execute(conn)?;
    let links: Vec<String> = survivor
        .accounts
        .iter()
        .map(|a| a.account_id.clone())
        .collect();
    diesel::delete(
        ca::table
            .filter(ca::contact_id.eq(merged))
            .filter(ca::account_id.eq_any(&links)),
    )
    .execute(conn)?;
    diesel::update(ca::table.filter(ca::contact_id.eq(merged)))
        .set(ca::contact_id.eq(&survivor.id))
        .execute(conn)?;
    let channels: Vec<&String> = survivor.consents.keys().collect();
    diesel::delete(
        cc::table
            .filter(cc::contact_id.eq(merged))
            .filter(cc::channel.eq_any(channels)),
    )
    .execute(conn)?;
    diesel::update(cc::table.filter(cc::contact_id.eq(merged)))
        .set(cc::contact_id.eq(&survivor.id))
        .execute(conn)?;
    move_activity_links(conn, "contact", merged, &survivor.id)?;
    timeline::move_entries(conn, "contact", merged, &survivor.id)?;
    search::remove(conn, "contact", merged)?;
    Ok(())
}

fn merge_contacts(conn: &mut DbConn, me: &Principal, req: &MergeRequest) -> ApiResult<Contact> {
    db::write_tx(conn, |c| {
        lock_request(c, "contacts", req)?;
        let (survivor_id, merged) = check_request(req, |id| {
            Ok(con::table
                .find(id)
                .select(con::archived_at)
                .first::<Option<String>>(c)
                .optional()?
                .map(|a| a.is_some()))
        })?;
        let survivor = contacts::find(c, me, &survivor_id)?;
        common::require_edit(c, me, survivor.owner_id.as_deref(), "contact")?;
        let now = ids::now();
        for id in &merged {
            let row = contacts::find_row(c, me, id)?;
            common::require_edit(c, me, row.owner_id.as_deref(), "contact")?;
            let current = contacts::find(c, me, &survivor_id)?;
            merge_contact_into(c, &current, id)?;
            if current.household_id.is_none() && row.household_id.is_some() {
                diesel::update(con::table.find(&survivor_id))
                    .set(con::household_id.eq(&row.household_id))
                    .execute(c)?;
            }
            diesel::update(con::table.find(id))
                .set((
                    con::merged_into.eq(&survivor_id),
                    con::archived_at.eq(&now),
                    con::version.eq(row.version + 1),
                    con::updated_at.eq(&now),
                ))
                .execute(c)?;
            let gone = contacts::find(c, me, id)?;
            audit::record(
                c,
                Change {
                    actor: &Actor::from(me),
                    action: "merged_into",
                    entity_type: "contact",
                    entity_id: id,
                    changes: serde_json::json!({"merged_into": survivor_id}),
                    record: common::to_json(&gone),
                },
            )?;
        }
        diesel::update(con::table.find(&survivor_id))
            .set((
                con::version.eq(survivor.version + 1),
                con::updated_at.eq(&now),
            ))
            .execute(c)?;
        let after = contacts::find(c, me, &survivor_id)?;
        contacts::index_terms(c, &after)?;
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "merged",
                entity_type: "contact",
                entity_id: &survivor_id,
                changes: serde_json::json!({"merged_ids": merged}),
                record: common::to_json(&after),
            },
        )?;
        Ok(after)
    })
}

fn merge_accounts(conn: &mut DbConn, me: &Principal, req: &MergeRequest) -> ApiResult<Account> {
    db::write_tx(conn, |c| {
        lock_request(c, "accounts", req)?;
        let (survivor_id, merged) = check_request(req, |id| {
            Ok(acc::table
                .find(id)
                .select(acc::archived_at)
                .first::<Option<String>>(c)
                .optional()?
                .map(|a| a.is_some()))
        })?;
        let survivor = accounts::find(c, me, &survivor_id)?;
        common::require_edit(c, me, survivor.owner_id.as_deref(), "account")?;
        let now = ids::now();
        for id in &merged {
            let row = accounts::find(c, me, id)?;
            common::require_edit(c, me, row.owner_id.as_deref(), "account")?;
            let linked: Vec<String> = ca::table
                .filter(ca::account_id.eq(&survivor_id))
                .select(ca::contact_id)
                .load(c)?;
            diesel::delete(
                ca::table
                    .filter(ca::account_id.eq(id))
                    .filter(ca::contact_id.eq_any(&linked)),
            )
            .execute(c)?;
            diesel::update(ca::table.filter(ca::account_id.eq(id)))
                .set(ca::account_id.eq(&survivor_id))
                .execute(c)?;
            move_activity_links(c, "account", id, &survivor_id)?;
            timeline::move_entries(c, "account", id, &survivor_id)?;
            // The merged account's children now hang under the survivor; if the survivor
            // itself was one of them, it takes the merged account's place instead.
            diesel::update(
                acc::table
                    .filter(acc::parent_id.eq(id))
                    .filter(acc::id.ne(&survivor_id)),
            )
            .set(acc::parent_id.eq(&survivor_id))
            .execute(c)?;
            let current_parent: Option<String> = acc::table
                .find(&survivor_id)
                .select(acc::parent_id)
                .first(c)?;
            if current_parent.as_deref() == Some(id.as_str()) {
                diesel::update(acc::table.find(&survivor_id))
                    .set(acc::parent_id.eq(&row.parent_id))
                    .execute(c)?;
            }
            search::remove(c, "account", id)?;
            diesel::update(acc::table.find(id))
                .set((
                    acc::merged_into.eq(&survivor_id),
                    acc::parent_id.eq(None::<String>),
                    acc::archived_at.eq(&now),
                    acc::version.eq(row.version + 1),
                    acc::updated_at.eq(&now),
                ))
                .execute(c)?;
            let gone: Account = accounts::find(c, me, id)?.into();
            audit::record(
                c,
                Change {
                    actor: &Actor::from(me),
                    action: "merged_into",
                    entity_type: "account",
                    entity_id: id,
                    changes: serde_json::json!({"merged_into": survivor_id}),
                    record: common::to_json(&gone),
                },
            )?;
        }
        diesel::update(acc::table.find(&survivor_id))
            .set((
                acc::version.eq(survivor.version + 1),
                acc::updated_at.eq(&now),
            ))
            .execute(c)?;
        let after: Account = accounts::find(c, me, &survivor_id)?.into();
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "merged",
                entity_type: "account",
                entity_id: &survivor_id,
                changes: serde_json::json!({"merged_ids": merged}),
                record: common::to_json(&after),
            },
        )?;
        Ok(after)
    })
}

/// Merge contacts into a surviving contact.
///
/// In one transaction, moves the emails, phones, account links, consents, activities and timeline
/// of up to 10 `merged_ids` to `survivor_id` (skipping what the survivor already has), then
/// archives each merged contact with `merged_into` set; returns the survivor with its `ETag`. Needs
/// `CustomersWrite` and the right to edit every record involved (owner, owner's team or a manager);
/// unknown, archived or already merged records and self-merges are a 422. Emits
/// `contact.merged_into` for each merged contact and `contact.merged` for the survivor, both
/// audited.
#[utoipa::path(post, path = "/api/v1/contacts/merge", tag = "contacts", request_body = MergeRequest,
    responses((status = 200, description = "The survivor, with everything moved to it", body = Contact), WriteProblems))]
pub async fn merge_contacts_route(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<MergeRequest>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    let contact = state.db(move |c| merge_contacts(c, &me, &body)).await?;
    Ok(crm_core::respond::with_etag(contact.version, &contact))
}

/// Merge accounts into a surviving account.
///
/// In one transaction, moves the contact links, activities, timeline and child accounts of up to 10
/// `merged_ids` to `survivor_id`, then archives each merged account with `merged_into` set; returns
/// the survivor with its `ETag`. Needs `CustomersWrite` and the right to edit every record involved
/// (owner, owner's team or a manager); unknown, archived or already merged records and self-merges
/// are a 422. Emits `account.merged_into` for each merged account and `account.merged` for the
/// survivor, both audited.
#[utoipa::path(post, path = "/api/v1/accounts/merge", tag = "accounts", request_body = MergeRequest,
    responses((status = 200, description = "The survivor, with everything moved to it", body = Account), WriteProblems))]
pub async fn merge_accounts_route(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<MergeRequest>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    let account = state.db(move |c| merge_accounts(c, &me, &body)).await?;
    Ok(crm_core::respond::with_etag(account.version, &account))
}
