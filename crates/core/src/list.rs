//! List conventions: keyset pagination with opaque cursors, `sort=field,-other`, and
//! filters checked against what each resource documents (unknown ones are a 400).

use crate::error::ApiError;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
const RESERVED: [&str; 5] = ["limit", "cursor", "sort", "include_archived", "q"];

/// What a list endpoint accepts. The query, the 400 for anything else and (for kernel
/// resources, see `crate::resource`) the documented parameters all come from this one value.
pub struct ListSpec {
    pub sort_fields: &'static [&'static str],
    pub default_sort: &'static str,
    pub filters: &'static [Filter],
    /// What `q=` matches, when the list is searchable.
    pub search: Option<&'static str>,
    /// Sort fields that may be null, with the value a null sorts as (the column the
    /// query orders by holds that value instead of null).
    pub null_sorts_as: &'static [(&'static str, &'static str)],
}

/// The values a filter takes, which decide its documented schema.
#[derive(Debug, Clone, Copy)]
pub enum FilterKind {
    Text,
    /// A record id (UUID).
    Id,
    /// A user id or `me`.
    IdOrMe,
    /// An RFC 3339 timestamp.
    Time,
    /// A calendar date, `2026-12-31`.
    Date,
    Bool,
    /// An ISO 4217 code.
    Currency,
    /// Values of an enum, documented by its schema.
    Schema(fn() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>),
    /// `custom.<key>`, checked against the field definitions by the resource.
    Custom,
}

/// One documented filter of a list.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub name: &'static str,
    pub kind: FilterKind,
    pub about: &'static str,
}

impl Filter {
    pub const fn new(name: &'static str, kind: FilterKind, about: &'static str) -> Self {
        Filter { name, kind, about }
    }
    pub const fn text(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Text, about)
    }
    pub const fn id(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Id, about)
    }
    pub const fn time(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Time, about)
    }
    pub const fn date(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Date, about)
    }
    pub const fn bool(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Bool, about)
    }
    /// A filter taking the values of an enum `T`.
    pub const fn of<T: utoipa::PartialSchema>(name: &'static str, about: &'static str) -> Self {
        Filter::new(name, FilterKind::Schema(T::schema), about)
    }
    /// `custom.<key>=value` on the custom fields of the object.
    pub const CUSTOM: Filter = Filter::new("custom.*", FilterKind::Custom, "");
}

impl ListSpec {
    fn filter_names(&self) -> impl Iterator<Item = &'static str> {
        self.filters.iter().map(|f| f.name)
    }

    pub fn has_filter(&self, name: &str) -> bool {
        self.filter_names().any(|f| f == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: String,
    pub desc: bool,
}

#[derive(Debug, Clone)]
pub struct ListParams {
    pub limit: i64,
    /// Sort keys as requested; `id` is always appended as the tie-breaker.
    pub sort: Vec<SortKey>,
    /// Sort values of the last row of the previous page, one per sort key.
    pub after: Option<Vec<Value>>,
    pub include_archived: bool,
    pub filters: BTreeMap<String, String>,
    pub q: Option<String>,
    pub null_sorts_as: &'static [(&'static str, &'static str)],
}

impl ListParams {
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }

    /// A boolean filter (`true`/`false`), 400 on anything else.
    pub fn bool_filter(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.filter(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// A filter holding a record id; a malformed id is a 400.
    pub fn id_filter(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.filter(name)
            .map(|v| {
                crate::ids::parse_id(v)
                    .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a UUID")))
            })
            .transpose()
    }

    /// An ISO 4217 currency code filter (`EUR`); anything else is a 400.
    pub fn currency_filter(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.filter(name)
            .map(|v| currency_param(name, v))
            .transpose()
    }

    /// A timestamp filter, normalised to the stored format.
    pub fn time_filter(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.filter(name)
            .map(|v| {
                crate::ids::normalise_ts(v).ok_or_else(|| {
                    ApiError::BadRequest(format!("{name} must be an RFC 3339 timestamp"))
                })
            })
            .transpose()
    }
}

/// A query parameter holding an ISO 4217 code (`^[A-Z]{3}$`, `EUR`); anything else is a 400.
pub fn currency_param(name: &str, v: &str) -> Result<String, ApiError> {
    if v.len() == 3 && v.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(v.to_string())
    } else {
        Err(ApiError::BadRequest(format!(
            "{name} must be an ISO 4217 code such as EUR, not {v:?}"
        )))
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    }
}

fn sort_text(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| format!("{}{}", if k.desc { "-" } else { "" }, k.field))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_sort(raw: &str, spec: &ListSpec) -> Result<Vec<SortKey>, ApiError> {
    if raw.is_empty() {
        return parse_sort(spec.default_sort, spec);
    }
    let mut keys: Vec<SortKey> = Vec::new();
    for part in raw.split(',') {
        let (desc, field) = match part.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, part),
        };
        let custom = spec.sort_fields.contains(&"custom.*") && field.starts_with("custom.");
        if !spec.sort_fields.contains(&field) && !custom {
            return Err(ApiError::BadRequest(format!(
                "cannot sort by {field:?}; sortable fields: {}",
                spec.sort_fields
                    .join(", ")
                    .replace("custom.*", "custom.<field key>")
            )));
        }
        // A field named again adds nothing: the first mention decides.
        if keys.iter().any(|k| k.field == field) {
            continue;
        }
        keys.push(SortKey {
            field: field.to_string(),
            desc,
        });
    }
    // A custom field (checked against its definition by the resource) sorts alone, with
    // the id as the tie-breaker.
    if keys.len() > 1 && keys.iter().any(|k| k.field.starts_with("custom.")) {
        return Err(ApiError::BadRequest(
            "sort by one custom field alone, e.g. sort=-custom.tier".into(),
        ));
    }
    Ok(keys)
}

