//! The resource kernel. A resource says how to find, list, create and change its records
//! (`Resource`); the kernel gives it, from that one declaration, the six routes every
//! resource has (list, create, get, PATCH, archive, restore), their OpenAPI operations with
//! unique operation ids, create and patch schemas and the documented filters and sort
//! (`document`), their rows of the permission table (`operations`), archive and restore
//! with the edit rule, row lock, version check, audit and event (`set_archived`), and its
//! integrable object (`object`). See the README's "Adding a resource".

use crate::access::{Access, Operation, Ownership, Permission};
use crate::audit::{self, Actor, Change};
use crate::auth::Principal;
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_match, path_id, Json, ShowArchived};
use crate::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::objects::{self, ObjectKind};
use crate::params::{IdempotencyParams, IfMatchParams, PageParams};
use crate::respond::{self, ListProblems, ReadProblems, WriteProblems};
use crate::state::AppState;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, IntoResponses, ToSchema};

/// A record other records belong to, for `Resource::PARENTS`: the field that names it
/// (`opportunity_id`), its entity and table, its edit rule, and how to read its owner
/// (`None` when there is no such record; `Some(None)` when it has no owner).
#[derive(Clone, Copy)]
pub struct Parent {
    pub field: &'static str,
    pub entity: &'static str,
    pub table: &'static str,
    pub edits: Ownership,
    pub owner: fn(&mut DbConn, &str) -> ApiResult<Option<Option<String>>>,
}

/// What the kernel reads off a record.
pub struct Meta<'a> {
    pub id: &'a str,
    pub version: i32,
    pub archived_at: Option<&'a str>,
    /// The owning user, for `Ownership::OwnerOrTeamEdits`.
    pub owner_id: Option<&'a str>,
}

/// One resource: its names, who may use it, and its storage. Every function runs in the
/// caller's transaction; `find` and `page` apply the caller's visibility in the query.
pub trait Resource: Sized + 'static {
    /// The record as the API returns it.
    type Record: Serialize + ToSchema + Send + 'static;
    /// The body of a create.
    type Input: DeserializeOwned + ToSchema + Send + 'static;
    /// What the PATCH schema documents: usually `Input` again (every field then optional);
    /// a resource whose PATCH takes other fields names its own type.
    type Patch: ToSchema;

    /// The collection's URL segment and paths: `crate::resource_paths!("accounts")`.
    const COLLECTION: &'static str;
    const PATH: &'static str;
    const ITEM: &'static str;
    const RESTORE: &'static str;
    /// Audit and event entity type, 404 wording: `account`.
    const ENTITY: &'static str;
    /// The table, for the row lock writes take.
    const TABLE: &'static str;
    const TAG: &'static str;
    const READ: Permission;
    const WRITE: Permission;
    /// Who may change one record beyond holding `WRITE`.
    const EDITS: Ownership = Ownership::None;
    /// The records this one belongs to and takes its edit rule from (a quote its
    /// opportunity's), by the field naming them: the first one a record names decides who
    /// may create, change, archive or restore it, on every write path. A resource with
    /// parents declares `EDITS` as `Ownership::FollowsParent` (for the permission table
    /// and the spec).
    const PARENTS: &'static [Parent] = &[];
    const LIST: &'static ListSpec;
    /// Fields a create must carry.
    const REQUIRED: &'static [&'static str];
    /// What archiving also does, for the spec.
    const ARCHIVED: &'static str = "Archived";
    /// Fields a create sets and a PATCH may not change, each with what to do instead:
    /// left out of the patch schema, and a 422 naming them when a PATCH sends them. An
    /// upsert or batch write goes through `update`, which refuses only a change to them.
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[];

    fn meta(record: &Self::Record) -> Meta<'_>;
    /// Whether the caller's role sees this resource's records beyond `READ` (its events
    /// too); by default the platform's visibility rule.
    fn visible_to(me: &Principal) -> bool {
        crate::visibility::sees_all(me)
    }
    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Self::Record>;
    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Self::Record>>;
    fn create(c: &mut DbConn, me: &Principal, input: &Self::Input) -> ApiResult<Self::Record>;
    /// Apply a JSON merge patch: an absent field is kept, `null` clears one.
    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Self::Record>;
    /// Set `archived_at` to `stamp` and bump the version, only if it is still `version`
    /// (`crate::archive_stamp!(table)` writes it).
    fn stamp_archived(
        c: &mut DbConn,
        id: &str,
        version: i32,
        stamp: Option<&str>,
    ) -> diesel::QueryResult<usize>;
    /// 403 unless the caller may change this record; by default the `EDITS` rule.
    fn require_edit(c: &mut DbConn, me: &Principal, record: &Self::Record) -> ApiResult<()> {
        require_edit_by_rule::<Self>(c, me, record)
    }
    /// Refuse an archive or restore the resource's rules forbid (409).
    fn before_archive(
        _c: &mut DbConn,
        _me: &Principal,
        _record: &Self::Record,
        _archiving: bool,
    ) -> ApiResult<()> {
        Ok(())
    }
    /// What else changes with it, after its own audit row and event (same transaction).
    fn after_archive(
        _c: &mut DbConn,
        _me: &Principal,
        _record: &Self::Record,
        _archiving: bool,
    ) -> ApiResult<()> {
        Ok(())
    }
}

