//! `GET /exports/{collection}`: every record the caller may see, with the list endpoint's
//! filters and sort, streamed as NDJSON or CSV (by `Accept`) one keyset page at a time, so
//! memory stays flat however large the export.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::list::{self, ListParams, MAX_LIMIT};
use crate::respond::ListProblems;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

/// Records per page of an export (well under every bind-parameter limit for the
/// `IN (…)` lists that load a page's related rows).
const EXPORT_PAGE: i64 = 1_000;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Ndjson,
    Csv,
}

/// CSV when the client accepts it, NDJSON otherwise.
fn format_of(req: &HttpRequest) -> Format {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Ndjson
    }
}

/// A CSV cell: text as is, null empty, anything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_rows(rows: &[Value], columns: &[String], header: bool) -> ApiResult<Vec<u8>> {
    if columns.is_empty() {
        return Ok(vec![]);
    }
    let mut w = csv::Writer::from_writer(vec![]);
    if header {
        w.write_record(columns).map_err(ApiError::internal)?;
    }
    for row in rows {
        w.write_record(columns.iter().map(|c| cell(&row[c])))
            .map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

fn ndjson_rows(rows: &[Value]) -> Vec<u8> {
    let mut out = vec![];
    for row in rows {
        out.extend(row.to_string().into_bytes());
        out.push(b'\n');
    }
    out
}

struct Export {
    state: web::Data<AppState>,
    me: Principal,
    collection: String,
    params: ListParams,
    format: Format,
    columns: Option<Vec<String>>,
    done: bool,
}

/// The next page of the export, encoded; `None` at the end.
async fn next_chunk(mut ex: Export) -> Option<(Result<Bytes, ApiError>, Export)> {
    if ex.done {
        return None;
    }
    let (objects, me, params, name) = (
        ex.state.objects.clone(),
        ex.me.clone(),
        ex.params.clone(),
        ex.collection.clone(),
    );
    let page = ex
        .state
        .db(move |c| (objects.get(&name)?.list)(c, &me, &params))
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            ex.done = true;
            return Some((Err(e), ex));
        }
    };
    match page
        .next_cursor
        .as_deref()
        .map(|c| list::cursor_values(c, &ex.params))
    {
        Some(Ok(after)) => ex.params.after = Some(after),
        Some(Err(e)) => {
            ex.done = true;
            return Some((Err(e), ex));
        }
        None => ex.done = true,
    }
    let bytes = match ex.format {
        Format::Ndjson => Ok(ndjson_rows(&page.data)),
        Format::Csv => {
            let first = ex.columns.is_none();
            let columns = ex.columns.get_or_insert_with(|| {
                page.data
                    .first()
                    .and_then(Value::as_object)
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            });
            csv_rows(&page.data, columns, first)
        }
    };
    Some((bytes.map(Bytes::from), ex))
}

/// Export all visible records of an object as NDJSON or CSV.
///
/// Streams every record of the object the caller may see, with the object's list filters, `sort`
/// and `include_archived` as on its list endpoint (`limit` and `cursor` are ignored), as a file
/// attachment. `Accept: text/csv` gives CSV with a header row of the first record's fields and
/// nested values as JSON; anything else gives NDJSON, one record per line. Needs the object's read
/// permission. A failure after streaming has begun breaks the response off, so a complete export is
/// one whose body ended normally.
#[utoipa::path(get, path = "/api/v1/exports/{collection}", tag = "integrations",
    params(
        ("collection" = String, Path, description = "The object"),
        ("include_archived" = Option<bool>, Query, nullable = false, description = "Include archived records"),
        ("Accept" = Option<String>, Header, description = "`application/x-ndjson` (default) or `text/csv`"),
    ),
    responses(
        (status = 200, description = "One record per line (NDJSON), or CSV with a header row; nested values as JSON", content((String = "application/x-ndjson"), (String = "text/csv"))),
        ListProblems))]
pub async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    collection: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let collection = collection.into_inner();
    let kind = *state.objects.get(&collection)?;
    me.require(kind.read)?;
    let format = format_of(&req);
    let mut pairs: Vec<(String, String)> = query
        .into_inner()
        .into_iter()
        .filter(|(k, _)| k != "limit" && k != "cursor")
        .collect();
    pairs.push(("limit".into(), MAX_LIMIT.to_string()));
    let mut params = list::parse(pairs, kind.list_spec)?;
    // Pages of an export are bigger than a client's: each costs a few queries whatever its
    // size, and memory stays bounded by one page.
    params.limit = EXPORT_PAGE;
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let export = Export {
        state,
        me,
        collection: collection.clone(),
        params,
        format,
        columns: None,
        done: false,
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{collection}.{}\"",
                if format == Format::Csv {
                    "csv"
                } else {
                    "ndjson"
                }
            ),
        ))
        .streaming(futures_util::stream::unfold(export, next_chunk)))
}
