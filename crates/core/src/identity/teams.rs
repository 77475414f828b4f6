//! Teams: groups of users; records owned by a team are editable by its members.

use crate::access::Permission;
use crate::audit::{self, Actor, Change};
use crate::auth::Principal;
use crate::db::{self, DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};
use crate::list::{self, ListParams, ListSpec, Page};
use crate::schema::{teams, users};
use crate::{etag, ids};
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
    search: Some("Name prefix"),
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

/// Teams on the resource kernel.
pub struct Teams;

impl crate::resource::Resource for Teams {
    type Record = Team;
    type Input = CreateTeam;
    type Patch = UpdateTeam;
    crate::resource_paths!("teams");
    const ENTITY: &'static str = "team";
    const TABLE: &'static str = "teams";
    const TAG: &'static str = "teams";
    const READ: Permission = Permission::TeamsRead;
    const WRITE: Permission = Permission::TeamsManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crate::record_meta!(Team);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Team> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Team>> {
        let mut q = teams::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(teams::archived_at.is_null());
        }
        if let Some(text) = &p.q {
            q = q.filter(teams::name.like(format!("{}%", text.replace(['%', '_'], ""))));
        }
        let rows: Vec<Team> = apply_sort(q, p)?.load(c)?;
        list::page(rows, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &CreateTeam) -> ApiResult<Team> {
        input.validate()?;
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
            record(c, me, "created", &id, to_json(&team), &team)?;
            Ok(team)
        })
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Team> {
        let input: UpdateTeam = crate::objects::input(patch)?;
        input.validate()?;
        db::write_tx(c, |c| {
            let before = crate::resource::find_for_write::<Teams>(c, me, id)?;
            etag::check(expected, before.version)?;
            let name = input
                .name
                .as_deref()
                .map(str::trim)
                .unwrap_or(&before.name)
                .to_string();
            name_taken(c, &name, id)?;
            let description = input
                .description
                .clone()
                .unwrap_or(before.description.clone());
            let changed = diesel::update(teams::table.find(id))
                .filter(teams::version.eq(before.version))
                .set((
                    teams::name.eq(&name),
                    teams::description.eq(&description),
                    teams::version.eq(before.version + 1),
                    teams::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
            crate::resource::changed_one(changed)?;
            let after = find(c, id)?;
            record(
                c,
                me,
                "updated",
                id,
                audit::diff(&to_json(&before), &to_json(&after), &[]),
                &after,
            )?;
            Ok(after)
        })
    }

    crate::archive_stamp!(teams);

    /// A team with active members stays.
    fn before_archive(c: &mut DbConn, _me: &Principal, t: &Team, archiving: bool) -> ApiResult<()> {
        if !archiving {
            return Ok(());
        }
        let members: i64 = users::table
            .filter(users::team_id.eq(&t.id))
            .filter(users::archived_at.is_null())
            .count()
            .get_result(c)?;
        if members > 0 {
            return Err(ApiError::Conflict(format!(
                "the team still has {members} active member(s); move them first"
            )));
        }
        Ok(())
    }
}
