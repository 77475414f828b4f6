//! Custom fields: admins define extra fields per object; values are validated on write,
//! returned under `custom`, and filterable as `custom.<key>=value`. `GET /meta/objects`
//! describes every object's standard and custom fields so front ends can build forms.

use crate::common;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::Json;
use crm_core::ids;
use crm_core::list::ListParams;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{custom_field_defs as cf, custom_values as cv};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use validator::Validate;

/// Objects that take custom fields.
pub const OBJECTS: [&str; 3] = ["account", "contact", "lead"];

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Number,
    /// `{"amount": <minor units>, "currency": "EUR"}`
    Money,
    /// `YYYY-MM-DD`
    Date,
    Datetime,
    Boolean,
    Picklist,
    MultiPicklist,
}

#[derive(Debug, Clone, Serialize, ToSchema, Queryable)]
pub struct FieldDef {
    pub id: String,
    pub object: String,
    /// Name under `custom` and in `custom.<key>=` filters.
    pub key: String,
    pub label: String,
    #[serde(serialize_with = "as_enum")]
    #[schema(value_type = FieldType)]
    pub field_type: String,
    pub required: bool,
    pub unique: bool,
    /// Minimum value (numbers, money amounts) or length (text).
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(serialize_with = "as_list")]
    #[schema(value_type = Vec<String>)]
    pub options: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

fn as_enum<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(raw)
}

fn as_list<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    common::parse_json::<Vec<String>>(raw).serialize(s)
}

impl FieldDef {
    fn kind(&self) -> FieldType {
        serde_json::from_value(Value::String(self.field_type.clone())).unwrap_or(FieldType::Text)
    }

    fn options(&self) -> Vec<String> {
        common::parse_json(&self.options)
    }
}

/// What a new field definition must carry (a PATCH cannot change them).
pub const REQUIRED: &[&str] = &["key", "field_type"];

/// `FieldCreate` and `FieldPatch` in the spec, from the one `FieldInput`.
pub fn split_schemas(doc: &mut serde_json::Value) {
    crm_core::resource::split_input(doc, "FieldInput", "Field", REQUIRED, "field");
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    #[validate(length(min = 1, max = 40))]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub key: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub label: Option<String>,
    pub field_type: Option<FieldType>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Choices of a picklist or multi-picklist.
    #[validate(length(max = 500))]
    #[schema(max_items = 500)]
    pub options: Option<Vec<String>>,
}

fn check_object(object: &str) -> ApiResult<()> {
    if OBJECTS.contains(&object) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no object {object:?}; objects with custom fields: {}",
            OBJECTS.join(", ")
        )))
    }
}

pub fn defs(conn: &mut DbConn, object: &str) -> ApiResult<Vec<FieldDef>> {
    Ok(cf::table
        .filter(cf::object.eq(object))
        .filter(cf::archived_at.is_null())
        .order(cf::key.asc())
        .load(conn)?)
}

fn bad(key: &str, code: &str, msg: impl Into<String>) -> FieldError {
    FieldError::new(&format!("custom.{key}"), code, msg)
}