/// `Resource::meta` for a record with `id`, `version` and `archived_at` fields, and the
/// owner field when it has one: `crm_core::record_meta!(Account, owner_id)`.
#[macro_export]
macro_rules! record_meta {
    ($record:ty) => {
        fn meta(r: &$record) -> $crate::resource::Meta<'_> {
            $crate::resource::Meta {
                id: &r.id,
                version: r.version,
                archived_at: r.archived_at.as_deref(),
                owner_id: None,
            }
        }
    };
    ($record:ty, $owner:ident) => {
        fn meta(r: &$record) -> $crate::resource::Meta<'_> {
            $crate::resource::Meta {
                id: &r.id,
                version: r.version,
                archived_at: r.archived_at.as_deref(),
                owner_id: r.$owner.as_deref(),
            }
        }
    };
}

/// The collection's paths, inside `impl Resource`.
#[macro_export]
macro_rules! resource_paths {
    ($collection:literal) => {
        const COLLECTION: &'static str = $collection;
        const PATH: &'static str = concat!("/api/v1/", $collection);
        const ITEM: &'static str = concat!("/api/v1/", $collection, "/{id}");
        const RESTORE: &'static str = concat!("/api/v1/", $collection, "/{id}/restore");
    };
}

/// `Resource::stamp_archived` for a table with `id`, `version`, `archived_at` and
/// `updated_at` columns.
#[macro_export]
macro_rules! archive_stamp {
    ($table:ident) => {
        fn stamp_archived(
            c: &mut $crate::db::DbConn,
            id: &str,
            version: i32,
            stamp: Option<&str>,
        ) -> $crate::reexport::diesel::QueryResult<usize> {
            use $crate::reexport::diesel::prelude::*;
            use $crate::schema::$table as t;
            $crate::reexport::diesel::update(t::table.find(id).filter(t::version.eq(version)))
                .set((
                    t::archived_at.eq(stamp),
                    t::version.eq(version + 1),
                    t::updated_at.eq($crate::ids::now()),
                ))
                .execute(c)
        }
    };
}

// ---- Writes the kernel does itself ----

/// Whether the caller may change this record (403 otherwise): by its parent's rule when
/// the resource has parents, else by the resource's `EDITS`.
pub fn require_edit_by_rule<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    r: &R::Record,
) -> ApiResult<()> {
    if !R::PARENTS.is_empty() {
        return require_parent_edit::<R>(c, me, &objects::json(r));
    }
    apply_edit_rule::<R>(c, me, R::EDITS, R::meta(r).owner_id, R::ENTITY)
}

/// 403 unless `rule` lets the caller change a record of `owner` (`what` names it).
fn apply_edit_rule<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    rule: Ownership,
    owner: Option<&str>,
    what: &str,
) -> ApiResult<()> {
    match rule {
        Ownership::OwnerOrTeamEdits(manage) => {
            crate::visibility::require_edit(c, me, owner, (R::WRITE, manage), what)
        }
        _ => Ok(()),
    }
}

