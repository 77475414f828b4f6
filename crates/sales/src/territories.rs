//! Territories: a hierarchy (`parent_id`) with rules on where a customer is (countries,
//! regions, a postcode range) and what it is (industries, an employee range), an owner and
//! the users working it. Every account belongs to the deepest territory whose rules, and
//! all its ancestors' rules, match it (ties: lowest `position`, then id). Assignment re-runs
//! whenever an account is created or changed (a `crm_core::hooks` listener, in the change's
//! transaction) and on demand for every account (`POST /territories/realign`, a job); each
//! change is kept in the account's territory history.

use crate::common::record_change;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{
    account_territories as current, accounts, territories, territory_assignments as history,
};
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Which customers a territory covers. An empty list or a missing bound does not constrain.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TerritoryRules {
    /// ISO 3166-1 alpha-2 codes of the billing (else shipping) address.
    #[serde(default)]
    #[validate(length(max = 250))]
    #[schema(max_items = 250)]
    pub countries: Vec<String>,
    /// Regions (state, county…) as written in addresses, compared case-insensitively.
    #[serde(default)]
    #[validate(length(max = 250))]
    #[schema(max_items = 250)]
    pub regions: Vec<String>,
    /// Inclusive postcode range, compared as text without spaces, case-insensitively.
    #[validate(length(min = 1, max = 20))]
    #[schema(min_length = 1, max_length = 20)]
    pub postcode_from: Option<String>,
    #[validate(length(min = 1, max = 20))]
    #[schema(min_length = 1, max_length = 20)]
    pub postcode_to: Option<String>,
    /// Industries, compared case-insensitively.
    #[serde(default)]
    #[validate(length(max = 250))]
    #[schema(max_items = 250)]
    pub industries: Vec<String>,
    #[validate(range(min = 0))]
    #[schema(minimum = 0)]
    pub min_employees: Option<i64>,
    #[validate(range(min = 0))]
    #[schema(minimum = 0)]
    pub max_employees: Option<i64>,
}

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = territories)]
pub struct TerritoryRow {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub owner_id: Option<String>,
    pub member_ids: String,
    pub rules: String,
    pub position: i32,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A territory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Territory {
    pub id: String,
    pub name: String,
    /// The territory this one is part of; null for a root.
    pub parent_id: Option<String>,
    /// Who the territory's leads go to (`territory_owner` assignment rules).
    pub owner_id: Option<String>,
    /// The users working the territory.
    pub member_ids: Vec<String>,
    pub rules: TerritoryRules,
    pub position: i32,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<TerritoryRow> for Territory {
    fn from(r: TerritoryRow) -> Self {
        Territory {
            id: r.id,
            name: r.name,
            parent_id: r.parent_id,
            owner_id: r.owner_id,
            member_ids: common::parse_json(&r.member_ids),
            rules: common::parse_json(&r.rules),
            position: r.position,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A territory as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerritoryInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(format = "uuid")]
    pub parent_id: Option<String>,
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_items = 200, value_type = Option<Vec<String>>)]
    pub member_ids: Option<Vec<String>>,
    #[validate(nested)]
    pub rules: Option<TerritoryRules>,
    /// 100 when not given.
    #[validate(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub position: Option<i32>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[Filter::id("parent_id", "Direct children of this territory")],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(territories::table, territories::BoxedQuery<'static, MultiBackend>, {
    "name" => territories::name,
    "created_at" => territories::created_at,
    "id" => territories::id,
});

pub fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Territory> {
    visibility::check_sees(me, "territory")?;
    territories::table
        .find(id)
        .select(TerritoryRow::as_select())
        .first(c)
        .optional()?
        .map(Territory::from)
        .ok_or_else(|| ApiError::not_found("territory"))
}

fn check_rules(r: &TerritoryRules) -> Vec<FieldError> {
    let mut errors = vec![];
    for (i, c) in r.countries.iter().enumerate() {
        if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            errors.push(FieldError::new(
                &format!("rules.countries[{i}]"),
                "country",
                "must be an ISO 3166 code such as GB",
            ));
        }
    }
    if let (Some(a), Some(b)) = (r.min_employees, r.max_employees) {
        if a > b {
            errors.push(FieldError::new(
                "rules.max_employees",
                "range",
                "must not be below min_employees",
            ));
        }
    }
    if let (Some(a), Some(b)) = (&r.postcode_from, &r.postcode_to) {
        if postcode(a) > postcode(b) {
            errors.push(FieldError::new(
                "rules.postcode_to",
                "range",
                "must not sort before postcode_from",
            ));
        }
    }
    errors
}

