//! Households: consumers (B2C) living together. A contact belongs to at most one.

use crate::common::{self, Address};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{if_match, path_id, Json, ShowArchived};
use crm_core::list::{self, ListSpec, Page};
use crm_core::params::{IdempotencyParams, IfMatchParams, PageParams};
use crm_core::respond::{self, ListProblems, ReadProblems, WriteProblems};
use crm_core::schema::{contacts, households};
use crm_core::state::AppState;
use crm_core::{etag, ids};
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
    if !common::sees_all(me) {
        return Err(ApiError::not_found("household"));
    }
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

#[utoipa::path(get, path = "/api/v1/households", tag = "households",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(name|created_at)(,-?(name|created_at))*$", description = "name (default) or created_at"),
        ("include_archived" = Option<bool>, Query, nullable = false, description = "Include archived households"),
    ),
    responses((status = 200, description = "A page of households", body = Page<Household>), ListProblems))]
#[get("/households")]
pub async fn list_households(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let p = list::parse(query.into_inner(), &LIST)?;
    let page = state
        .db(move |c| {
            let mut q = households::table.into_boxed::<MultiBackend>();
            if !common::sees_all(&me) {
                q = q.filter(households::id.eq(""));
            }
            if !p.include_archived {
                q = q.filter(households::archived_at.is_null());
            }
            let rows: Vec<HouseholdRow> = apply_sort(q, &p)?.load(c)?;
            list::page(assemble_many(c, rows)?, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/api/v1/households", operation_id = "create_household", tag = "households", request_body = HouseholdInput,
    params(IdempotencyParams),
    responses((status = 201, description = "Created", body = Household, headers(("Location" = String), ("ETag" = String))), WriteProblems))]
#[post("/households")]
pub async fn create(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<HouseholdInput>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    body.validate()?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| common::invalid("name", "required", "is required"))?
        .to_string();
    let h = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let (id, now) = (ids::new_id(), ids::now());
                diesel::insert_into(households::table)
                    .values((
                        households::id.eq(&id),
                        households::name.eq(&name),
                        households::address.eq(body.address.as_ref().map(common::json_text)),
                        households::version.eq(1),
                        households::created_at.eq(&now),
                        households::updated_at.eq(&now),
                    ))
                    .execute(c)?;
                let h = find(c, &me, &id)?;
                record(c, &me, "created", &id, common::to_json(&h), &h)?;
                Ok(h)
            })
        })
        .await?;
    Ok(respond::created(
        format!("/api/v1/households/{}", h.id),
        h.version,
        &h,
    ))
}

#[utoipa::path(get, path = "/api/v1/households/{id}", operation_id = "get_household", tag = "households",
    params(ShowArchived, ("id" = String, Path, format = "uuid", description = "Household id")),
    responses((status = 200, description = "The household and its members", body = Household), ReadProblems))]
#[get("/households/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    show: web::Query<ShowArchived>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let id = path_id(&id)?;
    let h = state.db(move |c| find(c, &me, &id)).await?;
    show.check(&h.archived_at, "household")?;
    Ok(respond::with_etag(h.version, &h))
}

#[utoipa::path(patch, path = "/api/v1/households/{id}", operation_id = "update_household", tag = "households", request_body = HouseholdInput,
    params(("id" = String, Path, format = "uuid", description = "Household id"),
        IfMatchParams),
    responses((status = 200, description = "Updated", body = Household), WriteProblems))]
#[patch("/households/{id}")]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<HouseholdInput>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    body.validate()?;
    let id = path_id(&id)?;
    let expected = if_match(&req)?;
    let h = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let before = find(c, &me, &id)?;
                // Archived records are gone until restored, for writes as for reads.
                if before.archived_at.is_some() {
                    return Err(ApiError::not_found("household"));
                }
                etag::check(expected, before.version)?;
                diesel::update(households::table.find(&id))
                    .set((
                        households::name.eq(body
                            .name
                            .as_deref()
                            .map(str::trim)
                            .unwrap_or(&before.name)),
                        households::address.eq(body
                            .address
                            .as_ref()
                            .or(before.address.as_ref())
                            .map(common::json_text)),
                        households::version.eq(before.version + 1),
                        households::updated_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                let after = find(c, &me, &id)?;
                record(
                    c,
                    &me,
                    "updated",
                    &id,
                    audit::diff(&common::to_json(&before), &common::to_json(&after), &[]),
                    &after,
                )?;
                Ok(after)
            })
        })
        .await?;
    Ok(respond::with_etag(h.version, &h))
}

fn set_archived(c: &mut DbConn, me: &Principal, id: &str, archiving: bool) -> ApiResult<Household> {
    db::write_tx(c, |c| {
        let before = find(c, me, id)?;
        if archiving && !before.member_ids.is_empty() {
            return Err(ApiError::Conflict(
                "the household still has members; move them first".into(),
            ));
        }
        let stamp = archiving.then(ids::now);
        diesel::update(households::table.find(id))
            .set((
                households::archived_at.eq(&stamp),
                households::version.eq(before.version + 1),
                households::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        let after = find(c, me, id)?;
        let changes = serde_json::json!({"archived_at": {"from": before.archived_at, "to": stamp}});
        record(
            c,
            me,
            if archiving { "archived" } else { "restored" },
            id,
            changes,
            &after,
        )?;
        Ok(after)
    })
}

#[utoipa::path(delete, path = "/api/v1/households/{id}", operation_id = "archive_household", tag = "households",
    params(("id" = String, Path, format = "uuid", description = "Household id")),
    responses((status = 204, description = "Archived"), WriteProblems))]
#[delete("/households/{id}")]
pub async fn archive_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    let id = path_id(&id)?;
    state.db(move |c| set_archived(c, &me, &id, true)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/households/{id}/restore", operation_id = "restore_household", tag = "households",
    params(("id" = String, Path, format = "uuid", description = "Household id")),
    responses((status = 200, description = "Restored", body = Household), WriteProblems))]
#[post("/households/{id}/restore")]
pub async fn restore_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersWrite)?;
    let id = path_id(&id)?;
    let h = state.db(move |c| set_archived(c, &me, &id, false)).await?;
    Ok(respond::with_etag(h.version, &h))
}
