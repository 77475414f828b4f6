//! The segment criteria language, and its compiler to SQL.
//!
//! A criteria document is a tree of JSON nodes:
//! - `{"and": [node, …]}`, `{"or": [node, …]}`, `{"not": node}`;
//! - a condition `{"field": "<field>", "op": "<op>", "value": …}`.
//!
//! Fields are the contact's own (`first_name`, `job_title`, `lifecycle_stage`, `email`,
//! `tags`, `created_at`, …), its accounts' (`account.industry`, `account.employee_count`, …),
//! custom fields (`custom.<key>`), purchase history (`total_spent` in minor units,
//! `order_count`, `last_order_date`, `products_bought`, `families_bought`), engagement
//! (`opens`, `clicks`, `responses`, `last_activity_at`) and consent (`consent.email`).
//!
//! Operators: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `not_in`, `contains`, `exists`,
//! `not_exists`. A date field also takes a relative value: `-30d` (thirty days ago), `-12h`,
//! `-2w`, `+7d`, `today`.
//!
//! The compiler turns the tree into one SQL condition on `contacts`, with every value a bind
//! parameter and every column name taken from the table below (never from the request). Each
//! condition is made two-valued (`CASE WHEN … THEN 1 ELSE 0 END = 1`) so `not` keeps exactly
//! the contacts the condition leaves out, contacts without a value included.

use crm_core::db::MultiBackend;
use crm_core::error::FieldError;
use crm_core::list::BoxedBool;
use crm_core::schema::contacts;
use diesel::expression::ValidGrouping;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Double, Text};
use diesel::BoolExpressionMethods;
use serde_json::Value;

type Expr = BoxedBool<contacts::table>;

/// How deep a criteria tree may nest, and how many conditions it may hold.
const MAX_DEPTH: usize = 8;
const MAX_CONDITIONS: usize = 50;
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Number,
    /// An RFC 3339 timestamp stored as text.
    Timestamp,
    /// A `YYYY-MM-DD` date stored as text.
    Date,
    /// Membership only: `in`, `eq`, `exists`.
    Set,
}

/// What one field compiles to: SQL producing the compared value (`{v}` is where the
/// comparison goes), or a whole predicate for set-like fields.
struct FieldSql {
    name: &'static str,
    kind: Kind,
    /// `{cmp}` is replaced by the comparison (`= ?`, `IS NOT NULL`, …) on the value.
    sql: &'static str,
}

