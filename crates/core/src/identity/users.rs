//! Users: the people (and integrations) who call the API, with a role and a team.

use crate::access::{Permission, Role};
use crate::audit::{self, Actor, Change};
use crate::auth::{hash_password, Principal};
use crate::db::{self, DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult};
use crate::list::{self, Filter, ListParams, ListSpec, Page};
use crate::respond::{self, ReadProblems};
use crate::schema::{teams, users};
use crate::state::AppState;
use crate::{etag, ids};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Queryable, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub team_id: Option<String>,
    pub password_hash: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    pub session_epoch: i32,
}

/// A user of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// Inactive users cannot log in or use their API keys.
    pub active: bool,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            role: Role::parse(&r.role).unwrap_or(Role::Agent),
            id: r.id,
            email: r.email,
            name: r.name,
            team_id: r.team_id,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[validate(
        email(message = "must be a valid email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub role: Role,
    /// A team id; an unknown team is a 422.
    #[schema(format = "uuid")]
    pub team_id: Option<String>,
    /// At least 12 characters. Without a password the user can only use API keys
    /// an admin creates for them.
    #[validate(length(min = 12, max = 1024, message = "must be at least 12 characters"))]
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[validate(
        email(message = "must be a valid email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub role: Option<Role>,
    /// A team id, or null to take the user out of their team.
    #[serde(default, deserialize_with = "crate::identity::double_option")]
    #[schema(value_type = Option<String>, format = "uuid")]
    pub team_id: Option<Option<String>>,
    #[validate(length(min = 12, max = 1024, message = "must be at least 12 characters"))]
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    pub active: Option<bool>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "email", "name"],
    default_sort: "created_at",
    filters: &[
        Filter::of::<Role>("role", "Only users with this role"),
        Filter::id("team_id", "Only members of this team"),
        Filter::bool("active", "Only active (or inactive) users"),
        Filter::text("email", "Exact email"),
        Filter::time("created_after", "RFC 3339 timestamp"),
        Filter::time("created_before", "RFC 3339 timestamp"),
    ],
    search: Some("Prefix of the email or name"),
    null_sorts_as: &[],
};

crate::sortable!(users::table, users::BoxedQuery<'static, MultiBackend>, {
    "created_at" => users::created_at,
    "updated_at" => users::updated_at,
    "email" => users::email,
    "name" => users::name,
    "id" => users::id,
});

fn to_json(u: &User) -> serde_json::Value {
    serde_json::to_value(u).unwrap_or_default()
}

fn check_team(conn: &mut DbConn, team_id: &Option<String>) -> ApiResult<Option<String>> {
    let Some(raw) = team_id else { return Ok(None) };
    let invalid = || ApiError::field("team_id", "reference", "no such team");
    let id = ids::parse_id(raw).ok_or_else(invalid)?;
    // Held until commit, so the team cannot be archived under its new member.
    db::lock_row(conn, "teams", &id)?;
    let exists: i64 = teams::table
        .filter(teams::id.eq(&id))
        .filter(teams::archived_at.is_null())
        .count()
        .get_result(conn)?;
    if exists == 0 {
        return Err(invalid());
    }
    Ok(Some(id))
}

fn email_taken(conn: &mut DbConn, email: &str, except: &str) -> ApiResult<()> {
    let n: i64 = users::table
        .filter(users::email.eq(email))
        .filter(users::id.ne(except))
        .count()
        .get_result(conn)?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    Ok(())
}

/// Create a user (used by the API, the CLI and the first-start bootstrap).
pub fn create_user(conn: &mut DbConn, input: &CreateUser, actor: &Actor) -> ApiResult<User> {
    input.validate()?;
    let email = input.email.trim().to_lowercase();
    let hash = input.password.as_deref().map(hash_password).transpose()?;
    db::write_tx(conn, |c| {
        email_taken(c, &email, "")?;
        let team_id = check_team(c, &input.team_id)?;
        let now = ids::now();
        let id = ids::new_id();
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::email.eq(&email),
                users::name.eq(input.name.trim()),
                users::role.eq(input.role.as_str()),
                users::team_id.eq(&team_id),
                users::password_hash.eq(&hash),
                users::active.eq(true),
                users::version.eq(1),
                users::created_at.eq(&now),
                users::updated_at.eq(&now),
            ))
            .execute(c)?;
        let user: User = users::table.find(&id).first::<UserRow>(c)?.into();
        audit::record(
            c,
            Change {
                actor,
                action: "created",
                entity_type: "user",
                entity_id: &id,
                changes: to_json(&user),
                record: to_json(&user),
            },
        )?;
        Ok(user)
    })
}

fn find(conn: &mut DbConn, id: &str) -> ApiResult<UserRow> {
    users::table
        .find(id)
        .first::<UserRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("user"))
}

