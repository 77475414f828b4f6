//! Invoices: what an account was billed, pushed in from an accounting system (ERP,
//! billing), usually keyed by its `external_source` + `external_id`. `amount_paid` follows
//! the payments applied to the invoice (see `crate::payments`). The status is stored as
//! open, paid or void and read as open, overdue (open and past `due_on`), paid or void.

use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::schema::{invoices, payments};
use crm_core::{etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// The largest amount accepted, in minor units (10^15).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Today's date (UTC) as stored, `YYYY-MM-DD`: an open invoice due before it is overdue.
pub fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// A calendar date as stored: exactly `YYYY-MM-DD`.
pub(crate) fn parse_date(raw: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    let canonical = d.format("%Y-%m-%d").to_string();
    (canonical == raw).then_some(canonical)
}

/// A date field of an input; an invalid one is added to `errors`.
pub(crate) fn date_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    raw: &Option<String>,
) -> Option<String> {
    let raw = raw.as_ref()?;
    let d = parse_date(raw);
    if d.is_none() {
        errors.push(FieldError::new(field, "date", "must be a date, YYYY-MM-DD"));
    }
    d
}

/// A date list filter; a malformed one is a 400.
pub(crate) fn date_filter(p: &ListParams, name: &str) -> ApiResult<Option<String>> {
    p.filter(name)
        .map(|v| {
            parse_date(v)
                .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a date, YYYY-MM-DD")))
        })
        .transpose()
}

pub(crate) fn is_currency(c: &str) -> bool {
    c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase())
}

/// A currency field of an input; one that is not an ISO 4217 code is added to `errors`.
pub(crate) fn currency_field(errors: &mut Vec<FieldError>, raw: &Option<String>) {
    if raw.as_deref().is_some_and(|c| !is_currency(c)) {
        errors.push(FieldError::new(
            "currency",
            "currency",
            "must be an ISO 4217 code such as EUR",
        ));
    }
}

/// An id field of an input; a malformed one is added to `errors`.
pub(crate) fn id_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    raw: &Option<String>,
) -> Option<String> {
    let raw = raw.as_ref()?;
    let id = ids::parse_id(raw);
    if id.is_none() {
        errors.push(FieldError::new(field, "invalid", "must be a UUID"));
    }
    id
}

#[derive(Queryable, Clone)]
pub struct InvoiceRow {
    pub id: String,
    pub account_id: String,
    pub order_id: Option<String>,
    pub number: String,
    pub currency: String,
    pub amount_total: i64,
    pub amount_paid: i64,
    pub issued_on: String,
    pub due_on: String,
    pub status: String,
    pub notes: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// An invoice's status as read. `overdue` is derived: open and due before today (UTC).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Overdue,
    Paid,
    Void,
}

/// The statuses a client may set: `void` voids an invoice and `open` un-voids it (it is
/// then open, overdue or paid, by its payments and due date). `paid` follows the payments.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SetStatus {
    Open,
    Void,
}

/// The stored status: void stays void; otherwise paid once the payments cover the total.
pub fn stored_status(void: bool, amount_paid: i64, amount_total: i64) -> &'static str {
    if void {
        "void"
    } else if amount_paid >= amount_total {
        "paid"
    } else {
        "open"
    }
}

