//! The product catalogue: products with sku, family, unit and warranty, and bundles made
//! of other products with quantities. Quotes and orders (sales) price them from price books.

use crate::common;
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::resource::{self, Resource};
use crm_core::schema::{product_components as pc, products};
use crm_core::{etag, ids, search};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Queryable)]
struct ProductRow {
    id: String,
    sku: String,
    name: String,
    description: Option<String>,
    family: Option<String>,
    active: bool,
    unit: String,
    warranty_months: Option<i32>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
    external_source: Option<String>,
    external_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Component {
    #[schema(format = "uuid")]
    pub product_id: String,
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub family: Option<String>,
    pub active: bool,
    /// Unit of measure: `each`, `hour`, `kg`, `licence`…
    pub unit: String,
    pub warranty_months: Option<i32>,
    /// For a bundle, the products it is made of; empty for a single item.
    pub components: Vec<Component>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    #[schema(min_length = 1, max_length = 64)]
    pub sku: Option<String>,
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub family: Option<String>,
    pub active: Option<bool>,
    #[validate(length(min = 1, max = 30))]
    #[schema(min_length = 1, max_length = 30)]
    pub unit: Option<String>,
    #[validate(range(min = 0, max = 600))]
    #[schema(minimum = 0, maximum = 600)]
    pub warranty_months: Option<i32>,
    /// Makes the product a bundle; replaces the components when given.
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub components: Option<Vec<Component>>,
    /// The record's key in another system (the ERP's catalogue); unique with `external_id`.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "sku", "created_at"],
    default_sort: "name",
    filters: &[
        Filter::text("family", "Exact family"),
        Filter::bool("active", "Only active (or inactive) products"),
        Filter::text("sku", "Exact sku"),
    ],
    search: Some("Words that start a name, sku or family"),
    null_sorts_as: &[],
};

crm_core::sortable!(products::table, products::BoxedQuery<'static, MultiBackend>, {
    "name" => products::name,
    "sku" => products::sku,
    "created_at" => products::created_at,
    "id" => products::id,
});

/// Products with their bundle components: one query for all of them.
fn assemble_many(conn: &mut DbConn, rows: Vec<ProductRow>) -> ApiResult<Vec<Product>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let components: Vec<(String, Component)> = pc::table
        .filter(pc::bundle_id.eq_any(&ids))
        .order(pc::component_id.asc())
        .select((pc::bundle_id, pc::component_id, pc::quantity))
        .load::<(String, String, i32)>(conn)?
        .into_iter()
        .map(|(bundle, product_id, quantity)| {
            let component = Component {
                product_id,
                quantity,
            };
            (bundle, component)
        })
        .collect();
    Ok(crm_core::list::with_children(
        rows,
        components,
        |r| &r.id,
        product,
    ))
}

fn assemble(conn: &mut DbConn, r: ProductRow) -> ApiResult<Product> {
    crm_core::list::only(assemble_many(conn, vec![r])?)
}

fn product(r: ProductRow, components: Vec<Component>) -> Product {
    Product {
        id: r.id,
        sku: r.sku,
        name: r.name,
        description: r.description,
        family: r.family,
        active: r.active,
        unit: r.unit,
        warranty_months: r.warranty_months,
        components,
        external_source: r.external_source,
        external_id: r.external_id,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived_at: r.archived_at,
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> ApiResult<Product> {
    let row = products::table
        .find(id)
        .first::<ProductRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("product"))?;
    assemble(conn, row)
}

/// Whether `needle` is `bundle` or inside it, at any depth (so a bundle never contains itself).
fn contains(conn: &mut DbConn, bundle: &str, needle: &str, depth: usize) -> ApiResult<bool> {
    if bundle == needle {
        return Ok(true);
    }
    if depth > 20 {
        return Ok(true);
    }
    let parts: Vec<String> = pc::table
        .filter(pc::bundle_id.eq(bundle))
        .select(pc::component_id)
        .load(conn)?;
    for p in parts {
        if contains(conn, &p, needle, depth + 1)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn write_components(conn: &mut DbConn, id: &str, components: &[Component]) -> ApiResult<()> {
    let mut errors = vec![];
    let mut clean: Vec<(String, i32)> = vec![];
    for (i, c) in components.iter().enumerate() {
        let field = format!("components[{i}]");
        // Bundle changes take turns, so two cannot make a cycle between them.
        db::lock_key(conn, "products:bundles")?;
        let Some(pid) = ids::parse_id(&c.product_id) else {
            errors.push(FieldError::new(
                &format!("{field}.product_id"),
                "reference",
                "no such product",
            ));
            continue;
        };
        if !(1..=100_000).contains(&c.quantity) {
            errors.push(FieldError::new(
                &format!("{field}.quantity"),
                "range",
                "must be 1 to 100000",
            ));
        }
        let exists = products::table
            .filter(products::id.eq(&pid))
            .filter(products::archived_at.is_null())
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !exists {
            errors.push(FieldError::new(
                &format!("{field}.product_id"),
                "reference",
                "no such product",
            ));
        } else if contains(conn, &pid, id, 0)? {
            errors.push(FieldError::new(
                &format!("{field}.product_id"),
                "cycle",
                "a bundle cannot contain itself",
            ));
        }
        if !clean.iter().any(|(p, _)| *p == pid) {
            clean.push((pid, c.quantity));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    diesel::delete(pc::table.filter(pc::bundle_id.eq(id))).execute(conn)?;
    for (pid, qty) in clean {
        diesel::insert_into(pc::table)
            .values((
                pc::bundle_id.eq(id),
                pc::component_id.eq(pid),
                pc::quantity.eq(qty),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn sku_taken(conn: &mut DbConn, sku: &str, except: &str) -> ApiResult<()> {
    let n: i64 = products::table
        .filter(products::sku.eq(sku))
        .filter(products::id.ne(except))
        .count()
        .get_result(conn)?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "a product with sku {sku:?} already exists"
        )));
    }
    Ok(())
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    id: &str,
    changes: serde_json::Value,
    after: &Product,
) -> ApiResult<()> {
    search::index(
        c,
        "product",
        id,
        &[
            &after.name,
            &after.sku,
            after.family.as_deref().unwrap_or(""),
        ],
    )?;
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "product",
            entity_id: id,
            changes,
            record: common::to_json(after),
        },
    )
}

fn create_product(conn: &mut DbConn, me: &Principal, input: &ProductInput) -> ApiResult<Product> {
    input.validate()?;
    let sku = input
        .sku
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| common::invalid("sku", "required", "is required"))?
        .to_string();
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| common::invalid("name", "required", "is required"))?
        .to_string();
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        sku_taken(c, &sku, "")?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(products::table)
            .values((
                products::id.eq(&id),
                products::sku.eq(&sku),
                products::name.eq(&name),
                products::description.eq(&input.description),
                products::family.eq(&input.family),
                products::active.eq(input.active.unwrap_or(true)),
                products::unit.eq(input.unit.as_deref().unwrap_or("each")),
                products::warranty_months.eq(input.warranty_months),
                products::external_source.eq(&source),
                products::external_id.eq(&external),
                products::version.eq(1),
                products::created_at.eq(&now),
                products::updated_at.eq(&now),
            ))
            .execute(c)?;
        write_components(c, &id, input.components.as_deref().unwrap_or(&[]))?;
        let p = find(c, &id)?;
        record(c, me, "created", &id, common::to_json(&p), &p)?;
        Ok(p)
    })
}

