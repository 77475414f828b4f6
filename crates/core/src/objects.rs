//! Integrable objects. A domain crate registers each of its objects once — how to read,
//! create, change, archive, list and find one by its external key — and gets upserts,
//! batch and composite writes, imports, exports, the change feed and webhooks for it
//! without any code of its own (see `crate::integrations`).

use crate::access::{Permission, Role};
use crate::auth::{role_may, Principal};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::list::{ListParams, ListSpec, Page};
use serde_json::Value;
use std::collections::HashMap;

type Get = fn(&mut DbConn, &Principal, &str) -> ApiResult<Value>;
type Create = fn(&mut DbConn, &Principal, &Value) -> ApiResult<Value>;
type Update = fn(&mut DbConn, &Principal, &str, Option<i32>, &Value) -> ApiResult<Value>;
type Archive = fn(&mut DbConn, &Principal, &str) -> ApiResult<()>;
type List = fn(&mut DbConn, &Principal, &ListParams) -> ApiResult<Page<Value>>;
pub type FindBy = fn(&mut DbConn, &str, &str) -> ApiResult<Option<String>>;
pub type FindByEmail = fn(&mut DbConn, &str) -> ApiResult<Option<String>>;

/// One integrable object and how to work with it. Every function runs inside the
/// caller's transaction and applies the same validation, visibility, audit and events as
/// the object's own endpoints (it is what they call).
#[derive(Clone, Copy)]
pub struct ObjectKind {
    /// The collection's URL segment: `accounts`.
    pub name: &'static str,
    /// The entity type of its events: `account` (events are `account.created`, …).
    pub entity: &'static str,
    pub read: Permission,
    pub write: Permission,
    pub list_spec: &'static ListSpec,
    pub get: Get,
    pub create: Create,
    pub update: Update,
    pub archive: Archive,
    pub list: List,
    /// The record id carrying an external key (`external_source`, `external_id`).
    pub by_external: FindBy,
    /// The record id whose primary email this is, for objects matched by email.
    pub by_email: Option<FindByEmail>,
    /// Row-level visibility beyond the role (partners see only what is shared).
    pub visible_to: fn(&Principal) -> bool,
    /// The JSON schema of the create/update body, which tells imports how to type CSV cells.
    pub input_schema: fn() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    /// The name of its record schema in the OpenAPI document (`Account`); the kernel also
    /// publishes `<name>Create` and `<name>Patch`.
    pub schema_name: fn() -> std::borrow::Cow<'static, str>,
}

/// An entity type that appears in events without being an integrable object (activities,
/// households…), and who may see its events.
#[derive(Clone, Copy)]
pub struct EventSource {
    pub entity: &'static str,
    pub read: Permission,
    pub visible_to: fn(&Principal) -> bool,
}

/// Every registered object, by name.
#[derive(Default)]
pub struct ObjectRegistry {
    objects: Vec<ObjectKind>,
    by_name: HashMap<&'static str, usize>,
    sources: Vec<EventSource>,
}

impl ObjectRegistry {
    pub fn new(objects: &[&[ObjectKind]], sources: &[&[EventSource]]) -> Self {
        let objects: Vec<ObjectKind> = objects.iter().flat_map(|o| o.iter().copied()).collect();
        let by_name = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name, i))
            .collect();
        let mut sources: Vec<EventSource> =
            sources.iter().flat_map(|s| s.iter().copied()).collect();
        sources.extend(objects.iter().map(|o| EventSource {
            entity: o.entity,
            read: o.read,
            visible_to: o.visible_to,
        }));
        ObjectRegistry {
            objects,
            by_name,
            sources,
        }
    }

    pub fn all(&self) -> &[ObjectKind] {
        &self.objects
    }

    pub fn get(&self, name: &str) -> ApiResult<&ObjectKind> {
        self.by_name
            .get(name)
            .and_then(|&i| self.objects.get(i))
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no object is called {name:?}; integrable objects are {}",
                    self.names().join(", ")
                ))
            })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.objects.iter().map(|o| o.name).collect()
    }

    /// The entity types whose events the caller may see; `None` means all of them
    /// (admins also see users, teams, API keys, webhooks…).
    pub fn visible_entities(&self, me: &Principal) -> Option<Vec<&'static str>> {
        if me.role == Role::Admin {
            return None;
        }
        let mut out: Vec<&'static str> = self
            .sources
            .iter()
            .filter(|s| role_may(me, s.read) && (s.visible_to)(me))
            .map(|s| s.entity)
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

