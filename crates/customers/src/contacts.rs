//! Contacts: people, with several emails and phones, links to accounts with a role,
//! a lifecycle stage, consent per channel, and an optional household.

use crate::common;
use actix_web::{get, web, HttpResponse};
use crm_core::access::{Ownership, Permission};
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::path_id;
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::params::PageParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::ReadProblems;
use crm_core::schema::{
    accounts, contact_accounts as ca, contact_consents as cc, contact_emails as ce,
    contact_phones as cp, contacts, households,
};
use crm_core::state::AppState;
use crm_core::timeline::{self, TimelineEntry};
use crm_core::{etag, ids, search, visibility};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use validator::Validate;

#[derive(Queryable, Clone)]
pub struct ContactRow {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub job_title: Option<String>,
    pub lifecycle_stage: String,
    pub owner_id: Option<String>,
    pub household_id: Option<String>,
    pub tags: String,
    pub preferred_language: Option<String>,
    pub social_profiles: String,
    pub custom: String,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub merged_into: Option<String>,
    pub erased_at: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Subscriber,
    Lead,
    Opportunity,
    Customer,
    Evangelist,
    Other,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    DecisionMaker,
    Buyer,
    Influencer,
    User,
    Billing,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Phone,
    Post,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Granted,
    Withdrawn,
}

fn enum_text<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn enum_parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailInput {
    #[validate(email(message = "must be a valid email address"), length(max = 254))]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub label: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    /// As written; stored also in E.164 so a lookup by any written form finds it.
    #[validate(length(min = 3, max = 50))]
    #[schema(min_length = 3, max_length = 50, example = "+44 20 7946 0958")]
    pub number: String,
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub label: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLinkInput {
    #[schema(format = "uuid")]
    pub account_id: String,
    pub role: AccountRole,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    pub status: ConsentStatus,
    /// Where the consent came from: `web_form`, `phone_call`, `import`…
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub source: String,
}

/// Fields of a contact a client sends. On PATCH every field is optional; lists given
/// replace the stored ones; consents given are recorded per channel.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub job_title: Option<String>,
    pub lifecycle_stage: Option<LifecycleStage>,
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
    #[schema(format = "uuid")]
    pub household_id: Option<String>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    /// BCP 47 language tag such as `en` or `pt-BR`.
    #[validate(length(min = 2, max = 35))]
    #[schema(min_length = 2, max_length = 35)]
    pub preferred_language: Option<String>,
    /// Network name → profile URL.
    pub social_profiles: Option<BTreeMap<String, String>>,
    #[validate(nested, length(max = 20))]
    #[schema(max_items = 20)]
    pub emails: Option<Vec<EmailInput>>,
    #[validate(nested, length(max = 20))]
    #[schema(max_items = 20)]
    pub phones: Option<Vec<PhoneInput>>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub accounts: Option<Vec<AccountLinkInput>>,
    pub consents: Option<BTreeMap<Channel, ConsentInput>>,
    /// Values of the custom fields defined for this object (see `/meta/objects`); `null` clears one.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
    /// The record's key in another system (ERP, billing…); unique with `external_id`.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, Queryable)]
pub struct Email {
    pub email: String,
    pub label: Option<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema, Queryable)]