/// Check one value against its definition; returns what the index keeps (text, number).
fn check_value(def: &FieldDef, v: &Value) -> Result<(Option<String>, Option<f64>), FieldError> {
    let key = def.key.as_str();
    let in_range = |n: f64| def.min.is_none_or(|m| n >= m) && def.max.is_none_or(|m| n <= m);
    let range_msg = || {
        format!(
            "must be between {} and {}",
            def.min.map_or("-".into(), |m| m.to_string()),
            def.max.map_or("-".into(), |m| m.to_string())
        )
    };
    match def.kind() {
        FieldType::Text | FieldType::LongText => {
            let s = v
                .as_str()
                .ok_or_else(|| bad(key, "invalid_type", "must be text"))?;
            let limit = if def.kind() == FieldType::Text {
                255
            } else {
                100_000
            };
            let len = s.chars().count() as f64;
            if len > limit as f64 || !in_range(len) {
                return Err(bad(
                    key,
                    "length",
                    format!("has the wrong length (at most {limit})"),
                ));
            }
            Ok((Some(s.to_string()), None))
        }
        FieldType::Number => {
            let n = v
                .as_f64()
                .ok_or_else(|| bad(key, "invalid_type", "must be a number"))?;
            if !in_range(n) {
                return Err(bad(key, "range", range_msg()));
            }
            Ok((None, Some(n)))
        }
        FieldType::Money => {
            let amount = v.get("amount").and_then(Value::as_i64);
            let currency = v
                .get("currency")
                .and_then(Value::as_str)
                .filter(|c| c.len() == 3 && c.chars().all(|x| x.is_ascii_uppercase()));
            let (Some(amount), Some(currency)) = (amount, currency) else {
                return Err(bad(
                    key,
                    "invalid_type",
                    "must be {\"amount\": <minor units>, \"currency\": \"EUR\"}",
                ));
            };
            if !in_range(amount as f64) || v.as_object().is_some_and(|o| o.len() != 2) {
                return Err(bad(key, "range", range_msg()));
            }
            Ok((Some(currency.to_string()), Some(amount as f64)))
        }
        FieldType::Date => {
            let s = v
                .as_str()
                .filter(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
                .ok_or_else(|| bad(key, "invalid_type", "must be a date YYYY-MM-DD"))?;
            Ok((Some(s.to_string()), None))
        }
        FieldType::Datetime => {
            let s = v
                .as_str()
                .and_then(ids::normalise_ts)
                .ok_or_else(|| bad(key, "invalid_type", "must be an RFC 3339 timestamp"))?;
            Ok((Some(s), None))
        }
        FieldType::Boolean => {
            let b = v
                .as_bool()
                .ok_or_else(|| bad(key, "invalid_type", "must be true or false"))?;
            Ok((Some(b.to_string()), None))
        }
        FieldType::Picklist => {
            let s = v
                .as_str()
                .filter(|s| def.options().iter().any(|o| o == s))
                .ok_or_else(|| {
                    bad(
                        key,
                        "choice",
                        format!("must be one of {}", def.options().join(", ")),
                    )
                })?;
            Ok((Some(s.to_string()), None))
        }
        FieldType::MultiPicklist => {
            let items = v
                .as_array()
                .ok_or_else(|| bad(key, "invalid_type", "must be a list of choices"))?;
            let options = def.options();
            let mut chosen = vec![];
            for item in items {
                let s = item
                    .as_str()
                    .filter(|s| options.iter().any(|o| o == s))
                    .ok_or_else(|| {
                        bad(
                            key,
                            "choice",
                            format!("each must be one of {}", options.join(", ")),
                        )
                    })?;
                if !chosen.contains(&s) {
                    chosen.push(s);
                }
            }
            Ok((Some(common::json_text(&chosen)), None))
        }
    }
}

/// Validate the `custom` values sent for a record and store them; returns the record's
/// complete custom values as JSON text. `null` clears a value; a required field must
/// have one after the write.
pub fn apply(
    conn: &mut DbConn,
    object: &str,
    record_id: &str,
    current: &str,
    sent: Option<&Map<String, Value>>,
) -> ApiResult<String> {
    let defs = defs(conn, object)?;
    let mut values: Map<String, Value> = common::parse_json(current);
    let mut errors = vec![];
    for (key, value) in sent.into_iter().flatten() {
        let Some(def) = defs.iter().find(|d| &d.key == key) else {
            errors.push(bad(
                key,
                "unknown_field",
                format!("no custom field {key:?} on {object}"),
            ));
            continue;
        };
        if value.is_null() {
            values.remove(key);
            diesel::delete(
                cv::table
                    .filter(cv::object.eq(object))
                    .filter(cv::record_id.eq(record_id))
                    .filter(cv::key.eq(key)),
            )
            .execute(conn)?;
            continue;
        }
        match check_value(def, value) {
            Err(e) => errors.push(e),
            Ok((text, number)) => {
                if def.unique {
                    db::lock_key(conn, &format!("custom:{object}:{key}"))?;
                }
                if def.unique && taken(conn, object, record_id, key, &text, number)? {
                    return Err(ApiError::Conflict(format!(
                        "another {object} already has this {key}"
                    )));
                }
                diesel::delete(
                    cv::table
                        .filter(cv::object.eq(object))
                        .filter(cv::record_id.eq(record_id))
                        .filter(cv::key.eq(key)),
                )
                .execute(conn)?;
                diesel::insert_into(cv::table)
                    .values((
                        cv::object.eq(object),
                        cv::record_id.eq(record_id),
                        cv::key.eq(key),
                        cv::text_value.eq(text),
                        cv::number_value.eq(number),
                    ))
                    .execute(conn)?;
                values.insert(key.clone(), value.clone());
            }
        }
    }
    for def in defs.iter().filter(|d| d.required) {
        let field = format!("custom.{}", def.key);
        if !values.contains_key(&def.key) && !errors.iter().any(|e| e.field == field) {
            errors.push(bad(&def.key, "required", "is required"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Value::Object(values).to_string())
}

fn taken(
    conn: &mut DbConn,
    object: &str,
    record_id: &str,
    key: &str,
    text: &Option<String>,
    number: Option<f64>,
) -> ApiResult<bool> {
    let mut q = cv::table
        .filter(cv::object.eq(object))
        .filter(cv::key.eq(key))
        .filter(cv::record_id.ne(record_id))
        .into_boxed::<crm_core::db::MultiBackend>();
    if let Some(t) = text {
        q = q.filter(cv::text_value.eq(t.clone()));
    }
    if let Some(n) = number {
        q = q.filter(cv::number_value.eq(n));
    }
    Ok(q.count().get_result::<i64>(conn)? > 0)
}

/// What a record without a value sorts as.
pub const NUMBER_NULL: f64 = -1e300;

/// `sort=custom.<key>`: the record's value, found by a correlated lookup on the value
/// index. The object and key are bound parameters; only the fixed column and table names
/// are SQL text.
pub struct CustomSort {
    /// `COALESCE((SELECT cv.<column> … WHERE cv.record_id = <table>.id AND cv.object = `
    pub head: String,
    pub object: String,
    pub key: String,
    /// `), <default for records without a value>)`
    pub tail: &'static str,
    pub numeric: bool,
    pub desc: bool,
}

pub fn sort_by(
    conn: &mut DbConn,
    object: &str,
    table: &'static str,
    p: &ListParams,
) -> ApiResult<Option<CustomSort>> {
    let Some(sort) = p.sort.first() else {
        return Ok(None);
    };
    let Some(key) = sort.field.strip_prefix("custom.") else {
        return Ok(None);
    };
    let def = defs(conn, object)?
        .into_iter()
        .find(|d| d.key == key)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cannot sort by {}: no custom field {key:?} on {object}",
                sort.field
            ))
        })?;
    let numeric = match def.kind() {
        FieldType::Number | FieldType::Money => true,
        FieldType::MultiPicklist | FieldType::LongText => {
            return Err(ApiError::BadRequest(format!(
                "cannot sort by a {} field",
                def.field_type
            )));
        }
        _ => false,
    };
    let (column, tail) = if numeric {
        ("number_value", "), CAST(-1e300 AS DOUBLE PRECISION))")
    } else {
        ("text_value", "), '')")
    };
    Ok(Some(CustomSort {
        head: format!(
            "COALESCE((SELECT cv.{column} FROM custom_values cv \
             WHERE cv.record_id = {table}.id AND cv.object = "
        ),
        object: object.to_string(),
        key: def.key,
        tail,
        numeric,
        desc: sort.desc,
    }))
}