/// 403 unless the caller may change the parent a record (or a create's body) names: the
/// first of `R::PARENTS` it names, its row locked so that its owner cannot change under
/// the write. A parent that does not exist is left to the resource's own 422.
pub fn require_parent_edit<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    record: &Value,
) -> ApiResult<()> {
    let named = R::PARENTS.iter().find_map(|p| {
        record
            .get(p.field)
            .and_then(Value::as_str)
            .map(|id| (p, id.to_string()))
    });
    let Some((parent, id)) = named else {
        return Ok(());
    };
    db::lock_row(c, parent.table, &id)?;
    let Some(owner) = (parent.owner)(c, &id)? else {
        return Ok(());
    };
    apply_edit_rule::<R>(c, me, parent.edits, owner.as_deref(), parent.entity)
}

/// Create a record from a JSON body, on every path (the API, batch, composite, upserts,
/// imports): the caller must be allowed to change the parent it names.
pub fn create_record<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    body: &Value,
) -> ApiResult<R::Record> {
    let input: R::Input = objects::input(body)?;
    if R::PARENTS.is_empty() {
        return R::create(c, me, &input);
    }
    db::write_tx(c, |c| {
        require_parent_edit::<R>(c, me, body)?;
        R::create(c, me, &input)
    })
}

/// Read a record to change it: its row locked for the rest of the transaction, and the
/// caller allowed to change it.
pub fn find_for_write<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
) -> ApiResult<R::Record> {
    db::lock_row(c, R::TABLE, id)?;
    let record = R::find(c, me, id)?;
    R::require_edit(c, me, &record)?;
    Ok(record)
}

/// 422 for a PATCH that sends a field only a create sets (`CREATE_ONLY`).
pub fn refuse_create_only<R: Resource>(patch: &Value) -> ApiResult<()> {
    let sent: Vec<crate::error::FieldError> = R::CREATE_ONLY
        .iter()
        .filter(|(f, _)| patch.get(*f).is_some())
        .map(|(f, instead)| crate::error::FieldError::new(f, "create_only", *instead))
        .collect();
    if sent.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(sent))
    }
}

/// 422 for a PATCH that sends `null` for a field a record must have (what the patch
/// schema says: those fields are not nullable there). Applied to every resource's PATCH,
/// from the API and from batch, composite, upserts and imports alike.
pub fn refuse_cleared<R: Resource>(patch: &Value) -> ApiResult<()> {
    let cleared: Vec<crate::error::FieldError> = R::REQUIRED
        .iter()
        .filter(|f| patch.get(**f).is_some_and(Value::is_null))
        .map(|f| crate::error::FieldError::new(f, "required", "cannot be cleared"))
        .collect();
    if cleared.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(cleared))
    }
}

/// 409 when an update filtered on the version read touched no row.
pub fn changed_one(rows: usize) -> ApiResult<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "the record changed while this request ran; read it again and retry".into(),
        ))
    }
}

/// Archive (or restore) a record: audit row, `<entity>.archived`/`.restored` event.
pub fn set_archived<R: Resource>(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    archiving: bool,
) -> ApiResult<R::Record> {
    db::write_tx(conn, |c| {
        let before = find_for_write::<R>(c, me, id)?;
        R::before_archive(c, me, &before, archiving)?;
        let (version, was) = {
            let m = R::meta(&before);
            (m.version, m.archived_at.map(str::to_string))
        };
        let stamp = archiving.then(crate::ids::now);
        changed_one(R::stamp_archived(c, id, version, stamp.as_deref())?)?;
        let after = R::find(c, me, id)?;
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: if archiving { "archived" } else { "restored" },
                entity_type: R::ENTITY,
                entity_id: id,
                changes: json!({"archived_at": {"from": was, "to": stamp}}),
                record: objects::json(&after),
            },
        )?;
        R::after_archive(c, me, &before, archiving)?;
        Ok(after)
    })
}

// ---- Handlers ----

