//! Accounts: companies (B2B) in hierarchies, with owner, tags, addresses and revenue.

use crate::common::{self, Address};
use actix_web::{get, web, HttpResponse};
use crm_core::access::{Ownership, Permission};
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::path_id;
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::params::PageParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::ReadProblems;
use crm_core::schema::{accounts, contact_accounts};
use crm_core::state::AppState;
use crm_core::timeline::{self, TimelineEntry};
use crm_core::{etag, ids, search, visibility};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

pub const MAX_DEPTH: usize = 50;

#[derive(Queryable, Clone)]
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<i64>,
    pub annual_revenue: Option<i64>,
    pub currency: Option<String>,
    pub billing_address: Option<String>,
    pub shipping_address: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub owner_id: Option<String>,
    pub tags: String,
    pub parent_id: Option<String>,
    pub custom: String,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub merged_into: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A company.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<i64>,
    /// Annual revenue in minor units of `currency` (cents for USD).
    pub annual_revenue: Option<i64>,
    /// ISO 4217 code of `annual_revenue`.
    pub currency: Option<String>,
    pub billing_address: Option<Address>,
    pub shipping_address: Option<Address>,
    pub phone: Option<String>,
    #[schema(format = "uri")]
    pub website: Option<String>,
    pub owner_id: Option<String>,
    pub tags: Vec<String>,
    pub parent_id: Option<String>,
    /// Set when this account was merged into another; the survivor's id.
    pub merged_into: Option<String>,
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

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            billing_address: r.billing_address.as_deref().map(common::parse_json),
            shipping_address: r.shipping_address.as_deref().map(common::parse_json),
            tags: common::parse_json(&r.tags),
            custom: common::parse_json(&r.custom),
            id: r.id,
            name: r.name,
            domain: r.domain,
            industry: r.industry,
            employee_count: r.employee_count,
            annual_revenue: r.annual_revenue,
            currency: r.currency,
            phone: r.phone,
            website: r.website,
            owner_id: r.owner_id,
            parent_id: r.parent_id,
            merged_into: r.merged_into,
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of an account a client sends; on PATCH every field is optional and `null`
/// clears it.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(min = 3, max = 253, message = "must be a domain name"))]
    #[schema(min_length = 3, max_length = 253)]
    pub domain: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[validate(range(min = 0, max = 100_000_000, message = "must be 0 or more"))]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub employee_count: Option<i64>,
    #[validate(range(min = 0, message = "must be 0 or more"))]
    #[schema(minimum = 0)]
    pub annual_revenue: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[validate(nested)]
    pub billing_address: Option<Address>,
    #[validate(nested)]
    pub shipping_address: Option<Address>,
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    #[validate(url(message = "must be a URL"), length(max = 500))]
    #[schema(format = "uri", max_length = 500)]
    pub website: Option<String>,
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    /// Parent account; a parent that would make a cycle is a 422.
    #[schema(format = "uuid")]
    pub parent_id: Option<String>,
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

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at", "updated_at", "custom.*"],
    default_sort: "name",
    filters: &[
        Filter::id("owner_id", "Owned by this user"),
        Filter::id("parent_id", "Direct children of this account"),
        Filter::text("industry", "Exact industry"),
        Filter::text("tag", "Carrying this tag"),
        Filter::text("domain", "Exact domain"),
        Filter::time("created_after", "RFC 3339 timestamp"),
        Filter::time("created_before", "RFC 3339 timestamp"),
        Filter::CUSTOM,
    ],
    search: Some("Words that start a name, domain or phone"),
    null_sorts_as: &[],
};

crm_core::sortable!(accounts::table, accounts::BoxedQuery<'static, MultiBackend>, {
    "name" => accounts::name,
    "created_at" => accounts::created_at,
    "updated_at" => accounts::updated_at,
    "id" => accounts::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AccountRow> {
    visibility::check_sees(me, "account")?;
    accounts::table
        .find(id)
        .first::<AccountRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("account"))
}

/// Records that belong to an account (an order placed without a deal) follow its edit rule.
pub const PARENT: resource::Parent = resource::Parent {
    field: "account_id",
    entity: "account",
    table: "accounts",
    edits: common::EDITS,
    owner: owner_of,
};

/// The account's owner; `None` when there is no such account.
pub fn owner_of(conn: &mut DbConn, id: &str) -> ApiResult<Option<Option<String>>> {
    Ok(accounts::table
        .find(id)
        .select(accounts::owner_id)
        .first::<Option<String>>(conn)
        .optional()?)
}