fn encode_cursor(sort: &[SortKey], values: &[Value]) -> String {
    let body = serde_json::json!({"s": sort_text(sort), "v": values});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode_cursor(raw: &str, sort: &[SortKey]) -> Result<Vec<Value>, ApiError> {
    let bad = || ApiError::BadRequest("the cursor is not valid; start again without it".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if body.get("s").and_then(Value::as_str) != Some(sort_text(sort).as_str()) {
        return Err(ApiError::BadRequest(
            "the cursor belongs to a different sort order; keep sort unchanged while paging".into(),
        ));
    }
    let values = body.get("v").and_then(Value::as_array).ok_or_else(bad)?;
    if values.len() != sort.len() + 1 {
        return Err(bad());
    }
    Ok(values.clone())
}

/// The position a page's `next_cursor` stands for, to page on without a query string.
pub fn cursor_values(raw: &str, params: &ListParams) -> Result<Vec<Value>, ApiError> {
    decode_cursor(raw, &params.sort)
}

/// Parse a list query string against the resource's spec.
pub fn parse(pairs: Vec<(String, String)>, spec: &ListSpec) -> Result<ListParams, ApiError> {
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        if v.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k:?} is empty"
            )));
        }
        if raw.insert(k.clone(), v).is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k:?} given twice"
            )));
        }
    }
    let limit = match raw.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let sort = parse_sort(raw.get("sort").map(String::as_str).unwrap_or(""), spec)?;
    let after = raw
        .get("cursor")
        .map(|c| decode_cursor(c, &sort))
        .transpose()?;
    let include_archived = raw
        .get("include_archived")
        .map(|v| parse_bool("include_archived", v))
        .transpose()?
        .unwrap_or(false);
    let q = raw
        .get("q")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if q.is_some() && spec.search.is_none() {
        return Err(ApiError::BadRequest("this list does not support q=".into()));
    }
    let mut filters = BTreeMap::new();
    for (k, v) in raw {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        // `custom.<key>` filters are checked against the field definitions by the resource.
        let custom = spec.has_filter("custom.*") && k.starts_with("custom.");
        if !(spec.has_filter(&k) || custom) {
            return Err(ApiError::BadRequest(format!(
                "unknown filter {k:?}; filters here: {}",
                if spec.filters.is_empty() {
                    "none".to_string()
                } else {
                    spec.filter_names()
                        .collect::<Vec<_>>()
                        .join(", ")
                        .replace("custom.*", "custom.<field key>")
                }
            )));
        }
        filters.insert(k, v);
    }
    Ok(ListParams {
        limit,
        sort,
        after,
        include_archived,
        filters,
        q,
        null_sorts_as: spec.null_sorts_as,
    })
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The one record a batch assembly of one row returns.
pub fn only<T>(mut assembled: Vec<T>) -> Result<T, ApiError> {
    assembled
        .pop()
        .ok_or_else(|| ApiError::internal("a record assembled to nothing"))
}

/// A page's records, each built with its children (`(parent id, child)` rows from one
/// query); records without children get none.
pub fn with_children<R, C, T>(
    rows: Vec<R>,
    children: Vec<(String, C)>,
    id: impl Fn(&R) -> &str,
    build: impl Fn(R, Vec<C>) -> T,
) -> Vec<T> {
    let mut children = by_parent(children);
    rows.into_iter()
        .map(|r| {
            let own = children.remove(id(&r)).unwrap_or_default();
            build(r, own)
        })
        .collect()
}

