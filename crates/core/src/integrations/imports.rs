//! Bulk imports: `POST /imports` streams a CSV or NDJSON file (hundreds of MB, in constant
//! memory) into the database in pieces and queues a job; the job maps each row to the
//! object's fields and creates, updates or upserts it through the object's own rules.
//! Rows are committed in slices together with the progress counters, so a server killed
//! mid-import resumes where the last slice ended: nothing acknowledged is lost, no row is
//! written twice. Broken rows are reported with their line numbers; the rest go in.

use crate::auth::Principal;
use crate::db::{self, DbConn, DbPool};
use crate::error::{ApiError, ApiResult};
use crate::extract::path_id;
use crate::ids;
use crate::jobs::{self, JobFailure, JobRegistry, JobResult};
use crate::objects::{self, MatchKey, ObjectKind, ObjectRegistry, Write};
use crate::respond::{ReadProblems, WriteProblems};
use crate::schema::{import_chunks, import_errors, imports};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::sync::{Arc, OnceLock};
use utoipa::{IntoParams, ToSchema};

pub const RUN_JOB: &str = "import.run";
/// Bytes per stored piece of an uploaded file.
const CHUNK: usize = 1024 * 1024;
/// Rows committed together (with the progress counters).
const SLICE: usize = 250;
/// Errors shown with an import.
const ERRORS_SHOWN: i64 = 1000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports)]
struct ImportRow {
    id: String,
    object: String,
    format: String,
    mode: String,
    match_on: Option<String>,
    mapping: String,
    dry_run: bool,
    status: String,
    size_bytes: i64,
    total_rows: Option<i64>,
    processed: i64,
    created: i64,
    updated: i64,
    failed: i64,
    error: Option<String>,
    created_by: String,
    created_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, Serialize, ToSchema, Queryable)]
pub struct RowError {
    /// Line of the file (1 is the CSV header).
    pub line: i64,
    pub field: Option<String>,
    pub message: String,
}

/// An import and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub struct Import {
    pub id: String,
    pub object: String,
    /// `csv` or `ndjson`.
    pub format: String,
    /// `create`, `update` or `upsert`.
    pub mode: String,
    /// For upserts: `external_id` or `email`.
    pub match_on: Option<String>,
    /// Column of the file → field of the object.
    #[schema(value_type = Object)]
    pub mapping: Map<String, Value>,
    /// Validate and count every row, write nothing.
    pub dry_run: bool,
    /// The static list every contact the import writes joins, if one was named.
    #[schema(format = "uuid")]
    pub list_id: Option<String>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    pub size_bytes: i64,
    pub total_rows: Option<i64>,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub failed: i64,
    pub percent: f64,
    /// Why the whole import stopped, if it did.
    pub error: Option<String>,
    /// The first 1000 row errors, by line.
    pub errors: Vec<RowError>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The object the rows are: `accounts`, `contacts`, `invoices`, `payments`.
    #[param(min_length = 1, max_length = 50, pattern = "^[a-z_-]+$")]
    pub object: String,
    /// `create` (default), `update` (rows carry `id`) or `upsert`.
    #[param(nullable = false, pattern = "^(create|update|upsert)$")]
    pub mode: Option<String>,
    /// For upserts: `external_id` (default; rows carry `external_id`, and `external_source`
    /// unless the `external_source` parameter gives it) or `email` (contacts).
    #[param(nullable = false, pattern = "^(external_id|email)$")]
    pub match_on: Option<String>,
    /// The source of every row's external id, when the file has no such column.
    #[param(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = "^[^/]+$"
    )]
    pub external_source: Option<String>,
    /// JSON object: column → field (`{"Company": "name", "Employees": "employee_count"}`);
    /// without it, column names are field names. `a.b` fills nested fields (`custom.tier`).
    /// At most 4,000 characters, so that even percent-encoded it fits the 32 KiB request
    /// target (longer targets are refused with a 414).
    #[param(nullable = false, min_length = 2, max_length = 4000)]
    pub mapping: Option<String>,
    /// Check every row and report, but write nothing.
    #[param(nullable = false)]
    pub dry_run: Option<bool>,
    /// `csv` or `ndjson`; by default taken from Content-Type.
    #[param(nullable = false, pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
    /// Contacts only: a static marketing list (`/api/v1/lists`) that every contact the
    /// import creates or updates joins (subscribers, past customers). Needs `MarketingWrite`.
    #[param(nullable = false, format = "uuid")]
    pub list_id: Option<String>,
}