/// Every field the language knows. Subqueries refer to the outer `contacts` row, and start
/// from the contact's own rows (`contact_accounts` by `contact_id`, then `order_lines` by
/// `account_id` and `product_id`), so each is a few index lookups per contact; the product
/// ids of `families_bought` are found once per statement.
const FIELDS: &[FieldSql] = &[
    FieldSql { name: "first_name", kind: Kind::Text, sql: "contacts.first_name {cmp}" },
    FieldSql { name: "last_name", kind: Kind::Text, sql: "contacts.last_name {cmp}" },
    FieldSql { name: "job_title", kind: Kind::Text, sql: "contacts.job_title {cmp}" },
    FieldSql { name: "lifecycle_stage", kind: Kind::Text, sql: "contacts.lifecycle_stage {cmp}" },
    FieldSql { name: "preferred_language", kind: Kind::Text, sql: "contacts.preferred_language {cmp}" },
    FieldSql { name: "owner_id", kind: Kind::Text, sql: "contacts.owner_id {cmp}" },
    FieldSql {
        name: "score",
        kind: Kind::Number,
        sql: "COALESCE((SELECT cs.score FROM contact_scores cs WHERE cs.contact_id = contacts.id), 0) {cmp}",
    },
    FieldSql { name: "created_at", kind: Kind::Timestamp, sql: "contacts.created_at {cmp}" },
    FieldSql { name: "updated_at", kind: Kind::Timestamp, sql: "contacts.updated_at {cmp}" },
    FieldSql {
        name: "email",
        kind: Kind::Text,
        sql: "EXISTS (SELECT 1 FROM contact_emails ce WHERE ce.contact_id = contacts.id AND LOWER(ce.email) {cmp})",
    },
    FieldSql {
        name: "tags",
        kind: Kind::Set,
        sql: "EXISTS (SELECT 1 FROM record_tags rt WHERE rt.entity_type = 'contact' AND rt.record_id = contacts.id AND rt.tag {cmp})",
    },
    FieldSql {
        name: "account.name",
        kind: Kind::Text,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE ca.contact_id = contacts.id AND a.name {cmp})",
    },
    FieldSql {
        name: "account.industry",
        kind: Kind::Text,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE ca.contact_id = contacts.id AND a.industry {cmp})",
    },
    FieldSql {
        name: "account.employee_count",
        kind: Kind::Number,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE ca.contact_id = contacts.id AND a.employee_count {cmp})",
    },
    FieldSql {
        name: "account.annual_revenue",
        kind: Kind::Number,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN accounts a ON a.id = ca.account_id WHERE ca.contact_id = contacts.id AND a.annual_revenue {cmp})",
    },
    FieldSql {
        name: "total_spent",
        kind: Kind::Number,
        sql: "(SELECT COALESCE(SUM(o.total), 0) FROM contact_accounts ca JOIN orders o ON o.account_id = ca.account_id WHERE ca.contact_id = contacts.id AND o.archived_at IS NULL) {cmp}",
    },
    FieldSql {
        name: "order_count",
        kind: Kind::Number,
        sql: "(SELECT COUNT(*) FROM contact_accounts ca JOIN orders o ON o.account_id = ca.account_id WHERE ca.contact_id = contacts.id AND o.archived_at IS NULL) {cmp}",
    },
    FieldSql {
        name: "last_order_date",
        kind: Kind::Date,
        sql: "(SELECT MAX(o.ordered_on) FROM contact_accounts ca JOIN orders o ON o.account_id = ca.account_id WHERE ca.contact_id = contacts.id AND o.archived_at IS NULL) {cmp}",
    },
    FieldSql {
        name: "products_bought",
        kind: Kind::Set,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN order_lines ol ON ol.account_id = ca.account_id WHERE ca.contact_id = contacts.id AND ol.product_id {cmp})",
    },
    FieldSql {
        name: "families_bought",
        kind: Kind::Set,
        sql: "EXISTS (SELECT 1 FROM contact_accounts ca JOIN order_lines ol ON ol.account_id = ca.account_id WHERE ca.contact_id = contacts.id AND ol.product_id IN (SELECT p.id FROM products p WHERE p.family {cmp}))",
    },
    FieldSql {
        name: "opens",
        kind: Kind::Number,
        sql: "(SELECT COUNT(*) FROM campaign_members cm WHERE cm.contact_id = contacts.id AND cm.opened_at IS NOT NULL) {cmp}",
    },
    FieldSql {
        name: "clicks",
        kind: Kind::Number,
        sql: "(SELECT COUNT(*) FROM campaign_members cm WHERE cm.contact_id = contacts.id AND cm.clicked_at IS NOT NULL) {cmp}",
    },
    FieldSql {
        name: "responses",
        kind: Kind::Number,
        sql: "(SELECT COUNT(*) FROM campaign_members cm WHERE cm.contact_id = contacts.id AND cm.responded_at IS NOT NULL) {cmp}",
    },
    FieldSql {
        name: "last_activity_at",
        kind: Kind::Timestamp,
        sql: "(SELECT MAX(act.created_at) FROM activities act JOIN activity_links al ON al.activity_id = act.id WHERE al.entity_type = 'contact' AND al.entity_id = contacts.id) {cmp}",
    },
    FieldSql {
        name: "consent.email",
        kind: Kind::Text,
        sql: "(SELECT cc.status FROM contact_consents cc WHERE cc.contact_id = contacts.id AND cc.channel = 'email') {cmp}",
    },
];

/// The names of the fields, for error messages and the documentation.
pub fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|f| f.name).collect()
}

const OPS: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
];

/// The type of a custom field, as far as comparisons go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CustomKind {
    Text,
    Number,
    /// A `date` custom field (`YYYY-MM-DD` text): compared as a date, relative values too.
    Date,
}

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
enum Bind {
    Text(String),
    Number(f64),
}