/// The child rows of a page's records, loaded in one query (`parent_id IN (…)`), grouped
/// by parent in their query order: a page costs one query per relation, never one per row.
pub fn by_parent<V>(rows: Vec<(String, V)>) -> std::collections::HashMap<String, Vec<V>> {
    let mut out: std::collections::HashMap<String, Vec<V>> = std::collections::HashMap::new();
    for (parent, child) in rows {
        out.entry(parent).or_default().push(child);
    }
    out
}

/// Build a page from up to `limit + 1` rows fetched in sort order.
pub fn page<T: Serialize>(mut rows: Vec<T>, params: &ListParams) -> Result<Page<T>, ApiError> {
    let more = rows.len() as i64 > params.limit;
    rows.truncate(params.limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => {
            let json = serde_json::to_value(last).map_err(ApiError::internal)?;
            let mut values: Vec<Value> = params
                .sort
                .iter()
                .map(|k| match sort_value(&json, &k.field) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ => params
                        .null_sorts_as
                        .iter()
                        .find(|(f, _)| *f == k.field)
                        .map(|(_, v)| Value::from(*v))
                        .unwrap_or(Value::Null),
                })
                .collect();
            values.push(json.get("id").cloned().unwrap_or(Value::Null));
            Some(encode_cursor(&params.sort, &values))
        }
        _ => None,
    };
    Ok(Page {
        data: rows,
        next_cursor,
    })
}

/// The value a row sorts by: a top-level field, or `custom.<key>` (a money value by its amount).
fn sort_value<'a>(json: &'a Value, field: &str) -> Option<&'a Value> {
    match field.strip_prefix("custom.") {
        None => json.get(field),
        Some(key) => {
            let v = json.get("custom")?.get(key)?;
            v.get("amount").or(Some(v))
        }
    }
}

/// Comparison used by keyset predicates.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Eq,
    Gt,
    Lt,
    Ge,
    Le,
}

pub type BoxedBool<T> = Box<
    dyn diesel::BoxableExpression<T, crate::db::MultiBackend, SqlType = diesel::sql_types::Bool>,
>;

/// Rust value a cursor holds for a column of this SQL type.
pub trait CursorSql {
    type Value;
    fn from_json(v: &Value) -> Option<Self::Value>;
}

impl CursorSql for diesel::sql_types::Text {
    type Value = String;
    fn from_json(v: &Value) -> Option<String> {
        v.as_str().map(str::to_string)
    }
}

impl CursorSql for diesel::sql_types::Integer {
    type Value = i32;
    fn from_json(v: &Value) -> Option<i32> {
        v.as_i64().and_then(|n| i32::try_from(n).ok())
    }
}

impl CursorSql for diesel::sql_types::BigInt {
    type Value = i64;
    fn from_json(v: &Value) -> Option<i64> {
        v.as_i64()
    }
}

pub fn bad_cursor() -> ApiError {
    ApiError::BadRequest("the cursor is not valid; start again without it".into())
}

/// Rows strictly after the cursor in the sort order: for keys k1..kn (then id),
/// `k1 >= v1 AND (k1 > v1 OR (k1 = v1 AND k2 > v2) OR …)`, with `<` for descending keys.
pub fn keyset_predicate<T, F>(
    sort: &[SortKey],
    values: &[Value],
    compare: F,
) -> Result<BoxedBool<T>, ApiError>
where
    T: 'static,
    F: Fn(&str, Op, &Value) -> Result<BoxedBool<T>, ApiError>,
{
    use diesel::BoolExpressionMethods;
    let mut keys: Vec<(&str, bool)> = sort.iter().map(|k| (k.field.as_str(), k.desc)).collect();
    keys.push(("id", false));
    if values.len() != keys.len() {
        return Err(bad_cursor());
    }
    let mut any: Option<BoxedBool<T>> = None;
    // (a > x) OR (a = x AND b > y) OR …: each key after the ones before it are equal.
    let pairs: Vec<(&(&str, bool), &Value)> = keys.iter().zip(values).collect();
    for (i, &(&(field, desc), value)) in pairs.iter().enumerate() {
        let op = if desc { Op::Lt } else { Op::Gt };
        let mut term: BoxedBool<T> = compare(field, op, value)?;
        for &(&(earlier, _), value) in pairs.iter().take(i).rev() {
            let eq = compare(earlier, Op::Eq, value)?;
            term = Box::new(eq.and(term));
        }
        any = Some(match any {
            None => term,
            Some(prev) => Box::new(prev.or(term)),
        });
    }
    // The same rows, with the first key's bound said on its own (`k1 >= v1`), which an
    // index on the sort can seek to. Without it PostgreSQL walked the index from the start
    // on every page, past every row before the cursor: an export of a million contacts
    // slowed to 1,980 rows/s.
    let Some((&(first, desc), value)) = pairs.first().copied() else {
        return Err(bad_cursor());
    };
    let bound = compare(first, if desc { Op::Le } else { Op::Ge }, value)?;
    any.map(|any| Box::new(bound.and(any)) as BoxedBool<T>)
        .ok_or_else(bad_cursor)
}