async fn list_handler<R: Resource>(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(R::READ)?;
    let p = list::parse(query.into_inner(), R::LIST)?;
    let page = state.db(move |c| R::page(c, &me, &p)).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn create_handler<R: Resource>(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(R::WRITE)?;
    let body = body.into_inner();
    let r = state.db(move |c| create_record::<R>(c, &me, &body)).await?;
    let m = R::meta(&r);
    Ok(respond::created(
        format!("{}/{}", R::PATH, m.id),
        m.version,
        &r,
    ))
}

async fn get_handler<R: Resource>(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    show: web::Query<ShowArchived>,
) -> ApiResult<HttpResponse> {
    me.require(R::READ)?;
    let id = path_id(&id)?;
    let r = state.db(move |c| R::find(c, &me, &id)).await?;
    let m = R::meta(&r);
    show.check(
        &m.archived_at.map(str::to_string),
        &R::ENTITY.replace('_', " "),
    )?;
    Ok(respond::with_etag(m.version, &r))
}

async fn update_handler<R: Resource>(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(R::WRITE)?;
    let id = path_id(&id)?;
    let expected = if_match(&req)?;
    let patch = body.into_inner();
    refuse_cleared::<R>(&patch)?;
    refuse_create_only::<R>(&patch)?;
    let r = state
        .db(move |c| R::update(c, &me, &id, expected, &patch))
        .await?;
    Ok(respond::with_etag(R::meta(&r).version, &r))
}

async fn archive_handler<R: Resource>(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(R::WRITE)?;
    let id = path_id(&id)?;
    state
        .db(move |c| set_archived::<R>(c, &me, &id, true))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn restore_handler<R: Resource>(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(R::WRITE)?;
    let id = path_id(&id)?;
    let r = state
        .db(move |c| set_archived::<R>(c, &me, &id, false))
        .await?;
    Ok(respond::with_etag(R::meta(&r).version, &r))
}

/// The resource's routes, relative to `/api/v1`. One resource per method, as the route
/// macros make them, so other methods fall through to the 405 with `Allow`.
pub fn routes<R: Resource>(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    let at = |p: &'static str| p.strip_prefix("/api/v1").unwrap_or(p);
    for (path, method, route) in [
        (R::PATH, Method::GET, web::to(list_handler::<R>)),
        (R::PATH, Method::POST, web::to(create_handler::<R>)),
        (R::ITEM, Method::GET, web::to(get_handler::<R>)),
        (R::ITEM, Method::PATCH, web::to(update_handler::<R>)),
        (R::ITEM, Method::DELETE, web::to(archive_handler::<R>)),
        (R::RESTORE, Method::POST, web::to(restore_handler::<R>)),
    ] {
        cfg.service(
            web::resource(at(path))
                .guard(guard::Method(method))
                .route(route),
        );
    }
}

/// The resource's rows of the permission table.
pub const fn operations<R: Resource>() -> [Operation; 6] {
    let (read, write) = (Access::Needs(R::READ), Access::Needs(R::WRITE));
    // Creating a record that belongs to another needs the right to change that one.
    let creates = if R::PARENTS.is_empty() {
        Ownership::None
    } else {
        R::EDITS
    };
    [
        Operation::new("GET", R::PATH, read),
        Operation::new("POST", R::PATH, write).owned(creates),
        Operation::new("GET", R::ITEM, read),
        Operation::new("PATCH", R::ITEM, write).owned(R::EDITS),
        Operation::new("DELETE", R::ITEM, write).owned(R::EDITS),
        Operation::new("POST", R::RESTORE, write).owned(R::EDITS),
    ]
}

// ---- The integrable object ----

fn object_get<R: Resource>(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Value> {
    Ok(objects::json(R::find(c, me, id)?))
}

fn object_create<R: Resource>(c: &mut DbConn, me: &Principal, body: &Value) -> ApiResult<Value> {
    Ok(objects::json(create_record::<R>(c, me, body)?))
}

fn object_update<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    body: &Value,
) -> ApiResult<Value> {
    // Upserts, batch and imports resend whole records: a create-only field they carry is
    // the resource's to compare with what is stored (unchanged is fine).
    refuse_cleared::<R>(body)?;
    // A record resent as it is (an ERP pushing an order with its lines as input, which
    // cannot be compared field by field) writes nothing: the update is undone, so there
    // is no new version, no audit row and no event for webhooks to deliver.
    let mut unchanged = None;
    let updated = db::write_tx(c, |c| {
        db::lock_row(c, R::TABLE, id)?;
        let before = objects::json(R::find(c, me, id)?);
        let after = objects::json(R::update(c, me, id, expected, body)?);
        if same_but_version(&before, &after) {
            unchanged = Some(before);
            return Err(ApiError::Conflict("unchanged: rolled back".into()));
        }
        Ok(after)
    });
    unchanged.map_or(updated, Ok)
}

/// Whether two states of a record differ only in what every write stamps.
fn same_but_version(before: &Value, after: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("version");
            o.remove("updated_at");
        }
        v
    };
    strip(before) == strip(after)
}