/// An invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    pub id: String,
    pub account_id: String,
    /// The order this invoice bills, when orders land.
    pub order_id: Option<String>,
    /// The invoice number in the accounting system.
    pub number: String,
    /// ISO 4217 code of every amount of the invoice and its payments.
    pub currency: String,
    /// Total billed, in minor units of `currency` (cents for USD).
    pub amount_total: i64,
    /// Sum of the (not archived) payments applied to this invoice, in minor units.
    pub amount_paid: i64,
    /// What is still owed: `amount_total - amount_paid`, 0 when paid or void.
    pub amount_due: i64,
    #[schema(format = Date)]
    pub issued_on: String,
    #[schema(format = Date)]
    pub due_on: String,
    pub status: InvoiceStatus,
    pub notes: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<InvoiceRow> for Invoice {
    fn from(r: InvoiceRow) -> Self {
        let status = match r.status.as_str() {
            "void" => InvoiceStatus::Void,
            "paid" => InvoiceStatus::Paid,
            _ if r.due_on < today() => InvoiceStatus::Overdue,
            _ => InvoiceStatus::Open,
        };
        let amount_due = match status {
            InvoiceStatus::Void => 0,
            _ => (r.amount_total - r.amount_paid).max(0),
        };
        Invoice {
            id: r.id,
            account_id: r.account_id,
            order_id: r.order_id,
            number: r.number,
            currency: r.currency,
            amount_total: r.amount_total,
            amount_paid: r.amount_paid,
            amount_due,
            issued_on: r.issued_on,
            due_on: r.due_on,
            status,
            notes: r.notes,
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of an invoice a client sends; on PATCH every field is optional and `null`
/// clears the optional ones.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    /// The billed account (required). It cannot change while payments are applied.
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    /// The order this invoice bills, when orders land.
    #[schema(format = "uuid")]
    pub order_id: Option<String>,
    /// The invoice number in the accounting system (required).
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    #[schema(min_length = 1, max_length = 100)]
    pub number: Option<String>,
    /// ISO 4217 code (required). It cannot change while payments are applied.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Total in minor units of `currency` (required).
    #[validate(range(
        min = 0,
        max = 1_000_000_000_000_000_i64,
        message = "must be 0 to 10^15"
    ))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub amount_total: Option<i64>,
    /// Date of issue (required).
    #[schema(format = Date)]
    pub issued_on: Option<String>,
    /// Due date (required), not before `issued_on`.
    #[schema(format = Date)]
    pub due_on: Option<String>,
    /// `void` to void the invoice, `open` to un-void it.
    #[schema(value_type = Option<SetStatus>)]
    pub status: Option<String>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
    /// The record's key in the accounting system; unique with `external_id`.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &[
        "issued_on",
        "due_on",
        "amount_total",
        "number",
        "created_at",
        "updated_at",
    ],
    default_sort: "-issued_on",
    filters: &[
        Filter::id("account_id", "Billed to this account"),
        Filter::id("order_id", "Billing this order"),
        Filter::of::<InvoiceStatus>("status", "open (not yet due), overdue, paid or void"),
        Filter::new("currency", FilterKind::Currency, "ISO 4217 code"),
        Filter::text("number", "Exact invoice number"),
        Filter::date("due_before", "Due before this date"),
        Filter::date("due_after", "Due after this date"),
        Filter::date("issued_after", "Issued after this date"),
        Filter::date("issued_before", "Issued before this date"),
        Filter::time("created_after", "RFC 3339 timestamp"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(invoices::table, invoices::BoxedQuery<'static, MultiBackend>, {
    "issued_on" => invoices::issued_on,
    "due_on" => invoices::due_on,
    "amount_total" => invoices::amount_total,
    "number" => invoices::number,
    "created_at" => invoices::created_at,
    "updated_at" => invoices::updated_at,
    "id" => invoices::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<InvoiceRow> {
    visibility::check_sees(me, "invoice")?;
    invoices::table
        .find(id)
        .first::<InvoiceRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("invoice"))
}

/// Take the invoice's row lock until the transaction ends (PostgreSQL; SQLite write
/// transactions are serial anyway). Payment writes and invoice edits lock the invoice
/// before they read it, so on one invoice they run one after another and each one's
/// statements see the payments the others committed: `amount_paid` never loses one.
pub fn lock(conn: &mut DbConn, id: &str) -> ApiResult<()> {
    diesel::update(invoices::table.find(id))
        .set(invoices::version.eq(invoices::version))
        .execute(conn)?;
    Ok(())
}

/// The checked, normalised fields of an input.
struct Checked {
    account: Option<String>,
    order: Option<String>,
    issued_on: Option<String>,
    due_on: Option<String>,
    void: Option<bool>,
}

fn check_input(input: &InvoiceInput) -> ApiResult<Checked> {
    input.validate()?;
    let mut errors = vec![];
    let account = id_field(&mut errors, "account_id", &input.account_id);
    let order = id_field(&mut errors, "order_id", &input.order_id);
    currency_field(&mut errors, &input.currency);
    if input.number.as_deref().is_some_and(|n| n.trim().is_empty()) {
        errors.push(FieldError::new("number", "required", "must not be blank"));
    }
    let issued_on = date_field(&mut errors, "issued_on", &input.issued_on);
    let due_on = date_field(&mut errors, "due_on", &input.due_on);
    let void = match input.status.as_deref() {
        None => None,
        Some("void") => Some(true),
        Some("open") => Some(false),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "status",
                "clients set open or void; paid follows the payments and overdue the due date",
            ));
            None
        }
    };
    if errors.is_empty() {
        Ok(Checked {
            account,
            order,
            issued_on,
            due_on,
            void,
        })
    } else {
        Err(ApiError::validation(errors))
    }
}

fn check_dates(issued_on: &str, due_on: &str) -> ApiResult<()> {
    if due_on < issued_on {
        return Err(common::invalid(
            "due_on",
            "order",
            "must not be before issued_on",
        ));
    }
    Ok(())
}

