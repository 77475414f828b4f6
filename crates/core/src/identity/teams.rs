//! Teams: groups of users; records owned by a team are editable by its members.

use crate::access::Permission;
use crate::audit::{self, Actor, Change};
use crate::auth::Principal;
use crate::db::{self, DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, path_id, Json, ShowArchived};
use crate::list::{self, ListSpec, Page};
use crate::params::{IdempotencyParams, IfMatchParams, PageParams};
use crate::respond::{self, ListProblems, ReadProblems, WriteProblems};
use crate::schema::{teams, users};
use crate::state::AppState;
use crate::{etag, ids};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Queryable, Serialize, ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// New description, or null to clear it.
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[serde(default, deserialize_with = "crate::identity::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "name"],
    default_sort: "name",
    filters: &[],
    searchable: true,
    null_sorts_as: &[],
};

crate::sortable!(teams::table, teams::BoxedQuery<'static, MultiBackend>, {
    "created_at" => teams::created_at,
    "updated_at" => teams::updated_at,
    "name" => teams::name,
    "id" => teams::id,
});

fn to_json(t: &Team) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or_default()
}

fn find(conn: &mut DbConn, id: &str) -> ApiResult<Team> {
    teams::table
        .find(id)
        .first::<Team>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("team"))
}

fn name_taken(conn: &mut DbConn, name: &str, except: &str) -> ApiResult<()> {
    let n: i64 = teams::table
        .filter(teams::name.eq(name))
        .filter(teams::id.ne(except))
        .count()
        .get_result(conn)?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "a team named {name:?} already exists"
        )));
    }
    Ok(())
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Team,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "team",
            entity_id: id,
            changes,
            record: to_json(after),
        },
    )
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|updated_at|name)(,-?(created_at|updated_at|name))*$", description = "created_at, updated_at, name; `-` for descending"),
        ("include_archived" = Option<bool>, Query, nullable = false, description = "Include archived teams"),
        ("q" = Option<String>, Query, nullable = false, min_length = 1, description = "Name prefix"),
    ),
    responses((status = 200, description = "A page of teams", body = Page<Team>), ListProblems))]
#[get("/teams")]
pub async fn list_teams(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsRead)?;
    let p = list::parse(query.into_inner(), &LIST)?;
    let page = state
        .db(move |c| {
            let mut q = teams::table.into_boxed::<MultiBackend>();
            if !p.include_archived {
                q = q.filter(teams::archived_at.is_null());
            }
            if let Some(text) = &p.q {
                q = q.filter(teams::name.like(format!("{}%", text.replace(['%', '_'], ""))));
            }
            let rows: Vec<Team> = apply_sort(q, &p)?.load(c)?;
            list::page(rows, &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", operation_id = "get_team", tag = "teams",
    params(ShowArchived, ("id" = String, Path, format = "uuid", description = "Team id")),
    responses((status = 200, description = "The team", body = Team), ReadProblems))]
#[get("/teams/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    show: web::Query<ShowArchived>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsRead)?;
    let id = path_id(&id)?;
    let team = state.db(move |c| find(c, &id)).await?;
    show.check(&team.archived_at, "team")?;
    Ok(respond::with_etag(team.version, &team))
}

#[utoipa::path(post, path = "/api/v1/teams", operation_id = "create_team", tag = "teams", request_body = CreateTeam,
    params(IdempotencyParams),
    responses((status = 201, description = "Created", body = Team,
        headers(("Location" = String), ("ETag" = String))), WriteProblems))]
#[post("/teams")]
pub async fn create(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<CreateTeam>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsManage)?;
    body.validate()?;
    let input = body.into_inner();
    let team = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let name = input.name.trim().to_string();
                name_taken(c, &name, "")?;
                let (id, now) = (ids::new_id(), ids::now());
                diesel::insert_into(teams::table)
                    .values((
                        teams::id.eq(&id),
                        teams::name.eq(&name),
                        teams::description.eq(&input.description),
                        teams::version.eq(1),
                        teams::created_at.eq(&now),
                        teams::updated_at.eq(&now),
                    ))
                    .execute(c)?;
                let team = find(c, &id)?;
                record(c, &me, "created", &id, to_json(&team), &team)?;
                Ok(team)
            })
        })
        .await?;
    Ok(respond::created(
        format!("/api/v1/teams/{}", team.id),
        team.version,
        &team,
    ))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", operation_id = "update_team", tag = "teams", request_body = UpdateTeam,
    params(("id" = String, Path, format = "uuid", description = "Team id"),
        IfMatchParams),
    responses((status = 200, description = "Updated", body = Team), WriteProblems))]
#[patch("/teams/{id}")]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<UpdateTeam>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsManage)?;
    body.validate()?;
    let id = path_id(&id)?;
    let expected = if_match(&req)?;
    let input = body.into_inner();
    let team = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let before = find(c, &id)?;
                etag::check(expected, before.version)?;
                let name = input
                    .name
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&before.name)
                    .to_string();
                name_taken(c, &name, &id)?;
                let description = input
                    .description
                    .clone()
                    .unwrap_or(before.description.clone());
                diesel::update(teams::table.find(&id))
                    .set((
                        teams::name.eq(&name),
                        teams::description.eq(&description),
                        teams::version.eq(before.version + 1),
                        teams::updated_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                let after = find(c, &id)?;
                record(
                    c,
                    &me,
                    "updated",
                    &id,
                    audit::diff(&to_json(&before), &to_json(&after), &[]),
                    &after,
                )?;
                Ok(after)
            })
        })
        .await?;
    Ok(respond::with_etag(team.version, &team))
}

fn set_archived(c: &mut DbConn, id: &str, archiving: bool, me: &Principal) -> ApiResult<Team> {
    db::write_tx(c, |c| {
        let before = find(c, id)?;
        if archiving {
            let members: i64 = users::table
                .filter(users::team_id.eq(id))
                .filter(users::archived_at.is_null())
                .count()
                .get_result(c)?;
            if members > 0 {
                return Err(ApiError::Conflict(format!(
                    "the team still has {members} active member(s); move them first"
                )));
            }
        }
        let stamp = archiving.then(ids::now);
        diesel::update(teams::table.find(id))
            .set((
                teams::archived_at.eq(&stamp),
                teams::version.eq(before.version + 1),
                teams::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        let after = find(c, id)?;
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

#[utoipa::path(delete, path = "/api/v1/teams/{id}", operation_id = "archive_team", tag = "teams",
    params(("id" = String, Path, format = "uuid", description = "Team id")),
    responses((status = 204, description = "Archived"), WriteProblems))]
#[delete("/teams/{id}")]
pub async fn archive_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsManage)?;
    let id = path_id(&id)?;
    state.db(move |c| set_archived(c, &id, true, &me)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/teams/{id}/restore", operation_id = "restore_team", tag = "teams",
    params(("id" = String, Path, format = "uuid", description = "Team id")),
    responses((status = 200, description = "Restored", body = Team), WriteProblems))]
#[post("/teams/{id}/restore")]
pub async fn restore_one(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::TeamsManage)?;
    let id = path_id(&id)?;
    let team = state.db(move |c| set_archived(c, &id, false, &me)).await?;
    Ok(respond::with_etag(team.version, &team))
}