/// Where imported records can be added to a list: marketing's static lists, installed at
/// start-up (core knows no marketing tables' rules, as with `crate::hooks`).
pub struct ListTarget {
    /// The object whose records may join (`contacts`).
    pub object: &'static str,
    /// 422 naming `list_id` unless it is a live list; 403 unless the caller may add to it.
    pub check: fn(&mut DbConn, &Principal, &str) -> ApiResult<()>,
    /// Add one record (a record already on the list stays once).
    pub join: fn(&mut DbConn, &Principal, &str, &str) -> ApiResult<()>,
}

static LIST_TARGET: OnceLock<ListTarget> = OnceLock::new();

/// Install the list target (every server in a process installs the same; the first wins).
pub fn install_list_target(target: ListTarget) {
    let _ = LIST_TARGET.set(target);
}

/// The list target for `object`, or a 400 saying `list_id` does not apply to it.
fn list_target(object: &str) -> ApiResult<&'static ListTarget> {
    LIST_TARGET
        .get()
        .filter(|t| t.object == object)
        .ok_or_else(|| ApiError::BadRequest(format!("list_id applies to contacts, not {object}")))
}

/// Mapping keys that carry an import's options rather than a column.
const LIST_KEY: &str = "$list_id";

fn load(conn: &mut DbConn, id: &str) -> ApiResult<ImportRow> {
    imports::table
        .find(id)
        .select(ImportRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("import"))
}

fn to_import(conn: &mut DbConn, r: ImportRow) -> ApiResult<Import> {
    let errors = import_errors::table
        .filter(import_errors::import_id.eq(&r.id))
        .order((import_errors::line.asc(), import_errors::id.asc()))
        .limit(ERRORS_SHOWN)
        .select((
            import_errors::line,
            import_errors::field,
            import_errors::message,
        ))
        .load::<RowError>(conn)?;
    let percent = match (r.status.as_str(), r.total_rows) {
        ("succeeded", _) => 100.0,
        (_, Some(total)) if total > 0 => {
            (r.processed as f64 * 1000.0 / total as f64).round() / 10.0
        }
        _ => 0.0,
    };
    let mut mapping: Map<String, Value> = serde_json::from_str(&r.mapping).unwrap_or_default();
    let list_id = mapping
        .remove(LIST_KEY)
        .and_then(|v| v.as_str().map(str::to_string));
    Ok(Import {
        list_id,
        mapping,
        id: r.id,
        object: r.object,
        format: r.format,
        mode: r.mode,
        match_on: r.match_on,
        dry_run: r.dry_run,
        status: r.status,
        size_bytes: r.size_bytes,
        total_rows: r.total_rows,
        processed: r.processed,
        created: r.created,
        updated: r.updated,
        failed: r.failed,
        percent,
        error: r.error,
        errors,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
        finished_at: r.finished_at,
    })
}

// ---- Reading a stored file ----

/// Reads an uploaded file back piece by piece from its own connection.
struct ChunkReader {
    pool: DbPool,
    import_id: String,
    next: i32,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            let mut conn = self.pool.get().map_err(std::io::Error::other)?;
            let piece: Option<Vec<u8>> = import_chunks::table
                .filter(import_chunks::import_id.eq(&self.import_id))
                .filter(import_chunks::n.eq(self.next))
                .select(import_chunks::data)
                .first(&mut conn)
                .optional()
                .map_err(std::io::Error::other)?;
            let Some(piece) = piece else { return Ok(0) };
            self.buf = piece;
            self.pos = 0;
            self.next += 1;
        }
        let unread = self.buf.get(self.pos..).unwrap_or_default();
        let n = out.len().min(unread.len());
        for (slot, byte) in out.iter_mut().zip(unread) {
            *slot = *byte;
        }
        self.pos += n;
        Ok(n)
    }
}

/// One row of the file: its line, and its fields or why it could not be read.
type SourceRow = (i64, Result<Map<String, Value>, String>);

fn csv_rows(reader: ChunkReader) -> Box<dyn Iterator<Item = SourceRow>> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = match csv.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Box::new(std::iter::once((
                1,
                Err(format!("the header row cannot be read: {e}")),
            )))
        }
    };
    Box::new(csv.into_records().enumerate().map(move |(i, record)| {
        let fallback_line = i as i64 + 2;
        match record {
            Ok(r) => {
                // The csv crate puts a record after a CRLF at the line of the LF before it,
                // one short; a record can't start before its ordinal line.
                let line = r
                    .position()
                    .map(|p| (p.line() as i64).max(fallback_line))
                    .unwrap_or(fallback_line);
                let fields = headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.trim().to_string(), Value::String(v.to_string())))
                    .collect();
                (line, Ok(fields))
            }
            Err(e) => {
                let line = e
                    .position()
                    .map(|p| p.line() as i64)
                    .unwrap_or(fallback_line);
                (line, Err(format!("unreadable CSV row: {e}")))
            }
        }
    }))
}

