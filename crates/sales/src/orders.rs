//! Orders: what a customer bought, at what prices, when — created by accepting a quote, or
//! pushed by an ERP by its external key. The purchase history behind analytics, segments,
//! warranty checks and recommendations; invoices refer to them by `order_id`.

use crate::common::{enum_filter, enum_from, record_change};
use crate::invoices::{currency_field, date_field, date_filter, id_field};
use crate::pricing::{self, Line, LineInput};
use crate::quotes::Quote;
use crm_core::access::{Ownership, Permission};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::schema::{order_lines, orders};
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Open,
    Fulfilled,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Queryable, Clone)]
pub struct OrderRow {
    pub id: String,
    pub account_id: String,
    pub opportunity_id: Option<String>,
    pub quote_id: Option<String>,
    pub currency: String,
    pub ordered_on: String,
    pub status: String,
    pub lines: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub notes: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// An order. Amounts are in minor units of `currency`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub account_id: String,
    pub opportunity_id: Option<String>,
    /// The accepted quote it came from.
    pub quote_id: Option<String>,
    pub currency: String,
    #[schema(format = Date)]
    pub ordered_on: String,
    pub status: OrderStatus,
    pub lines: Vec<Line>,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub notes: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<OrderRow> for Order {
    fn from(r: OrderRow) -> Self {
        Order {
            id: r.id,
            account_id: r.account_id,
            opportunity_id: r.opportunity_id,
            quote_id: r.quote_id,
            currency: r.currency,
            ordered_on: r.ordered_on,
            status: enum_from(&r.status, OrderStatus::Open),
            lines: common::parse_json(&r.lines),
            subtotal: r.subtotal,
            discount_total: r.discount_total,
            tax_total: r.tax_total,
            total: r.total,
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

/// Fields of an order a client (an ERP) sends. Lines are priced as quotes' are; a line
/// without `unit_price` needs `price_book_id`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    #[schema(format = "uuid")]
    pub opportunity_id: Option<String>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[schema(format = Date)]
    pub ordered_on: Option<String>,
    /// `open` when not given.
    pub status: Option<OrderStatus>,
    /// Where lines without a unit price take theirs from.
    #[schema(format = "uuid")]
    pub price_book_id: Option<String>,
    #[validate(length(min = 1, max = 500))]
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Option<Vec<LineInput>>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["ordered_on", "created_at", "total"],
    default_sort: "-ordered_on",
    filters: &[
        Filter::id("account_id", "Bought by this account"),
        Filter::id("opportunity_id", "Closing this opportunity"),
        Filter::of::<OrderStatus>("status", "open, fulfilled or cancelled"),
        Filter::date("ordered_after", "Ordered after this date"),
        Filter::date("ordered_before", "Ordered before this date"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(orders::table, orders::BoxedQuery<'static, MultiBackend>, {
    "ordered_on" => orders::ordered_on,
    "created_at" => orders::created_at,
    "total" => orders::total,
    "id" => orders::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<OrderRow> {
    visibility::check_sees(me, "order")?;
    orders::table
        .find(id)
        .first::<OrderRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("order"))
}

struct NewOrder<'a> {
    account: &'a str,
    opportunity: Option<&'a str>,
    quote: Option<&'a str>,
    currency: &'a str,
    ordered_on: &'a str,
    status: OrderStatus,
    lines: &'a [Line],
    notes: Option<&'a str>,
    external: (Option<String>, Option<String>),
}

fn insert(c: &mut DbConn, me: &Principal, o: NewOrder<'_>) -> ApiResult<Order> {
    let t = pricing::totals(o.lines)?;
    let id = ids::new_id();
    let now = ids::now();
    diesel::insert_into(orders::table)
        .values((
            orders::id.eq(&id),
            orders::account_id.eq(o.account),
            orders::opportunity_id.eq(o.opportunity),
            orders::quote_id.eq(o.quote),
            orders::currency.eq(o.currency),
            orders::ordered_on.eq(o.ordered_on),
            orders::status.eq(o.status.as_str()),
            orders::lines.eq(common::json_text(&o.lines)),
            orders::subtotal.eq(t.subtotal),
            orders::discount_total.eq(t.discount_total),
            orders::tax_total.eq(t.tax_total),
            orders::total.eq(t.total),
            orders::notes.eq(o.notes),
            orders::external_source.eq(&o.external.0),
            orders::external_id.eq(&o.external.1),
            orders::version.eq(1),
            orders::created_at.eq(&now),
            orders::updated_at.eq(&now),
        ))
        .execute(c)?;
    insert_line_rows(c, &id, &o)?;
    let order: Order = find(c, me, &id)?.into();
    record_change(
        c,
        me,
        "order",
        "created",
        &id,
        common::to_json(&order),
        &order,
    )?;
    Ok(order)
}

/// The order's lines as `order_lines` rows, the purchase history queries read. One insert
/// per line: an order has a handful, and batch inserts don't compile for both backends.
fn insert_line_rows(c: &mut DbConn, order_id: &str, o: &NewOrder<'_>) -> ApiResult<()> {
    for (l, n) in o.lines.iter().zip(0..) {
        diesel::insert_into(order_lines::table)
            .values((
                order_lines::order_id.eq(order_id),
                order_lines::line_no.eq::<i32>(n),
                order_lines::account_id.eq(o.account),
                order_lines::product_id.eq(&l.product_id),
                order_lines::quantity.eq(l.quantity),
                order_lines::net.eq(l.net),
                order_lines::currency.eq(o.currency),
                order_lines::ordered_on.eq(o.ordered_on),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// The order an accepted quote creates, in the caller's transaction: its lines and totals
/// as quoted, ordered today.
pub fn from_quote(c: &mut DbConn, me: &Principal, q: &Quote) -> ApiResult<Order> {
    insert(
        c,
        me,
        NewOrder {
            account: &q.account_id,
            opportunity: Some(&q.opportunity_id),
            quote: Some(&q.id),
            currency: &q.currency,
            ordered_on: &crate::invoices::today(),
            status: OrderStatus::Open,
            lines: &q.lines,
            notes: q.notes.as_deref(),
            external: (None, None),
        },
    )
}

pub fn create_order(conn: &mut DbConn, me: &Principal, input: &OrderInput) -> ApiResult<Order> {
    input.validate()?;
    let mut errors = vec![];
    let account = id_field(&mut errors, "account_id", &input.account_id);
    let opportunity = id_field(&mut errors, "opportunity_id", &input.opportunity_id);
    let book = id_field(&mut errors, "price_book_id", &input.price_book_id);
    let ordered_on = date_field(&mut errors, "ordered_on", &input.ordered_on);
    currency_field(&mut errors, &input.currency);
    for (f, missing) in [
        ("account_id", account.is_none()),
        ("currency", input.currency.is_none()),
        ("ordered_on", ordered_on.is_none()),
        ("lines", input.lines.is_none()),
    ] {
        if missing && !errors.iter().any(|e| e.field == f) {
            errors.push(FieldError::new(f, "required", "is required"));
        }
    }
    let (Some(account), Some(currency), Some(ordered_on), Some(lines), true) = (
        account,
        &input.currency,
        ordered_on,
        &input.lines,
        errors.is_empty(),
    ) else {
        return Err(ApiError::validation(errors));
    };
    let external = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        common::check_exists(
            || crm_customers::accounts::exists(c, &account),
            "account_id",
            "account",
        )?;
        if let Some(o) = &opportunity {
            crate::opportunities::find(c, me, o).map_err(|_| {
                common::invalid("opportunity_id", "reference", "no such opportunity")
            })?;
        }
        let (priced, _) = pricing::price_lines(c, book.as_deref(), currency, lines)?;
        insert(
            c,
            me,
            NewOrder {
                account: &account,
                opportunity: opportunity.as_deref(),
                quote: None,
                currency,
                ordered_on: &ordered_on,
                status: input.status.unwrap_or(OrderStatus::Open),
                lines: &priced,
                notes: input.notes.as_deref(),
                external,
            },
        )
    })
}

/// A PATCH changes an order's status and notes (and its external key); what was bought,
/// by whom and at what prices stays as ordered.
pub fn update_order(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Order> {
    let input: OrderInput = objects::input(raw)?;
    input.validate()?;
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Orders>(c, me, id)?;
        etag::check(expected, before.version)?;
        let fixed = [
            (
                "account_id",
                input
                    .account_id
                    .as_ref()
                    .is_some_and(|a| *a != before.account_id),
            ),
            (
                "currency",
                input
                    .currency
                    .as_ref()
                    .is_some_and(|c| *c != before.currency),
            ),
            (
                "ordered_on",
                input
                    .ordered_on
                    .as_ref()
                    .is_some_and(|d| *d != before.ordered_on),
            ),
            ("lines", resent_lines_differ(c, &input, &before)?),
            (
                "opportunity_id",
                input
                    .opportunity_id
                    .as_ref()
                    .is_some_and(|o| Some(o) != before.opportunity_id.as_ref()),
            ),
        ];
        let refused: Vec<FieldError> = fixed
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(f, _)| {
                FieldError::new(
                    f,
                    "create_only",
                    "an order stays as ordered; cancel it and place another",
                )
            })
            .collect();
        if !refused.is_empty() {
            return Err(ApiError::validation(refused));
        }
        let notes = if raw.get("notes").is_some_and(|v| v.is_null()) {
            None
        } else {
            input.notes.clone().or(before.notes.clone())
        };
        let (source, external) = objects::external_key_after(
            raw,
            (before.external_source.clone(), before.external_id.clone()),
        )?;
        let changed = diesel::update(orders::table.find(id))
            .filter(orders::version.eq(before.version))
            .set((
                orders::status.eq(input.status.unwrap_or(before.status).as_str()),
                orders::notes.eq(&notes),
                orders::external_source.eq(&source),
                orders::external_id.eq(&external),
                orders::version.eq(before.version + 1),
                orders::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Order = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "order", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Whether lines sent again (an ERP pushing the whole order) price differently from the
/// stored ones.
fn resent_lines_differ(c: &mut DbConn, input: &OrderInput, before: &Order) -> ApiResult<bool> {
    let Some(lines) = &input.lines else {
        return Ok(false);
    };
    let book = input.price_book_id.as_deref().and_then(ids::parse_id);
    let (priced, _) = pricing::price_lines(c, book.as_deref(), &before.currency, lines)?;
    Ok(priced != before.lines)
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Order>> {
    let mut q = crm_core::visible!(orders::table.into_boxed::<MultiBackend>(), me, orders::id);
    if !p.include_archived {
        q = q.filter(orders::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(orders::account_id.eq(v));
    }
    if let Some(v) = p.id_filter("opportunity_id")? {
        q = q.filter(orders::opportunity_id.eq(v));
    }
    if let Some(v) = enum_filter::<OrderStatus>(p, "status")? {
        q = q.filter(orders::status.eq(v.as_str()));
    }
    if let Some(d) = date_filter(p, "ordered_after")? {
        q = q.filter(orders::ordered_on.gt(d));
    }
    if let Some(d) = date_filter(p, "ordered_before")? {
        q = q.filter(orders::ordered_on.lt(d));
    }
    let rows: Vec<OrderRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Order::from).collect(), p)
}

/// Orders on the resource kernel: every role reads them; reps and managers place them;
/// an ERP pushes them by external key.
pub struct Orders;

impl Resource for Orders {
    type Record = Order;
    type Input = OrderInput;
    type Patch = OrderInput;
    crm_core::resource_paths!("orders");
    const ENTITY: &'static str = "order";
    const TABLE: &'static str = "orders";
    const TAG: &'static str = "quotes";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesWrite;
    const EDITS: Ownership =
        Ownership::FollowsParent("opportunity (else account)", Permission::SalesManage);
    /// An order on a deal follows the deal's rule; one without, its account's.
    const PARENTS: &'static [resource::Parent] = &[
        crate::opportunities::PARENT,
        crm_customers::accounts::PARENT,
    ];
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["account_id", "currency", "ordered_on", "lines"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        (
            "lines",
            "an order stays as ordered; cancel it and place another",
        ),
        (
            "price_book_id",
            "an order stays as ordered; cancel it and place another",
        ),
    ];

    crm_core::record_meta!(Order);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Order> {
        find(c, me, id).map(Order::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Order>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &OrderInput) -> ApiResult<Order> {
        create_order(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Order> {
        update_order(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(orders);
}

/// Orders as an integrable object.
pub const OBJECT: ObjectKind =
    resource::object::<Orders>(crm_core::find_by_external!(orders), None);