fn object_archive<R: Resource>(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    set_archived::<R>(c, me, id, true).map(|_| ())
}

fn object_list<R: Resource>(
    c: &mut DbConn,
    me: &Principal,
    p: &ListParams,
) -> ApiResult<Page<Value>> {
    R::page(c, me, p).map(objects::json_page)
}

/// The resource as an integrable object (upserts, batch, composite, imports, exports).
pub const fn object<R: Resource>(
    by_external: objects::FindBy,
    by_email: Option<objects::FindByEmail>,
) -> ObjectKind {
    ObjectKind {
        name: R::COLLECTION,
        entity: R::ENTITY,
        read: R::READ,
        write: R::WRITE,
        list_spec: R::LIST,
        get: object_get::<R>,
        create: object_create::<R>,
        update: object_update::<R>,
        archive: object_archive::<R>,
        list: object_list::<R>,
        by_external,
        by_email,
        visible_to: R::visible_to,
        input_schema: <R::Input as utoipa::PartialSchema>::schema,
        schema_name: <R::Record as ToSchema>::name,
    }
}

// ---- The OpenAPI document ----

fn to_json<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Set a key of a JSON object (the kernel's documents are objects throughout).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(o) = object.as_object_mut() {
        o.insert(key.to_string(), value);
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn problems<P: IntoResponses>() -> Map<String, Value> {
    match to_json(P::responses()) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn params<P: IntoParams>(at: ParameterIn) -> Vec<Value> {
    P::into_params(|| Some(at.clone()))
        .into_iter()
        .map(to_json)
        .collect()
}

fn id_param<R: Resource>() -> Value {
    json!({"name": "id", "in": "path", "required": true,
        "description": format!("{} id", capitalised(&R::ENTITY.replace('_', " "))),
        "schema": {"type": "string", "format": "uuid"}})
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars)
            .collect::<String>()
            .replace('_', " "),
        None => String::new(),
    }
}

fn query_param(name: &str, about: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": about, "schema": schema})
}

fn filter_schema(kind: FilterKind) -> Option<Value> {
    Some(match kind {
        FilterKind::Text => json!({"type": "string", "minLength": 1}),
        FilterKind::Id => json!({"type": "string", "format": "uuid"}),
        FilterKind::IdOrMe => json!({"type": "string",
            "pattern": "^(me|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"}),
        FilterKind::Time => json!({"type": "string", "format": "date-time"}),
        FilterKind::Date => json!({"type": "string", "format": "date"}),
        FilterKind::Bool => json!({"type": "boolean"}),
        FilterKind::Currency => json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
        FilterKind::Schema(schema) => to_json(schema()),
        // `custom.<key>` is described in the list's description, not as a parameter.
        FilterKind::Custom => return None,
    })
}

/// `sort`: the pattern and the words both come from the list spec the query uses.
fn sort_param(spec: &ListSpec) -> Value {
    let fields: Vec<&str> = spec
        .sort_fields
        .iter()
        .copied()
        .filter(|f| *f != "custom.*")
        .collect();
    let one = format!("-?({})", fields.join("|"));
    let mut pattern = format!("{one}(,{one})*");
    if spec.sort_fields.contains(&"custom.*") {
        // One custom field, alone (the key pattern of custom field definitions).
        pattern = format!("-?custom\\.[a-z][a-z0-9_]{{0,39}}|{pattern}");
    }
    let default = spec.default_sort;
    let others: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| *f != default.trim_start_matches('-'))
        .collect();
    let custom = if spec.sort_fields.contains(&"custom.*") {
        ", or one `custom.<key>` alone"
    } else {
        ""
    };
    query_param(
        "sort",
        &format!(
            "{default} (default), {}{custom}; `-` for descending",
            others.join(", ")
        ),
        json!({"type": "string", "pattern": format!("^({pattern})$")}),
    )
}