pub struct Phone {
    pub number: String,
    pub e164: String,
    pub label: Option<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountLink {
    pub account_id: String,
    pub role: AccountRole,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Consent {
    pub status: ConsentStatus,
    pub source: String,
    pub recorded_at: String,
}

/// A person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub job_title: Option<String>,
    pub lifecycle_stage: LifecycleStage,
    pub owner_id: Option<String>,
    pub household_id: Option<String>,
    pub tags: Vec<String>,
    pub preferred_language: Option<String>,
    pub social_profiles: BTreeMap<String, String>,
    pub emails: Vec<Email>,
    pub phones: Vec<Phone>,
    pub accounts: Vec<AccountLink>,
    /// Consent per channel (`email`, `sms`, `phone`, `post`); a missing channel means no consent recorded.
    pub consents: BTreeMap<String, Consent>,
    pub merged_into: Option<String>,
    pub erased_at: Option<String>,
    /// Custom field values, by key.
    #[schema(value_type = Object)]
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &[
        "last_name",
        "first_name",
        "created_at",
        "updated_at",
        "custom.*",
    ],
    default_sort: "last_name",
    filters: &[
        Filter::id("owner_id", "Owned by this user"),
        Filter::id("account_id", "Linked to this account"),
        Filter::id("household_id", "Living in this household"),
        Filter::of::<LifecycleStage>("lifecycle_stage", "In this stage"),
        Filter::text("email", "Having this email (any case)"),
        Filter::text("phone", "Having this phone number, in any written form"),
        Filter::text("tag", "Carrying this tag"),
        Filter::time("created_after", "RFC 3339 timestamp"),
        Filter::time("created_before", "RFC 3339 timestamp"),
        Filter::CUSTOM,
    ],
    search: Some("Words that start a name, email, phone or company"),
    null_sorts_as: &[],
};

crm_core::sortable!(contacts::table, contacts::BoxedQuery<'static, MultiBackend>, {
    "last_name" => contacts::last_name,
    "first_name" => contacts::first_name,
    "created_at" => contacts::created_at,
    "updated_at" => contacts::updated_at,
    "id" => contacts::id,
});