fn check_account(conn: &mut DbConn, account: &str) -> ApiResult<()> {
    common::check_exists(
        || crm_customers::accounts::exists(conn, account),
        "account_id",
        "account",
    )
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Invoice,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "invoice",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

pub fn create_invoice(
    conn: &mut DbConn,
    me: &Principal,
    input: &InvoiceInput,
) -> ApiResult<Invoice> {
    let checked = check_input(input)?;
    let number = input
        .number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let missing: Vec<FieldError> = [
        ("account_id", checked.account.is_none()),
        ("number", number.is_none()),
        ("currency", input.currency.is_none()),
        ("amount_total", input.amount_total.is_none()),
        ("issued_on", checked.issued_on.is_none()),
        ("due_on", checked.due_on.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(field, _)| FieldError::new(field, "required", "is required"))
    .collect();
    let (Some(account), Some(number), Some(currency), Some(total), Some(issued_on), Some(due_on)) = (
        &checked.account,
        number,
        &input.currency,
        input.amount_total,
        &checked.issued_on,
        &checked.due_on,
    ) else {
        return Err(ApiError::validation(missing));
    };
    check_dates(issued_on, due_on)?;
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        check_account(c, account)?;
        let id = ids::new_id();
        let now = ids::now();
        diesel::insert_into(invoices::table)
            .values((
                invoices::id.eq(&id),
                invoices::account_id.eq(account),
                invoices::order_id.eq(&checked.order),
                invoices::number.eq(number),
                invoices::currency.eq(currency),
                invoices::amount_total.eq(total),
                invoices::amount_paid.eq(0),
                invoices::issued_on.eq(issued_on),
                invoices::due_on.eq(due_on),
                invoices::status.eq(stored_status(checked.void == Some(true), 0, total)),
                invoices::notes.eq(&input.notes),
                invoices::external_source.eq(&source),
                invoices::external_id.eq(&external),
                invoices::version.eq(1),
                invoices::created_at.eq(&now),
                invoices::updated_at.eq(&now),
            ))
            .execute(c)?;
        let invoice: Invoice = find(c, me, &id)?.into();
        let json = common::to_json(&invoice);
        record(c, me, "created", &id, json, &invoice)?;
        Ok(invoice)
    })
}