fn list_params<R: Resource>() -> Vec<Value> {
    let spec = R::LIST;
    let mut out = params::<PageParams>(ParameterIn::Query);
    out.push(sort_param(spec));
    out.push(query_param(
        "include_archived",
        &format!(
            "Include archived {}",
            R::COLLECTION.replace(['-', '/'], " ")
        ),
        json!({"type": "boolean"}),
    ));
    if let Some(search) = spec.search {
        out.push(query_param(
            "q",
            search,
            json!({"type": "string", "minLength": 1}),
        ));
    }
    for f in spec.filters {
        if let Some(schema) = filter_schema(f.kind) {
            out.push(query_param(f.name, f.about, schema));
        }
    }
    out
}

/// A schema without `null` among its types: a field a create must carry.
fn not_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            set(schema, "type", only);
        }
    }
    if let Some(Value::Array(branches)) = schema.get_mut("oneOf") {
        branches.retain(|b| b.get("type") != Some(&json!("null")));
        if let [only] = branches.as_slice() {
            *schema = only.clone();
        }
    }
}

/// The create schema (its required fields required) and the patch schema (every field
/// optional, `null` clears) from the one input type.
fn input_schemas<R: Resource>() -> (Value, Value) {
    let create_only: Vec<&str> = R::CREATE_ONLY.iter().map(|(f, _)| *f).collect();
    create_and_patch(
        to_json(<R::Input as utoipa::PartialSchema>::schema()),
        to_json(<R::Patch as utoipa::PartialSchema>::schema()),
        (R::REQUIRED, &create_only),
        R::ENTITY,
    )
}

fn create_and_patch(
    input: Value,
    mut patch: Value,
    (required, create_only): (&[&str], &[&str]),
    entity: &str,
) -> (Value, Value) {
    let mut create = input;
    if let Some(props) = create.get_mut("properties").and_then(Value::as_object_mut) {
        for field in required {
            if let Some(p) = props.get_mut(*field) {
                not_null(p);
            }
        }
    }
    set(&mut create, "required", json!(required));
    if let Some(o) = patch.as_object_mut() {
        o.remove("required");
    }
    // Optional, but not to be cleared (`refuse_cleared`).
    if let Some(props) = patch.get_mut("properties").and_then(Value::as_object_mut) {
        for field in required {
            if let Some(p) = props.get_mut(*field) {
                not_null(p);
            }
        }
        for field in create_only {
            props.remove(*field);
        }
    }
    let about = format!(
        "Changes to a {}: an absent field is kept, `null` clears it (JSON merge patch); \
         fields a {0} must have cannot be cleared.",
        entity.replace('_', " ")
    );
    set(&mut patch, "description", json!(about));
    (create, patch)
}

/// For a resource outside the kernel whose POST and PATCH share one input schema: replace
/// it by `<Record>Create` (with `required` required) and `<Record>Patch` in the document,
/// as the kernel does for its own.
pub fn split_input(doc: &mut Value, input: &str, record: &str, required: &[&str], entity: &str) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(schema) = schemas.remove(input) else {
        return;
    };
    let (create, patch) = create_and_patch(schema.clone(), schema, (required, &[]), entity);
    schemas.insert(format!("{record}Create"), create);
    schemas.insert(format!("{record}Patch"), patch);
    let from = json!(format!("#/components/schemas/{input}"));
    for item in doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for (method, name) in [("post", "Create"), ("patch", "Patch")] {
            let body = item
                .get_mut(method)
                .and_then(|op| op.pointer_mut("/requestBody/content/application~1json/schema"));
            if let Some(body) = body.filter(|b| b.get("$ref") == Some(&from)) {
                *body = json!({"$ref": format!("#/components/schemas/{record}{name}")});
            }
        }
    }
}

fn response(description: &str, body: Option<Value>, headers: &[&str]) -> Value {
    let mut r = json!({"description": description});
    if !headers.is_empty() {
        let headers: Map<String, Value> = headers
            .iter()
            .map(|h| (h.to_string(), json!({"schema": {"type": "string"}})))
            .collect();
        set(&mut r, "headers", headers.into());
    }
    if let Some(schema) = body {
        set(
            &mut r,
            "content",
            json!({"application/json": {"schema": schema}}),
        );
    }
    r
}

/// What an operation is called and what it says about itself.
struct Words {
    id: String,
    summary: String,
    description: String,
}