fn ndjson_rows(reader: ChunkReader) -> Box<dyn Iterator<Item = SourceRow>> {
    use std::io::BufRead;
    Box::new(
        std::io::BufReader::new(reader)
            .lines()
            .enumerate()
            .filter(|(_, l)| l.as_ref().map(|l| !l.trim().is_empty()).unwrap_or(true))
            .map(|(i, line)| {
                let line_no = i as i64 + 1;
                let row = match line {
                    Ok(text) => match serde_json::from_str::<Value>(&text) {
                        Ok(Value::Object(m)) => Ok(m),
                        Ok(_) => Err("the line is not a JSON object".to_string()),
                        Err(e) => Err(format!("the line is not JSON: {e}")),
                    },
                    Err(e) => Err(format!("unreadable line: {e}")),
                };
                (line_no, row)
            }),
    )
}

fn rows_of(pool: &DbPool, import: &ImportRow) -> Box<dyn Iterator<Item = SourceRow>> {
    let reader = ChunkReader {
        pool: pool.clone(),
        import_id: import.id.clone(),
        next: 0,
        buf: vec![],
        pos: 0,
    };
    if import.format == "csv" {
        csv_rows(reader)
    } else {
        ndjson_rows(reader)
    }
}

// ---- Turning a row into a write ----

/// What the object's input schema says a field's JSON type is.
fn field_types(kind: &ObjectKind) -> Map<String, Value> {
    let schema = serde_json::to_value((kind.input_schema)()).unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn declared_type(types: &Map<String, Value>, field: &str) -> String {
    let t = types.get(field).and_then(|f| f.get("type"));
    let names: Vec<&str> = match t.unwrap_or(&Value::Null) {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    names
        .into_iter()
        .find(|n| *n != "null")
        .unwrap_or("string")
        .to_string()
}

/// A CSV cell as the JSON value its field expects; arrays are `;`-separated.
fn coerce(field: &str, text: &str, kind: &str) -> ApiResult<Value> {
    let t = text.trim();
    let wrong = |what: &str| ApiError::field(field, "invalid_type", format!("{t:?} is not {what}"));
    Ok(match kind {
        "integer" => Value::from(t.parse::<i64>().map_err(|_| wrong("a whole number"))?),
        "number" => Value::from(t.parse::<f64>().map_err(|_| wrong("a number"))?),
        "boolean" => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        "array" => Value::Array(
            t.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.into()))
                .collect(),
        ),
        _ => Value::String(text.to_string()),
    })
}

/// Put `value` at a dotted path of `body`.
fn set_path(body: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            body.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = body
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = inner {
                set_path(m, rest, value);
            }
        }
    }
}

struct Plan {
    kind: ObjectKind,
    mode: String,
    match_on: String,
    source: Option<String>,
    mapping: Map<String, Value>,
    types: Map<String, Value>,
    csv: bool,
    /// The list every written record joins.
    list_id: Option<String>,
}

/// Columns that name how a row is matched rather than a field of the object.
const KEY_COLUMNS: [&str; 4] = ["id", "external_id", "external_source", "email"];

/// What every spreadsheet calls a person's address and number, and the list field of the
/// object that holds them (`email` becomes the primary entry of `emails`).
const CONTACT_POINTS: [(&str, &str, &str); 2] =
    [("email", "emails", "email"), ("phone", "phones", "number")];

/// Whether a column can land in the object: a field of its input schema, a key column,
/// or a contact point the object keeps as a list.
fn known_field(plan: &Plan, top: &str) -> bool {
    plan.types.contains_key(top)
        || KEY_COLUMNS.contains(&top)
        || CONTACT_POINTS
            .iter()
            .any(|(single, list, _)| *single == top && plan.types.contains_key(*list))
}

fn unknown_column(plan: &Plan, column: &str) -> ApiError {
    let mut fields: Vec<&str> = plan.types.keys().map(String::as_str).collect();
    fields.sort_unstable();
    ApiError::field(
        column,
        "unknown_column",
        format!(
            "{column:?} is not a field of {}; map it to one of {} or leave it out",
            plan.kind.name,
            fields.join(", ")
        ),
    )
}

