//! Price books: named lists of prices per product and currency, in minor units. One may
//! be the default; quotes and orders price their lines from a price book.

use crate::common;
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{price_book_entries as pe, price_books as pb, products};
use crm_core::{etag, ids, objects};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Queryable)]
struct BookRow {
    id: String,
    name: String,
    description: Option<String>,
    is_default: bool,
    active: bool,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// The price of one product in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[schema(format = "uuid")]
    pub product_id: String,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// In minor units (cents for USD).
    #[schema(minimum = 0)]
    pub unit_price: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBook {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The book used when none is named; at most one is the default.
    pub is_default: bool,
    pub active: bool,
    pub prices: Vec<Price>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBookInput {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub is_default: Option<bool>,
    pub active: Option<bool>,
    /// Replaces every price of the book when given.
    #[validate(length(max = 5000))]
    #[schema(max_items = 5000)]
    pub prices: Option<Vec<Price>>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[Filter::bool("active", "Only active (or inactive) books")],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(pb::table, pb::BoxedQuery<'static, MultiBackend>, {
    "name" => pb::name,
    "created_at" => pb::created_at,
    "id" => pb::id,
});

/// Price books with their prices: one query for all of them.
fn assemble_many(conn: &mut DbConn, rows: Vec<BookRow>) -> ApiResult<Vec<PriceBook>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let prices: Vec<(String, Price)> = pe::table
        .filter(pe::price_book_id.eq_any(&ids))
        .order((pe::product_id.asc(), pe::currency.asc()))
        .select((
            pe::price_book_id,
            pe::product_id,
            pe::currency,
            pe::unit_price,
        ))
        .load::<(String, String, String, i64)>(conn)?
        .into_iter()
        .map(|(book, product_id, currency, unit_price)| {
            let price = Price {
                product_id,
                currency,
                unit_price,
            };
            (book, price)
        })
        .collect();
    Ok(crm_core::list::with_children(rows, prices, |r| &r.id, book))
}

fn assemble(conn: &mut DbConn, r: BookRow) -> ApiResult<PriceBook> {
    crm_core::list::only(assemble_many(conn, vec![r])?)
}

fn book(r: BookRow, prices: Vec<Price>) -> PriceBook {
    PriceBook {
        id: r.id,
        name: r.name,
        description: r.description,
        is_default: r.is_default,
        active: r.active,
        prices,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived_at: r.archived_at,
    }
}

fn find(conn: &mut DbConn, id: &str) -> ApiResult<PriceBook> {
    let row = pb::table
        .find(id)
        .first::<BookRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("price book"))?;
    assemble(conn, row)
}