pub fn exists(conn: &mut DbConn, id: &str) -> ApiResult<bool> {
    let n: i64 = accounts::table
        .filter(accounts::id.eq(id))
        .filter(accounts::archived_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Walk up from `parent` and fail if `child` is met (or the chain is absurdly deep).
fn check_no_cycle(conn: &mut DbConn, child: &str, parent: &str) -> ApiResult<()> {
    let mut cursor = Some(parent.to_string());
    for _ in 0..MAX_DEPTH {
        let Some(current) = cursor else { return Ok(()) };
        if current == child {
            return Err(common::invalid(
                "parent_id",
                "cycle",
                "this parent would make the hierarchy a cycle",
            ));
        }
        cursor = accounts::table
            .find(&current)
            .select(accounts::parent_id)
            .first(conn)
            .optional()?
            .flatten();
    }
    Err(common::invalid(
        "parent_id",
        "depth",
        "the hierarchy would be deeper than 50 levels",
    ))
}

fn validate_input(input: &AccountInput) -> ApiResult<()> {
    input.validate()?;
    if let Some(c) = &input.currency {
        if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(common::invalid(
                "currency",
                "currency",
                "must be an ISO 4217 code such as EUR",
            ));
        }
    }
    if input.annual_revenue.is_some() && input.currency.is_none() {
        return Err(common::invalid(
            "currency",
            "required",
            "annual_revenue needs a currency",
        ));
    }
    Ok(())
}

fn index_terms(conn: &mut DbConn, a: &Account) -> ApiResult<()> {
    search::index(
        conn,
        "account",
        &a.id,
        &[
            &a.name,
            a.domain.as_deref().unwrap_or(""),
            a.phone.as_deref().unwrap_or(""),
        ],
    )
}

fn check_parent(conn: &mut DbConn, id: &str, parent: &Option<String>) -> ApiResult<Option<String>> {
    let Some(raw) = parent else { return Ok(None) };
    let parent = ids::parse_id(raw)
        .ok_or_else(|| common::invalid("parent_id", "reference", "no such account"))?;
    // Parent changes take turns, or "A under B" and "B under A" could both pass the check.
    db::lock_key(conn, "accounts:hierarchy")?;
    common::check_exists(|| exists(conn, &parent), "parent_id", "account")?;
    check_no_cycle(conn, id, &parent)?;
    Ok(Some(parent))
}

pub fn create_account(
    conn: &mut DbConn,
    me: &Principal,
    input: &AccountInput,
) -> ApiResult<Account> {
    validate_input(input)?;
    let Some(name) = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Err(common::invalid("name", "required", "is required"));
    };
    let tags = common::clean_tags(input.tags.as_deref().unwrap_or(&[]))?;
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let id = ids::new_id();
        let owner = common::resolve_owner(c, me, input.owner_id.as_deref(), None)?;
        let parent = check_parent(c, &id, &input.parent_id)?;
        let now = ids::now();
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(&id),
                accounts::name.eq(name),
                accounts::domain.eq(input.domain.as_ref().map(|d| d.trim().to_lowercase())),
                accounts::industry.eq(&input.industry),
                accounts::employee_count.eq(input.employee_count),
                accounts::annual_revenue.eq(input.annual_revenue),
                accounts::currency.eq(&input.currency),
                accounts::billing_address.eq(input.billing_address.as_ref().map(common::json_text)),
                accounts::shipping_address
                    .eq(input.shipping_address.as_ref().map(common::json_text)),
                accounts::phone.eq(&input.phone),
                accounts::website.eq(&input.website),
                accounts::owner_id.eq(&owner),
                accounts::tags.eq(common::json_text(&tags)),
                accounts::parent_id.eq(&parent),
                accounts::external_source.eq(&source),
                accounts::external_id.eq(&external),
                accounts::version.eq(1),
                accounts::created_at.eq(&now),
                accounts::updated_at.eq(&now),
            ))
            .execute(c)?;
        common::write_tags(c, "account", &id, &tags)?;
        let custom = crate::custom_fields::apply(c, "account", &id, "{}", input.custom.as_ref())?;
        diesel::update(accounts::table.find(&id))
            .set(accounts::custom.eq(custom))
            .execute(c)?;
        let account: Account = find(c, me, &id)?.into();
        index_terms(c, &account)?;
        let json = common::to_json(&account);
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "created",
                entity_type: "account",
                entity_id: &id,
                changes: json.clone(),
                record: json,
            },
        )?;
        Ok(account)
    })
}

