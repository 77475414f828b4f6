//! Static lists: contacts added and removed by hand (or by an integration), unlike a
//! segment's, which follow its criteria.

use crate::common::{audit_change, required, MemberContact};
use actix_web::{delete, get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{contacts, list_members, marketing_lists as ml};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

/// A static list of contacts.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = ml)]
#[schema(as = MarketingList)]
pub struct MarketingList {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A list as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketingListInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(ml::table, ml::BoxedQuery<'static, MultiBackend>, {
    "name" => ml::name,
    "created_at" => ml::created_at,
    "id" => ml::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<MarketingList> {
    ml::table
        .find(id)
        .select(MarketingList::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("list"))
}

fn create(c: &mut DbConn, me: &Principal, input: &MarketingListInput) -> ApiResult<MarketingList> {
    input.validate()?;
    let errors = required(&[("name", input.name.is_none())]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(ml::table)
            .values((
                ml::id.eq(&id),
                ml::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                ml::description.eq(&input.description),
                ml::version.eq(1),
                ml::created_at.eq(&now),
                ml::updated_at.eq(&now),
            ))
            .execute(c)?;
        let l = find(c, &id)?;
        audit_change(c, me, "marketing_list", "created", &id, to_json(&l), &l)?;
        Ok(l)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<MarketingList> {
    let input: MarketingListInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Lists>(c, me, id)?;
        etag::check(expected, before.version)?;
        let description = match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description.clone(),
        };
        let changed = diesel::update(ml::table.find(id))
            .filter(ml::version.eq(before.version))
            .set((
                ml::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                ml::description.eq(&description),
                ml::version.eq(before.version + 1),
                ml::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "marketing_list", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Contacts to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    /// At most 1,000 per call.
    #[schema(max_items = 1000, min_items = 1)]
    pub contact_ids: Vec<String>,
}

/// What an add did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// Contacts that were not members before.
    pub added: i64,
    /// Contacts that already were.
    pub already: i64,
}

/// Live contacts among `ids` the caller may see; a 422 names each other entry.
pub fn check_contacts(c: &mut DbConn, me: &Principal, ids: &[String]) -> ApiResult<()> {
    if ids.is_empty() || ids.len() > 1000 {
        return Err(ApiError::field(
            "contact_ids",
            "length",
            "send 1 to 1,000 contact ids",
        ));
    }
    let q = contacts::table
        .into_boxed::<MultiBackend>()
        .filter(contacts::id.eq_any(ids.to_vec()))
        .filter(contacts::archived_at.is_null())
        .filter(contacts::merged_into.is_null());
    let found: Vec<String> = crm_core::visible!(q, me, contacts::id)
        .select(contacts::id)
        .load(c)?;
    let errors: Vec<FieldError> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !found.contains(id))
        .map(|(i, _)| {
            FieldError::new(
                &format!("contact_ids[{i}]"),
                "not_found",
                "no live contact has this id",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

pub(crate) fn add(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    input: &AddMembers,
) -> ApiResult<Added> {
    db::write_tx(c, |c| {
        // Two adds to one list take turns, so the check for members already in holds.
        db::lock_row(c, "marketing_lists", id)?;
        let l = find(c, id)?;
        if l.archived_at.is_some() {
            return Err(ApiError::Conflict("the list is archived".into()));
        }
        check_contacts(c, me, &input.contact_ids)?;
        let mut unique = input.contact_ids.clone();
        unique.sort();
        unique.dedup();
        let now = ids::now();
        let known: Vec<String> = list_members::table
            .filter(list_members::list_id.eq(id))
            .filter(list_members::contact_id.eq_any(&unique))
            .select(list_members::contact_id)
            .load(c)?;
        let mut added = 0;
        for cid in unique.iter().filter(|cid| !known.contains(cid)) {
            added += diesel::insert_into(list_members::table)
                .values((
                    list_members::list_id.eq(id),
                    list_members::contact_id.eq(cid),
                    list_members::added_at.eq(&now),
                ))
                .execute(c)? as i64;
        }
        let out = Added {
            added,
            already: unique.len() as i64 - added,
        };
        audit_change(
            c,
            me,
            "marketing_list",
            "members_added",
            id,
            json!({"contact_ids": unique}),
            &l,
        )?;
        Ok(out)
    })
}

/// An import's `list_id` (`POST /imports?object=contacts&list_id=…`): a live list, and a
/// caller who may add to it.
fn check_import_target(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    me.require(Permission::MarketingWrite)?;
    let live = find(c, id).ok().filter(|l| l.archived_at.is_none());
    live.map(|_| ())
        .ok_or_else(|| ApiError::field("list_id", "not_found", "no live list has this id"))
}

/// An imported contact joins the import's list.
fn join_from_import(c: &mut DbConn, me: &Principal, id: &str, contact: &str) -> ApiResult<()> {
    let contact_ids = vec![contact.to_string()];
    add(c, me, id, &AddMembers { contact_ids }).map(|_| ())
}

/// Imports of contacts may fill a static list.
pub const IMPORT_TARGET: crm_core::integrations::imports::ListTarget =
    crm_core::integrations::imports::ListTarget {
        object: "contacts",
        check: check_import_target,
        join: join_from_import,
    };

/// Add contacts to a list
///
/// Adds live contacts to the list; ones already on it are counted, not added twice. An id
/// that is not a live contact the caller sees is a 422 naming its index, and nothing is
/// added. Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/lists/{id}/members", tag = "lists", operation_id = "add_list_members",
    params(("id" = String, Path, format = "uuid", description = "List id")),
    request_body = AddMembers,
    responses((status = 200, description = "How many were added", body = Added), WriteProblems))]
#[post("/lists/{id}/members")]
pub async fn add_members(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: AddMembers = crm_core::objects::input(&body.into_inner())?;
    let out = state.db(move |c| add(c, &me, &id, &input)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Remove a contact from a list
///
/// 204 when the contact was on the list, 404 when it was not. Marketers, managers and admins
/// (`MarketingWrite`).
#[utoipa::path(delete, path = "/api/v1/lists/{id}/members/{contact_id}", tag = "lists", operation_id = "remove_list_member",
    params(
        ("id" = String, Path, format = "uuid", description = "List id"),
        ("contact_id" = String, Path, format = "uuid", description = "Contact id"),
    ),
    responses((status = 204, description = "Removed"), WriteProblems))]
#[delete("/lists/{id}/members/{contact_id}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let (id, contact) = path.into_inner();
    let (id, contact) = (path_id(&id)?, path_id(&contact)?);
    state
        .db(move |c| {
            db::write_tx(c, |c| {
                let l = find(c, &id)?;
                let gone = diesel::delete(
                    list_members::table
                        .filter(list_members::list_id.eq(&id))
                        .filter(list_members::contact_id.eq(&contact)),
                )
                .execute(c)?;
                if gone == 0 {
                    return Err(ApiError::not_found("list member"));
                }
                audit_change(
                    c,
                    &me,
                    "marketing_list",
                    "member_removed",
                    &id,
                    json!({"contact_id": contact}),
                    &l,
                )
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The contacts on a list
///
/// A page of the list's live contacts the caller may see, oldest contact first unless `sort`
/// says otherwise. Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/lists/{id}/members", tag = "lists", operation_id = "list_list_members",
    params(
        ("id" = String, Path, format = "uuid", description = "List id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|last_name)(,-?(created_at|last_name))*$", description = "created_at (default), last_name; `-` for descending"),
    ),
    responses((status = 200, description = "A page of contacts", body = Page<MemberContact>), ReadProblems))]
#[get("/lists/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &crate::segments::MEMBER_LIST)?;
    let page = state
        .db(move |c| {
            find(c, &id)?;
            crate::segments::member_page(c, on_list(&me, &id), &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Live contacts the caller may see on a list.
pub fn on_list(me: &Principal, id: &str) -> contacts::BoxedQuery<'static, MultiBackend> {
    let q = contacts::table
        .into_boxed::<MultiBackend>()
        .filter(contacts::archived_at.is_null())
        .filter(contacts::merged_into.is_null())
        .filter(
            contacts::id.eq_any(
                list_members::table
                    .filter(list_members::list_id.eq(id.to_string()))
                    .select(list_members::contact_id),
            ),
        );
    crm_core::visible!(q, me, contacts::id)
}

/// Lists on the resource kernel.
pub struct Lists;

impl Resource for Lists {
    type Record = MarketingList;
    type Input = MarketingListInput;
    type Patch = MarketingListInput;
    crm_core::resource_paths!("lists");
    const ENTITY: &'static str = "marketing_list";
    const TABLE: &'static str = "marketing_lists";
    const TAG: &'static str = "lists";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(MarketingList);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<MarketingList> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<MarketingList>> {
        let mut q = ml::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(ml::archived_at.is_null());
        }
        let rows = apply_sort(q, p)?
            .select(MarketingList::as_select())
            .load(c)?;
        list::page(rows, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &MarketingListInput,
    ) -> ApiResult<MarketingList> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<MarketingList> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(marketing_lists);
}
