//! Payments received from an account, pushed in from an accounting system. A payment may
//! be applied to one invoice of the same account and currency; every write of a payment
//! recomputes that invoice's `amount_paid` and status in the same transaction (see
//! `crate::invoices::settle`). Payments without an invoice are the account's unapplied
//! payments (see `crate::balances`).

use crate::invoices::{self, currency_field, date_field, date_filter, id_field, InvoiceRow};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::schema::payments;
use crm_core::{etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// How a payment was made.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    BankTransfer,
    Card,
    Cash,
    Check,
    Other,
}

impl Method {
    const ALL: [(Method, &'static str); 5] = [
        (Method::BankTransfer, "bank_transfer"),
        (Method::Card, "card"),
        (Method::Cash, "cash"),
        (Method::Check, "check"),
        (Method::Other, "other"),
    ];

    fn parse(s: &str) -> Option<Method> {
        Self::ALL.iter().find(|(_, t)| *t == s).map(|(m, _)| *m)
    }

    fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, t)| *t)
            .unwrap_or("other")
    }
}

#[derive(Queryable, Clone)]
pub struct PaymentRow {
    pub id: String,
    pub account_id: String,
    pub invoice_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub received_on: String,
    pub method: String,
    pub reference: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A payment received.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub account_id: String,
    /// The invoice it pays; null while it is not applied to one.
    pub invoice_id: Option<String>,
    /// Amount received, in minor units of `currency` (cents for USD).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    #[schema(format = Date)]
    pub received_on: String,
    pub method: Method,
    /// The payer's or the bank's reference.
    pub reference: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Self {
        Payment {
            method: Method::parse(&r.method).unwrap_or(Method::Other),
            id: r.id,
            account_id: r.account_id,
            invoice_id: r.invoice_id,
            amount: r.amount,
            currency: r.currency,
            received_on: r.received_on,
            reference: r.reference,
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of a payment a client sends; on PATCH every field is optional and `null`
/// clears the optional ones (`invoice_id: null` un-applies the payment).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// The paying account; on create it defaults to the invoice's account.
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    /// The invoice it pays, of the same account and currency (422 otherwise).
    #[schema(format = "uuid")]
    pub invoice_id: Option<String>,
    /// Amount received in minor units of `currency` (required).
    #[validate(range(
        min = 1,
        max = 1_000_000_000_000_000_i64,
        message = "must be 1 to 10^15"
    ))]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount: Option<i64>,
    /// ISO 4217 code; on create it defaults to the invoice's currency.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// The date the money arrived (required).
    #[schema(format = Date)]
    pub received_on: Option<String>,
    /// bank_transfer, card, cash, check or other (the default).
    #[schema(value_type = Option<Method>)]
    pub method: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub reference: Option<String>,
    /// The record's key in the accounting system; unique with `external_id`.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["received_on", "amount", "created_at", "updated_at"],
    default_sort: "-received_on",
    filters: &[
        Filter::id("account_id", "Paid by this account"),
        Filter::id("invoice_id", "Applied to this invoice"),
        Filter::bool(
            "unapplied",
            "true: only payments not applied to an invoice; false: only applied ones",
        ),
        Filter::new("currency", FilterKind::Currency, "ISO 4217 code"),
        Filter::of::<Method>("method", "bank_transfer, card, cash, check or other"),
        Filter::date("received_after", "Received after this date"),
        Filter::date("received_before", "Received before this date"),
        Filter::time("created_after", "RFC 3339 timestamp"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(payments::table, payments::BoxedQuery<'static, MultiBackend>, {
    "received_on" => payments::received_on,
    "amount" => payments::amount,
    "created_at" => payments::created_at,
    "updated_at" => payments::updated_at,
    "id" => payments::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<PaymentRow> {
    visibility::check_sees(me, "payment")?;
    payments::table
        .find(id)
        .first::<PaymentRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("payment"))
}

struct Checked {
    account: Option<String>,
    invoice: Option<String>,
    received_on: Option<String>,
    method: Option<Method>,
}

fn check_input(input: &PaymentInput) -> ApiResult<Checked> {
    input.validate()?;
    let mut errors = vec![];
    let account = id_field(&mut errors, "account_id", &input.account_id);
    let invoice = id_field(&mut errors, "invoice_id", &input.invoice_id);
    currency_field(&mut errors, &input.currency);
    let received_on = date_field(&mut errors, "received_on", &input.received_on);
    let method = match input.method.as_deref() {
        None => None,
        Some(m) => {
            let parsed = Method::parse(m);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    "method",
                    "method",
                    "must be bank_transfer, card, cash, check or other",
                ));
            }
            parsed
        }
    };
    if errors.is_empty() {
        Ok(Checked {
            account,
            invoice,
            received_on,
            method,
        })
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The live invoice a payment is being applied to; 422 when there is none.
fn invoice_to_apply(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<InvoiceRow> {
    invoices::lock(conn, id)?;
    match invoices::find(conn, me, id) {
        Ok(row) if row.archived_at.is_none() => Ok(row),
        Ok(_) | Err(ApiError::NotFound(_)) => Err(common::invalid(
            "invoice_id",
            "reference",
            "no such invoice",
        )),
        Err(e) => Err(e),
    }
}

/// A payment carries its invoice's account and currency.
fn mismatches(invoice: &InvoiceRow, account: &str, currency: &str) -> Vec<FieldError> {
    let mut errors = vec![];
    if invoice.account_id != account {
        errors.push(FieldError::new(
            "account_id",
            "mismatch",
            "must be the account of the invoice",
        ));
    }
    if invoice.currency != currency {
        errors.push(FieldError::new(
            "currency",
            "mismatch",
            format!("must be the currency of the invoice, {}", invoice.currency),
        ));
    }
    errors
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
    after: &Payment,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "payment",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

pub fn create_payment(
    conn: &mut DbConn,
    me: &Principal,
    input: &PaymentInput,
) -> ApiResult<Payment> {
    let checked = check_input(input)?;
    let has_invoice = checked.invoice.is_some();
    let missing: Vec<FieldError> = [
        ("amount", input.amount.is_none()),
        ("received_on", checked.received_on.is_none()),
        ("account_id", checked.account.is_none() && !has_invoice),
        ("currency", input.currency.is_none() && !has_invoice),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(field, _)| FieldError::new(field, "required", "is required"))
    .collect();
    let (Some(amount), Some(received_on)) = (input.amount, &checked.received_on) else {
        return Err(ApiError::validation(missing));
    };
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let invoice = match &checked.invoice {
            Some(id) => Some(invoice_to_apply(c, me, id)?),
            None => None,
        };
        let account = checked
            .account
            .clone()
            .or(invoice.as_ref().map(|i| i.account_id.clone()))
            .unwrap_or_default();
        let currency = input
            .currency
            .clone()
            .or(invoice.as_ref().map(|i| i.currency.clone()))
            .unwrap_or_default();
        check_account(c, &account)?;
        if let Some(inv) = &invoice {
            let errors = mismatches(inv, &account, &currency);
            if !errors.is_empty() {
                return Err(ApiError::validation(errors));
            }
        }
        let id = ids::new_id();
        let now = ids::now();
        diesel::insert_into(payments::table)
            .values((
                payments::id.eq(&id),
                payments::account_id.eq(&account),
                payments::invoice_id.eq(&checked.invoice),
                payments::amount.eq(amount),
                payments::currency.eq(&currency),
                payments::received_on.eq(received_on),
                payments::method.eq(checked.method.unwrap_or(Method::Other).as_str()),
                payments::reference.eq(&input.reference),
                payments::external_source.eq(&source),
                payments::external_id.eq(&external),
                payments::version.eq(1),
                payments::created_at.eq(&now),
                payments::updated_at.eq(&now),
            ))
            .execute(c)?;
        let payment: Payment = find(c, me, &id)?.into();
        let json = common::to_json(&payment);
        record(c, me, "created", &id, json, &payment)?;
        if let Some(inv) = &checked.invoice {
            invoices::settle(c, me, inv)?;
        }
        Ok(payment)
    })
}

/// Apply a PATCH. `raw` is the body as sent, so that `null` (clear) and absent (keep)
/// can be told apart.
pub fn update_payment(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Payment> {
    let input: PaymentInput = crm_core::objects::input(raw)?;
    let checked = check_input(&input)?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    let stuck: Vec<FieldError> = ["account_id", "amount", "currency", "received_on", "method"]
        .into_iter()
        .filter(|f| cleared(f))
        .map(|f| FieldError::new(f, "required", "cannot be cleared"))
        .collect();
    if !stuck.is_empty() {
        return Err(ApiError::validation(stuck));
    }
    db::write_tx(conn, |c| {
        db::lock_row(c, Payments::TABLE, id)?;
        let row = find(c, me, id)?;
        etag::check(expected, row.version)?;
        let before: Payment = row.clone().into();
        let account = checked.account.clone().unwrap_or(row.account_id.clone());
        if account != row.account_id {
            check_account(c, &account)?;
        }
        let currency = input.currency.clone().unwrap_or(row.currency.clone());
        let invoice_id = if cleared("invoice_id") {
            None
        } else {
            checked.invoice.clone().or(row.invoice_id.clone())
        };
        // Lock the invoices it leaves and joins in one order, so that two payments moving
        // between the same invoices in opposite directions cannot deadlock.
        let mut touched: Vec<&String> = row.invoice_id.iter().chain(&invoice_id).collect();
        touched.sort();
        touched.dedup();
        for inv in touched {
            invoices::lock(c, inv)?;
        }
        let invoice = match &invoice_id {
            // Newly applied: the invoice must be live.
            Some(new) if row.invoice_id.as_ref() != Some(new) => {
                Some(invoice_to_apply(c, me, new)?)
            }
            Some(kept) => invoices::find(c, me, kept).optional_found()?,
            None => None,
        };
        if let Some(inv) = &invoice {
            let errors = mismatches(inv, &account, &currency);
            if !errors.is_empty() {
                return Err(ApiError::validation(errors));
            }
        }
        let (source, external) = objects::external_key_after(
            raw,
            (row.external_source.clone(), row.external_id.clone()),
        )?;
        let method = checked
            .method
            .map(Method::as_str)
            .unwrap_or(row.method.as_str());
        let changed = diesel::update(payments::table.find(id))
            .filter(payments::version.eq(row.version))
            .set((
                payments::account_id.eq(&account),
                payments::invoice_id.eq(&invoice_id),
                payments::amount.eq(input.amount.unwrap_or(row.amount)),
                payments::currency.eq(&currency),
                payments::received_on.eq(checked.received_on.as_ref().unwrap_or(&row.received_on)),
                payments::method.eq(method),
                payments::reference.eq(if cleared("reference") {
                    None
                } else {
                    input.reference.clone().or(row.reference.clone())
                }),
                payments::external_source.eq(&source),
                payments::external_id.eq(&external),
                payments::version.eq(row.version + 1),
                payments::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Payment = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record(c, me, "updated", id, changes, &after)?;
        if let Some(old) = &row.invoice_id {
            invoices::settle(c, me, old)?;
        }
        if let Some(new) = invoice_id.filter(|n| Some(n) != row.invoice_id.as_ref()) {
            invoices::settle(c, me, &new)?;
        }
        Ok(after)
    })
}

/// `Ok(None)` for a 404, other errors as they are.
trait OptionalFound<T> {
    fn optional_found(self) -> ApiResult<Option<T>>;
}

impl<T> OptionalFound<T> for ApiResult<T> {
    fn optional_found(self) -> ApiResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Payment>> {
    let mut q = crm_core::visible!(
        payments::table.into_boxed::<MultiBackend>(),
        me,
        payments::id
    );
    if !p.include_archived {
        q = q.filter(payments::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(payments::account_id.eq(v));
    }
    if let Some(v) = p.id_filter("invoice_id")? {
        q = q.filter(payments::invoice_id.eq(v));
    }
    match p.bool_filter("unapplied")? {
        Some(true) => q = q.filter(payments::invoice_id.is_null()),
        Some(false) => q = q.filter(payments::invoice_id.is_not_null()),
        None => {}
    }
    if let Some(v) = p.currency_filter("currency")? {
        q = q.filter(payments::currency.eq(v));
    }
    if let Some(v) = p.filter("method") {
        let m = Method::parse(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown method {v:?}; methods: bank_transfer, card, cash, check, other"
            ))
        })?;
        q = q.filter(payments::method.eq(m.as_str()));
    }
    if let Some(d) = date_filter(p, "received_after")? {
        q = q.filter(payments::received_on.gt(d));
    }
    if let Some(d) = date_filter(p, "received_before")? {
        q = q.filter(payments::received_on.lt(d));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(payments::created_at.gt(t));
    }
    let rows: Vec<PaymentRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Payment::from).collect(), p)
}

/// Payments on the resource kernel, written like invoices by the accounting system.
pub struct Payments;

impl Resource for Payments {
    type Record = Payment;
    type Input = PaymentInput;
    type Patch = PaymentInput;
    crm_core::resource_paths!("payments");
    const ENTITY: &'static str = "payment";
    const TABLE: &'static str = "payments";
    const TAG: &'static str = "payments";
    const READ: Permission = Permission::CustomersRead;
    const WRITE: Permission = Permission::BillingWrite;
    const LIST: &'static ListSpec = &LIST;
    /// `account_id` and `currency` too, unless `invoice_id` gives them.
    const REQUIRED: &'static [&'static str] = &["amount", "received_on"];
    const ARCHIVED: &'static str = "Archived; its invoice is settled again";

    crm_core::record_meta!(Payment);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Payment> {
        find(c, me, id).map(Payment::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Payment>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &PaymentInput) -> ApiResult<Payment> {
        create_payment(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Payment> {
        update_payment(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(payments);

    /// A payment whose invoice has since changed account or currency cannot be restored.
    fn before_archive(
        c: &mut DbConn,
        me: &Principal,
        p: &Payment,
        archiving: bool,
    ) -> ApiResult<()> {
        let Some(inv) = p.invoice_id.as_deref().filter(|_| !archiving) else {
            return Ok(());
        };
        invoices::lock(c, inv)?;
        if let Some(invoice) = invoices::find(c, me, inv).optional_found()? {
            if !mismatches(&invoice, &p.account_id, &p.currency).is_empty() {
                return Err(ApiError::Conflict(
                    "the invoice this payment was applied to now has another account \
                     or currency; un-apply it (invoice_id: null) before restoring"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Its invoice's `amount_paid` and status follow.
    fn after_archive(c: &mut DbConn, me: &Principal, p: &Payment, _: bool) -> ApiResult<()> {
        match &p.invoice_id {
            Some(inv) => invoices::settle(c, me, inv),
            None => Ok(()),
        }
    }
}

/// Payments as an integrable object (upserts, batch, composite, imports, exports, feed).
pub const OBJECT: ObjectKind =
    resource::object::<Payments>(crm_core::find_by_external!(payments), None);