/// Order a boxed list query by a custom field (see `sort_by`) and skip to the cursor.
#[macro_export]
macro_rules! custom_sort {
    ($q:expr, $id:path, $sort:expr, $p:expr) => {{
        use diesel::dsl::sql;
        use diesel::sql_types::{Double, Text};
        let sort: $crate::custom_fields::CustomSort = $sort;
        let (numeric, desc) = (sort.numeric, sort.desc);
        let mut q = $q;
        let last = match $p.after.as_deref() {
            Some([value, serde_json::Value::String(id)]) => Some((value.clone(), id.clone())),
            Some(_) => return Err(crm_core::list::bad_cursor()),
            None => None,
        };
        if numeric {
            let e = || {
                sql::<Double>(&sort.head)
                    .bind::<Text, _>(sort.object.clone())
                    .sql(" AND cv.key = ")
                    .bind::<Text, _>(sort.key.clone())
                    .sql(sort.tail)
            };
            q = if desc {
                q.order_by(e().desc())
            } else {
                q.order_by(e().asc())
            }
            .then_order_by($id.asc());
            if let Some((v, id)) = last {
                let v = v.as_f64().unwrap_or($crate::custom_fields::NUMBER_NULL);
                q = if desc {
                    q.filter(e().lt(v).or(e().eq(v).and($id.gt(id))))
                } else {
                    q.filter(e().gt(v).or(e().eq(v).and($id.gt(id))))
                };
            }
        } else {
            let e = || {
                sql::<Text>(&sort.head)
                    .bind::<Text, _>(sort.object.clone())
                    .sql(" AND cv.key = ")
                    .bind::<Text, _>(sort.key.clone())
                    .sql(sort.tail)
            };
            q = if desc {
                q.order_by(e().desc())
            } else {
                q.order_by(e().asc())
            }
            .then_order_by($id.asc());
            if let Some((v, id)) = last {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                q = if desc {
                    q.filter(e().lt(v.clone()).or(e().eq(v).and($id.gt(id))))
                } else {
                    q.filter(e().gt(v.clone()).or(e().eq(v).and($id.gt(id))))
                };
            }
        }
        q.limit($p.limit + 1)
    }};
}