fn load_users(conn: &mut DbConn, p: &ListParams) -> ApiResult<Page<User>> {
    let mut q = users::table.into_boxed::<MultiBackend>();
    if !p.include_archived {
        q = q.filter(users::archived_at.is_null());
    }
    if let Some(role) = p.filter("role") {
        let role = Role::parse(role)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown role {role:?}")))?;
        q = q.filter(users::role.eq(role.as_str()));
    }
    if let Some(team) = p.id_filter("team_id")? {
        q = q.filter(users::team_id.eq(team));
    }
    if let Some(active) = p.bool_filter("active")? {
        q = q.filter(users::active.eq(active));
    }
    if let Some(email) = p.filter("email") {
        q = q.filter(users::email.eq(email.trim().to_lowercase()));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(users::created_at.gt(t));
    }
    if let Some(t) = p.time_filter("created_before")? {
        q = q.filter(users::created_at.lt(t));
    }
    if let Some(text) = &p.q {
        // Prefix search on the unique email index and on the name.
        let prefix = format!("{}%", text.to_lowercase().replace(['%', '_'], ""));
        q = q.filter(
            users::email
                .like(prefix.clone())
                .or(users::name.like(prefix)),
        );
    }
    let rows: Vec<UserRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(User::from).collect(), p)
}

/// Get the calling user.
///
/// Returns the user the access token or API key belongs to, with their role and team, and the
/// user's `ETag`. Any valid credential may call it, whatever the role.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, description = "The calling user", body = User), ReadProblems))]
pub async fn get_me(state: web::Data<AppState>, me: Principal) -> ApiResult<HttpResponse> {
    let row = state.db(move |c| find(c, &me.user_id)).await?;
    Ok(respond::with_etag(row.version, &User::from(row)))
}

fn update_user(
    conn: &mut DbConn,
    id: &str,
    expected: Option<i32>,
    input: UpdateUser,
    me: &Principal,
) -> ApiResult<User> {
    input.validate()?;
    let hash = input.password.as_deref().map(hash_password).transpose()?;
    db::write_tx(conn, |c| {
        db::lock_row(c, "users", id)?;
        let row = find(c, id)?;
        etag::check(expected, row.version)?;
        if row.id == me.user_id
            && (input.role.is_some_and(|r| r != Role::Admin) || input.active == Some(false))
        {
            return Err(ApiError::Conflict(
                "admins cannot demote or deactivate themselves; ask another admin".into(),
            ));
        }
        let email = input.email.as_ref().map(|e| e.trim().to_lowercase());
        if let Some(e) = &email {
            email_taken(c, e, id)?;
        }
        let team_id = match &input.team_id {
            None => row.team_id.clone(),
            Some(t) => check_team(c, t)?,
        };
        let before: User = row.clone().into();
        let now = ids::now();
        let updated = diesel::update(users::table.find(id).filter(users::version.eq(row.version)))
            .set((
                users::email.eq(email.unwrap_or(row.email.clone())),
                users::name.eq(input.name.as_deref().map(str::trim).unwrap_or(&row.name)),
                users::role.eq(input.role.map(Role::as_str).unwrap_or(&row.role)),
                users::team_id.eq(&team_id),
                users::password_hash.eq(hash.or(row.password_hash.clone())),
                users::active.eq(input.active.unwrap_or(row.active)),
                users::version.eq(row.version + 1),
                users::updated_at.eq(&now),
            ))
            .execute(c)?;
        crate::resource::changed_one(updated)?;
        let after: User = find(c, id)?.into();
        let mut changes = audit::diff(&to_json(&before), &to_json(&after), &[]);
        if input.password.is_some() {
            changes = with_change(changes, "password", serde_json::json!({"changed": true}));
        }
        // A new password, another role or a deactivation ends the user's sessions; a
        // deactivated user's API keys stop working for good.
        let deactivated = before.active && !after.active;
        if input.password.is_some() || before.role != after.role || deactivated {
            let revoked = super::sessions::revoke_sessions(c, id, deactivated)?;
            changes = with_change(changes, "sessions_revoked", serde_json::json!(revoked));
        }
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "updated",
                entity_type: "user",
                entity_id: id,
                changes,
                record: to_json(&after),
            },
        )?;
        Ok(after)
    })
}