fn update_product(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Product> {
    let input: ProductInput = crm_core::objects::input(raw)?;
    input.validate()?;
    let cleared = |f: &str| raw.get(f).is_some_and(|v| v.is_null());
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Products>(c, me, id)?;
        etag::check(expected, before.version)?;
        let sku = input
            .sku
            .as_deref()
            .map(str::trim)
            .unwrap_or(&before.sku)
            .to_string();
        sku_taken(c, &sku, id)?;
        let (source, external) = objects::external_key_after(
            raw,
            (before.external_source.clone(), before.external_id.clone()),
        )?;
        let pick = |f: &str, new: &Option<String>, old: &Option<String>| {
            if cleared(f) {
                None
            } else {
                new.clone().or(old.clone())
            }
        };
        let changed = diesel::update(products::table.find(id))
            .filter(products::version.eq(before.version))
            .set((
                products::sku.eq(&sku),
                products::name.eq(input.name.as_deref().map(str::trim).unwrap_or(&before.name)),
                products::description.eq(pick(
                    "description",
                    &input.description,
                    &before.description,
                )),
                products::family.eq(pick("family", &input.family, &before.family)),
                products::active.eq(input.active.unwrap_or(before.active)),
                products::unit.eq(input.unit.as_deref().unwrap_or(&before.unit)),
                products::warranty_months.eq(if cleared("warranty_months") {
                    None
                } else {
                    input.warranty_months.or(before.warranty_months)
                }),
                products::external_source.eq(&source),
                products::external_id.eq(&external),
                products::version.eq(before.version + 1),
                products::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        if let Some(components) = &input.components {
            write_components(c, id, components)?;
        }
        let after = find(c, id)?;
        record(
            c,
            me,
            "updated",
            id,
            audit::diff(&common::to_json(&before), &common::to_json(&after), &[]),
            &after,
        )?;
        Ok(after)
    })
}

fn load_page(conn: &mut DbConn, p: &ListParams) -> ApiResult<Page<Product>> {
    let mut q = products::table.into_boxed::<MultiBackend>();
    if !p.include_archived {
        q = q.filter(products::archived_at.is_null());
    }
    if let Some(v) = p.filter("family") {
        q = q.filter(products::family.eq(v.to_string()));
    }
    if let Some(v) = p.filter("sku") {
        q = q.filter(products::sku.eq(v.to_string()));
    }
    if let Some(v) = p.bool_filter("active")? {
        q = q.filter(products::active.eq(v));
    }
    if let Some(text) = &p.q {
        for word in search::query_words(text) {
            q = crm_core::search_filter!(q, conn, "product", "products", products::id, &word);
        }
    }
    let rows: Vec<ProductRow> = apply_sort(q, p)?.load(conn)?;
    list::page(assemble_many(conn, rows)?, p)
}

/// Products on the resource kernel: everyone reads the catalogue, managers change it.
pub struct Products;

impl Resource for Products {
    type Record = Product;
    type Input = ProductInput;
    type Patch = ProductInput;
    crm_core::resource_paths!("products");
    const ENTITY: &'static str = "product";
    const TABLE: &'static str = "products";
    const TAG: &'static str = "products";
    const READ: Permission = Permission::ProductsRead;
    const WRITE: Permission = Permission::ProductsManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["sku", "name"];

    crm_core::record_meta!(Product);

    /// The catalogue is public to every role, partners included.
    fn visible_to(_: &Principal) -> bool {
        true
    }

    fn find(c: &mut DbConn, _: &Principal, id: &str) -> ApiResult<Product> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _: &Principal, p: &ListParams) -> ApiResult<Page<Product>> {
        load_page(c, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &ProductInput) -> ApiResult<Product> {
        create_product(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Product> {
        update_product(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(products);
}

/// Products as an integrable object: an ERP keeps the catalogue in sync by its own ids.
pub const OBJECT: ObjectKind =
    resource::object::<Products>(crm_core::find_by_external!(products), None);