/// Apply a PATCH. `raw` is the body as sent, so that `null` (clear) and absent (keep)
/// can be told apart.
pub fn update_invoice(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Invoice> {
    let input: InvoiceInput = crm_core::objects::input(raw)?;
    let checked = check_input(&input)?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    let stuck: Vec<FieldError> = [
        "account_id",
        "number",
        "currency",
        "amount_total",
        "issued_on",
        "due_on",
        "status",
    ]
    .into_iter()
    .filter(|f| cleared(f))
    .map(|f| FieldError::new(f, "required", "cannot be cleared"))
    .collect();
    if !stuck.is_empty() {
        return Err(ApiError::validation(stuck));
    }
    db::write_tx(conn, |c| {
        lock(c, id)?;
        let row = find(c, me, id)?;
        etag::check(expected, row.version)?;
        let before: Invoice = row.clone().into();
        let account = checked.account.clone().unwrap_or(row.account_id.clone());
        if account != row.account_id {
            check_account(c, &account)?;
        }
        let currency = input.currency.clone().unwrap_or(row.currency.clone());
        if account != row.account_id || currency != row.currency {
            // Payments carry the account and currency of their invoice.
            let disagreeing: i64 = payments::table
                .filter(payments::invoice_id.eq(id))
                .filter(payments::archived_at.is_null())
                .filter(
                    payments::account_id
                        .ne(&account)
                        .or(payments::currency.ne(&currency)),
                )
                .count()
                .get_result(c)?;
            if disagreeing > 0 {
                let field = if currency != row.currency {
                    "currency"
                } else {
                    "account_id"
                };
                return Err(common::invalid(
                    field,
                    "payments",
                    "payments are applied to this invoice; move or archive them first",
                ));
            }
        }
        let issued_on = checked.issued_on.clone().unwrap_or(row.issued_on.clone());
        let due_on = checked.due_on.clone().unwrap_or(row.due_on.clone());
        check_dates(&issued_on, &due_on)?;
        let total = input.amount_total.unwrap_or(row.amount_total);
        let void = checked.void.unwrap_or(row.status == "void");
        let pick = |field: &str, new: &Option<String>, old: &Option<String>| {
            if cleared(field) {
                None
            } else {
                new.clone().or(old.clone())
            }
        };
        let (source, external) = objects::external_key_after(
            raw,
            (row.external_source.clone(), row.external_id.clone()),
        )?;
        let changed = diesel::update(invoices::table.find(id))
            .filter(invoices::version.eq(row.version))
            .set((
                invoices::account_id.eq(&account),
                invoices::order_id.eq(pick("order_id", &checked.order, &row.order_id)),
                invoices::number.eq(input
                    .number
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&row.number)),
                invoices::currency.eq(&currency),
                invoices::amount_total.eq(total),
                invoices::issued_on.eq(&issued_on),
                invoices::due_on.eq(&due_on),
                invoices::status.eq(stored_status(void, row.amount_paid, total)),
                invoices::notes.eq(pick("notes", &input.notes, &row.notes)),
                invoices::external_source.eq(&source),
                invoices::external_id.eq(&external),
                invoices::version.eq(row.version + 1),
                invoices::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Invoice = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record(c, me, "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Recompute an invoice's `amount_paid` from its live payments, and its status from that
/// (paid once they cover the total, open again when they no longer do; void stays void).
/// A change is audited as `invoice.updated`. Runs in the caller's transaction.
pub fn settle(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    lock(conn, id)?;
    let Some(row) = invoices::table
        .find(id)
        .first::<InvoiceRow>(conn)
        .optional()?
    else {
        return Ok(());
    };
    let paid: i64 = payments::table
        .filter(payments::invoice_id.eq(id))
        .filter(payments::archived_at.is_null())
        .select(sql::<BigInt>(
            "CAST(COALESCE(SUM(payments.amount), 0) AS BIGINT)",
        ))
        .first(conn)?;
    let status = stored_status(row.status == "void", paid, row.amount_total);
    if paid == row.amount_paid && status == row.status {
        return Ok(());
    }
    let before: Invoice = row.clone().into();
    diesel::update(invoices::table.find(id))
        .set((
            invoices::amount_paid.eq(paid),
            invoices::status.eq(status),
            invoices::version.eq(row.version + 1),
            invoices::updated_at.eq(ids::now()),
        ))
        .execute(conn)?;
    let after: Invoice = invoices::table.find(id).first::<InvoiceRow>(conn)?.into();
    let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
    record(conn, me, "updated", id, changes, &after)
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Invoice>> {
    let mut q = crm_core::visible!(
        invoices::table.into_boxed::<MultiBackend>(),
        me,
        invoices::id
    );
    if !p.include_archived {
        q = q.filter(invoices::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(invoices::account_id.eq(v));
    }
    if let Some(v) = p.id_filter("order_id")? {
        q = q.filter(invoices::order_id.eq(v));
    }
    if let Some(v) = p.filter("status") {
        let today = today();
        q = match v {
            "open" => q
                .filter(invoices::status.eq("open"))
                .filter(invoices::due_on.ge(today)),
            "overdue" => q
                .filter(invoices::status.eq("open"))
                .filter(invoices::due_on.lt(today)),
            "paid" | "void" => q.filter(invoices::status.eq(v.to_string())),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown status {v:?}; statuses: open, overdue, paid, void"
                )))
            }
        };
    }
    if let Some(v) = p.currency_filter("currency")? {
        q = q.filter(invoices::currency.eq(v));
    }
    if let Some(v) = p.filter("number") {
        q = q.filter(invoices::number.eq(v.trim().to_string()));
    }
    if let Some(d) = date_filter(p, "due_before")? {
        q = q.filter(invoices::due_on.lt(d));
    }
    if let Some(d) = date_filter(p, "due_after")? {
        q = q.filter(invoices::due_on.gt(d));
    }
    if let Some(d) = date_filter(p, "issued_after")? {
        q = q.filter(invoices::issued_on.gt(d));
    }
    if let Some(d) = date_filter(p, "issued_before")? {
        q = q.filter(invoices::issued_on.lt(d));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(invoices::created_at.gt(t));
    }
    let rows: Vec<InvoiceRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Invoice::from).collect(), p)
}

/// Invoices on the resource kernel: everyone who sees customers reads them; the
/// accounting system writes them (`BillingWrite`).
pub struct Invoices;

impl Resource for Invoices {
    type Record = Invoice;
    type Input = InvoiceInput;
    type Patch = InvoiceInput;
    crm_core::resource_paths!("invoices");
    const ENTITY: &'static str = "invoice";
    const TABLE: &'static str = "invoices";
    const TAG: &'static str = "invoices";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::BillingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &[
        "account_id",
        "number",
        "currency",
        "amount_total",
        "issued_on",
        "due_on",
    ];

    crm_core::record_meta!(Invoice);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Invoice> {
        find(c, me, id).map(Invoice::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Invoice>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &InvoiceInput) -> ApiResult<Invoice> {
        create_invoice(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Invoice> {
        update_invoice(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(invoices);
}

/// Invoices as an integrable object (upserts, batch, composite, imports, exports, feed).
pub const OBJECT: ObjectKind =
    resource::object::<Invoices>(crm_core::find_by_external!(invoices), None);