/// One `custom.<key>=value` filter: the key, and the text and number to match.
pub type CustomFilter = (String, Option<String>, Option<f64>);

/// The `custom.<key>=value` filters of a list.
pub fn filters(conn: &mut DbConn, object: &str, p: &ListParams) -> ApiResult<Vec<CustomFilter>> {
    let defs = defs(conn, object)?;
    let mut out = vec![];
    for (name, raw) in p.filters.iter() {
        let Some(key) = name.strip_prefix("custom.") else {
            continue;
        };
        let def = defs.iter().find(|d| d.key == key).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown filter {name:?}: no custom field {key:?} on {object}"
            ))
        })?;
        let value = match def.kind() {
            FieldType::Number => Value::from(
                raw.parse::<f64>()
                    .map_err(|_| ApiError::BadRequest(format!("{name} must be a number")))?,
            ),
            FieldType::Boolean => Value::from(raw == "true"),
            FieldType::MultiPicklist => {
                // Matches records whose choices include this one.
                out.push((
                    key.to_string(),
                    Some(format!("%\"{}\"%", raw.replace(['%', '_', '"'], ""))),
                    None,
                ));
                continue;
            }
            _ => Value::from(raw.clone()),
        };
        let (text, number) = check_value(def, &value)
            .map_err(|e| ApiError::BadRequest(format!("{name}: {}", e.message)))?;
        out.push((key.to_string(), text, number));
    }
    Ok(out)
}

