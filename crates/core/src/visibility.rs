//! Who sees and who changes which records: the one rule every domain crate applies to
//! customer records, in its queries (`visible!`) and before a change (`require_edit`).

use crate::access::{Permission, Role};
use crate::auth::{role_may, Principal};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::schema::users;
use diesel::prelude::*;

/// Partner users see only records shared with their partner organisation. Sharing
/// arrives with the partners domain; until then nothing is shared, so a partner's lists
/// are empty and reads are 404.
pub fn sees_all(me: &Principal) -> bool {
    me.role != Role::Partner
}

/// Restrict a query to the records the caller may see, by the record's id column:
/// `crm_core::visible!(query, me, accounts::id)`.
#[macro_export]
macro_rules! visible {
    ($query:expr, $me:expr, $id:expr) => {{
        use $crate::reexport::diesel::{ExpressionMethods, QueryDsl};
        let query = $query;
        if $crate::visibility::sees_all($me) {
            query
        } else {
            // Nothing is shared with partner organisations yet.
            query.filter($id.eq(""))
        }
    }};
}

/// 404 for a record the caller may not see.
pub fn check_sees(me: &Principal, entity: &str) -> ApiResult<()> {
    if sees_all(me) {
        Ok(())
    } else {
        Err(ApiError::not_found(entity))
    }
}

/// Whether the caller may change a record owned by `owner_id`: holders of `manage`
/// always; other holders of `write` when they own it or share a team with its owner.
pub fn can_edit(
    conn: &mut DbConn,
    me: &Principal,
    owner_id: Option<&str>,
    (write, manage): (Permission, Permission),
) -> ApiResult<bool> {
    if role_may(me, manage) {
        return Ok(true);
    }
    if !role_may(me, write) {
        return Ok(false);
    }
    let Some(owner) = owner_id else {
        return Ok(true);
    };
    if owner == me.user_id {
        return Ok(true);
    }
    let Some(team) = &me.team_id else {
        return Ok(false);
    };
    let owner_team: Option<Option<String>> = users::table
        .find(owner)
        .select(users::team_id)
        .first(conn)
        .optional()?;
    Ok(owner_team.flatten().as_deref() == Some(team.as_str()))
}

/// 403 unless `can_edit`.
pub fn require_edit(
    conn: &mut DbConn,
    me: &Principal,
    owner_id: Option<&str>,
    rule: (Permission, Permission),
    what: &str,
) -> ApiResult<()> {
    if can_edit(conn, me, owner_id, rule)? {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only the owner of this {}, their team, or a manager may change it",
            what.replace('_', " ")
        )))
    }
}