/// Declare a resource's sortable columns. Generates `apply_sort(query, &params)` which
/// orders the boxed query by the requested keys plus id and skips to the cursor.
#[macro_export]
macro_rules! sortable {
    ($table:path, $query:ty, { $($field:literal => $col:path),+ $(,)? }) => {
        fn sort_compare(
            field: &str,
            op: $crate::list::Op,
            value: &$crate::reexport::serde_json::Value,
        ) -> Result<$crate::list::BoxedBool<$table>, $crate::ApiError> {
            use $crate::reexport::diesel::ExpressionMethods;
            match field {
                $($field => {
                    let v = <<$col as $crate::reexport::diesel::Expression>::SqlType
                        as $crate::list::CursorSql>::from_json(value)
                        .ok_or_else($crate::list::bad_cursor)?;
                    Ok(match op {
                        $crate::list::Op::Eq => Box::new($col.eq(v)),
                        $crate::list::Op::Gt => Box::new($col.gt(v)),
                        $crate::list::Op::Lt => Box::new($col.lt(v)),
                        $crate::list::Op::Ge => Box::new($col.ge(v)),
                        $crate::list::Op::Le => Box::new($col.le(v)),
                    })
                })+
                _ => Err($crate::list::bad_cursor()),
            }
        }

        pub(crate) fn apply_sort(
            mut query: $query,
            params: &$crate::list::ListParams,
        ) -> Result<$query, $crate::ApiError> {
            use $crate::reexport::diesel::{ExpressionMethods, QueryDsl};
            for key in params.sort.iter().map(|k| (k.field.as_str(), k.desc)).chain([("id", false)]) {
                query = match key {
                    $(($field, false) => query.then_order_by($col.asc()),
                      ($field, true) => query.then_order_by($col.desc()),)+
                    _ => return Err($crate::list::bad_cursor()),
                };
            }
            if let Some(values) = &params.after {
                query = query.filter($crate::list::keyset_predicate(&params.sort, values, sort_compare)?);
            }
            Ok(query.limit(params.limit + 1))
        }
    };
}

/// An enum as it is stored and sent (`closed_won`): its serde name.
pub fn enum_text<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A stored enum read back; `fallback` for text no variant names.
pub fn enum_from<T: serde::de::DeserializeOwned>(raw: &str, fallback: T) -> T {
    parse_enum(raw).unwrap_or(fallback)
}

fn parse_enum<T: serde::de::DeserializeOwned>(raw: &str) -> Option<T> {
    serde_json::from_value(Value::String(raw.to_string())).ok()
}

/// A list filter whose values are an enum's (`status=qualified`); another value is a 400.
pub fn enum_filter<T: serde::de::DeserializeOwned>(
    p: &ListParams,
    name: &str,
) -> Result<Option<T>, ApiError> {
    p.filter(name)
        .map(|v| {
            parse_enum(v).ok_or_else(|| ApiError::BadRequest(format!("{v:?} is not a {name}")))
        })
        .transpose()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        sort_fields: &["created_at", "name"],
        default_sort: "created_at",
        filters: &[Filter::text("role", "")],
        search: None,
        null_sorts_as: &[],
    };

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn unknown_sort_and_filter_are_rejected() {
        assert!(parse(pairs(&[("sort", "password")]), &SPEC).is_err());
        assert!(parse(pairs(&[("colour", "red")]), &SPEC).is_err());
        assert!(parse(pairs(&[("limit", "201")]), &SPEC).is_err());
        // What the documented pattern refuses is refused, not read as the default sort.
        for odd in ["\n", "name,", ",name", " name", "--name"] {
            assert!(parse(pairs(&[("sort", odd)]), &SPEC).is_err(), "{odd:?}");
        }
        let p = parse(
            pairs(&[("sort", "-name,created_at"), ("role", "admin")]),
            &SPEC,
        );
        let p = p.ok().map(|p| (p.sort.len(), p.sort[0].desc, p.limit));
        assert_eq!(p, Some((2, true, DEFAULT_LIMIT)));
    }

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_sort() {
        let sort = parse_sort("-name", &SPEC).unwrap_or_default();
        let c = encode_cursor(&sort, &[Value::from("b"), Value::from("id1")]);
        assert_eq!(decode_cursor(&c, &sort).ok().map(|v| v.len()), Some(2));
        let other = parse_sort("name", &SPEC).unwrap_or_default();
        assert!(decode_cursor(&c, &other).is_err());
        assert!(decode_cursor("garbage!", &sort).is_err());
    }
}