/// Spreadsheet spellings of a field, as `snake_case` turns their headers.
const COLUMN_SYNONYMS: [(&str, &str); 17] = [
    ("firstname", "first_name"),
    ("given_name", "first_name"),
    ("forename", "first_name"),
    ("lastname", "last_name"),
    ("surname", "last_name"),
    ("family_name", "last_name"),
    ("e_mail", "email"),
    ("email_address", "email"),
    ("e_mail_address", "email"),
    ("mail", "email"),
    ("phone_number", "phone"),
    ("telephone", "phone"),
    ("tel", "phone"),
    ("mobile", "phone"),
    ("mobile_phone", "phone"),
    ("title", "job_title"),
    ("position", "job_title"),
];

/// `First Name` → `first_name`: lower case, every run of other characters than letters,
/// digits and dots one `_`.
fn snake_case(header: &str) -> String {
    let mut out = String::new();
    for ch in header.trim().chars() {
        if ch.is_alphanumeric() || ch == '.' {
            out.extend(ch.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// The field an unmapped column fills: its name when that is a field, else the field its
/// spreadsheet spelling means (`E-mail Address` → `email`); left as it is when neither is,
/// so the error names the column as the file wrote it.
fn field_of_column(plan: &Plan, column: &str) -> String {
    let known = |f: &str| known_field(plan, f.split('.').next().unwrap_or(f));
    if known(column) {
        return column.to_string();
    }
    let key = snake_case(column);
    let field = COLUMN_SYNONYMS
        .iter()
        .find(|(spelling, _)| *spelling == key)
        .map_or(key.clone(), |(_, field)| field.to_string());
    if known(&field) {
        field
    } else {
        column.to_string()
    }
}

/// The body of a row: mapped, typed (for CSV), with empty cells left out.
fn row_body(plan: &Plan, row: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let mut body = Map::new();
    for (column, value) in row {
        let field = match plan.mapping.get(&column) {
            Some(Value::String(f)) => f.clone(),
            Some(_) => continue,
            None if plan.mapping.is_empty() => field_of_column(plan, &column),
            None => continue,
        };
        let top = field.split('.').next().unwrap_or(&field).to_string();
        if !known_field(plan, &top) {
            return Err(unknown_column(plan, &column));
        }
        let value = match (&value, plan.csv) {
            (Value::String(s), true) if s.trim().is_empty() => continue,
            (Value::String(s), true) => coerce(&field, s, &declared_type(&plan.types, &top))?,
            _ => value,
        };
        set_path(&mut body, &field, value);
    }
    Ok(body)
}

/// A lone `email` or `phone` becomes the primary entry of the object's `emails` or
/// `phones`, unless the row gives the list itself.
fn fold_contact_points(plan: &Plan, body: &mut Map<String, Value>) {
    for (single, list, key) in CONTACT_POINTS {
        if plan.types.contains_key(single) || !plan.types.contains_key(list) {
            continue;
        }
        if let Some(value) = take_str(body, single) {
            body.entry(list)
                .or_insert_with(|| json!([{ key: value.trim(), "primary": true }]));
        }
    }
}

fn take_str(body: &mut Map<String, Value>, field: &str) -> Option<String> {
    match body.remove(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Consents a file gives (`consents.email.status`) come from the import unless a column
/// says where they came from.
fn default_consent_source(body: &mut Map<String, Value>) {
    if let Some(Value::Object(consents)) = body.get_mut("consents") {
        for consent in consents.values_mut() {
            if let Value::Object(c) = consent {
                c.entry("source").or_insert_with(|| json!("import"));
            }
        }
    }
}

fn row_write(plan: &Plan, row: Map<String, Value>) -> ApiResult<Write> {
    let mut body = row_body(plan, row)?;
    default_consent_source(&mut body);
    let missing =
        |f: &str| ApiError::field(f, "required", format!("this import needs a {f} column"));
    let write = match plan.mode.as_str() {
        "update" => {
            let id = take_str(&mut body, "id").ok_or_else(|| missing("id"))?;
            let id = ids::parse_id(&id)
                .ok_or_else(|| ApiError::field("id", "invalid", "is not a record id"))?;
            fold_contact_points(plan, &mut body);
            Write::Update {
                id,
                if_match: None,
                body: Value::Object(body),
            }
        }
        "upsert" if plan.match_on == "email" => {
            let email = take_str(&mut body, "email").ok_or_else(|| missing("email"))?;
            fold_contact_points(plan, &mut body);
            Write::Upsert {
                key: MatchKey::Email(email),
                if_match: None,
                body: Value::Object(body),
            }
        }
        "upsert" => {
            let id = take_str(&mut body, "external_id").ok_or_else(|| missing("external_id"))?;
            let source = take_str(&mut body, "external_source")
                .or_else(|| plan.source.clone())
                .ok_or_else(|| missing("external_source"))?;
            fold_contact_points(plan, &mut body);
            Write::Upsert {
                key: MatchKey::External { source, id },
                if_match: None,
                body: Value::Object(body),
            }
        }
        _ => {
            fold_contact_points(plan, &mut body);
            Write::Create(Value::Object(body))
        }
    };
    Ok(write)
}

// ---- Running an import ----

#[derive(Default)]
struct SliceOutcome {
    processed: i64,
    created: i64,
    updated: i64,
    errors: Vec<(i64, Option<String>, String)>,
}

fn error_parts(e: &ApiError) -> (Option<String>, String) {
    let p = e.problem();
    match p.errors.first() {
        Some(f) => (Some(f.field.clone()), f.message.clone()),
        None => (None, p.detail),
    }
}

/// Apply one slice of rows in the current transaction, each row in its own savepoint.
fn apply_slice(
    conn: &mut DbConn,
    me: &Principal,
    plan: &Plan,
    rows: Vec<SourceRow>,
) -> SliceOutcome {
    let mut out = SliceOutcome::default();
    for (line, row) in rows {
        out.processed += 1;
        let result = row
            .map_err(ApiError::BadRequest)
            .and_then(|r| row_write(plan, r))
            .and_then(|w| db::write_tx(conn, |c| apply_row(c, me, plan, w)));
        match result {
            Ok(o) if o.status == 201 => out.created += 1,
            Ok(_) => out.updated += 1,
            Err(e) => {
                let (field, message) = error_parts(&e);
                out.errors.push((line, field, message));
            }
        }
    }
    out
}

/// Write one row, and add its record to the import's list: both or neither.
fn apply_row(c: &mut DbConn, me: &Principal, plan: &Plan, w: Write) -> ApiResult<objects::Outcome> {
    let outcome = objects::apply(c, me, &plan.kind, w)?;
    if let Some(list) = &plan.list_id {
        (list_target(plan.kind.name)?.join)(c, me, list, &outcome.id)?;
    }
    Ok(outcome)
}

/// Record a slice's counts and errors, provided nobody else moved the import on meanwhile.
fn record_slice(
    conn: &mut DbConn,
    import: &ImportRow,
    done_before: i64,
    out: &SliceOutcome,
) -> ApiResult<bool> {
    let moved = diesel::update(
        imports::table
            .find(&import.id)
            .filter(imports::processed.eq(done_before)),
    )
    .set((
        imports::processed.eq(imports::processed + out.processed),
        imports::created.eq(imports::created + out.created),
        imports::updated.eq(imports::updated + out.updated),
        imports::failed.eq(imports::failed + out.errors.len() as i64),
        imports::updated_at.eq(ids::now()),
    ))
    .execute(conn)?;
    if moved == 0 {
        return Ok(false);
    }
    for (line, field, message) in &out.errors {
        diesel::insert_into(import_errors::table)
            .values((
                import_errors::id.eq(ids::new_id()),
                import_errors::import_id.eq(&import.id),
                import_errors::line.eq(line),
                import_errors::field.eq(field),
                import_errors::message.eq(message),
            ))
            .execute(conn)?;
    }
    Ok(true)
}

/// Marker error: roll a dry-run slice back after counting it.
fn dry_run_rollback() -> ApiError {
    ApiError::Internal("dry run".into())
}

/// Commit one slice: rows and progress together (or, for a dry run, progress only).
fn commit_slice(
    conn: &mut DbConn,
    me: &Principal,
    plan: &Plan,
    import: &ImportRow,
    done: i64,
    rows: Vec<SourceRow>,
) -> ApiResult<bool> {
    if import.dry_run {
        let mut outcome = SliceOutcome::default();
        let _ = db::write_tx(conn, |c| {
            outcome = apply_slice(c, me, plan, rows);
            Err::<(), _>(dry_run_rollback())
        });
        return db::write_tx(conn, |c| record_slice(c, import, done, &outcome));
    }
    db::write_tx(conn, |c| {
        let outcome = apply_slice(c, me, plan, rows);
        if !record_slice(c, import, done, &outcome)? {
            // Another worker has taken this import over: undo, and leave it to them.
            return Err(ApiError::Conflict("the import moved on elsewhere".into()));
        }
        Ok(true)
    })
    .or_else(|e| match e {
        ApiError::Conflict(_) => Ok(false),
        other => Err(other),
    })
}

fn plan_for(import: &ImportRow, registry: &ObjectRegistry) -> ApiResult<Plan> {
    let kind = *registry.get(&import.object)?;
    let mapping: Map<String, Value> = serde_json::from_str(&import.mapping).unwrap_or_default();
    let meta = |key: &str| mapping.get(key).and_then(Value::as_str).map(str::to_string);
    let (source, list_id) = (meta("$external_source"), meta(LIST_KEY));
    Ok(Plan {
        types: field_types(&kind),
        kind,
        mode: import.mode.clone(),
        match_on: import
            .match_on
            .clone()
            .unwrap_or_else(|| "external_id".into()),
        source,
        mapping: mapping
            .into_iter()
            .filter(|(k, _)| !k.starts_with('$'))
            .collect(),
        csv: import.format == "csv",
        list_id,
    })
}

/// Record an import's status. Once it has ended, its uploaded file is deleted: the rows
/// live on as records (or as errors), and a copy of people's data kept past its use is
/// one that erasure would have to find.
fn set_status(conn: &mut DbConn, id: &str, status: &str, error: Option<String>) -> ApiResult<()> {
    let now = ids::now();
    let finished = matches!(status, "succeeded" | "failed").then_some(now.clone());
    if finished.is_some() {
        diesel::delete(import_chunks::table.filter(import_chunks::import_id.eq(id)))
            .execute(conn)?;
    }
    diesel::update(imports::table.find(id))
        .set((
            imports::status.eq(status),
            imports::error.eq(error),
            imports::updated_at.eq(&now),
            imports::finished_at.eq(finished),
        ))
        .execute(conn)?;
    Ok(())
}

fn run(
    conn: &mut DbConn,
    pool: &DbPool,
    registry: &ObjectRegistry,
    import_id: &str,
) -> ApiResult<()> {
    let import = load(conn, import_id)?;
    if matches!(import.status.as_str(), "succeeded" | "failed" | "uploading") {
        return Ok(());
    }
    let plan = match plan_for(&import, registry) {
        Ok(p) => p,
        Err(e) => return set_status(conn, import_id, "failed", Some(e.to_string())),
    };
    let Some(me) = crate::auth::principal_of_user(conn, &import.created_by)? else {
        let why = "the user who started this import is no longer active";
        return set_status(conn, import_id, "failed", Some(why.into()));
    };
    set_status(conn, import_id, "running", None)?;
    if import.total_rows.is_none() {
        let total = rows_of(pool, &import).count() as i64;
        diesel::update(imports::table.find(import_id))
            .set(imports::total_rows.eq(total))
            .execute(conn)?;
    }
    // Resume: skip what committed slices already did.
    let mut done = import.processed;
    let mut rows = rows_of(pool, &import).skip(done as usize).peekable();
    while rows.peek().is_some() {
        let slice: Vec<SourceRow> = rows.by_ref().take(SLICE).collect();
        let n = slice.len() as i64;
        if !jobs::keep_alive(conn)? || !commit_slice(conn, &me, &plan, &import, done, slice)? {
            return Ok(());
        }
        done += n;
    }
    set_status(conn, import_id, "succeeded", None)
}

/// Register the import job.
pub fn register_jobs(registry: &mut JobRegistry, objects: Arc<ObjectRegistry>, pool: DbPool) {
    registry.register(RUN_JOB, move |conn, payload| -> JobResult {
        let id = payload["import_id"].as_str().unwrap_or_default();
        run(conn, &pool, &objects, id).map_err(|e| JobFailure::from(e.to_string()))
    });
    // However the job ended for good (an error on every attempt, a panic, a worker that
    // kept dying), the import says so instead of staying "running".
    registry.on_dead(RUN_JOB, |conn, payload, why| {
        let id = payload["import_id"].as_str().unwrap_or_default();
        let error = format!("the import stopped: {why}");
        if let Err(e) = set_status(conn, id, "failed", Some(error)) {
            tracing::error!(import_id = id, error = %e, "could not mark the import failed");
        }
    });
}

// ---- HTTP ----

fn format_of(req: &HttpRequest, explicit: Option<&str>) -> ApiResult<&'static str> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match explicit {
        Some("csv") => Ok("csv"),
        Some("ndjson") => Ok("ndjson"),
        _ if content_type.contains("csv") => Ok("csv"),
        _ if content_type.contains("ndjson") || content_type.contains("jsonl") => Ok("ndjson"),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv or application/x-ndjson (or say format=csv|ndjson)".into(),
        )),
    }
}

/// A mapping's longest form: 4,000 characters of up to 4 UTF-8 bytes, each percent-encoded
/// as 3, stay under the 64 KiB beyond which the HTTP parser refuses a URI by itself.
const MAPPING_MAX_CHARS: usize = 4_000;

fn check_params(
    p: &ImportParams,
    kind: &ObjectKind,
) -> ApiResult<(String, Option<String>, Map<String, Value>)> {
    let mode = p.mode.clone().unwrap_or_else(|| "create".into());
    if !["create", "update", "upsert"].contains(&mode.as_str()) {
        return Err(ApiError::BadRequest(
            "mode is create, update or upsert".into(),
        ));
    }
    let match_on = match (mode.as_str(), p.match_on.as_deref()) {
        ("upsert", None | Some("external_id")) => Some("external_id".to_string()),
        ("upsert", Some("email")) if kind.by_email.is_some() => Some("email".to_string()),
        ("upsert", Some(other)) => {
            return Err(ApiError::BadRequest(format!(
                "{} cannot be matched on {other:?}",
                kind.name
            )))
        }
        _ => None,
    };
    let mut mapping: Map<String, Value> = match &p.mapping {
        None => Map::new(),
        Some(raw) if !(2..=MAPPING_MAX_CHARS).contains(&raw.chars().count()) => {
            return Err(ApiError::field(
                "mapping",
                "length",
                "must be 2 to 4,000 characters",
            ))
        }
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(m)) if m.values().all(Value::is_string) => m,
            _ => {
                return Err(ApiError::BadRequest(
                    "mapping must be a JSON object of column → field names".into(),
                ))
            }
        },
    };
    if let Some(source) = &p.external_source {
        objects::check_external_key(source, "x")?;
        mapping.insert("$external_source".into(), Value::String(source.clone()));
    }
    if let Some(list) = &p.list_id {
        let list = ids::parse_id(list)
            .ok_or_else(|| ApiError::BadRequest("list_id is not a list id".into()))?;
        mapping.insert(LIST_KEY.into(), Value::String(list));
    }
    Ok((mode, match_on, mapping))
}