/// Keep the records of a boxed list query that match one custom filter: a subquery on the
/// `custom_values` index (never a list of ids in memory). A macro because each filter
/// shape is its own (unboxed) subquery type.
#[macro_export]
macro_rules! custom_filter {
    ($q:expr, $id:path, $object:expr, $filter:expr) => {{
        use crm_core::schema::custom_values as cv;
        let (key, text, number): &$crate::custom_fields::CustomFilter = $filter;
        let of = cv::table
            .filter(cv::object.eq($object))
            .filter(cv::key.eq(key.clone()));
        match (text.clone(), *number) {
            (Some(t), _) if t.starts_with('%') => {
                $q.filter($id.eq_any(of.filter(cv::text_value.like(t)).select(cv::record_id)))
            }
            (Some(t), Some(n)) => $q.filter(
                $id.eq_any(
                    of.filter(cv::text_value.eq(t))
                        .filter(cv::number_value.eq(n))
                        .select(cv::record_id),
                ),
            ),
            (Some(t), None) => {
                $q.filter($id.eq_any(of.filter(cv::text_value.eq(t)).select(cv::record_id)))
            }
            (None, Some(n)) => {
                $q.filter($id.eq_any(of.filter(cv::number_value.eq(n)).select(cv::record_id)))
            }
            (None, None) => $q.filter($id.eq_any(of.select(cv::record_id))),
        }
    }};
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDescription {
    pub key: String,
    /// `text`, `number`, `boolean`, `datetime`, `enum`, `object`, `array`, or a custom field type.
    pub field_type: String,
    pub required: bool,
    pub custom: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectDescription {
    pub object: String,
    pub path: String,
    pub fields: Vec<FieldDescription>,
}

fn standard(fields: &[(&str, &str, bool)]) -> Vec<FieldDescription> {
    fields
        .iter()
        .map(|(k, t, r)| FieldDescription {
            key: k.to_string(),
            field_type: t.to_string(),
            required: *r,
            custom: false,
            options: vec![],
        })
        .collect()
}

fn describe(conn: &mut DbConn, object: &str) -> ApiResult<ObjectDescription> {
    let mut fields = match object {
        "account" => standard(&[
            ("name", "text", true),
            ("domain", "text", false),
            ("industry", "text", false),
            ("employee_count", "number", false),
            ("annual_revenue", "number", false),
            ("currency", "text", false),
            ("billing_address", "object", false),
            ("shipping_address", "object", false),
            ("phone", "text", false),
            ("website", "text", false),
            ("owner_id", "text", false),
            ("tags", "array", false),
            ("parent_id", "text", false),
        ]),
        "lead" => standard(&[
            ("first_name", "text", false),
            ("last_name", "text", false),
            ("company", "text", false),
            ("job_title", "text", false),
            ("emails", "array", false),
            ("phones", "array", false),
            ("country", "text", false),
            ("industry", "text", false),
            ("employee_count", "number", false),
            ("source", "enum", false),
            ("campaign_id", "text", false),
            ("status", "enum", false),
            ("disqualified_reason", "text", false),
            ("score", "number", false),
            ("owner_id", "text", false),
        ]),
        _ => standard(&[
            ("first_name", "text", false),
            ("last_name", "text", false),
            ("job_title", "text", false),
            ("lifecycle_stage", "enum", false),
            ("owner_id", "text", false),
            ("household_id", "text", false),
            ("tags", "array", false),
            ("preferred_language", "text", false),
            ("social_profiles", "object", false),
            ("emails", "array", false),
            ("phones", "array", false),
            ("accounts", "array", false),
            ("consents", "object", false),
        ]),
    };
    for d in defs(conn, object)? {
        fields.push(FieldDescription {
            options: d.options(),
            key: d.key,
            field_type: d.field_type,
            required: d.required,
            custom: true,
        });
    }
    Ok(ObjectDescription {
        path: format!("/api/v1/{object}s"),
        object: object.to_string(),
        fields,
    })
}

/// Describe the objects that take custom fields.
///
/// For `account`, `contact` and `lead`: the collection path and every standard and active custom field,
/// with its type, whether it is required and a picklist's options, so front ends can build forms.
/// Needs `CustomersRead`.
#[utoipa::path(get, path = "/api/v1/meta/objects", tag = "meta",
    responses((status = 200, description = "Every object with its standard and custom fields", body = Vec<ObjectDescription>), ReadProblems))]
#[get("/meta/objects")]
pub async fn list_objects(state: web::Data<AppState>, me: Principal) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let all = state
        .db(|c| {
            OBJECTS
                .iter()
                .map(|o| describe(c, o))
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(all))
}

/// List an object's custom fields.
///
/// The active custom field definitions of `account`, `contact` or `lead`, by key, with type, `required`,
/// `unique`, `min`, `max`, picklist `options` and `version`; any other object is a 404. Needs
/// `CustomersRead`.
#[utoipa::path(get, path = "/api/v1/meta/objects/{object}/fields", tag = "meta",
    params(("object" = String, Path, description = "account, contact or lead")),
    responses((status = 200, description = "The object's custom fields", body = Vec<FieldDef>), ReadProblems))]
#[get("/meta/objects/{object}/fields")]
pub async fn list_fields(
    state: web::Data<AppState>,
    me: Principal,
    object: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    check_object(&object)?;
    let list = state.db(move |c| defs(c, &object)).await?;
    Ok(HttpResponse::Ok().json(list))
}