fn write_prices(conn: &mut DbConn, id: &str, prices: &[Price]) -> ApiResult<()> {
    let mut errors = vec![];
    let mut seen: Vec<(String, String)> = vec![];
    for (i, p) in prices.iter().enumerate() {
        let f = format!("prices[{i}]");
        let pid = ids::parse_id(&p.product_id);
        let exists = match &pid {
            Some(pid) => {
                products::table
                    .filter(products::id.eq(pid))
                    .count()
                    .get_result::<i64>(conn)?
                    > 0
            }
            None => false,
        };
        if !exists {
            errors.push(FieldError::new(
                &format!("{f}.product_id"),
                "reference",
                "no such product",
            ));
        }
        if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(FieldError::new(
                &format!("{f}.currency"),
                "currency",
                "must be an ISO 4217 code such as EUR",
            ));
        }
        if p.unit_price < 0 {
            errors.push(FieldError::new(
                &format!("{f}.unit_price"),
                "range",
                "must be 0 or more",
            ));
        }
        let key = (pid.unwrap_or_default(), p.currency.clone());
        if seen.contains(&key) {
            errors.push(FieldError::new(
                &f,
                "duplicate",
                "one price per product and currency",
            ));
        }
        seen.push(key);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    diesel::delete(pe::table.filter(pe::price_book_id.eq(id))).execute(conn)?;
    for (p, (pid, _)) in prices.iter().zip(seen) {
        diesel::insert_into(pe::table)
            .values((
                pe::price_book_id.eq(id),
                pe::product_id.eq(pid),
                pe::currency.eq(&p.currency),
                pe::unit_price.eq(p.unit_price),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Only one book is the default: making one the default unsets the others. Claims take
/// turns, so that two made default at once cannot both stay it.
fn claim_default(conn: &mut DbConn, id: &str) -> ApiResult<()> {
    db::lock_key(conn, "price_books:default")?;
    diesel::update(
        pb::table
            .filter(pb::id.ne(id))
            .filter(pb::is_default.eq(true)),
    )
    .set((pb::is_default.eq(false), pb::version.eq(pb::version + 1)))
    .execute(conn)?;
    Ok(())
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &PriceBook,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "price_book",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

fn name_taken(conn: &mut DbConn, name: &str, except: &str) -> ApiResult<()> {
    let n: i64 = pb::table
        .filter(pb::name.eq(name))
        .filter(pb::id.ne(except))
        .count()
        .get_result(conn)?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "a price book named {name:?} already exists"
        )));
    }
    Ok(())
}

/// Price books on the resource kernel.
pub struct PriceBooks;

impl Resource for PriceBooks {
    type Record = PriceBook;
    type Input = PriceBookInput;
    type Patch = PriceBookInput;
    crm_core::resource_paths!("price-books");
    const ENTITY: &'static str = "price_book";
    const TABLE: &'static str = "price_books";
    const TAG: &'static str = "products";
    const READ: Permission = Permission::ProductsRead;
    const WRITE: Permission = Permission::ProductsManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name"];

    crm_core::record_meta!(PriceBook);

    fn visible_to(_: &Principal) -> bool {
        true
    }

    fn find(c: &mut DbConn, _: &Principal, id: &str) -> ApiResult<PriceBook> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _: &Principal, p: &ListParams) -> ApiResult<Page<PriceBook>> {
        let mut q = pb::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(pb::archived_at.is_null());
        }
        if let Some(v) = p.bool_filter("active")? {
            q = q.filter(pb::active.eq(v));
        }
        let rows: Vec<BookRow> = apply_sort(q, p)?.load(c)?;
        list::page(assemble_many(c, rows)?, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &PriceBookInput) -> ApiResult<PriceBook> {
        input.validate()?;
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| common::invalid("name", "required", "is required"))?;
        db::write_tx(c, |c| {
            name_taken(c, name, "")?;
            let (id, now) = (ids::new_id(), ids::now());
            let is_default = input.is_default.unwrap_or(false);
            diesel::insert_into(pb::table)
                .values((
                    pb::id.eq(&id),
                    pb::name.eq(name),
                    pb::description.eq(&input.description),
                    pb::is_default.eq(is_default),
                    pb::active.eq(input.active.unwrap_or(true)),
                    pb::version.eq(1),
                    pb::created_at.eq(&now),
                    pb::updated_at.eq(&now),
                ))
                .execute(c)?;
            if is_default {
                claim_default(c, &id)?;
            }
            write_prices(c, &id, input.prices.as_deref().unwrap_or(&[]))?;
            let book = find(c, &id)?;
            record(c, me, "created", &id, common::to_json(&book), &book)?;
            Ok(book)
        })
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<PriceBook> {
        let input: PriceBookInput = objects::input(patch)?;
        input.validate()?;
        let cleared = |f: &str| patch.get(f).is_some_and(|v| v.is_null());
        if cleared("name") {
            return Err(common::invalid("name", "required", "cannot be cleared"));
        }
        db::write_tx(c, |c| {
            let before = resource::find_for_write::<PriceBooks>(c, me, id)?;
            etag::check(expected, before.version)?;
            let name = input.name.as_deref().map(str::trim).unwrap_or(&before.name);
            name_taken(c, name, id)?;
            let is_default = input.is_default.unwrap_or(before.is_default);
            let description = match &input.description {
                None if cleared("description") => None,
                None => before.description.clone(),
                new => new.clone(),
            };
            let changed = diesel::update(pb::table.find(id))
                .filter(pb::version.eq(before.version))
                .set((
                    pb::name.eq(name),
                    pb::description.eq(description),
                    pb::is_default.eq(is_default),
                    pb::active.eq(input.active.unwrap_or(before.active)),
                    pb::version.eq(before.version + 1),
                    pb::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
            resource::changed_one(changed)?;
            if is_default {
                claim_default(c, id)?;
            }
            if let Some(prices) = &input.prices {
                write_prices(c, id, prices)?;
            }
            let after = find(c, id)?;
            let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
            record(c, me, "updated", id, changes, &after)?;
            Ok(after)
        })
    }

    /// An archived book is no longer the default.
    fn stamp_archived(
        c: &mut DbConn,
        id: &str,
        version: i32,
        stamp: Option<&str>,
    ) -> diesel::QueryResult<usize> {
        let still_default =
            pb::is_default.and(stamp.is_none().into_sql::<diesel::sql_types::Bool>());
        diesel::update(pb::table.find(id).filter(pb::version.eq(version)))
            .set((
                pb::archived_at.eq(stamp),
                pb::is_default.eq(still_default),
                pb::version.eq(version + 1),
                pb::updated_at.eq(ids::now()),
            ))
            .execute(c)
    }
}