fn operation(
    words: Words,
    tag: &str,
    parameters: Vec<Value>,
    ok: (&str, Value),
    problems: Map<String, Value>,
) -> Value {
    let mut responses = Map::new();
    responses.insert(ok.0.to_string(), ok.1);
    responses.extend(problems);
    json!({"tags": [tag], "operationId": words.id, "summary": words.summary,
        "description": words.description, "parameters": parameters, "responses": responses})
}

/// The six operations' ids, summaries and descriptions, from the resource's names.
fn words<R: Resource>() -> [Words; 6] {
    let (entity, plural) = (R::ENTITY, R::COLLECTION.replace(['-', '/'], "_"));
    let (one, many) = (
        entity.replace('_', " "),
        R::COLLECTION.replace(['-', '/'], " "),
    );
    let a = if one.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let w = |id: String, summary: String, description: String| Words {
        id,
        summary,
        description,
    };
    let custom = if R::LIST.has_filter("custom.*") {
        " Filter on a custom field with `custom.<key>=<value>`."
    } else {
        ""
    };
    [
        w(
            format!("list_{plural}"),
            format!("List {many}"),
            format!(
                "A page of {many}, sorted by `{}` unless `sort` says otherwise; pass \
             `next_cursor` back as `cursor` for the next page. Archived {many} are left out unless \
             `include_archived=true`.{custom}",
                R::LIST.default_sort
            ),
        ),
        w(
            format!("create_{entity}"),
            format!("Create {a} {one}"),
            format!(
            "Creates {a} {one} and answers 201 with it, its `Location` and its `ETag`. Send an \
             `Idempotency-Key` to make a retry safe: the same key and body replay the first \
             answer."),
        ),
        w(
            format!("get_{entity}"),
            format!("Get {a} {one}"),
            format!(
                "The {one} with this id, with its `ETag` (the version to send as `If-Match`). An \
             archived {one} is found only with `include_archived=true`."
            ),
        ),
        w(
            format!("update_{entity}"),
            format!("Update {a} {one}"),
            format!(
                "A JSON merge patch: fields left out are kept, `null` clears a field. Send \
             `If-Match` with the `ETag` you read to refuse the change (412) if someone else \
             changed the {one} since."
            ),
        ),
        w(
            format!("archive_{entity}"),
            format!("Archive {a} {one}"),
            format!(
                "Archives the {one}: it leaves lists and reads unless asked for with \
             `include_archived=true`, and can be restored. Nothing is deleted."
            ),
        ),
        w(
            format!("restore_{entity}"),
            format!("Restore {a} {one}"),
            format!("Brings an archived {one} back into lists and reads."),
        ),
    ]
}

fn with_body(mut op: Value, schema: &str) -> Value {
    set(
        &mut op,
        "requestBody",
        json!({"required": true,
        "content": {"application/json": {"schema": schema_ref(schema)}}}),
    );
    op
}