/// Store the upload piece by piece; returns its size.
async fn store_file(
    state: &web::Data<AppState>,
    id: &str,
    mut payload: web::Payload,
) -> ApiResult<i64> {
    let max = state.config.import_max_bytes;
    let (mut buf, mut n, mut size) = (Vec::with_capacity(CHUNK), 0i32, 0u64);
    loop {
        let next = payload.next().await;
        if let Some(bytes) = &next {
            let bytes = bytes
                .as_ref()
                .map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
            size += bytes.len() as u64;
            if size > max {
                return Err(ApiError::PayloadTooLarge(format!(
                    "imports are limited to {max} bytes"
                )));
            }
            buf.extend_from_slice(bytes);
        }
        if buf.len() >= CHUNK || (next.is_none() && !buf.is_empty()) {
            let (piece, import_id) = (std::mem::take(&mut buf), id.to_string());
            state
                .db(move |c| {
                    diesel::insert_into(import_chunks::table)
                        .values((
                            import_chunks::import_id.eq(import_id),
                            import_chunks::n.eq(n),
                            import_chunks::data.eq(piece),
                        ))
                        .execute(c)?;
                    Ok(())
                })
                .await?;
            n += 1;
        }
        if next.is_none() {
            return Ok(size as i64);
        }
    }
}

