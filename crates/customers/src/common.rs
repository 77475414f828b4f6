//! Pieces every customer resource shares: who may see and change a record, JSON columns,
//! phone normalisation, and the list parameters they document.

use crm_core::access::{Ownership, Permission};
use crm_core::auth::{role_may, Principal};
use crm_core::db::DbConn;
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::ids;
use crm_core::schema::users;
use crm_core::visibility;
use diesel::prelude::*;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Who may change a customer record: its owner, the owner's team, or a manager.
pub const EDITS: Ownership = Ownership::OwnerOrTeamEdits(Permission::CustomersManage);

/// 403 unless the caller may change a customer record owned by `owner_id` (see `EDITS`).
pub fn require_edit(
    conn: &mut DbConn,
    me: &Principal,
    owner_id: Option<&str>,
    what: &str,
) -> ApiResult<()> {
    visibility::require_edit(
        conn,
        me,
        owner_id,
        (Permission::CustomersWrite, Permission::CustomersManage),
        what,
    )
}

/// Resolve the owner for a new or reassigned record. Only managers may give a record to
/// someone else; the owner must be an active user.
pub fn resolve_owner(
    conn: &mut DbConn,
    me: &Principal,
    requested: Option<&str>,
    current: Option<&str>,
) -> ApiResult<Option<String>> {
    let Some(raw) = requested else {
        return Ok(current.map(str::to_string).or(Some(me.user_id.clone())));
    };
    let id = ids::parse_id(raw)
        .ok_or_else(|| ApiError::field("owner_id", "invalid", "must be a user id"))?;
    if Some(id.as_str()) != current
        && id != me.user_id
        && !role_may(me, Permission::CustomersManage)
    {
        return Err(ApiError::Forbidden(
            "only managers may assign records to other users".into(),
        ));
    }
    check_active_user(conn, &id, "owner_id")?;
    Ok(Some(id))
}

/// 422 naming `field` unless `id` is an active, not archived user.
pub fn check_active_user(conn: &mut DbConn, id: &str, field: &str) -> ApiResult<()> {
    let active: i64 = users::table
        .filter(users::id.eq(id))
        .filter(users::active.eq(true))
        .filter(users::archived_at.is_null())
        .count()
        .get_result(conn)?;
    if active == 0 {
        return Err(ApiError::field(field, "reference", "no such active user"));
    }
    Ok(())
}

pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn parse_json<T: DeserializeOwned + Default>(raw: &str) -> T {
    serde_json::from_str(raw).unwrap_or_default()
}

pub fn json_text<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A postal address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub street: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub city: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub region: Option<String>,
    #[validate(length(max = 20))]
    #[schema(max_length = 20)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[validate(length(equal = 2, message = "must be a two-letter country code"))]
    #[schema(min_length = 2, max_length = 2)]
    pub country: Option<String>,
}

/// Tags: at most 50, each 1–50 characters; stored lowercased and without duplicates.
pub fn clean_tags(tags: &[String]) -> ApiResult<Vec<String>> {
    if tags.len() > 50 {
        return Err(ApiError::field("tags", "length", "at most 50 tags"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 50 {
            return Err(ApiError::field(
                &format!("tags[{i}]"),
                "length",
                "tags are 1 to 50 characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Store a record's tags as rows too (`record_tags`), which is what `tag=` filters search.
pub fn write_tags(conn: &mut DbConn, entity: &str, id: &str, tags: &[String]) -> ApiResult<()> {
    use crm_core::schema::record_tags as rt;
    diesel::delete(
        rt::table
            .filter(rt::entity_type.eq(entity))
            .filter(rt::record_id.eq(id)),
    )
    .execute(conn)?;
    // One row at a time: a batch INSERT is not portable across the two backends here, and
    // a record has at most 50 tags.
    for tag in tags {
        diesel::insert_into(rt::table)
            .values((
                rt::entity_type.eq(entity),
                rt::record_id.eq(id),
                rt::tag.eq(tag),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Records of `entity` carrying a tag (written any case), for a list filter subquery.
#[macro_export]
macro_rules! tagged {
    ($entity:literal, $tag:expr) => {
        crm_core::schema::record_tags::table
            .filter(crm_core::schema::record_tags::entity_type.eq($entity))
            .filter(crm_core::schema::record_tags::tag.eq($tag.trim().to_lowercase()))
            .select(crm_core::schema::record_tags::record_id)
    };
}

/// Default region for phone numbers written without a country code.
pub fn default_region() -> phonenumber::country::Id {
    std::env::var("CRM_DEFAULT_PHONE_REGION")
        .ok()
        .and_then(|r| r.trim().to_uppercase().parse().ok())
        .unwrap_or(phonenumber::country::Id::US)
}

/// Whether `region` names a country the phone rules know (an ISO 3166 code, any case).
pub fn known_region(region: &str) -> bool {
    region
        .trim()
        .to_uppercase()
        .parse::<phonenumber::country::Id>()
        .is_ok()
}

/// A phone number in E.164 (`+442079460958`), or None when it is not a valid number.
pub fn to_e164(raw: &str) -> Option<String> {
    to_e164_in(raw, default_region())
}

/// A phone number in E.164, read in `region` when it has no country code. Besides `+` and
/// the region's own international prefix (`011` in North America), `00` — the international
/// prefix of most of the world, which people and phone systems write anywhere — introduces
/// a country code: `0047 98 76 54 32` is `+4798765432` whatever the region. A reading as
/// a number of the region comes first (no valid national number starts with `00` in any
/// case).
pub fn to_e164_in(raw: &str, region: phonenumber::country::Id) -> Option<String> {
    let raw = raw.trim();
    let valid = |text: &str| {
        phonenumber::parse(Some(region), text)
            .ok()
            .filter(phonenumber::is_valid)
    };
    let parsed = valid(raw).or_else(|| {
        raw.strip_prefix("00")
            .filter(|rest| !rest.trim_start().starts_with('0'))
            .and_then(|rest| valid(&format!("+{rest}")))
    })?;
    Some(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

pub fn invalid(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, code, message)])
}

/// Check that a referenced record exists and is not archived.
pub fn check_exists<F>(exists: F, field: &str, what: &str) -> ApiResult<()>
where
    F: FnOnce() -> ApiResult<bool>,
{
    if exists()? {
        Ok(())
    } else {
        Err(invalid(field, "reference", &format!("no such {what}")))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_any_written_form_share_one_e164() {
        std::env::remove_var("CRM_DEFAULT_PHONE_REGION");
        let a = to_e164("+44 20 7946 0958");
        assert_eq!(a.as_deref(), Some("+442079460958"));
        assert_eq!(to_e164("(415) 555-2671").as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("+1 415.555.2671").as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("12"), None);
        let us = phonenumber::country::Id::US;
        assert_eq!(
            to_e164_in("0047 98 76 54 32", us).as_deref(),
            Some("+4798765432")
        );
        assert_eq!(
            to_e164_in("011 47 98 76 54 32", us).as_deref(),
            Some("+4798765432")
        );
        assert_eq!(
            to_e164_in("0047 98 76 54 32", phonenumber::country::Id::NO).as_deref(),
            Some("+4798765432")
        );
        assert_eq!(to_e164_in("000 47 98 76 54 32", us), None);
    }

    #[test]
    fn tags_are_cleaned() {
        let t = clean_tags(&["VIP".into(), "vip".into(), " b2b ".into()]).unwrap_or_default();
        assert_eq!(t, vec!["vip", "b2b"]);
        assert!(clean_tags(&["".into()]).is_err());
    }
}
