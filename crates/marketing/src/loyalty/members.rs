//! Members of loyalty programmes (`/loyalty-members`): a contact in a programme, with the
//! account whose orders earn it points. The balance, lifetime points and tier are the
//! ledger's to change (`super::ledger`); a member is created with none.

use crate::common::{audit_change, required};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{accounts, contact_accounts as ca, loyalty_members as lm};
use crm_core::{etag, ids};
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// A member of a loyalty programme.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = lm)]
pub struct LoyaltyMember {
    pub id: String,
    pub program_id: String,
    pub contact_id: String,
    /// The account whose orders earn this member points; none: only awards by hand.
    pub account_id: Option<String>,
    /// Points to redeem; never below zero.
    pub balance: i64,
    /// Points ever earned (less reversed orders); they decide the tier.
    pub lifetime_points: i64,
    /// The tier's name, when lifetime points reach one.
    pub tier: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A member as sent. Without `account_id`, the contact's account is taken when it has
/// exactly one.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyMemberInput {
    #[schema(format = "uuid")]
    pub program_id: Option<String>,
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
}

/// What a PATCH may change: the earning account.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyMemberPatch {
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "balance", "lifetime_points"],
    default_sort: "created_at",
    filters: &[
        Filter::id("program_id", "Members of this programme"),
        Filter::id("contact_id", "Memberships of this contact"),
        Filter::id("account_id", "The member earning for this account"),
        Filter::text("tier", "Members in this tier"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(lm::table, lm::BoxedQuery<'static, MultiBackend>, {
    "created_at" => lm::created_at,
    "balance" => lm::balance,
    "lifetime_points" => lm::lifetime_points,
    "id" => lm::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<LoyaltyMember> {
    lm::table
        .find(id)
        .select(LoyaltyMember::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("loyalty member"))
}

/// A live account, or a 422 on `account_id`.
fn check_account(c: &mut DbConn, id: &str) -> ApiResult<()> {
    let live: Option<String> = accounts::table
        .find(id)
        .filter(accounts::archived_at.is_null())
        .select(accounts::id)
        .first(c)
        .optional()?;
    live.map(|_| ())
        .ok_or_else(|| ApiError::field("account_id", "not_found", "no live account has this id"))
}

/// The contact's only account, if it has exactly one.
fn only_account(c: &mut DbConn, contact: &str) -> ApiResult<Option<String>> {
    let mut linked: Vec<String> = ca::table
        .filter(ca::contact_id.eq(contact))
        .select(ca::account_id)
        .limit(2)
        .load(c)?;
    Ok((linked.len() == 1).then(|| linked.remove(0)))
}

/// 409 when another member already earns for this account in the programme.
fn check_account_free(
    c: &mut DbConn,
    program: &str,
    account: &str,
    except: Option<&str>,
) -> ApiResult<()> {
    let holder: Option<String> = lm::table
        .filter(lm::program_id.eq(program))
        .filter(lm::account_id.eq(account))
        .select(lm::id)
        .first(c)
        .optional()?;
    match holder {
        Some(h) if Some(h.as_str()) != except => Err(ApiError::Conflict(format!(
            "member {h} already earns for this account in this programme"
        ))),
        _ => Ok(()),
    }
}

fn create(c: &mut DbConn, me: &Principal, input: &LoyaltyMemberInput) -> ApiResult<LoyaltyMember> {
    let errors = required(&[
        ("program_id", input.program_id.is_none()),
        ("contact_id", input.contact_id.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let program_id = crm_core::ids::parse_id(input.program_id.as_deref().unwrap_or_default())
        .ok_or_else(|| ApiError::field("program_id", "format", "must be a UUID"))?;
    let contact_id = crm_core::ids::parse_id(input.contact_id.as_deref().unwrap_or_default())
        .ok_or_else(|| ApiError::field("contact_id", "format", "must be a UUID"))?;
    db::write_tx(c, |c| {
        let program = super::find(c, &program_id)
            .map_err(|_| ApiError::field("program_id", "not_found", "no such programme"))?;
        if program.archived_at.is_some() {
            return Err(ApiError::Conflict("the programme is archived".into()));
        }
        let contact = crm_customers::contacts::find_row(c, me, &contact_id)
            .map_err(|_| ApiError::field("contact_id", "not_found", "no such contact"))?;
        if contact.archived_at.is_some() || contact.merged_into.is_some() {
            return Err(ApiError::field(
                "contact_id",
                "not_found",
                "the contact is archived or merged",
            ));
        }
        let account = match &input.account_id {
            Some(a) => {
                let a = crm_core::ids::parse_id(a)
                    .ok_or_else(|| ApiError::field("account_id", "format", "must be a UUID"))?;
                check_account(c, &a)?;
                Some(a)
            }
            None => only_account(c, &contact_id)?,
        };
        if let Some(a) = &account {
            check_account_free(c, &program_id, a, None)?;
        }
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(lm::table)
            .values((
                lm::id.eq(&id),
                lm::program_id.eq(&program_id),
                lm::contact_id.eq(&contact_id),
                lm::account_id.eq(&account),
                lm::balance.eq(0_i64),
                lm::lifetime_points.eq(0_i64),
                lm::tier.eq(program.tier_for(0).map(|t| t.name.clone())),
                lm::version.eq(1),
                lm::created_at.eq(&now),
                lm::updated_at.eq(&now),
            ))
            .execute(c)?;
        let m = find(c, &id)?;
        audit_change(c, me, "loyalty_member", "created", &id, to_json(&m), &m)?;
        Ok(m)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<LoyaltyMember> {
    let input: LoyaltyMemberPatch = crm_core::objects::input(raw)?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<LoyaltyMembers>(c, me, id)?;
        etag::check(expected, before.version)?;
        let account = match raw.get("account_id") {
            Some(Value::Null) => None,
            Some(_) => {
                let a = crm_core::ids::parse_id(input.account_id.as_deref().unwrap_or_default())
                    .ok_or_else(|| ApiError::field("account_id", "format", "must be a UUID"))?;
                check_account(c, &a)?;
                check_account_free(c, &before.program_id, &a, Some(id))?;
                Some(a)
            }
            None => before.account_id.clone(),
        };
        let changed = diesel::update(lm::table.find(id))
            .filter(lm::version.eq(before.version))
            .set((
                lm::account_id.eq(&account),
                lm::version.eq(before.version + 1),
                lm::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "loyalty_member", "updated", id, changes, &after)?;
        Ok(after)
    })
}

fn page(c: &mut DbConn, p: &ListParams) -> ApiResult<Page<LoyaltyMember>> {
    let mut q = lm::table.into_boxed::<MultiBackend>();
    if !p.include_archived {
        q = q.filter(lm::archived_at.is_null());
    }
    if let Some(id) = p.id_filter("program_id")? {
        q = q.filter(lm::program_id.eq(id));
    }
    if let Some(id) = p.id_filter("contact_id")? {
        q = q.filter(lm::contact_id.eq(id));
    }
    if let Some(id) = p.id_filter("account_id")? {
        q = q.filter(lm::account_id.eq(id));
    }
    if let Some(t) = p.filter("tier") {
        q = q.filter(lm::tier.eq(t.to_string()));
    }
    let rows = apply_sort(q, p)?
        .select(LoyaltyMember::as_select())
        .load(c)?;
    list::page(rows, p)
}

/// Members on the resource kernel.
pub struct LoyaltyMembers;

impl Resource for LoyaltyMembers {
    type Record = LoyaltyMember;
    type Input = LoyaltyMemberInput;
    type Patch = LoyaltyMemberPatch;
    crm_core::resource_paths!("loyalty-members");
    const ENTITY: &'static str = "loyalty_member";
    const TABLE: &'static str = "loyalty_members";
    const TAG: &'static str = "loyalty";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["program_id", "contact_id"];
    const ARCHIVED: &'static str = "Archived: the member earns and redeems nothing until restored";
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        ("program_id", "enrol the contact in the other programme"),
        ("contact_id", "enrol the other contact"),
    ];

    crm_core::record_meta!(LoyaltyMember);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<LoyaltyMember> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<LoyaltyMember>> {
        page(c, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &LoyaltyMemberInput,
    ) -> ApiResult<LoyaltyMember> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<LoyaltyMember> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(loyalty_members);
}