fn discard(conn: &mut DbConn, id: &str) -> ApiResult<()> {
    db::write_tx(conn, |c| {
        diesel::delete(import_chunks::table.filter(import_chunks::import_id.eq(id))).execute(c)?;
        diesel::delete(imports::table.find(id)).execute(c)?;
        Ok(())
    })
}

/// Upload a CSV or NDJSON file and start an import.
///
/// Stores the body (CSV with a header row, or one JSON object per line; the format comes from
/// `format` or `Content-Type`) and queues a job, answering 202 with the import and a `Location` to
/// poll. The job creates, updates (rows carry `id`) or upserts (on `external_id`, or `email` for
/// contacts) each row as the uploader, through the object's own validation; broken rows are
/// reported by line and the rest go in, and `dry_run` checks every row but writes nothing. Needs
/// `ImportsRun` and the object's write permission; `Idempotency-Key` is not honoured here.
#[utoipa::path(post, path = "/api/v1/imports", tag = "integrations",
    params(ImportParams),
    request_body(description = "The file: CSV with a header row, or one JSON object per line. \
        Any other content type (`application/octet-stream`, say) needs `format=csv` or `format=ndjson`.",
        content((String = "text/csv"), (String = "application/x-ndjson"), (String = "application/octet-stream"))),
    responses(
        (status = 202, description = "Stored and queued; follow Location for progress", body = Import, headers(("Location" = String))),
        (status = 413, description = "Larger than CRM_IMPORT_MAX_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 414, description = "The request target (with its mapping) is over 32 KiB", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither CSV nor NDJSON", body = crate::error::Problem, content_type = "application/problem+json"),
        WriteProblems))]