/// Users on the resource kernel: internal roles read the directory, admins manage it.
pub struct Users;

impl crate::resource::Resource for Users {
    type Record = User;
    type Input = CreateUser;
    type Patch = UpdateUser;
    crate::resource_paths!("users");
    const ENTITY: &'static str = "user";
    const TABLE: &'static str = "users";
    const TAG: &'static str = "users";
    const READ: Permission = Permission::UsersRead;
    const WRITE: Permission = Permission::UsersManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["email", "name", "role"];
    const ARCHIVED: &'static str = "Archived; the user can no longer sign in";

    crate::record_meta!(User);

    fn find(c: &mut DbConn, _: &Principal, id: &str) -> ApiResult<User> {
        find(c, id).map(User::from)
    }

    fn page(c: &mut DbConn, _: &Principal, p: &ListParams) -> ApiResult<Page<User>> {
        load_users(c, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &CreateUser) -> ApiResult<User> {
        create_user(c, input, &Actor::from(me))
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<User> {
        update_user(c, id, expected, crate::objects::input(patch)?, me)
    }

    crate::archive_stamp!(users);

    fn before_archive(_: &mut DbConn, me: &Principal, u: &User, archiving: bool) -> ApiResult<()> {
        if archiving && u.id == me.user_id {
            return Err(ApiError::Conflict(
                "you cannot archive yourself; ask another admin".into(),
            ));
        }
        Ok(())
    }

    /// An archived user's sessions and API keys end.
    fn after_archive(c: &mut DbConn, _: &Principal, u: &User, archiving: bool) -> ApiResult<()> {
        if archiving {
            super::sessions::revoke_sessions(c, &u.id, true)?;
        }
        Ok(())
    }
}

/// On an empty database, create the first admin. Returns the generated password when
/// none was configured, so the caller can print it once.
pub fn bootstrap_admin(
    conn: &mut DbConn,
    email: Option<&str>,
    password: Option<&str>,
) -> ApiResult<Option<(String, Option<String>)>> {
    // No admin yet (a fresh database, or one `crm seed` filled with sales reps): make one.
    let admins: i64 = users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .count()
        .get_result(conn)?;
    if admins > 0 {
        return Ok(None);
    }
    let email = email.unwrap_or("admin@example.com").to_string();
    let generated = match password {
        Some(_) => None,
        None => Some(crate::auth::random_token(18)?),
    };
    let input = CreateUser {
        email: email.clone(),
        name: "Administrator".into(),
        role: Role::Admin,
        team_id: None,
        password: Some(
            password
                .map(str::to_string)
                .or(generated.clone())
                .unwrap_or_default(),
        ),
    };
    create_user(conn, &input, &Actor::system())?;
    Ok(Some((email, generated)))
}

/// An audit diff with one more entry (a diff is always an object).
fn with_change(
    changes: serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> serde_json::Value {
    let mut map = match changes {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    map.insert(key.into(), value);
    serde_json::Value::Object(map)
}