/// A checked criteria tree, ready to compile.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Cond(Cond),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// The SQL shape of the field (`{cmp}` where the comparison goes).
    sql: String,
    /// For custom fields: the key bound before the comparison.
    custom_key: Option<String>,
    op: &'static str,
    values: Vec<Bind>,
}

/// Check a criteria document; every problem is reported with its path
/// (`criteria.and[1].op`). `custom` gives the contact custom fields by key.
pub fn parse(
    doc: &Value,
    custom: &dyn Fn(&str) -> Option<CustomKind>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Node, Vec<FieldError>> {
    let mut errors = vec![];
    let mut count = 0;
    let ctx = Ctx { custom, now };
    let node = ctx.node(doc, "criteria", 0, &mut count, &mut errors);
    if count > MAX_CONDITIONS {
        errors.push(FieldError::new(
            "criteria",
            "too_many",
            format!("at most {MAX_CONDITIONS} conditions"),
        ));
    }
    match node {
        Some(n) if errors.is_empty() => Ok(n),
        _ => {
            if errors.is_empty() {
                errors.push(FieldError::new(
                    "criteria",
                    "invalid",
                    "is not a criteria document",
                ));
            }
            Err(errors)
        }
    }
}

struct Ctx<'a> {
    custom: &'a dyn Fn(&str) -> Option<CustomKind>,
    now: chrono::DateTime<chrono::Utc>,
}