/// Apply a PATCH. `raw` is the body as sent, so that `null` (clear) and absent (keep)
/// can be told apart.
pub fn update_account(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Account> {
    let input: AccountInput = crm_core::objects::input(raw)?;
    validate_input(&input)?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    if cleared("name") {
        return Err(common::invalid("name", "required", "cannot be cleared"));
    }
    db::write_tx(conn, |c| {
        db::lock_row(c, Accounts::TABLE, id)?;
        let row = find(c, me, id)?;
        etag::check(expected, row.version)?;
        common::require_edit(c, me, row.owner_id.as_deref(), "account")?;
        let before: Account = row.clone().into();
        let owner =
            common::resolve_owner(c, me, input.owner_id.as_deref(), row.owner_id.as_deref())?;
        let parent = if cleared("parent_id") {
            None
        } else if input.parent_id.is_some() {
            check_parent(c, id, &input.parent_id)?
        } else {
            row.parent_id.clone()
        };
        let pick = |field: &str, new: &Option<String>, old: &Option<String>| {
            if cleared(field) {
                None
            } else {
                new.clone().or(old.clone())
            }
        };
        let pick_n = |field: &str, new: Option<i64>, old: Option<i64>| {
            if cleared(field) {
                None
            } else {
                new.or(old)
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
        let currency = pick("currency", &input.currency, &row.currency);
        let revenue = pick_n("annual_revenue", input.annual_revenue, row.annual_revenue);
        if revenue.is_some() && currency.is_none() {
            return Err(common::invalid(
                "currency",
                "required",
                "annual_revenue needs a currency",
            ));
        }
        let changed = diesel::update(accounts::table.find(id))
            .filter(accounts::version.eq(row.version))
            .set((
                accounts::name.eq(input.name.as_deref().map(str::trim).unwrap_or(&row.name)),
                accounts::domain.eq(pick(
                    "domain",
                    &input.domain.as_ref().map(|d| d.trim().to_lowercase()),
                    &row.domain,
                )),
                accounts::industry.eq(pick("industry", &input.industry, &row.industry)),
                accounts::employee_count.eq(pick_n(
                    "employee_count",
                    input.employee_count,
                    row.employee_count,
                )),
                accounts::annual_revenue.eq(revenue),
                accounts::currency.eq(currency),
                accounts::billing_address.eq(pick(
                    "billing_address",
                    &input.billing_address.as_ref().map(common::json_text),
                    &row.billing_address,
                )),
                accounts::shipping_address.eq(pick(
                    "shipping_address",
                    &input.shipping_address.as_ref().map(common::json_text),
                    &row.shipping_address,
                )),
                accounts::phone.eq(pick("phone", &input.phone, &row.phone)),
                accounts::website.eq(pick("website", &input.website, &row.website)),
                accounts::owner_id.eq(&owner),
                accounts::tags.eq(common::json_text(&tags)),
                accounts::parent_id.eq(&parent),
                accounts::external_source.eq(&source),
                accounts::external_id.eq(&external),
                accounts::version.eq(row.version + 1),
                accounts::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        common::write_tags(c, "account", id, &tags)?;
        if input.custom.is_some() {
            let custom =
                crate::custom_fields::apply(c, "account", id, &row.custom, input.custom.as_ref())?;
            diesel::update(accounts::table.find(id))
                .set(accounts::custom.eq(custom))
                .execute(c)?;
        }
        let after: Account = find(c, me, id)?.into();
        index_terms(c, &after)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "updated",
                entity_type: "account",
                entity_id: id,
                changes,
                record: common::to_json(&after),
            },
        )?;
        Ok(after)
    })
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Account>> {
    let mut q = crm_core::visible!(
        accounts::table.into_boxed::<MultiBackend>(),
        me,
        accounts::id
    );
    if !p.include_archived {
        q = q.filter(accounts::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("owner_id")? {
        q = q.filter(accounts::owner_id.eq(v));
    }
    if let Some(v) = p.id_filter("parent_id")? {
        q = q.filter(accounts::parent_id.eq(v));
    }
    if let Some(v) = p.filter("industry") {
        q = q.filter(accounts::industry.eq(v.to_string()));
    }
    if let Some(v) = p.filter("domain") {
        q = q.filter(accounts::domain.eq(v.trim().to_lowercase()));
    }
    if let Some(v) = p.filter("tag") {
        q = q.filter(accounts::id.eq_any(crate::tagged!("account", v)));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(accounts::created_at.gt(t));
    }
    if let Some(t) = p.time_filter("created_before")? {
        q = q.filter(accounts::created_at.lt(t));
    }
    if let Some(text) = &p.q {
        for word in search::query_words(text) {
            q = crm_core::search_filter!(q, conn, "account", "accounts", accounts::id, &word);
        }
    }
    for filter in crate::custom_fields::filters(conn, "account", p)? {
        q = crate::custom_filter!(q, accounts::id, "account", &filter);
    }
    let rows: Vec<AccountRow> = match crate::custom_fields::sort_by(conn, "account", "accounts", p)?
    {
        Some(sort) => crate::custom_sort!(q, accounts::id, sort, p).load(conn)?,
        None => apply_sort(q, p)?.load(conn)?,
    };
    list::page(rows.into_iter().map(Account::from).collect(), p)
}

/// A node of an account hierarchy.
#[derive(Debug, Serialize, ToSchema)]
pub struct HierarchyNode {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    #[schema(no_recursion)]
    pub children: Vec<HierarchyNode>,
}

fn subtree(
    conn: &mut DbConn,
    id: &str,
    name: String,
    parent: Option<String>,
    depth: usize,
) -> ApiResult<HierarchyNode> {
    let mut children = vec![];
    if depth < MAX_DEPTH {
        let kids: Vec<(String, String)> = accounts::table
            .filter(accounts::parent_id.eq(id))
            .filter(accounts::archived_at.is_null())
            .order(accounts::name.asc())
            .select((accounts::id, accounts::name))
            .load(conn)?;
        for (kid, kid_name) in kids {
            children.push(subtree(
                conn,
                &kid,
                kid_name,
                Some(id.to_string()),
                depth + 1,
            )?);
        }
    }
    Ok(HierarchyNode {
        id: id.to_string(),
        name,
        parent_id: parent,
        children,
    })
}

fn hierarchy(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<HierarchyNode> {
    let mut top = find(conn, me, id)?;
    for _ in 0..MAX_DEPTH {
        let Some(parent) = top.parent_id.clone() else {
            break;
        };
        top = find(conn, me, &parent)?;
    }
    subtree(
        conn,
        &top.id.clone(),
        top.name.clone(),
        top.parent_id.clone(),
        0,
    )
}

/// Get an account's whole hierarchy.
///
/// Climbs from any account of the tree to its top account and returns the tree from there down,
/// children sorted by name and archived children left out (at most 50 levels). Needs
/// `CustomersRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/hierarchy", tag = "accounts",
    params(("id" = String, Path, format = "uuid", description = "Any account of the hierarchy")),
    responses((status = 200, description = "The whole tree, from its top account down", body = HierarchyNode), ReadProblems))]
#[get("/accounts/{id}/hierarchy")]
pub async fn get_hierarchy(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let id = path_id(&id)?;
    let tree = state.db(move |c| hierarchy(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(tree))
}

/// List an account's timeline.
///
/// Everything that happened to the account (audited changes, activities, other domains' entries),
/// newest first unless `sort=occurred_at`. Filter on `kind` (`activity.call`, `account.updated`)
/// and page with `limit` and `cursor`; a merge moves the merged accounts' entries to the survivor.
/// Needs `CustomersRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/timeline", operation_id = "get_account_timeline", tag = "accounts",
    params(("id" = String, Path, format = "uuid", description = "Account id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?occurred_at$", description = "-occurred_at (default, newest first) or occurred_at"),
        ("kind" = Option<String>, Query, nullable = false, min_length = 1, description = "Only entries of this kind, e.g. activity.call"),
    ),
    responses((status = 200, description = "Everything that happened to the account", body = Page<TimelineEntry>), ReadProblems))]
#[get("/accounts/{id}/timeline")]
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
            find(c, &me, &id)?;
            timeline::page(c, "account", &id, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Contacts linked to an account, for merges and personal-data exports.
pub fn linked_contacts(conn: &mut DbConn, account_id: &str) -> ApiResult<Vec<String>> {
    Ok(contact_accounts::table
        .filter(contact_accounts::account_id.eq(account_id))
        .select(contact_accounts::contact_id)
        .load(conn)?)
}

/// Accounts on the resource kernel.
pub struct Accounts;

impl Resource for Accounts {
    type Record = Account;
    type Input = AccountInput;
    type Patch = AccountInput;
    crm_core::resource_paths!("accounts");
    const ENTITY: &'static str = "account";
    const TABLE: &'static str = "accounts";
    const TAG: &'static str = "accounts";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::CustomersWrite;
    const EDITS: Ownership = common::EDITS;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(Account, owner_id);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Account> {
        find(c, me, id).map(Account::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Account>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &AccountInput) -> ApiResult<Account> {
        create_account(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Account> {
        update_account(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(accounts);

    fn before_archive(
        _: &mut DbConn,
        _: &Principal,
        a: &Account,
        archiving: bool,
    ) -> ApiResult<()> {
        if !archiving && a.merged_into.is_some() {
            return Err(ApiError::Conflict(
                "a merged account cannot be restored".into(),
            ));
        }
        Ok(())
    }
}

/// Accounts as an integrable object (upserts, batch, composite, imports, exports, feed).
pub const OBJECT: ObjectKind =
    resource::object::<Accounts>(crm_core::find_by_external!(accounts), None);