/// One write against an object, as batch items, composite sub-requests, upserts and
/// import rows describe it.
#[derive(Debug, Clone)]
pub enum Write {
    Create(Value),
    Update {
        id: String,
        if_match: Option<i32>,
        body: Value,
    },
    Upsert {
        key: MatchKey,
        if_match: Option<i32>,
        body: Value,
    },
    Delete(String),
}

/// How an upsert finds an existing record.
#[derive(Debug, Clone)]
pub enum MatchKey {
    External { source: String, id: String },
    Email(String),
}

/// What a write did: the HTTP status it stands for, the record id, and the record.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub id: String,
    pub record: Option<Value>,
}

fn record_id(record: &Value) -> String {
    record["id"].as_str().unwrap_or_default().to_string()
}

/// Carry out one write as the caller, in the caller's transaction.
pub fn apply(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    write: Write,
) -> ApiResult<Outcome> {
    me.require(kind.write)?;
    match write {
        Write::Create(body) => {
            let record = (kind.create)(conn, me, &body)?;
            Ok(Outcome {
                status: 201,
                id: record_id(&record),
                record: Some(record),
            })
        }
        Write::Update { id, if_match, body } => {
            let record = (kind.update)(conn, me, &id, if_match, &body)?;
            Ok(Outcome {
                status: 200,
                id,
                record: Some(record),
            })
        }
        Write::Upsert {
            key,
            if_match,
            body,
        } => upsert(conn, me, kind, &key, if_match, body),
        Write::Delete(id) => {
            (kind.archive)(conn, me, &id)?;
            Ok(Outcome {
                status: 204,
                id,
                record: None,
            })
        }
    }
}

/// Create the record the key names, or update it when it exists. The key is written
/// into the record, so the body need not repeat it (and may not contradict it).
fn upsert(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    key: &MatchKey,
    if_match: Option<i32>,
    body: Value,
) -> ApiResult<Outcome> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::field(
            "",
            "invalid_type",
            "the body must be a JSON object",
        ));
    };
    let existing = match key {
        MatchKey::External { source, id } => {
            check_external_key(source, id)?;
            for (field, value) in [("external_source", source), ("external_id", id)] {
                match fields.get(field) {
                    Some(v) if v.as_str() != Some(value.as_str()) => {
                        return Err(ApiError::field(
                            field,
                            "mismatch",
                            "differs from the key in the path",
                        ))
                    }
                    _ => {
                        fields.insert(field.into(), Value::String(value.clone()));
                    }
                }
            }
            crate::db::lock_key(conn, &format!("{}:external:{source}:{id}", kind.name))?;
            (kind.by_external)(conn, source, id)?
        }
        MatchKey::Email(email) => {
            let Some(find) = kind.by_email else {
                return Err(ApiError::NotFound(format!(
                    "{} cannot be matched by email",
                    kind.name
                )));
            };
            let email = email.trim().to_lowercase();
            crate::db::lock_key(conn, &format!("{}:email:{email}", kind.name))?;
            let found = find(conn, &email)?;
            if found.is_none() && !fields.contains_key("emails") {
                fields.insert(
                    "emails".into(),
                    serde_json::json!([{"email": email, "primary": true}]),
                );
            }
            found
        }
    };
    let body = Value::Object(fields);
    match existing {
        Some(id) => match unchanged(conn, me, kind, &id, if_match, &body)? {
            // Re-sending what is already there writes nothing and fires nothing, so two
            // systems syncing both ways do not echo each other's changes forever.
            Some(record) => Ok(Outcome {
                status: 200,
                id,
                record: Some(record),
            }),
            None => apply(conn, me, kind, Write::Update { id, if_match, body }),
        },
        // RFC 9110: If-Match fails when there is no current representation.
        None if if_match.is_some() => Err(ApiError::PreconditionFailed(
            "If-Match was sent but no record has this key yet".into(),
        )),
        None => apply(conn, me, kind, Write::Create(body)),
    }
}

