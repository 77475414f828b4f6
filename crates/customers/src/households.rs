//! Households: consumers (B2C) living together. A contact belongs to at most one.

use crate::common::{self, Address};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{contacts, households};
use crm_core::{etag, ids, objects, visibility};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Queryable)]
struct HouseholdRow {
    id: String,
    name: String,
    address: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Household {
    pub id: String,
    pub name: String,
    pub address: Option<Address>,
    /// Ids of the contacts living here.
    pub member_ids: Vec<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdInput {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(nested)]
    pub address: Option<Address>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(households::table, households::BoxedQuery<'static, MultiBackend>, {
    "name" => households::name,
    "created_at" => households::created_at,
    "id" => households::id,
});

/// Households with their members: one query for all of them.
fn assemble_many(conn: &mut DbConn, rows: Vec<HouseholdRow>) -> ApiResult<Vec<Household>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let members: Vec<(Option<String>, String)> = contacts::table
        .filter(contacts::household_id.eq_any(&ids))
        .filter(contacts::archived_at.is_null())
        .order(contacts::id.asc())
        .select((contacts::household_id, contacts::id))
        .load(conn)?;
    let members = members
        .into_iter()
        .filter_map(|(household, id)| household.map(|h| (h, id)))
        .collect();
    Ok(crm_core::list::with_children(
        rows,
        members,
        |r| &r.id,
        household,
    ))
}

fn assemble(conn: &mut DbConn, r: HouseholdRow) -> ApiResult<Household> {
    crm_core::list::only(assemble_many(conn, vec![r])?)
}

fn household(r: HouseholdRow, member_ids: Vec<String>) -> Household {
    Household {
        address: r.address.as_deref().map(common::parse_json),
        member_ids,
        id: r.id,
        name: r.name,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived_at: r.archived_at,
    }
}

fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Household> {
    visibility::check_sees(me, "household")?;
    let row = households::table
        .find(id)
        .first::<HouseholdRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("household"))?;
    assemble(conn, row)
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Household,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "household",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

/// Households on the resource kernel.
pub struct Households;

impl Resource for Households {
    type Record = Household;
    type Input = HouseholdInput;
    type Patch = HouseholdInput;
    crm_core::resource_paths!("households");
    const ENTITY: &'static str = "household";
    const TABLE: &'static str = "households";
    const TAG: &'static str = "households";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::CustomersWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(Household);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Household> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Household>> {
        let mut q = crm_core::visible!(
            households::table.into_boxed::<MultiBackend>(),
            me,
            households::id
        );
        if !p.include_archived {
            q = q.filter(households::archived_at.is_null());
        }
        let rows: Vec<HouseholdRow> = apply_sort(q, p)?.load(c)?;
        list::page(assemble_many(c, rows)?, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &HouseholdInput) -> ApiResult<Household> {
        input.validate()?;
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| common::invalid("name", "required", "is required"))?;
        db::write_tx(c, |c| {
            let (id, now) = (ids::new_id(), ids::now());
            diesel::insert_into(households::table)
                .values((
                    households::id.eq(&id),
                    households::name.eq(name),
                    households::address.eq(input.address.as_ref().map(common::json_text)),
                    households::version.eq(1),
                    households::created_at.eq(&now),
                    households::updated_at.eq(&now),
                ))
                .execute(c)?;
            let h = find(c, me, &id)?;
            record(c, me, "created", &id, common::to_json(&h), &h)?;
            Ok(h)
        })
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Household> {
        let input: HouseholdInput = objects::input(patch)?;
        input.validate()?;
        let cleared = |field: &str| patch.get(field).is_some_and(|v| v.is_null());
        if cleared("name") {
            return Err(common::invalid("name", "required", "cannot be cleared"));
        }
        db::write_tx(c, |c| {
            let before = resource::find_for_write::<Households>(c, me, id)?;
            // Archived records are gone until restored, for writes as for reads.
            if before.archived_at.is_some() {
                return Err(ApiError::not_found("household"));
            }
            etag::check(expected, before.version)?;
            let address = match &input.address {
                Some(a) => Some(common::json_text(a)),
                None if cleared("address") => None,
                None => before.address.as_ref().map(common::json_text),
            };
            let name = input.name.as_deref().map(str::trim).unwrap_or(&before.name);
            let changed = diesel::update(households::table.find(id))
                .filter(households::version.eq(before.version))
                .set((
                    households::name.eq(name),
                    households::address.eq(address),
                    households::version.eq(before.version + 1),
                    households::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
            resource::changed_one(changed)?;
            let after = find(c, me, id)?;
            let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
            record(c, me, "updated", id, changes, &after)?;
            Ok(after)
        })
    }

    crm_core::archive_stamp!(households);

    /// A household with members stays.
    fn before_archive(
        _: &mut DbConn,
        _: &Principal,
        h: &Household,
        archiving: bool,
    ) -> ApiResult<()> {
        if archiving && !h.member_ids.is_empty() {
            return Err(ApiError::Conflict(
                "the household still has members; move them first".into(),
            ));
        }
        Ok(())
    }
}
