//! Dynamic segments: a name and criteria in the language of `criteria`. Membership is never
//! stored: `GET /segments/{id}/members` compiles the criteria to one SQL condition and pages
//! through the matching contacts in the database; `POST /segments/preview` counts and samples
//! criteria without saving them.

use crate::common::{self, audit_change, required, MemberContact};
use crate::criteria::{self, CustomKind, Node};
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{contacts, segments};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = segments)]
struct Row {
    id: String,
    name: String,
    description: Option<String>,
    criteria: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A dynamic segment of contacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The criteria document (see the `segments` tag for the language).
    #[schema(value_type = Object)]
    pub criteria: Value,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for Segment {
    fn from(r: Row) -> Self {
        Segment {
            id: r.id,
            name: r.name,
            description: r.description,
            criteria: parse_json(&r.criteria),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A segment as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// `{"and": [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}, …]}`
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<Value>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(segments::table, segments::BoxedQuery<'static, MultiBackend>, {
    "name" => segments::name,
    "created_at" => segments::created_at,
    "id" => segments::id,
});

/// The custom fields of contacts, by key, as the criteria compare them.
fn custom_kinds(c: &mut DbConn) -> ApiResult<Vec<(String, CustomKind)>> {
    Ok(crm_customers::custom_fields::defs(c, "contact")?
        .into_iter()
        .map(|d| {
            let kind = match d.field_type.as_str() {
                "number" => CustomKind::Number,
                "date" => CustomKind::Date,
                _ => CustomKind::Text,
            };
            (d.key, kind)
        })
        .collect())
}

/// Checked criteria (422 naming each problem with its path).
pub fn checked(c: &mut DbConn, doc: &Value) -> ApiResult<Node> {
    let kinds = custom_kinds(c)?;
    let lookup = |key: &str| kinds.iter().find(|(k, _)| k == key).map(|(_, kind)| *kind);
    criteria::parse(doc, &lookup, chrono::Utc::now()).map_err(ApiError::validation)
}

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Segment> {
    segments::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Segment::from)
        .ok_or_else(|| ApiError::not_found("segment"))
}

fn create(c: &mut DbConn, me: &Principal, input: &SegmentInput) -> ApiResult<Segment> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("criteria", input.criteria.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let doc = input.criteria.clone().unwrap_or_default();
    db::write_tx(c, |c| {
        checked(c, &doc)?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(segments::table)
            .values((
                segments::id.eq(&id),
                segments::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                segments::description.eq(&input.description),
                segments::criteria.eq(json_text(&doc)),
                segments::version.eq(1),
                segments::created_at.eq(&now),
                segments::updated_at.eq(&now),
            ))
            .execute(c)?;
        let s = find(c, &id)?;
        audit_change(c, me, "segment", "created", &id, to_json(&s), &s)?;
        Ok(s)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Segment> {
    let input: SegmentInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Segments>(c, me, id)?;
        etag::check(expected, before.version)?;
        let doc = input.criteria.clone().unwrap_or(before.criteria.clone());
        checked(c, &doc)?;
        let description = match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description.clone(),
        };
        let changed = diesel::update(segments::table.find(id))
            .filter(segments::version.eq(before.version))
            .set((
                segments::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                segments::description.eq(&description),
                segments::criteria.eq(json_text(&doc)),
                segments::version.eq(before.version + 1),
                segments::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "segment", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Live contacts the caller may see that match the criteria. Run it inside `evaluate`, which
/// bounds its time (the query carries the row-by-row deadline check SQLite needs for that).
pub fn matching(me: &Principal, node: &Node) -> contacts::BoxedQuery<'static, MultiBackend> {
    let q = contacts::table
        .into_boxed::<MultiBackend>()
        .filter(contacts::archived_at.is_null())
        .filter(contacts::merged_into.is_null())
        .filter(contacts::erased_at.is_null())
        .filter(db::BudgetCheck)
        .filter(criteria::compile(node));
    crm_core::visible!(q, me, contacts::id)
}

/// Run criteria queries with each statement bounded by `budget` (`CRM_CRITERIA_TIMEOUT_MS`):
/// one that runs past it is stopped, and the criteria are a 422 `too_expensive` instead of a
/// connection held for as long as the query would take.
pub fn evaluate<T>(
    c: &mut DbConn,
    budget: std::time::Duration,
    f: impl FnOnce(&mut DbConn) -> ApiResult<T>,
) -> ApiResult<T> {
    db::within_budget(c, budget, f).unwrap_or_else(|_| Err(too_expensive(budget)))
}

fn too_expensive(budget: std::time::Duration) -> ApiError {
    ApiError::field(
        "criteria",
        "too_expensive",
        format!(
            "evaluating these criteria took longer than the {} ms allowed; narrow them \
             (fewer conditions or values) and try again",
            budget.as_millis()
        ),
    )
}

pub const MEMBER_LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "last_name"],
    default_sort: "created_at",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

mod member_sort {
    use super::*;
    crm_core::sortable!(contacts::table, contacts::BoxedQuery<'static, MultiBackend>, {
        "created_at" => contacts::created_at,
        "last_name" => contacts::last_name,
        "id" => contacts::id,
    });
}

/// A page of the contacts a query selects, as member summaries: two queries per page.
pub fn member_page(
    c: &mut DbConn,
    q: contacts::BoxedQuery<'static, MultiBackend>,
    p: &ListParams,
) -> ApiResult<Page<MemberContact>> {
    let rows = member_sort::apply_sort(q, p)?
        .select(common::SUMMARY)
        .load(c)?;
    list::page(common::summaries(c, rows)?, p)
}

/// The contacts in a segment.
///
/// Evaluates the segment's criteria now, in the database, and returns a page of the
/// matching live contacts the caller may see, oldest first unless `sort` says otherwise.
/// Criteria evaluations take turns (`CRM_CRITERIA_CONCURRENCY` at once; a 503 with
/// `Retry-After` when none frees up within `CRM_CRITERIA_WAIT_MS`), and a statement of one
/// that runs past `CRM_CRITERIA_TIMEOUT_MS` is stopped: a 422 `too_expensive` on `criteria`.
/// Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/segments/{id}/members", tag = "segments", operation_id = "list_segment_members",
    params(
        ("id" = String, Path, format = "uuid", description = "Segment id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?(created_at|last_name)(,-?(created_at|last_name))*$", description = "created_at (default), last_name; `-` for descending"),
    ),
    responses(
        (status = 200, description = "A page of matching contacts", body = Page<MemberContact>),
        (status = 422, description = "The segment's criteria took longer than allowed (`too_expensive`)", body = crm_core::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many criteria evaluations as the server allows are running; see Retry-After", body = crm_core::error::Problem, content_type = "application/problem+json"),
        ReadProblems))]
#[get("/segments/{id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &MEMBER_LIST)?;
    let slot = state.criteria_slots.take().await?;
    let budget = state.config.criteria_timeout;
    let page = state
        .db(move |c| {
            let _slot = slot;
            let s = find(c, &id)?;
            let node = checked(c, &s.criteria)?;
            evaluate(c, budget, |c| member_page(c, matching(&me, &node), &p))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Criteria to try.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    #[schema(value_type = Object)]
    pub criteria: Value,
}

/// How many contacts criteria select, and the first few.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub count: i64,
    /// Up to ten of them, oldest first.
    pub sample: Vec<MemberContact>,
}

/// Preview criteria
///
/// Counts the live contacts the caller may see that the criteria select, with a sample of
/// ten, without saving anything. Bad criteria are a 422 naming each problem's path
/// (`criteria.and[1].field`), and so are criteria a statement of which runs past
/// `CRM_CRITERIA_TIMEOUT_MS` (`too_expensive` on `criteria`). Criteria evaluations take
/// turns: `CRM_CRITERIA_CONCURRENCY` at once, then a 503 with `Retry-After` when none frees
/// up within `CRM_CRITERIA_WAIT_MS`. Everyone inside the company (`MarketingRead`).
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "segments", operation_id = "preview_segment",
    request_body = PreviewInput,
    responses(
        (status = 200, description = "The count and a sample", body = Preview),
        (status = 503, description = "As many criteria evaluations as the server allows are running; see Retry-After", body = crm_core::error::Problem, content_type = "application/problem+json"),
        WriteProblems))]
#[post("/segments/preview")]
pub async fn preview(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let input: PreviewInput = crm_core::objects::input(&body.into_inner())?;
    let slot = state.criteria_slots.take().await?;
    let budget = state.config.criteria_timeout;
    let out = state
        .db(move |c| {
            // The slot is given back when the database work ends, even if the client left.
            let _slot = slot;
            let node = checked(c, &input.criteria)?;
            evaluate(c, budget, |c| {
                let count: i64 = matching(&me, &node).count().get_result(c)?;
                let rows = matching(&me, &node)
                    .order((contacts::created_at, contacts::id))
                    .limit(10)
                    .select(common::SUMMARY)
                    .load(c)?;
                Ok(Preview {
                    count,
                    sample: common::summaries(c, rows)?,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Segments on the resource kernel: marketers build them; everyone inside reads them.
pub struct Segments;

impl Resource for Segments {
    type Record = Segment;
    type Input = SegmentInput;
    type Patch = SegmentInput;
    crm_core::resource_paths!("segments");
    const ENTITY: &'static str = "segment";
    const TABLE: &'static str = "segments";
    const TAG: &'static str = "segments";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "criteria"];

    crm_core::record_meta!(Segment);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Segment> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Segment>> {
        let mut q = segments::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(segments::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(Segment::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &SegmentInput) -> ApiResult<Segment> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Segment> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(segments);
}