/// The current record when every field of `body` already has the value sent.
fn unchanged(
    conn: &mut DbConn,
    me: &Principal,
    kind: &ObjectKind,
    id: &str,
    if_match: Option<i32>,
    body: &Value,
) -> ApiResult<Option<Value>> {
    me.require(kind.write)?;
    let current = (kind.get)(conn, me, id)?;
    if if_match
        .is_some_and(|v| Some(i64::from(v)) != current.get("version").and_then(Value::as_i64))
    {
        return Ok(None);
    }
    let same = body
        .as_object()
        .is_some_and(|b| b.iter().all(|(k, v)| current.get(k) == Some(v)));
    Ok(same.then_some(current))
}

/// External keys are path segments: 1 to 200 characters, no `/`.
pub fn check_external_key(source: &str, id: &str) -> ApiResult<()> {
    for (field, v) in [("external_source", source), ("external_id", id)] {
        if v.trim().is_empty() || v.len() > 200 || v.contains('/') {
            return Err(ApiError::field(
                field,
                "invalid",
                "must be 1 to 200 characters without '/'",
            ));
        }
    }
    Ok(())
}

/// The external key a create or update body sets: both parts or neither; `null` on both
/// clears it. `Ok(None)` when the body leaves it alone.
pub fn external_key_change(
    raw_source: Option<&Value>,
    raw_id: Option<&Value>,
) -> ApiResult<Option<Option<(String, String)>>> {
    match (raw_source, raw_id) {
        (None, None) => Ok(None),
        (Some(Value::Null), Some(Value::Null)) => Ok(Some(None)),
        (Some(Value::String(s)), Some(Value::String(i))) => {
            check_external_key(s, i)?;
            Ok(Some(Some((s.clone(), i.clone()))))
        }
        _ => Err(ApiError::field(
            "external_id",
            "pair",
            "external_source and external_id are set (or cleared) together",
        )),
    }
}

/// `by_external` for a table with `external_source` and `external_id` columns.
#[macro_export]
macro_rules! find_by_external {
    ($table:ident) => {
        |conn: &mut $crate::db::DbConn,
         source: &str,
         external: &str|
         -> $crate::error::ApiResult<Option<String>> {
            use $crate::reexport::diesel::prelude::*;
            Ok($crate::schema::$table::table
                .filter($crate::schema::$table::external_source.eq(source))
                .filter($crate::schema::$table::external_id.eq(external))
                .select($crate::schema::$table::id)
                .first::<String>(conn)
                .optional()?)
        }
    };
}

/// A typed page as a page of JSON records.
pub fn json_page<T: serde::Serialize>(page: Page<T>) -> Page<Value> {
    Page {
        data: page
            .data
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect(),
        next_cursor: page.next_cursor,
    }
}

/// A typed record as JSON.
pub fn json<T: serde::Serialize>(record: T) -> Value {
    serde_json::to_value(record).unwrap_or_default()
}

/// Parse a JSON body into an object's input type: shape errors are 422 with the field.
pub fn input<T: serde::de::DeserializeOwned>(body: &Value) -> ApiResult<T> {
    crate::extract::from_body(body.clone())
}

/// The external key of a new record from its input: both parts or neither.
pub fn external_key_of(
    source: &Option<String>,
    id: &Option<String>,
) -> ApiResult<(Option<String>, Option<String>)> {
    match (source, id) {
        (None, None) => Ok((None, None)),
        (Some(s), Some(i)) => {
            check_external_key(s, i)?;
            Ok((Some(s.clone()), Some(i.clone())))
        }
        _ => Err(ApiError::field(
            "external_id",
            "pair",
            "external_source and external_id are set together",
        )),
    }
}

/// The external key after a PATCH body `raw` is applied to a record keyed `current`.
pub fn external_key_after(
    raw: &Value,
    current: (Option<String>, Option<String>),
) -> ApiResult<(Option<String>, Option<String>)> {
    Ok(
        match external_key_change(raw.get("external_source"), raw.get("external_id"))? {
            None => current,
            Some(None) => (None, None),
            Some(Some((s, i))) => (Some(s), Some(i)),
        },
    )
}