impl Ctx<'_> {
    fn node(
        &self,
        v: &Value,
        path: &str,
        depth: usize,
        count: &mut usize,
        errors: &mut Vec<FieldError>,
    ) -> Option<Node> {
        let Some(obj) = v.as_object() else {
            errors.push(FieldError::new(path, "type", "must be an object"));
            return None;
        };
        if depth > MAX_DEPTH {
            errors.push(FieldError::new(
                path,
                "too_deep",
                format!("nests deeper than {MAX_DEPTH}"),
            ));
            return None;
        }
        let group = |key: &'static str| obj.get(key).map(|list| (key, list));
        if let Some((key, list)) = group("and").or_else(|| group("or")) {
            if obj.len() != 1 {
                errors.push(FieldError::new(
                    path,
                    "invalid",
                    format!("`{key}` stands alone in its object"),
                ));
                return None;
            }
            let Some(items) = list.as_array().filter(|l| !l.is_empty()) else {
                errors.push(FieldError::new(
                    &format!("{path}.{key}"),
                    "type",
                    "must be a non-empty array",
                ));
                return None;
            };
            let nodes: Vec<Option<Node>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    self.node(
                        item,
                        &format!("{path}.{key}[{i}]"),
                        depth + 1,
                        count,
                        errors,
                    )
                })
                .collect();
            let nodes: Option<Vec<Node>> = nodes.into_iter().collect();
            return nodes.map(|n| {
                if key == "and" {
                    Node::And(n)
                } else {
                    Node::Or(n)
                }
            });
        }
        if let Some(inner) = obj.get("not") {
            if obj.len() != 1 {
                errors.push(FieldError::new(
                    path,
                    "invalid",
                    "`not` stands alone in its object",
                ));
                return None;
            }
            return self
                .node(inner, &format!("{path}.not"), depth + 1, count, errors)
                .map(|n| Node::Not(Box::new(n)));
        }
        *count += 1;
        self.condition(obj, path, errors).map(Node::Cond)
    }

    fn condition(
        &self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Cond> {
        let before = errors.len();
        for key in obj.keys() {
            if !["field", "op", "value"].contains(&key.as_str()) {
                errors.push(FieldError::new(
                    &format!("{path}.{key}"),
                    "unknown",
                    "a condition has field, op and value; groups are and, or, not",
                ));
            }
        }
        let field = obj.get("field").and_then(Value::as_str).unwrap_or_default();
        let op_text = obj.get("op").and_then(Value::as_str).unwrap_or_default();
        let op = OPS.iter().find(|o| **o == op_text).copied();
        if op.is_none() {
            errors.push(FieldError::new(
                &format!("{path}.op"),
                "unknown",
                format!("unknown operator {op_text:?}; one of {}", OPS.join(", ")),
            ));
        }
        let (sql, kind, custom_key) = match self.field(field) {
            Some(found) => found,
            None => {
                let why = if let Some(key) = field.strip_prefix("custom.") {
                    format!("no custom field {key:?} on contacts")
                } else {
                    format!(
                        "unknown field {field:?}; one of {}, custom.<key>",
                        field_names().join(", ")
                    )
                };
                errors.push(FieldError::new(&format!("{path}.field"), "unknown", why));
                return None;
            }
        };
        let op = op?;
        let values = self.values(kind, op, obj.get("value"), &format!("{path}.value"), errors);
        if errors.len() > before {
            return None;
        }
        Some(Cond {
            sql,
            custom_key,
            op,
            values: values?,
        })
    }

    fn field(&self, name: &str) -> Option<(String, Kind, Option<String>)> {
        if let Some(key) = name.strip_prefix("custom.") {
            let kind = (self.custom)(key)?;
            let (column, kind) = match kind {
                CustomKind::Number => ("cv.number_value", Kind::Number),
                CustomKind::Text => ("cv.text_value", Kind::Text),
                CustomKind::Date => ("cv.text_value", Kind::Date),
            };
            let sql = format!(
                "EXISTS (SELECT 1 FROM custom_values cv WHERE cv.object = 'contact' AND cv.record_id = contacts.id AND cv.key = {{key}} AND {column} {{cmp}})"
            );
            return Some((sql, kind, Some(key.to_string())));
        }
        FIELDS
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.sql.to_string(), f.kind, None))
    }

    fn values(
        &self,
        kind: Kind,
        op: &'static str,
        value: Option<&Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Vec<Bind>> {
        let fail = |errors: &mut Vec<FieldError>, msg: String| {
            errors.push(FieldError::new(path, "invalid", msg));
            None
        };
        let allowed = match kind {
            Kind::Set => ["eq", "in", "not_in", "exists", "not_exists"].contains(&op),
            Kind::Text => op != "gt" && op != "gte" && op != "lt" && op != "lte",
            Kind::Number | Kind::Timestamp | Kind::Date => op != "contains",
        };
        if !allowed {
            return fail(errors, format!("{op} does not apply to this field"));
        }
        match op {
            "exists" | "not_exists" => match value {
                None | Some(Value::Null) => Some(vec![]),
                Some(_) => fail(errors, format!("{op} takes no value")),
            },
            "in" | "not_in" => {
                let Some(list) = value.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
                    return fail(errors, format!("{op} takes a non-empty array"));
                };
                if list.len() > MAX_VALUES {
                    return fail(errors, format!("at most {MAX_VALUES} values"));
                }
                list.iter()
                    .map(|v| self.scalar(kind, v))
                    .collect::<Option<Vec<_>>>()
                    .or_else(|| {
                        fail(
                            errors,
                            "holds a value of the wrong type for this field".into(),
                        )
                    })
            }
            _ => match value.and_then(|v| self.scalar(kind, v)) {
                Some(b) => Some(vec![b]),
                None => fail(errors, self.expected(kind).into()),
            },
        }
    }

    fn expected(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Number => "must be a number",
            Kind::Timestamp | Kind::Date => {
                "must be a date (2026-11-30), a timestamp, or relative (-30d, -12h, -2w, +7d, today)"
            }
            Kind::Text | Kind::Set => "must be a string",
        }
    }

    fn scalar(&self, kind: Kind, v: &Value) -> Option<Bind> {
        match kind {
            Kind::Number => v.as_f64().map(Bind::Number),
            Kind::Text | Kind::Set => v.as_str().map(|s| Bind::Text(s.to_string())),
            Kind::Timestamp => self
                .moment(v.as_str()?)
                .map(|t| Bind::Text(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
            Kind::Date => self
                .moment(v.as_str()?)
                .map(|t| Bind::Text(t.format("%Y-%m-%d").to_string())),
        }
    }

    /// A date, timestamp or relative value as a moment.
    fn moment(&self, s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::{Duration, NaiveDate, TimeZone, Utc};
        if s == "today" {
            return Some(Utc.from_utc_datetime(&self.now.date_naive().and_hms_opt(0, 0, 0)?));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
        }
        let sign = match s.chars().next()? {
            '-' => -1,
            '+' => 1,
            _ => return None,
        };
        let unit = s.chars().last()?;
        let n: i64 = s
            .get(1..s.len() - 1)?
            .parse()
            .ok()
            .filter(|n| *n <= 36_500)?;
        let span = match unit {
            'h' => Duration::hours(n),
            'd' => Duration::days(n),
            'w' => Duration::weeks(n),
            _ => return None,
        };
        Some(self.now + span * sign)
    }
}

/// The condition as one boolean SQL expression on `contacts`.
pub fn compile(node: &Node) -> Expr {
    match node {
        Node::And(list) => fold(list, |a, b| Box::new(a.and(b))),
        Node::Or(list) => fold(list, |a, b| Box::new(a.or(b))),
        Node::Not(inner) => Box::new(diesel::dsl::not(compile(inner))),
        Node::Cond(c) => condition(c),
    }
}

fn fold(list: &[Node], join: fn(Expr, Expr) -> Expr) -> Expr {
    let mut parts = list.iter().map(compile);
    let first = parts
        .next()
        .unwrap_or_else(|| Box::new(Fragment(vec![sql("1 = 1")])));
    parts.fold(first, join)
}

fn condition(c: &Cond) -> Expr {
    match c.op {
        "exists" => leaf(c, vec![sql("IS NOT NULL")]),
        "not_exists" => Box::new(diesel::dsl::not(leaf(c, vec![sql("IS NOT NULL")]))),
        "in" | "eq" => any_of(c),
        "not_in" => Box::new(diesel::dsl::not(any_of(c))),
        // `ne` keeps contacts without a value, as `not eq` does.
        "ne" => Box::new(diesel::dsl::not(any_of(c))),
        "contains" => {
            let Some(Bind::Text(t)) = c.values.first() else {
                return never();
            };
            let pattern = format!("%{}%", t.to_lowercase().replace(['%', '_'], ""));
            let lowered = Cond {
                sql: lower_column(&c.sql),
                ..c.clone()
            };
            leaf(
                &lowered,
                vec![sql("LIKE "), Part::Bind(Bind::Text(pattern))],
            )
        }
        op => {
            let cmp = match op {
                "gt" => "> ",
                "gte" => ">= ",
                "lt" => "< ",
                _ => "<= ",
            };
            match c.values.first() {
                Some(v) => leaf(c, vec![sql(cmp), Part::Bind(v.clone())]),
                None => never(),
            }
        }
    }
}

fn never() -> Expr {
    Box::new(Fragment(vec![sql("1 = 0")]))
}

fn sql(s: &str) -> Part {
    Part::Sql(s.to_string())
}

/// `eq` and `in`: any of the values matches, in ONE comparison (`= ?`, or `IN (?, ?, …)`
/// for several), so the field's subquery runs once per contact whatever the number of
/// values. Text compares as sent, except `email`, stored lower-cased.
fn any_of(c: &Cond) -> Expr {
    let lower = c.sql.contains("LOWER(ce.email)");
    let values: Vec<Part> = c
        .values
        .iter()
        .map(|v| match v {
            Bind::Text(t) if lower => Part::Bind(Bind::Text(t.to_lowercase())),
            other => Part::Bind(other.clone()),
        })
        .collect();
    let cmp = match values.len() {
        0 => return never(),
        1 => std::iter::once(sql("= ")).chain(values).collect(),
        _ => {
            let mut cmp = vec![sql("IN (")];
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    cmp.push(sql(", "));
                }
                cmp.push(v);
            }
            cmp.push(sql(")"));
            cmp
        }
    };
    leaf(c, cmp)
}