fn check_def(input: &FieldInput, kind: FieldType) -> ApiResult<()> {
    input.validate()?;
    let mut errors = vec![];
    if let (Some(min), Some(max)) = (input.min, input.max) {
        if min > max {
            errors.push(FieldError::new("min", "range", "must not be above max"));
        }
    }
    let picklist = matches!(kind, FieldType::Picklist | FieldType::MultiPicklist);
    let options = input.options.clone().unwrap_or_default();
    if picklist && input.options.is_some() && options.is_empty() {
        errors.push(FieldError::new(
            "options",
            "required",
            "a picklist needs options",
        ));
    }
    if options.iter().any(|o| o.trim().is_empty() || o.len() > 100) {
        errors.push(FieldError::new(
            "options",
            "length",
            "options are 1 to 100 characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(())
}

/// Define a custom field on an object.
///
/// Adds a field of `field_type` that `account` or `contact` records carry under `custom.<key>`;
/// `key` is lowercase letters, digits and `_` starting with a letter, and a picklist needs
/// `options`. Values sent from then on are checked against it, and a `required` field needs a value
/// on every create and on every update that sends `custom`. A key the object has used before, even
/// for an archived field, is a 409. Admins only (`MetaManage`); answers 201 with `Location`,
/// audited as `custom_field.created`.
#[utoipa::path(post, path = "/api/v1/meta/objects/{object}/fields", tag = "meta", request_body = FieldInput,
    params(("object" = String, Path, description = "account, contact or lead")),
    responses((status = 201, description = "Defined", body = FieldDef), WriteProblems))]
#[post("/meta/objects/{object}/fields")]
pub async fn create_field(
    state: web::Data<AppState>,
    me: Principal,
    object: web::Path<String>,
    body: Json<FieldInput>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MetaManage)?;
    check_object(&object)?;
    let kind = body
        .field_type
        .ok_or_else(|| common::invalid("field_type", "required", "is required"))?;
    check_def(&body, kind)?;
    let key = body.key.clone().filter(|k| {
        let mut chars = k.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    let key = key.ok_or_else(|| {
        common::invalid(
            "key",
            "pattern",
            "must be lowercase letters, digits and _ starting with a letter",
        )
    })?;
    if matches!(kind, FieldType::Picklist | FieldType::MultiPicklist)
        && body.options.as_ref().is_none_or(|o| o.is_empty())
    {
        return Err(common::invalid(
            "options",
            "required",
            "a picklist needs options",
        ));
    }
    let def = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let exists: i64 = cf::table
                    .filter(cf::object.eq(object.as_str()))
                    .filter(cf::key.eq(&key))
                    .count()
                    .get_result(c)?;
                if exists > 0 {
                    return Err(ApiError::Conflict(format!(
                        "{object} already has a field {key:?}"
                    )));
                }
                let (id, now) = (ids::new_id(), ids::now());
                diesel::insert_into(cf::table)
                    .values((
                        cf::id.eq(&id),
                        cf::object.eq(object.as_str()),
                        cf::key.eq(&key),
                        cf::label.eq(body.label.clone().unwrap_or(key.clone())),
                        cf::field_type.eq(common::to_json(&kind)
                            .as_str()
                            .unwrap_or("text")
                            .to_string()),
                        cf::required.eq(body.required.unwrap_or(false)),
                        cf::is_unique.eq(body.unique.unwrap_or(false)),
                        cf::min_value.eq(body.min),
                        cf::max_value.eq(body.max),
                        cf::options
                            .eq(common::json_text(&body.options.clone().unwrap_or_default())),
                        cf::version.eq(1),
                        cf::created_at.eq(&now),
                        cf::updated_at.eq(&now),
                    ))
                    .execute(c)?;
                let def: FieldDef = cf::table.find(&id).first(c)?;
                let json = common::to_json(&def);
                audit::record(
                    c,
                    Change {
                        actor: &Actor::from(&me),
                        action: "created",
                        entity_type: "custom_field",
                        entity_id: &id,
                        changes: json.clone(),
                        record: json,
                    },
                )?;
                Ok(def)
            })
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/meta/objects/{}/fields/{}", def.object, def.key),
        ))
        .json(def))
}

fn find_def(conn: &mut DbConn, object: &str, key: &str) -> ApiResult<FieldDef> {
    cf::table
        .filter(cf::object.eq(object))
        .filter(cf::key.eq(key))
        .filter(cf::archived_at.is_null())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("custom field"))
}