fn postcode(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// The references as they would be stored, checked: a parent that exists and is not the
/// territory itself or one of its descendants, an active owner and active members.
fn check_refs(c: &mut DbConn, id: &str, row: &TerritoryRow) -> ApiResult<()> {
    if let Some(owner) = &row.owner_id {
        common::check_active_user(c, owner, "owner_id")?;
    }
    let members: Vec<String> = common::parse_json(&row.member_ids);
    for (i, m) in members.iter().enumerate() {
        common::check_active_user(c, m, &format!("member_ids[{i}]"))?;
    }
    let Some(parent) = &row.parent_id else {
        return Ok(());
    };
    let all = load_all(c)?;
    let mut at = Some(parent.clone());
    let mut hops = 0;
    while let Some(t) = at {
        if t == id {
            return Err(common::invalid(
                "parent_id",
                "cycle",
                "a territory can't be inside itself",
            ));
        }
        let Some(node) = all.iter().find(|x| x.id == t) else {
            return Err(common::invalid(
                "parent_id",
                "reference",
                "no such territory",
            ));
        };
        at = node.parent_id.clone();
        hops += 1;
        if hops > 64 {
            return Err(common::invalid(
                "parent_id",
                "depth",
                "territories nest at most 64 deep",
            ));
        }
    }
    Ok(())
}

pub fn create_territory(
    c: &mut DbConn,
    me: &Principal,
    input: &TerritoryInput,
) -> ApiResult<Territory> {
    input.validate()?;
    let rules = input.rules.clone().unwrap_or_default();
    let mut errors = check_rules(&rules);
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_none() {
        errors.push(FieldError::new("name", "required", "is required"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let now = ids::now();
        let row = TerritoryRow {
            id: ids::new_id(),
            name: name.unwrap_or_default().to_string(),
            parent_id: crate::common::id_or_422("parent_id", &input.parent_id)?,
            owner_id: crate::common::id_or_422("owner_id", &input.owner_id)?,
            member_ids: common::json_text(&crate::common::user_ids(
                "member_ids",
                input.member_ids.as_deref().unwrap_or_default(),
            )?),
            rules: common::json_text(&rules),
            position: input.position.unwrap_or(100),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            archived_at: None,
        };
        check_refs(c, &row.id, &row)?;
        diesel::insert_into(territories::table)
            .values((
                territories::id.eq(&row.id),
                territories::name.eq(&row.name),
                territories::parent_id.eq(&row.parent_id),
                territories::owner_id.eq(&row.owner_id),
                territories::member_ids.eq(&row.member_ids),
                territories::rules.eq(&row.rules),
                territories::position.eq(row.position),
                territories::version.eq(1),
                territories::created_at.eq(&row.created_at),
                territories::updated_at.eq(&row.updated_at),
            ))
            .execute(c)?;
        let t = find(c, me, &row.id)?;
        record_change(
            c,
            me,
            "territory",
            "created",
            &t.id,
            common::to_json(&t),
            &t,
        )?;
        Ok(t)
    })
}

pub fn update_territory(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Territory> {
    let input: TerritoryInput = crm_core::objects::input(raw)?;
    input.validate()?;
    let errors = input.rules.as_ref().map(check_rules).unwrap_or_default();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Territories>(c, me, id)?;
        etag::check(expected, before.version)?;
        let row: TerritoryRow = territories::table
            .find(id)
            .select(TerritoryRow::as_select())
            .first(c)?;
        let cleared = |f: &str| raw.get(f).is_some_and(Value::is_null);
        let pick = |f: &str, new: Option<String>, old: &Option<String>| {
            if cleared(f) {
                None
            } else {
                new.or(old.clone())
            }
        };
        let next = TerritoryRow {
            name: input
                .name
                .as_deref()
                .map(str::trim)
                .map(str::to_string)
                .unwrap_or(row.name.clone()),
            parent_id: pick(
                "parent_id",
                crate::common::id_or_422("parent_id", &input.parent_id)?,
                &row.parent_id,
            ),
            owner_id: pick(
                "owner_id",
                crate::common::id_or_422("owner_id", &input.owner_id)?,
                &row.owner_id,
            ),
            member_ids: match &input.member_ids {
                Some(m) => common::json_text(&crate::common::user_ids("member_ids", m)?),
                None => row.member_ids.clone(),
            },
            rules: input
                .rules
                .as_ref()
                .map(common::json_text)
                .unwrap_or(row.rules.clone()),
            position: input.position.unwrap_or(row.position),
            ..row.clone()
        };
        check_refs(c, id, &next)?;
        let changed = diesel::update(territories::table.find(id))
            .filter(territories::version.eq(row.version))
            .set((
                territories::name.eq(&next.name),
                territories::parent_id.eq(&next.parent_id),
                territories::owner_id.eq(&next.owner_id),
                territories::member_ids.eq(&next.member_ids),
                territories::rules.eq(&next.rules),
                territories::position.eq(next.position),
                territories::version.eq(row.version + 1),
                territories::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "territory", "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Territory>> {
    let mut q = crm_core::visible!(
        territories::table.into_boxed::<MultiBackend>(),
        me,
        territories::id
    );
    if !p.include_archived {
        q = q.filter(territories::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("parent_id")? {
        q = q.filter(territories::parent_id.eq(v));
    }
    let rows: Vec<TerritoryRow> = apply_sort(q, p)?
        .select(TerritoryRow::as_select())
        .load(c)?;
    list::page(rows.into_iter().map(Territory::from).collect(), p)
}

fn load_all(c: &mut DbConn) -> ApiResult<Vec<Territory>> {
    let rows: Vec<TerritoryRow> = territories::table
        .filter(territories::archived_at.is_null())
        .order(territories::id.asc())
        .select(TerritoryRow::as_select())
        .load(c)?;
    Ok(rows.into_iter().map(Territory::from).collect())
}

/// What territory rules look at, from an account or a lead.
#[derive(Debug, Default)]
pub struct Profile {
    pub country: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    pub industry: Option<String>,
    pub employees: Option<i64>,
}

fn matches(r: &TerritoryRules, p: &Profile) -> bool {
    let among = |list: &[String], v: &Option<String>| {
        list.is_empty()
            || v.as_deref()
                .is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v.trim())))
    };
    let code = p.postcode.as_deref().map(postcode);
    let from_ok = r
        .postcode_from
        .as_deref()
        .is_none_or(|f| code.as_deref().is_some_and(|c| c >= postcode(f).as_str()));
    let to_ok = r
        .postcode_to
        .as_deref()
        .is_none_or(|t| code.as_deref().is_some_and(|c| c <= postcode(t).as_str()));
    let min_ok = r
        .min_employees
        .is_none_or(|m| p.employees.is_some_and(|e| e >= m));
    let max_ok = r
        .max_employees
        .is_none_or(|m| p.employees.is_some_and(|e| e <= m));
    among(&r.countries, &p.country)
        && among(&r.regions, &p.region)
        && among(&r.industries, &p.industry)
        && from_ok
        && to_ok
        && min_ok
        && max_ok
}

/// The deepest territory whose rules and all its ancestors' rules match (ties: lowest
/// position, then id).
pub fn best_match(all: &[Territory], p: &Profile) -> Option<Territory> {
    let depth_if_matching = |t: &Territory| -> Option<usize> {
        let mut depth = 0;
        let mut at = Some(t);
        while let Some(node) = at {
            if !matches(&node.rules, p) || depth > 64 {
                return None;
            }
            depth += 1;
            at = node
                .parent_id
                .as_deref()
                .and_then(|id| all.iter().find(|x| x.id == id));
        }
        Some(depth)
    };
    all.iter()
        .filter_map(|t| depth_if_matching(t).map(|d| (d, t)))
        .max_by(|(da, a), (db, b)| {
            da.cmp(db)
                .then(b.position.cmp(&a.position))
                .then(b.id.cmp(&a.id))
        })
        .map(|(_, t)| t.clone())
}

/// The territory a lead falls in (a lead has a country, an industry and a size, but no address).
pub fn for_lead(c: &mut DbConn, lead: &crate::leads::LeadRow) -> ApiResult<Option<Territory>> {
    let all = load_all(c)?;
    Ok(best_match(
        &all,
        &Profile {
            country: lead.country.clone(),
            industry: lead.industry.clone(),
            employees: lead.employee_count,
            ..Profile::default()
        },
    ))
}

/// An account's industry, size, billing and shipping address, and `merged_into`.
type AccountFacts = (
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn account_profile(c: &mut DbConn, account_id: &str) -> ApiResult<Option<Profile>> {
    let row: Option<AccountFacts> = accounts::table
        .find(account_id)
        .filter(accounts::archived_at.is_null())
        .select((
            accounts::industry,
            accounts::employee_count,
            accounts::billing_address,
            accounts::shipping_address,
            accounts::merged_into,
        ))
        .first(c)
        .optional()?;
    let Some((industry, employees, billing, shipping, merged)) = row else {
        return Ok(None);
    };
    if merged.is_some() {
        return Ok(None);
    }
    let address: Value = billing
        .or(shipping)
        .and_then(|a| serde_json::from_str(&a).ok())
        .unwrap_or_default();
    let text = |k: &str| address.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Some(Profile {
        country: text("country"),
        region: text("region"),
        postcode: text("postal_code"),
        industry,
        employees,
    }))
}

/// Put the account in its territory now; record a change in its history, on its timeline
/// and as an `account.territory_changed` event. Returns whether it moved.
pub fn assign_account(
    c: &mut DbConn,
    account_id: &str,
    reason: &str,
    all: &[Territory],
) -> ApiResult<bool> {
    // Reading where the account is and replacing it: two placements of one account at once
    // (its own write and the realign job) take turns on its row, so the later one sees the
    // first one's placement instead of inserting the same key again and failing.
    db::lock_row(c, "accounts", account_id)?;
    let target = account_profile(c, account_id)?
        .and_then(|p| best_match(all, &p))
        .map(|t| t.id);
    let was: Option<String> = current::table
        .find(account_id)
        .select(current::territory_id)
        .first(c)
        .optional()?;
    if was == target {
        return Ok(false);
    }
    let now = ids::now();
    diesel::delete(current::table.find(account_id)).execute(c)?;
    if let Some(t) = &target {
        diesel::insert_into(current::table)
            .values((
                current::account_id.eq(account_id),
                current::territory_id.eq(t),
                current::assigned_at.eq(&now),
            ))
            .execute(c)?;
    }
    diesel::insert_into(history::table)
        .values((
            history::id.eq(ids::new_id()),
            history::account_id.eq(account_id),
            history::territory_id.eq(&target),
            history::previous_territory_id.eq(&was),
            history::reason.eq(reason),
            history::assigned_at.eq(&now),
        ))
        .execute(c)?;
    let data =
        serde_json::json!({"territory_id": target, "previous_territory_id": was, "reason": reason});
    let actor = audit::Actor::system();
    crm_core::timeline::add(
        c,
        crm_core::timeline::NewEntry {
            entity_type: "account",
            entity_id: account_id,
            kind: "account.territory_changed",
            summary: "account territory changed".into(),
            source_type: "account",
            source_id: account_id,
            actor: &actor,
            data: data.clone(),
        },
    )?;
    audit::emit(
        c,
        "account.territory_changed",
        "account",
        account_id,
        &actor,
        &data,
    )?;
    Ok(true)
}

/// The `crm_core::hooks` listener: an account created, changed, restored or archived is
/// put in its territory in the same transaction.
pub fn on_account_change(c: &mut DbConn, _entity: &str, id: &str, action: &str) -> ApiResult<()> {
    let all = load_all(c)?;
    if all.is_empty() {
        let assigned: i64 = current::table
            .filter(current::account_id.eq(id))
            .count()
            .get_result(c)?;
        if assigned == 0 {
            return Ok(()); // no territories: nothing to do, cheaply
        }
    }
    let reason = if action == "created" {
        "account_created"
    } else {
        "account_changed"
    };
    assign_account(c, id, reason, &all).map(|_| ())
}

/// The job kind realigning every account.
pub const REALIGN: &str = "territory-realign";

/// The realign job: every account, in pages by id, in short transactions.
pub fn realign(conn: &mut DbConn) -> crm_core::jobs::JobResult {
    let fail = |e: ApiError| crm_core::jobs::JobFailure::from(e.to_string());
    let all = load_all(conn).map_err(fail)?;
    let mut after = String::new();
    loop {
        let page: Vec<String> = accounts::table
            .filter(accounts::id.gt(&after))
            .order(accounts::id.asc())
            .limit(500)
            .select(accounts::id)
            .load(conn)
            .map_err(|e| fail(e.into()))?;
        let Some(last) = page.last().cloned() else {
            return Ok(());
        };
        db::write_tx(conn, |c| -> ApiResult<()> {
            for id in &page {
                assign_account(c, id, "realign", &all)?;
            }
            Ok(())
        })
        .map_err(fail)?;
        after = last;
        if !crm_core::jobs::keep_alive(conn).map_err(fail)? {
            return Err("the job's lease was lost".into());
        }
    }
}

/// Territories on the resource kernel: every sales role reads them; managers shape them.
pub struct Territories;

impl Resource for Territories {
    type Record = Territory;
    type Input = TerritoryInput;
    type Patch = TerritoryInput;
    crm_core::resource_paths!("territories");
    const ENTITY: &'static str = "territory";
    const TABLE: &'static str = "territories";
    const TAG: &'static str = "territories";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(Territory);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Territory> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Territory>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &TerritoryInput) -> ApiResult<Territory> {
        create_territory(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Territory> {
        update_territory(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(territories);
}

/// The job a realignment queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealignRun {
    /// See `GET /jobs/{id}`.
    pub job_id: String,
}

/// Realign every account with the territories.
///
/// Queues a job that puts every account in its territory as the rules now say (after
/// territories were added or their rules changed), recording each move in the account's
/// territory history with reason `realign`. Accounts are also realigned one by one whenever
/// they change. Needs `SalesManage`.
#[utoipa::path(post, path = "/api/v1/territories/realign", tag = "territories",
    responses((status = 202, description = "The realignment is queued", body = RealignRun), crm_core::respond::WriteProblems))]
pub async fn realign_all(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesManage)?;
    let job_id = state
        .db(|c| crm_core::jobs::enqueue(c, REALIGN, &serde_json::json!({}), 3))
        .await?;
    Ok(actix_web::HttpResponse::Accepted().json(RealignRun { job_id }))
}

/// One change of an account's territory.
#[derive(Debug, Queryable, Serialize, ToSchema)]
pub struct TerritoryChange {
    pub id: String,
    pub account_id: String,
    /// Null when the account left every territory.
    pub territory_id: Option<String>,
    pub previous_territory_id: Option<String>,
    /// `account_created`, `account_changed` or `realign`.
    pub reason: String,
    pub assigned_at: String,
}

/// An account's territory and how it got there.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountTerritory {
    /// The territory the account is in now; null when none matches it.
    pub territory: Option<Territory>,
    /// Every change, newest first (at most 100).
    pub history: Vec<TerritoryChange>,
}

/// Get an account's territory and its history.
///
/// The territory the account belongs to now and the last 100 changes (newest first), each with
/// what it was before and why it changed. Needs `SalesRead`; an account the caller can't see is a
/// 404.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/territory", tag = "territories",
    params(("id" = String, Path, format = "uuid", description = "Account id")),
    responses((status = 200, description = "The account's territory and its history", body = AccountTerritory), crm_core::respond::ReadProblems))]
#[actix_web::get("/accounts/{id}/territory")]
pub async fn account_territory(
    state: actix_web::web::Data<crm_core::state::AppState>,
    me: Principal,
    id: actix_web::web::Path<String>,
) -> ApiResult<actix_web::HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = crm_core::extract::path_id(&id)?;
    let out = state
        .db(move |c| {
            crm_customers::accounts::find(c, &me, &id)?;
            let now: Option<String> = current::table
                .find(&id)
                .select(current::territory_id)
                .first(c)
                .optional()?;
            let territory = now.map(|t| find(c, &me, &t)).transpose()?;
            let history: Vec<TerritoryChange> = history::table
                .filter(history::account_id.eq(&id))
                .order((history::assigned_at.desc(), history::id.desc()))
                .limit(100)
                .load(c)?;
            Ok(AccountTerritory { territory, history })
        })
        .await?;
    Ok(actix_web::HttpResponse::Ok().json(out))
}