/// The resource's part of the OpenAPI document: six operations and their schemas.
pub fn document<R: Resource>() -> utoipa::openapi::OpenApi {
    let record = <R::Record as ToSchema>::name().to_string();
    let (create_name, patch_name, page_name) = (
        format!("{record}Create"),
        format!("{record}Patch"),
        format!("Page_{record}"),
    );
    let [list_words, create_words, get_words, update_words, archive_words, restore_words] =
        words::<R>();
    let entity = R::ENTITY;
    let one = || Some(schema_ref(&record));
    let mut get_params = vec![id_param::<R>()];
    get_params.extend(params::<ShowArchived>(ParameterIn::Query));
    let mut patch_params = vec![id_param::<R>()];
    patch_params.extend(params::<IfMatchParams>(ParameterIn::Header));
    let list = operation(
        list_words,
        R::TAG,
        list_params::<R>(),
        (
            "200",
            response(
                &format!("A page of {}", R::COLLECTION.replace(['-', '/'], " ")),
                Some(schema_ref(&page_name)),
                &[],
            ),
        ),
        problems::<ListProblems>(),
    );
    let create = operation(
        create_words,
        R::TAG,
        params::<IdempotencyParams>(ParameterIn::Header),
        ("201", response("Created", one(), &["ETag", "Location"])),
        problems::<WriteProblems>(),
    );
    let get = operation(
        get_words,
        R::TAG,
        get_params,
        (
            "200",
            response(
                &format!("The {}", entity.replace('_', " ")),
                one(),
                &["ETag"],
            ),
        ),
        problems::<ReadProblems>(),
    );
    let update = operation(
        update_words,
        R::TAG,
        patch_params,
        ("200", response("Updated", one(), &["ETag"])),
        problems::<WriteProblems>(),
    );
    let archive = operation(
        archive_words,
        R::TAG,
        vec![id_param::<R>()],
        ("204", response(R::ARCHIVED, None, &[])),
        problems::<WriteProblems>(),
    );
    let restore = operation(
        restore_words,
        R::TAG,
        vec![id_param::<R>()],
        ("200", response("Restored", one(), &["ETag"])),
        problems::<WriteProblems>(),
    );
    let paths = json!({
        R::PATH: {"get": list, "post": with_body(create, &create_name)},
        R::ITEM: {"get": get, "patch": with_body(update, &patch_name), "delete": archive},
        R::RESTORE: {"post": restore},
    });
    let (create, patch) = input_schemas::<R>();
    let mut schemas: Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )> = vec![];
    <R::Record as ToSchema>::schemas(&mut schemas);
    <R::Input as ToSchema>::schemas(&mut schemas);
    <R::Patch as ToSchema>::schemas(&mut schemas);
    let mut components: Map<String, Value> =
        schemas.into_iter().map(|(n, s)| (n, to_json(s))).collect();
    components.insert(
        record.clone(),
        to_json(<R::Record as utoipa::PartialSchema>::schema()),
    );
    components.insert(create_name, create);
    components.insert(patch_name, patch);
    components.insert(
        page_name,
        json!({"type": "object", "description": "One page of a list.", "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": schema_ref(&record)},
            "next_cursor": {"type": ["string", "null"],
                "description": "Pass as `cursor` to get the next page; null on the last page."},
        }}),
    );
    let doc = json!({"openapi": "3.1.0", "info": {"title": "", "version": ""},
        "paths": paths, "components": {"schemas": components}});
    // The document is built from the resource's own types, so a failure is a bug in them
    // (a field utoipa can't read back, like a bare `Map`): fail the build of the spec loudly
    // rather than publish a spec that silently lacks the resource.
    serde_json::from_value(doc).unwrap_or_else(|e| {
        panic!(
            "the {} resource's OpenAPI document doesn't parse: {e}",
            R::COLLECTION
        )
    })
}

/// Declare a domain's resources once: their routes, permission rows and spec.
/// `crm_core::resources!(accounts::Accounts, contacts::Contacts);` defines
/// `resource_routes`, `RESOURCE_OPERATIONS` and `resource_document` in the calling module.
#[macro_export]
macro_rules! resources {
    ($($r:ty),+ $(,)?) => {
        /// Routes of this domain's kernel resources, relative to `/api/v1`.
        pub fn resource_routes(cfg: &mut $crate::reexport::actix_web::web::ServiceConfig) {
            $($crate::resource::routes::<$r>(cfg);)+
        }

        /// Permission rows of this domain's kernel resources.
        pub const RESOURCE_OPERATIONS: &[$crate::access::Operation] = {
            const N: usize = [$(stringify!($r)),+].len();
            &$crate::resource::concat_operations::<N, { N * 6 }>([
                $($crate::resource::operations::<$r>()),+
            ])
        };

        /// This domain's kernel resources in the OpenAPI document.
        pub fn resource_document() -> $crate::reexport::utoipa::openapi::OpenApi {
            let mut doc = $crate::reexport::utoipa::openapi::OpenApi::default();
            $(doc.merge($crate::resource::document::<$r>());)+
            doc
        }
    };
}

/// The rows of several resources as one array (for `resources!`, where `M` is `6 * N`).
#[allow(clippy::indexing_slicing)] // i < M = 6 N, so i / 6 < N and i % 6 < 6
pub const fn concat_operations<const N: usize, const M: usize>(
    parts: [[Operation; 6]; N],
) -> [Operation; M] {
    let placeholder = Operation::new("", "", Access::Public);
    let mut out = [placeholder; M];
    let mut i = 0;
    while i < M {
        out[i] = parts[i / 6][i % 6];
        i += 1;
    }
    out
}