/// Change a custom field definition.
///
/// Changes `label`, `required`, `unique`, `min`, `max` or `options`; fields left out are kept
/// (`min` and `max` cannot be cleared), and a different `key` or `field_type` is a 422. Values
/// already stored are not checked again, and no `If-Match` is taken. Admins only (`MetaManage`);
/// audited as `custom_field.updated`.
#[utoipa::path(patch, path = "/api/v1/meta/objects/{object}/fields/{key}", tag = "meta", request_body = FieldInput,
    params(("object" = String, Path, description = "account, contact or lead"), ("key" = String, Path, description = "Field key")),
    responses((status = 200, description = "Updated (key and type cannot change)", body = FieldDef), WriteProblems))]
#[patch("/meta/objects/{object}/fields/{key}")]
pub async fn update_field(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<(String, String)>,
    body: Json<FieldInput>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MetaManage)?;
    let (object, key) = path.into_inner();
    check_object(&object)?;
    let def = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let before = find_def(c, &object, &key)?;
                if body.key.as_ref().is_some_and(|k| *k != before.key)
                    || body.field_type.is_some_and(|t| {
                        common::to_json(&t).as_str() != Some(before.field_type.as_str())
                    })
                {
                    return Err(common::invalid(
                        "field_type",
                        "immutable",
                        "a field's key and type cannot change; define a new field",
                    ));
                }
                check_def(&body, before.kind())?;
                let changed = diesel::update(
                    cf::table
                        .find(&before.id)
                        .filter(cf::version.eq(before.version)),
                )
                .set((
                    cf::label.eq(body.label.clone().unwrap_or(before.label.clone())),
                    cf::required.eq(body.required.unwrap_or(before.required)),
                    cf::is_unique.eq(body.unique.unwrap_or(before.unique)),
                    cf::min_value.eq(body.min.or(before.min)),
                    cf::max_value.eq(body.max.or(before.max)),
                    cf::options.eq(body
                        .options
                        .as_ref()
                        .map(common::json_text)
                        .unwrap_or(before.options.clone())),
                    cf::version.eq(before.version + 1),
                    cf::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
                crm_core::resource::changed_one(changed)?;
                let after: FieldDef = cf::table.find(&before.id).first(c)?;
                audit::record(
                    c,
                    Change {
                        actor: &Actor::from(&me),
                        action: "updated",
                        entity_type: "custom_field",
                        entity_id: &before.id,
                        changes: audit::diff(
                            &common::to_json(&before),
                            &common::to_json(&after),
                            &[],
                        ),
                        record: common::to_json(&after),
                    },
                )?;
                Ok(after)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(def))
}

/// Archive a custom field.
///
/// The field is no longer accepted (sending it is a 422) or required and leaves the field lists;
/// values already stored are kept, and its key cannot be used for a new field. Admins only
/// (`MetaManage`); audited as `custom_field.archived`.
#[utoipa::path(delete, path = "/api/v1/meta/objects/{object}/fields/{key}", tag = "meta",
    params(("object" = String, Path, description = "account, contact or lead"), ("key" = String, Path, description = "Field key")),
    responses((status = 204, description = "Archived: no longer accepted or required; stored values are kept"), WriteProblems))]
#[delete("/meta/objects/{object}/fields/{key}")]
pub async fn archive_field(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MetaManage)?;
    let (object, key) = path.into_inner();
    check_object(&object)?;
    state
        .db(move |c| {
            db::write_tx(c, |c| {
                let def = find_def(c, &object, &key)?;
                let changed =
                    diesel::update(cf::table.find(&def.id).filter(cf::version.eq(def.version)))
                        .set((
                            cf::archived_at.eq(ids::now()),
                            cf::version.eq(def.version + 1),
                        ))
                        .execute(c)?;
                crm_core::resource::changed_one(changed)?;
                audit::record(
                    c,
                    Change {
                        actor: &Actor::from(&me),
                        action: "archived",
                        entity_type: "custom_field",
                        entity_id: &def.id,
                        changes: serde_json::json!({"archived": true}),
                        record: common::to_json(&def),
                    },
                )
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