/// `x.col {cmp}` becomes `LOWER(x.col) {cmp}`, for a case-insensitive `contains`.
fn lower_column(sql: &str) -> String {
    let Some((head, rest)) = sql.split_once(" {cmp}") else {
        return sql.to_string();
    };
    if head.ends_with(')') {
        return sql.to_string(); // already LOWER(…)
    }
    let (before, column) = match head.rfind([' ', '(']) {
        Some(i) => head.split_at(i + 1),
        None => ("", head),
    };
    format!("{before}LOWER({column}) {{cmp}}{rest}")
}

/// One comparison, made two-valued: `cmp` (the operator and its bound values) goes where
/// `{cmp}` is, a custom field's key is bound where `{key}` is.
fn leaf(c: &Cond, cmp: Vec<Part>) -> Expr {
    let shape = format!("(CASE WHEN {} THEN 1 ELSE 0 END = 1)", c.sql);
    let (head, tail) = shape.split_once("{cmp}").unwrap_or((&shape, ""));
    let mut parts = vec![];
    match (&c.custom_key, head.split_once("{key}")) {
        (Some(key), Some((before, after))) => {
            parts.push(sql(before));
            parts.push(Part::Bind(Bind::Text(key.clone())));
            parts.push(sql(after));
        }
        _ => parts.push(sql(head)),
    }
    parts.extend(cmp);
    parts.push(sql(tail));
    Box::new(Fragment(parts))
}

