//! Work orders: field service visits (repair, replacement, installation) at the customer's
//! site, with a technician, a time window, a status, the parts used and notes, usually for a
//! ticket. `GET /work-orders?technician_id=me&date=2026-12-03` is a technician's day.

use crate::common::{audit_change, required};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{accounts, products, work_orders as w};
use crm_core::{etag, ids};
use crm_customers::common::{check_active_user, json_text, parse_json, to_json, Address};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = WorkOrderKind)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Repair,
    Replacement,
    Installation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkStatus {
    Scheduled,
    EnRoute,
    InProgress,
    Completed,
    Cancelled,
}

/// A part used on a visit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Validate)]
#[serde(deny_unknown_fields)]
pub struct Part {
    #[schema(format = "uuid")]
    pub product_id: String,
    #[validate(range(min = 1, max = 100000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = w)]
struct Row {
    id: String,
    number: i64,
    ticket_id: Option<String>,
    account_id: Option<String>,
    contact_id: Option<String>,
    kind: String,
    site_address: Option<String>,
    technician_id: Option<String>,
    window_start: String,
    window_end: String,
    status: String,
    parts: String,
    notes: Option<String>,
    completed_at: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A work order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkOrder {
    pub id: String,
    pub number: i64,
    pub ticket_id: Option<String>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub kind: Kind,
    /// Where the work is done: the account's shipping (else billing) address unless given.
    pub site_address: Option<Address>,
    pub technician_id: Option<String>,
    pub window_start: String,
    pub window_end: String,
    pub status: WorkStatus,
    pub parts: Vec<Part>,
    pub notes: Option<String>,
    pub completed_at: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

fn enum_of<T: serde::de::DeserializeOwned>(raw: &str, fallback: T) -> T {
    serde_json::from_value(Value::String(raw.to_string())).unwrap_or(fallback)
}

impl From<Row> for WorkOrder {
    fn from(r: Row) -> Self {
        WorkOrder {
            id: r.id,
            number: r.number,
            ticket_id: r.ticket_id,
            account_id: r.account_id,
            contact_id: r.contact_id,
            kind: enum_of(&r.kind, Kind::Repair),
            site_address: r.site_address.map(|a| parse_json(&a)),
            technician_id: r.technician_id,
            window_start: r.window_start,
            window_end: r.window_end,
            status: enum_of(&r.status, WorkStatus::Scheduled),
            parts: parse_json(&r.parts),
            notes: r.notes,
            completed_at: r.completed_at,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A work order as sent. `ticket_id` and `kind` are set on create only.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderInput {
    #[schema(format = "uuid")]
    pub ticket_id: Option<String>,
    /// Defaults to the ticket's.
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    /// Defaults to the ticket's.
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    pub kind: Option<Kind>,
    #[validate(nested)]
    pub site_address: Option<Address>,
    #[schema(format = "uuid")]
    pub technician_id: Option<String>,
    #[schema(format = DateTime)]
    pub window_start: Option<String>,
    /// After `window_start`.
    #[schema(format = DateTime)]
    pub window_end: Option<String>,
    pub status: Option<WorkStatus>,
    #[validate(length(max = 200), nested)]
    #[schema(max_items = 200)]
    pub parts: Option<Vec<Part>>,
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub notes: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["window_start", "created_at"],
    default_sort: "window_start",
    filters: &[
        Filter::new(
            "technician_id",
            FilterKind::IdOrMe,
            "This technician's visits (`me` for the caller)",
        ),
        Filter::date("date", "Visits whose window starts on this day (UTC)"),
        Filter::of::<WorkStatus>(
            "status",
            "scheduled, en_route, in_progress, completed or cancelled",
        ),
        Filter::id("ticket_id", "Visits for this ticket"),
        Filter::id("account_id", "Visits at this account"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(w::table, w::BoxedQuery<'static, MultiBackend>, {
    "window_start" => w::window_start,
    "created_at" => w::created_at,
    "id" => w::id,
});

fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<WorkOrder> {
    crm_core::visibility::check_sees(me, "work order")?;
    w::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(WorkOrder::from)
        .ok_or_else(|| ApiError::not_found("work order"))
}

fn window(start: &str, end: &str) -> ApiResult<(String, String)> {
    let (s, e) = (ids::normalise_ts(start), ids::normalise_ts(end));
    let mut errors = vec![];
    if s.is_none() {
        errors.push(FieldError::new(
            "window_start",
            "date_time",
            "must be an RFC 3339 time",
        ));
    }
    if e.is_none() {
        errors.push(FieldError::new(
            "window_end",
            "date_time",
            "must be an RFC 3339 time",
        ));
    }
    match (s, e) {
        (Some(s), Some(e)) if e > s => Ok((s, e)),
        (Some(_), Some(_)) => Err(ApiError::field(
            "window_end",
            "before_start",
            "must be after window_start",
        )),
        _ => Err(ApiError::validation(errors)),
    }
}

fn check_parts(c: &mut DbConn, parts: &[Part]) -> ApiResult<()> {
    for (i, p) in parts.iter().enumerate() {
        let n: i64 = products::table.find(&p.product_id).count().get_result(c)?;
        if n == 0 {
            return Err(ApiError::field(
                &format!("parts[{i}].product_id"),
                "not_found",
                "no product has this id",
            ));
        }
    }
    Ok(())
}

fn account_site(c: &mut DbConn, account: Option<&str>) -> ApiResult<Option<String>> {
    let Some(a) = account else { return Ok(None) };
    let found: Option<(Option<String>, Option<String>)> = accounts::table
        .find(a)
        .select((accounts::shipping_address, accounts::billing_address))
        .first(c)
        .optional()?;
    Ok(found.and_then(|(ship, bill)| ship.or(bill)))
}

fn next_number(c: &mut DbConn) -> ApiResult<i64> {
    use crm_core::schema::counters;
    Ok(diesel::update(counters::table.find("work_order_number"))
        .set(counters::value.eq(counters::value + 1))
        .returning(counters::value)
        .get_result(c)?)
}

fn create(c: &mut DbConn, me: &Principal, input: &WorkOrderInput) -> ApiResult<WorkOrder> {
    input.validate()?;
    let errors = required(&[
        ("kind", input.kind.is_none()),
        ("window_start", input.window_start.is_none()),
        ("window_end", input.window_end.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (start, end) = window(
        input.window_start.as_deref().unwrap_or_default(),
        input.window_end.as_deref().unwrap_or_default(),
    )?;
    db::write_tx(c, |c| {
        let ticket =
            match &input.ticket_id {
                Some(t) => Some(crate::tickets::find(c, me, t).map_err(|_| {
                    ApiError::field("ticket_id", "not_found", "no ticket has this id")
                })?),
                None => None,
            };
        let contact = input
            .contact_id
            .clone()
            .or(ticket.as_ref().and_then(|t| t.contact_id.clone()));
        if let Some(ct) = &contact {
            crm_customers::contacts::find_row(c, me, ct)?;
        }
        let account = input
            .account_id
            .clone()
            .or(ticket.as_ref().and_then(|t| t.account_id.clone()));
        if let Some(a) = &account {
            crm_customers::accounts::find(c, me, a)?;
        }
        if let Some(t) = &input.technician_id {
            check_active_user(c, t, "technician_id")?;
        }
        let parts = input.parts.clone().unwrap_or_default();
        check_parts(c, &parts)?;
        let site = match &input.site_address {
            Some(a) => Some(json_text(a)),
            None => account_site(c, account.as_deref())?,
        };
        let (id, now) = (ids::new_id(), ids::now());
        let status = input.status.unwrap_or(WorkStatus::Scheduled);
        diesel::insert_into(w::table)
            .values((
                w::id.eq(&id),
                w::number.eq(next_number(c)?),
                w::ticket_id.eq(ticket.as_ref().map(|t| t.id.clone())),
                w::account_id.eq(&account),
                w::contact_id.eq(&contact),
                w::kind.eq(crate::enum_text(input.kind.unwrap_or(Kind::Repair))),
                w::site_address.eq(&site),
                w::technician_id.eq(&input.technician_id),
                w::window_start.eq(&start),
                w::window_end.eq(&end),
                w::status.eq(crate::enum_text(status)),
                w::parts.eq(json_text(&parts)),
                w::notes.eq(&input.notes),
                w::completed_at.eq((status == WorkStatus::Completed).then(|| now.clone())),
                w::version.eq(1),
                w::created_at.eq(&now),
                w::updated_at.eq(&now),
            ))
            .execute(c)?;
        let wo = find(c, me, &id)?;
        audit_change(c, me, "work_order", "created", &id, to_json(&wo), &wo)?;
        Ok(wo)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<WorkOrder> {
    let input: WorkOrderInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<WorkOrders>(c, me, id)?;
        etag::check(expected, before.version)?;
        let (start, end) = window(
            input
                .window_start
                .as_deref()
                .unwrap_or(&before.window_start),
            input.window_end.as_deref().unwrap_or(&before.window_end),
        )?;
        let technician = match raw.get("technician_id") {
            Some(Value::Null) => None,
            Some(_) => input.technician_id.clone(),
            None => before.technician_id.clone(),
        };
        if let Some(t) = technician
            .as_deref()
            .filter(|_| raw.get("technician_id").is_some())
        {
            check_active_user(c, t, "technician_id")?;
        }
        let parts = input.parts.clone().unwrap_or(before.parts.clone());
        check_parts(c, &parts)?;
        let status = input.status.unwrap_or(before.status);
        let completed_at = match status {
            WorkStatus::Completed => before.completed_at.clone().or(Some(ids::now())),
            _ => None,
        };
        let site = match &input.site_address {
            Some(a) => Some(json_text(a)),
            None => before.site_address.as_ref().map(json_text),
        };
        let notes = match raw.get("notes") {
            Some(Value::Null) => None,
            Some(_) => input.notes.clone(),
            None => before.notes.clone(),
        };
        let changed = diesel::update(w::table.find(id))
            .filter(w::version.eq(before.version))
            .set((
                w::site_address.eq(&site),
                w::technician_id.eq(&technician),
                w::window_start.eq(&start),
                w::window_end.eq(&end),
                w::status.eq(crate::enum_text(status)),
                w::parts.eq(json_text(&parts)),
                w::notes.eq(&notes),
                w::completed_at.eq(&completed_at),
                w::version.eq(before.version + 1),
                w::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "work_order", "updated", id, changes, &after)?;
        Ok(after)
    })
}

fn load_page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<WorkOrder>> {
    let mut q = crm_core::visible!(w::table.into_boxed::<MultiBackend>(), me, w::id);
    if !p.include_archived {
        q = q.filter(w::archived_at.is_null());
    }
    if let Some(v) = p.filter("technician_id") {
        let who = if v == "me" {
            me.user_id.clone()
        } else {
            p.id_filter("technician_id")?.unwrap_or_default()
        };
        q = q.filter(w::technician_id.eq(who));
    }
    if let Some(day) = p.filter("date") {
        let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map_err(|_| ApiError::BadRequest(format!("{day:?} is not a date (2026-12-03)")))?;
        let at = |d: chrono::NaiveDate| {
            ids::format_ts(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        };
        q = q
            .filter(w::window_start.ge(at(d)))
            .filter(w::window_start.lt(at(d + chrono::Duration::days(1))));
    }
    if let Some(s) = crate::enum_filter::<WorkStatus>(p, "status")? {
        q = q.filter(w::status.eq(crate::enum_text(s)));
    }
    if let Some(v) = p.id_filter("ticket_id")? {
        q = q.filter(w::ticket_id.eq(v));
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(w::account_id.eq(v));
    }
    let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
    list::page(rows.into_iter().map(WorkOrder::from).collect(), p)
}

/// Work orders on the resource kernel: agents schedule them; technicians (agents) update
/// their visits.
pub struct WorkOrders;

impl Resource for WorkOrders {
    type Record = WorkOrder;
    type Input = WorkOrderInput;
    type Patch = WorkOrderInput;
    crm_core::resource_paths!("work-orders");
    const ENTITY: &'static str = "work_order";
    const TABLE: &'static str = "work_orders";
    const TAG: &'static str = "field-service";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["kind", "window_start", "window_end"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        (
            "ticket_id",
            "a work order stays with its ticket; cancel it and create another",
        ),
        (
            "kind",
            "a work order keeps its kind; cancel it and create another",
        ),
        (
            "account_id",
            "a work order stays with its account; cancel it and create another",
        ),
        (
            "contact_id",
            "a work order stays with its contact; cancel it and create another",
        ),
    ];

    crm_core::record_meta!(WorkOrder);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<WorkOrder> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<WorkOrder>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &WorkOrderInput) -> ApiResult<WorkOrder> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<WorkOrder> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(work_orders);
}