/// Whether a live (not archived) contact has this id.
pub fn exists(conn: &mut DbConn, id: &str) -> ApiResult<bool> {
    let n: i64 = contacts::table
        .filter(contacts::id.eq(id))
        .filter(contacts::archived_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn find_row(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<ContactRow> {
    visibility::check_sees(me, "contact")?;
    contacts::table
        .find(id)
        .first::<ContactRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("contact"))
}

/// Assemble a contact with its emails, phones, account links and consents.
pub fn load(conn: &mut DbConn, row: ContactRow) -> ApiResult<Contact> {
    crm_core::list::only(load_many(conn, vec![row])?)
}

/// What a contact has in its own tables: emails, phones, account links, consents.
struct Parts {
    emails: Vec<Email>,
    phones: Vec<Phone>,
    links: Vec<(String, String)>,
    consents: Vec<(String, String, String, String)>,
}

/// Contacts with their emails, phones, account links and consents: four queries for a
/// whole page, whatever its size.
pub fn load_many(conn: &mut DbConn, rows: Vec<ContactRow>) -> ApiResult<Vec<Contact>> {
    use crm_core::list::by_parent;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut emails = by_parent::<Email>(
        ce::table
            .filter(ce::contact_id.eq_any(&ids))
            .order((ce::is_primary.desc(), ce::email.asc()))
            .select((ce::contact_id, (ce::email, ce::label, ce::is_primary)))
            .load(conn)?,
    );
    let mut phones = by_parent::<Phone>(
        cp::table
            .filter(cp::contact_id.eq_any(&ids))
            .order((cp::is_primary.desc(), cp::e164.asc()))
            .select((
                cp::contact_id,
                (cp::number, cp::e164, cp::label, cp::is_primary),
            ))
            .load(conn)?,
    );
    let mut links = by_parent(
        ca::table
            .filter(ca::contact_id.eq_any(&ids))
            .order(ca::account_id.asc())
            .select((ca::contact_id, (ca::account_id, ca::role)))
            .load(conn)?,
    );
    let mut consents = by_parent(
        cc::table
            .filter(cc::contact_id.eq_any(&ids))
            .select((
                cc::contact_id,
                (cc::channel, cc::status, cc::source, cc::recorded_at),
            ))
            .load(conn)?,
    );
    Ok(rows
        .into_iter()
        .map(|row| {
            let parts = Parts {
                emails: emails.remove(&row.id).unwrap_or_default(),
                phones: phones.remove(&row.id).unwrap_or_default(),
                links: links.remove(&row.id).unwrap_or_default(),
                consents: consents.remove(&row.id).unwrap_or_default(),
            };
            contact(row, parts)
        })
        .collect())
}

fn contact(row: ContactRow, parts: Parts) -> Contact {
    let Parts {
        emails,
        phones,
        links,
        consents,
    } = parts;
    Contact {
        lifecycle_stage: enum_parse(&row.lifecycle_stage).unwrap_or(LifecycleStage::Other),
        tags: common::parse_json(&row.tags),
        social_profiles: common::parse_json(&row.social_profiles),
        custom: common::parse_json(&row.custom),
        emails,
        phones,
        accounts: links
            .into_iter()
            .filter_map(|(account_id, role)| {
                enum_parse(&role).map(|role| AccountLink { account_id, role })
            })
            .collect(),
        consents: consents
            .into_iter()
            .filter_map(|(ch, st, source, recorded_at)| {
                enum_parse(&st).map(|status| {
                    (
                        ch,
                        Consent {
                            status,
                            source,
                            recorded_at,
                        },
                    )
                })
            })
            .collect(),
        id: row.id,
        first_name: row.first_name,
        last_name: row.last_name,
        job_title: row.job_title,
        owner_id: row.owner_id,
        household_id: row.household_id,
        preferred_language: row.preferred_language,
        merged_into: row.merged_into,
        erased_at: row.erased_at,
        external_source: row.external_source,
        external_id: row.external_id,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
        archived_at: row.archived_at,
    }
}

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Contact> {
    let row = find_row(conn, me, id)?;
    load(conn, row)
}

/// Validate the parts of a contact input that need more than field rules; returns the
/// phones normalised to E.164, in input order.
fn check_parts(conn: &mut DbConn, input: &ContactInput) -> ApiResult<Vec<String>> {
    input.validate()?;
    let mut errors = vec![];
    let mut e164 = vec![];
    for (i, p) in input.phones.iter().flatten().enumerate() {
        match common::to_e164(&p.number) {
            Some(n) => e164.push(n),
            None => errors.push(FieldError::new(
                &format!("phones[{i}].number"),
                "phone",
                "is not a valid phone number",
            )),
        }
    }
    for (i, link) in input.accounts.iter().flatten().enumerate() {
        let ok = ids::parse_id(&link.account_id)
            .map(|id| crate::accounts::exists(conn, &id))
            .transpose()?
            .unwrap_or(false);
        if !ok {
            errors.push(FieldError::new(
                &format!("accounts[{i}].account_id"),
                "reference",
                "no such account",
            ));
        }
    }
    if let Some(h) = &input.household_id {
        if let Some(id) = ids::parse_id(h) {
            // Held until commit, so the household cannot be archived under the new member.
            db::lock_row(conn, "households", &id)?;
        }
        let ok = ids::parse_id(h)
            .map(|id| {
                households::table
                    .filter(households::id.eq(id))
                    .filter(households::archived_at.is_null())
                    .count()
                    .get_result::<i64>(conn)
            })
            .transpose()?
            .unwrap_or(0)
            > 0;
        if !ok {
            errors.push(FieldError::new(
                "household_id",
                "reference",
                "no such household",
            ));
        }
    }
    for (network, url) in input.social_profiles.iter().flatten() {
        if network.is_empty()
            || network.len() > 50
            || url.len() > 500
            || !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push(FieldError::new(
                &format!("social_profiles.{network}"),
                "url",
                "must be an http(s) URL",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(e164)
}

fn write_emails(conn: &mut DbConn, id: &str, emails: &[EmailInput]) -> ApiResult<()> {
    diesel::delete(ce::table.filter(ce::contact_id.eq(id))).execute(conn)?;
    let primary = emails.iter().position(|e| e.primary).unwrap_or(0);
    let mut seen = vec![];
    for (i, e) in emails.iter().enumerate() {
        let email = e.email.trim().to_lowercase();
        if seen.contains(&email) {
            continue;
        }
        diesel::insert_into(ce::table)
            .values((
                ce::id.eq(ids::new_id()),
                ce::contact_id.eq(id),
                ce::email.eq(&email),
                ce::label.eq(&e.label),
                ce::is_primary.eq(i == primary),
            ))
            .execute(conn)?;
        seen.push(email);
    }
    Ok(())
}

fn write_phones(
    conn: &mut DbConn,
    id: &str,
    phones: &[PhoneInput],
    e164: &[String],
) -> ApiResult<()> {
    diesel::delete(cp::table.filter(cp::contact_id.eq(id))).execute(conn)?;
    let primary = phones.iter().position(|p| p.primary).unwrap_or(0);
    let mut seen: Vec<&String> = vec![];
    for (i, (p, n)) in phones.iter().zip(e164).enumerate() {
        if seen.contains(&n) {
            continue;
        }
        diesel::insert_into(cp::table)
            .values((
                cp::id.eq(ids::new_id()),
                cp::contact_id.eq(id),
                cp::number.eq(p.number.trim()),
                cp::e164.eq(n),
                cp::label.eq(&p.label),
                cp::is_primary.eq(i == primary),
            ))
            .execute(conn)?;
        seen.push(n);
    }
    Ok(())
}

fn write_links(conn: &mut DbConn, id: &str, links: &[AccountLinkInput]) -> ApiResult<()> {
    diesel::delete(ca::table.filter(ca::contact_id.eq(id))).execute(conn)?;
    let mut seen = vec![];
    for l in links {
        let account = ids::parse_id(&l.account_id).unwrap_or_default();
        if seen.contains(&account) {
            continue;
        }
        diesel::insert_into(ca::table)
            .values((
                ca::contact_id.eq(id),
                ca::account_id.eq(&account),
                ca::role.eq(enum_text(&l.role)),
            ))
            .execute(conn)?;
        seen.push(account);
    }
    Ok(())
}

fn write_consents(
    conn: &mut DbConn,
    id: &str,
    consents: &BTreeMap<Channel, ConsentInput>,
) -> ApiResult<()> {
    for (channel, c) in consents {
        c.validate()?;
        record_consent(conn, id, *channel, c.status, c.source.trim(), &ids::now())?;
    }
    Ok(())
}

/// Record a contact's consent on one channel, from `source` (`web_form`, `unsubscribe`,
/// `sms_reply`…), replacing what was recorded there before. In the caller's transaction.
pub fn record_consent(
    conn: &mut DbConn,
    id: &str,
    channel: Channel,
    status: ConsentStatus,
    source: &str,
    at: &str,
) -> ApiResult<()> {
    // Replacing the channel's row is a delete then an insert: two recordings at once (a form
    // and an unsubscribe link, two replies) take turns on the contact, or the later insert
    // would hit the first one's row and fail the request.
    db::lock_row(conn, "contacts", id)?;
    let channel = enum_text(&channel);
    diesel::delete(
        cc::table
            .filter(cc::contact_id.eq(id))
            .filter(cc::channel.eq(&channel)),
    )
    .execute(conn)?;
    diesel::insert_into(cc::table)
        .values((
            cc::contact_id.eq(id),
            cc::channel.eq(&channel),
            cc::status.eq(enum_text(&status)),
            cc::source.eq(source),
            cc::recorded_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Keep the search index in step with the contact and the names of its accounts.
pub fn index_terms(conn: &mut DbConn, c: &Contact) -> ApiResult<()> {
    let account_ids: Vec<String> = c.accounts.iter().map(|a| a.account_id.clone()).collect();
    let company_names: Vec<String> = accounts::table
        .filter(accounts::id.eq_any(&account_ids))
        .select(accounts::name)
        .load(conn)?;
    let mut texts: Vec<&str> = vec![&c.first_name, &c.last_name];
    texts.extend(c.emails.iter().map(|e| e.email.as_str()));
    texts.extend(c.phones.iter().map(|p| p.e164.as_str()));
    texts.extend(company_names.iter().map(String::as_str));
    search::index(conn, "contact", &c.id, &texts)
}

fn record(
    conn: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Contact,
) -> ApiResult<()> {
    audit::record(
        conn,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "contact",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

pub fn create_contact(
    conn: &mut DbConn,
    me: &Principal,
    input: &ContactInput,
) -> ApiResult<Contact> {
    let first = input.first_name.as_deref().unwrap_or("").trim().to_string();
    let last = input.last_name.as_deref().unwrap_or("").trim().to_string();
    if first.is_empty() && last.is_empty() && input.emails.as_ref().is_none_or(|e| e.is_empty()) {
        return Err(common::invalid(
            "last_name",
            "required",
            "a contact needs a name or an email",
        ));
    }
    let tags = common::clean_tags(input.tags.as_deref().unwrap_or(&[]))?;
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let e164 = check_parts(c, input)?;
        let owner = common::resolve_owner(c, me, input.owner_id.as_deref(), None)?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(contacts::table)
            .values((
                contacts::id.eq(&id),
                contacts::first_name.eq(&first),
                contacts::last_name.eq(&last),
                contacts::job_title.eq(&input.job_title),
                contacts::lifecycle_stage.eq(enum_text(
                    &input.lifecycle_stage.unwrap_or(LifecycleStage::Lead),
                )),
                contacts::owner_id.eq(&owner),
                contacts::household_id.eq(input.household_id.as_deref().and_then(ids::parse_id)),
                contacts::tags.eq(common::json_text(&tags)),
                contacts::preferred_language.eq(&input.preferred_language),
                contacts::social_profiles.eq(common::json_text(
                    &input.social_profiles.clone().unwrap_or_default(),
                )),
                contacts::external_source.eq(&source),
                contacts::external_id.eq(&external),
                contacts::version.eq(1),
                contacts::created_at.eq(&now),
                contacts::updated_at.eq(&now),
            ))
            .execute(c)?;
        common::write_tags(c, "contact", &id, &tags)?;
        write_emails(c, &id, input.emails.as_deref().unwrap_or(&[]))?;
        write_phones(c, &id, input.phones.as_deref().unwrap_or(&[]), &e164)?;
        write_links(c, &id, input.accounts.as_deref().unwrap_or(&[]))?;
        write_consents(c, &id, &input.consents.clone().unwrap_or_default())?;
        let custom = crate::custom_fields::apply(c, "contact", &id, "{}", input.custom.as_ref())?;
        diesel::update(contacts::table.find(&id))
            .set(contacts::custom.eq(custom))
            .execute(c)?;
        let contact = find(c, me, &id)?;
        index_terms(c, &contact)?;
        let json = common::to_json(&contact);
        record(c, me, "created", &id, json, &contact)?;
        Ok(contact)
    })
}

pub fn update_contact(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Contact> {
    let input: ContactInput = crm_core::objects::input(raw)?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    db::write_tx(conn, |c| {
        db::lock_row(c, Contacts::TABLE, id)?;
        let row = find_row(c, me, id)?;
        etag::check(expected, row.version)?;
        if row.erased_at.is_some() {
            return Err(ApiError::Conflict(
                "this contact was erased and cannot be changed".into(),
            ));
        }
        common::require_edit(c, me, row.owner_id.as_deref(), "contact")?;
        let e164 = check_parts(c, &input)?;
        let before = load(c, row.clone())?;
        let owner =
            common::resolve_owner(c, me, input.owner_id.as_deref(), row.owner_id.as_deref())?;
        let pick = |field: &str, new: &Option<String>, old: &Option<String>| {
            if cleared(field) {
                None
            } else {
                new.clone().or(old.clone())
            }
        };
        let tags = match &input.tags {
            Some(t) => common::clean_tags(t)?,
            None if cleared("tags") => vec![],
            None => before.tags.clone(),
        };
        let (source, external) = objects::external_key_after(
            raw,
            (row.external_source.clone(), row.external_id.clone()),
        )?;
        let household = if cleared("household_id") {
            None
        } else {
            input
                .household_id
                .as_deref()
                .and_then(ids::parse_id)
                .or(row.household_id.clone())
        };
        let changed = diesel::update(contacts::table.find(id))
            .filter(contacts::version.eq(row.version))
            .set((
                contacts::first_name.eq(input
                    .first_name
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&row.first_name)),
                contacts::last_name.eq(input
                    .last_name
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&row.last_name)),
                contacts::job_title.eq(pick("job_title", &input.job_title, &row.job_title)),
                contacts::lifecycle_stage.eq(input
                    .lifecycle_stage
                    .map(|s| enum_text(&s))
                    .unwrap_or(row.lifecycle_stage.clone())),
                contacts::owner_id.eq(&owner),
                contacts::household_id.eq(&household),
                contacts::tags.eq(common::json_text(&tags)),
                contacts::preferred_language.eq(pick(
                    "preferred_language",
                    &input.preferred_language,
                    &row.preferred_language,
                )),
                contacts::social_profiles.eq(input
                    .social_profiles
                    .as_ref()
                    .map(common::json_text)
                    .unwrap_or(row.social_profiles.clone())),
                contacts::external_source.eq(&source),
                contacts::external_id.eq(&external),
                contacts::version.eq(row.version + 1),
                contacts::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        common::write_tags(c, "contact", id, &tags)?;
        if let Some(emails) = &input.emails {
            write_emails(c, id, emails)?;
        }
        if let Some(phones) = &input.phones {
            write_phones(c, id, phones, &e164)?;
        }
        if let Some(links) = &input.accounts {
            write_links(c, id, links)?;
        }
        if let Some(consents) = &input.consents {
            write_consents(c, id, consents)?;
        }
        if input.custom.is_some() {
            let custom =
                crate::custom_fields::apply(c, "contact", id, &row.custom, input.custom.as_ref())?;
            diesel::update(contacts::table.find(id))
                .set(contacts::custom.eq(custom))
                .execute(c)?;
        }
        let after = find(c, me, id)?;
        index_terms(c, &after)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record(c, me, "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Contact>> {
    let mut q = crm_core::visible!(
        contacts::table.into_boxed::<MultiBackend>(),
        me,
        contacts::id
    );
    if !p.include_archived {
        q = q.filter(contacts::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("owner_id")? {
        q = q.filter(contacts::owner_id.eq(v));
    }
    if let Some(v) = p.id_filter("household_id")? {
        q = q.filter(contacts::household_id.eq(v));
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(
            contacts::id.eq_any(
                ca::table
                    .filter(ca::account_id.eq(v))
                    .select(ca::contact_id),
            ),
        );
    }
    if let Some(v) = p.filter("lifecycle_stage") {
        let stage: LifecycleStage = enum_parse(v)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown lifecycle_stage {v:?}")))?;
        q = q.filter(contacts::lifecycle_stage.eq(enum_text(&stage)));
    }
    if let Some(v) = p.filter("email") {
        q = q.filter(
            contacts::id.eq_any(
                ce::table
                    .filter(ce::email.eq(v.trim().to_lowercase()))
                    .select(ce::contact_id),
            ),
        );
    }
    if let Some(v) = p.filter("phone") {
        // A number that is no valid phone matches nothing rather than failing the lookup.
        let e164 = common::to_e164(v).unwrap_or_else(|| v.to_string());
        q = q.filter(
            contacts::id.eq_any(cp::table.filter(cp::e164.eq(e164)).select(cp::contact_id)),
        );
    }
    if let Some(v) = p.filter("tag") {
        q = q.filter(contacts::id.eq_any(crate::tagged!("contact", v)));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(contacts::created_at.gt(t));
    }
    if let Some(t) = p.time_filter("created_before")? {
        q = q.filter(contacts::created_at.lt(t));
    }
    if let Some(text) = &p.q {
        for word in search::query_words(text) {
            q = crm_core::search_filter!(q, conn, "contact", "contacts", contacts::id, &word);
        }
    }
    for filter in crate::custom_fields::filters(conn, "contact", p)? {
        q = crate::custom_filter!(q, contacts::id, "contact", &filter);
    }
    let rows: Vec<ContactRow> = match crate::custom_fields::sort_by(conn, "contact", "contacts", p)?
    {
        Some(sort) => crate::custom_sort!(q, contacts::id, sort, p).load(conn)?,
        None => apply_sort(q, p)?.load(conn)?,
    };
    list::page(load_many(conn, rows)?, p)
}

/// List a contact's timeline.
///
/// Everything that happened to the contact (audited changes, activities, other domains' entries),
/// newest first unless `sort=occurred_at`. Filter on `kind` (`activity.call`, `contact.updated`)
/// and page with `limit` and `cursor`; a merge moves the merged contacts' entries to the survivor.
/// Needs `CustomersRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/timeline", operation_id = "get_contact_timeline", tag = "contacts",
    params(("id" = String, Path, format = "uuid", description = "Contact id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?occurred_at$", description = "-occurred_at (default, newest first) or occurred_at"),
        ("kind" = Option<String>, Query, nullable = false, min_length = 1, description = "Only entries of this kind, e.g. activity.call"),
    ),
    responses((status = 200, description = "Everything that happened to the contact, newest first", body = Page<TimelineEntry>), ReadProblems))]
#[get("/contacts/{id}/timeline")]
pub async fn get_timeline(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &timeline::LIST)?;
    let page = state
        .db(move |c| {
            find_row(c, &me, &id)?;
            timeline::page(c, "contact", &id, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The live contact whose primary email this is.
fn by_primary_email(conn: &mut DbConn, email: &str) -> ApiResult<Option<String>> {
    Ok(crm_core::schema::contact_emails::table
        .inner_join(contacts::table)
        .filter(crm_core::schema::contact_emails::email.eq(email))
        .filter(crm_core::schema::contact_emails::is_primary.eq(true))
        .filter(contacts::archived_at.is_null())
        .order(contacts::created_at.asc())
        .select(contacts::id)
        .first(conn)
        .optional()?)
}

/// Contacts on the resource kernel.
pub struct Contacts;

impl Resource for Contacts {
    type Record = Contact;
    type Input = ContactInput;
    type Patch = ContactInput;
    crm_core::resource_paths!("contacts");
    const ENTITY: &'static str = "contact";
    const TABLE: &'static str = "contacts";
    const TAG: &'static str = "contacts";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::CustomersWrite;
    const EDITS: Ownership = common::EDITS;
    const LIST: &'static ListSpec = &LIST;
    /// None alone: a contact needs a name or an email (a 422 names the field).
    const REQUIRED: &'static [&'static str] = &[];

    crm_core::record_meta!(Contact, owner_id);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Contact> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Contact>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &ContactInput) -> ApiResult<Contact> {
        create_contact(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Contact> {
        update_contact(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(contacts);

    fn before_archive(
        _: &mut DbConn,
        _: &Principal,
        c: &Contact,
        archiving: bool,
    ) -> ApiResult<()> {
        if !archiving && (c.merged_into.is_some() || c.erased_at.is_some()) {
            return Err(ApiError::Conflict(
                "a merged or erased contact cannot be restored".into(),
            ));
        }
        Ok(())
    }
}

/// Contacts as an integrable object; they also upsert by primary email.
pub const OBJECT: ObjectKind = resource::object::<Contacts>(
    crm_core::find_by_external!(contacts),
    Some(by_primary_email),
);