/// A piece of a condition's SQL: text from this module, or a value bound as a parameter.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Sql(String),
    Bind(Bind),
}

/// One condition's SQL, its values bound. Marked unsafe to keep prepared: every criteria
/// document is its own statement, and a connection would otherwise keep each one a client
/// ever sent for as long as it lives.
#[derive(Debug, Clone)]
struct Fragment(Vec<Part>);

impl Expression for Fragment {
    type SqlType = Bool;
}

impl<QS> AppearsOnTable<QS> for Fragment {}

impl<QS> SelectableExpression<QS> for Fragment {}

impl<GB> ValidGrouping<GB> for Fragment {
    type IsAggregate = is_aggregate::Never;
}

impl QueryId for Fragment {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<MultiBackend> for Fragment {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> diesel::QueryResult<()> {
        out.unsafe_to_cache_prepared();
        for part in &self.0 {
            match part {
                Part::Sql(s) => out.push_sql(s),
                Part::Bind(Bind::Text(t)) => out.push_bind_param::<Text, String>(t)?,
                Part::Bind(Bind::Number(n)) => out.push_bind_param::<Double, f64>(n)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::{QueryDsl, RunQueryDsl};
    use serde_json::json;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    }

    fn custom(key: &str) -> Option<CustomKind> {
        match key {
            "tier" => Some(CustomKind::Text),
            "seats" => Some(CustomKind::Number),
            _ => None,
        }
    }

    fn errors(doc: Value) -> Vec<String> {
        match parse(&doc, &custom, now()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn unknown_fields_and_operators_are_named_with_their_path() {
        let doc = json!({"and": [
            {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
            {"field": "colour", "op": "eq", "value": "red"},
            {"or": [{"field": "total_spent", "op": "above", "value": 5}]},
            {"field": "custom.nope", "op": "exists"},
        ]});
        assert_eq!(
            errors(doc),
            [
                "criteria.and[1].field",
                "criteria.and[2].or[0].op",
                "criteria.and[3].field"
            ]
        );
        assert_eq!(
            errors(json!({"field": "total_spent", "op": "gt", "value": "lots"})),
            ["criteria.value"]
        );
        assert_eq!(
            errors(json!({"field": "job_title", "op": "gt", "value": "a"})),
            ["criteria.value"]
        );
        assert_eq!(errors(json!({"and": []})), ["criteria.and"]);
        assert_eq!(
            errors(json!({"field": "email", "op": "eq", "value": "a", "x": 1})),
            ["criteria.x"]
        );
        assert!(
            errors(json!({"not": {"field": "custom.seats", "op": "gte", "value": 10}})).is_empty()
        );
    }

    #[test]
    fn relative_dates_are_resolved_against_now() {
        let ctx = Ctx {
            custom: &custom,
            now: now(),
        };
        let day = |s: &str| ctx.scalar(Kind::Date, &json!(s));
        assert_eq!(day("-30d"), Some(Bind::Text("2026-11-03".into())));
        assert_eq!(day("+1w"), Some(Bind::Text("2026-12-10".into())));
        assert_eq!(day("today"), Some(Bind::Text("2026-12-03".into())));
        assert_eq!(day("2026-01-31"), Some(Bind::Text("2026-01-31".into())));
        assert_eq!(day("-30y"), None);
        assert_eq!(day("soon"), None);
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let doc = json!({"field": "job_title", "op": "eq", "value": "x' OR 1=1 --"});
        let Ok(Node::Cond(c)) = parse(&doc, &custom, now()) else {
            panic!("a condition");
        };
        assert_eq!(c.sql, "contacts.job_title {cmp}");
        assert_eq!(c.values, [Bind::Text("x' OR 1=1 --".into())]);
    }

    #[test]
    fn contains_lowers_the_column() {
        assert_eq!(
            lower_column("EXISTS (SELECT 1 FROM a WHERE a.name {cmp})"),
            "EXISTS (SELECT 1 FROM a WHERE LOWER(a.name) {cmp})"
        );
        assert_eq!(
            lower_column("contacts.job_title {cmp}"),
            "LOWER(contacts.job_title) {cmp}"
        );
        assert_eq!(
            lower_column("x AND LOWER(ce.email) {cmp})"),
            "x AND LOWER(ce.email) {cmp})"
        );
    }

    /// The SQL a criteria document runs on SQLite (its condition, after `WHERE`), and how
    /// many values it binds: the query is run on an empty database and its text recorded.
    fn compiled(doc: Value) -> (String, usize) {
        use diesel::connection::{Connection, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let node = parse(&doc, &custom, now()).unwrap_or_else(|e| panic!("{e:?}"));
        let mut conn =
            crm_core::db::connect_once("sqlite://:memory:").unwrap_or_else(|e| panic!("{e}"));
        crm_core::db::run_migrations(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let seen = Arc::new(Mutex::new(String::new()));
        let into = seen.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                if let Ok(mut s) = into.lock() {
                    *s = query.to_string();
                }
            }
        });
        contacts::table
            .into_boxed::<MultiBackend>()
            .filter(compile(&node))
            .select(contacts::id)
            .load::<String>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let (sql, binds) = text.split_once(" -- binds: ").unwrap_or((&text, ""));
        let condition = sql.split_once(" WHERE ").map_or(sql, |(_, c)| c);
        let binds = binds.trim_matches(['[', ']']);
        let n = if binds.is_empty() {
            0
        } else {
            binds.matches(", ").count() + 1
        };
        (condition.to_string(), n)
    }

    #[test]
    fn an_in_list_is_one_subquery_with_every_value_bound() {
        let many: Vec<String> = (0..100).map(|i| format!("value-{i}")).collect();
        let subqueries = |sql: &str| sql.matches("SELECT").count();
        for (field, selects) in [
            ("products_bought", 1),
            // The product ids of the families are one uncorrelated subquery more, run once.
            ("families_bought", 2),
            ("tags", 1),
            ("email", 1),
            ("account.industry", 1),
            ("custom.tier", 1),
            ("job_title", 0),
            ("lifecycle_stage", 0),
        ] {
            for op in ["in", "not_in"] {
                let (sql, binds) = compiled(json!({"field": field, "op": op, "value": many}));
                assert_eq!(subqueries(&sql), selects, "{field} {op}: {sql}");
                let lists = sql.matches(" IN (?, ?").count();
                assert_eq!(lists, 1, "{field} {op}: {sql}");
                let key = usize::from(field.starts_with("custom."));
                assert_eq!(binds, 100 + key, "{field} {op}: {sql}");
                assert!(!sql.contains("value-"), "values are bound: {sql}");
            }
        }
        let numbers: Vec<i64> = (0..100).collect();
        let (sql, binds) = compiled(json!({"field": "total_spent", "op": "in", "value": numbers}));
        assert_eq!((subqueries(&sql), binds), (1, 100), "{sql}");
        // Five conditions of 100 values: five subqueries, not five hundred.
        let five: Vec<Value> = (0..5)
            .map(|_| json!({"field": "products_bought", "op": "in", "value": many}))
            .collect();
        let (sql, binds) = compiled(json!({"and": five}));
        assert_eq!((subqueries(&sql), binds), (5, 500));
        // One value stays a plain `=`.
        let (sql, binds) = compiled(json!({"field": "tags", "op": "in", "value": ["vip"]}));
        assert!(sql.contains("rt.tag = ") && !sql.contains(" IN ("), "{sql}");
        assert_eq!(binds, 1);
    }
}