pub async fn create_import(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    params: web::Query<ImportParams>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let p = params.into_inner();
    let kind = *state.objects.get(&p.object)?;
    me.require(kind.write)?;
    let format = format_of(&req, p.format.as_deref())?;
    let (mode, match_on, mapping) = check_params(&p, &kind)?;
    if let Some(list) = mapping.get(LIST_KEY).and_then(Value::as_str) {
        let (target, list, who) = (list_target(kind.name)?, list.to_string(), me.clone());
        state.db(move |c| (target.check)(c, &who, &list)).await?;
    }
    let id = ids::new_id();
    let (row_id, user) = (id.clone(), me.user_id.clone());
    let object = kind.name.to_string();
    let dry_run = p.dry_run.unwrap_or(false);
    state
        .db(move |c| {
            let now = ids::now();
            diesel::insert_into(imports::table)
                .values((
                    imports::id.eq(&row_id),
                    imports::object.eq(object),
                    imports::format.eq(format),
                    imports::mode.eq(mode),
                    imports::match_on.eq(match_on),
                    imports::mapping.eq(Value::Object(mapping).to_string()),
                    imports::dry_run.eq(dry_run),
                    imports::status.eq("uploading"),
                    imports::created_by.eq(user),
                    imports::created_at.eq(&now),
                    imports::updated_at.eq(&now),
                ))
                .execute(c)?;
            Ok(())
        })
        .await?;
    let size = match store_file(&state, &id, payload).await {
        Ok(size) => size,
        Err(e) => {
            let gone = id.clone();
            state.db(move |c| discard(c, &gone)).await?;
            return Err(e);
        }
    };
    let import_id = id.clone();
    let import = state
        .db(move |c| {
            db::write_tx(c, |c| {
                diesel::update(imports::table.find(&import_id))
                    .set((imports::status.eq("queued"), imports::size_bytes.eq(size)))
                    .execute(c)?;
                jobs::enqueue(c, RUN_JOB, &json!({"import_id": import_id}), 5)?;
                let row = load(c, &import_id)?;
                to_import(c, row)
            })
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/imports/{id}")))
        .json(import))
}

/// Get an import's progress and row errors.
///
/// Returns the import's `status` (`uploading`, `queued`, `running`, `succeeded` or `failed`), its
/// counts (`total_rows`, `processed`, `created`, `updated`, `failed`) and `percent`, the `error`
/// that stopped it if any, and its first 1,000 row errors by line. Only the uploader and admins see
/// an import (others get 404). Needs `ImportsRun`.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "integrations",
    params(("id" = String, Path, format = "uuid", description = "Import id")),
    responses((status = 200, description = "Progress: total, processed, created, updated, failed, percent, errors by line", body = Import), ReadProblems))]
pub async fn get_import(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let import = state
        .db(move |c| {
            // Imports are their uploader's (and admins'): others' never leave the database.
            let mut q = imports::table
                .find(&id)
                .select(ImportRow::as_select())
                .into_boxed::<crate::db::MultiBackend>();
            if !me.is_admin() {
                q = q.filter(imports::created_by.eq(me.user_id.clone()));
            }
            let row = q
                .first(c)
                .optional()?
                .ok_or_else(|| ApiError::not_found("import"))?;
            to_import(c, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(import))
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn spreadsheet_headers_become_snake_case() {
        assert_eq!(snake_case(" First Name "), "first_name");
        assert_eq!(snake_case("E-mail  Address"), "e_mail_address");
        assert_eq!(snake_case("consents.email.status"), "consents.email.status");
        assert_eq!(snake_case("Phone #"), "phone");
    }
}
