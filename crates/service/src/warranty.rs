//! Warranty claims: a product on an order, checked when filed against the order date and
//! the product's warranty months. The claim is approved while the warranty runs (through
//! the day before the order date plus the months) and rejected with the reason otherwise;
//! a product the order doesn't contain is a 422.

use crate::common::{audit_change, required};
use chrono::{Months, NaiveDate};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{order_lines, orders, products, warranty_claims as w};
use crm_core::{etag, ids};
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// A warranty claim with its decision.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = w)]
pub struct WarrantyClaim {
    pub id: String,
    pub order_id: String,
    pub product_id: String,
    pub ticket_id: Option<String>,
    pub account_id: Option<String>,
    pub description: Option<String>,
    /// `approved` or `rejected`.
    pub status: String,
    /// Why: the warranty's end, or that the product has none.
    pub reason: String,
    /// The last day the warranty covers.
    pub warranty_until: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A claim as sent: the order and product are fixed once filed; a PATCH changes the description.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarrantyClaimInput {
    #[schema(format = "uuid")]
    pub order_id: Option<String>,
    #[schema(format = "uuid")]
    pub product_id: Option<String>,
    #[schema(format = "uuid")]
    pub ticket_id: Option<String>,
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub description: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at"],
    default_sort: "-created_at",
    filters: &[
        Filter::text("status", "approved or rejected"),
        Filter::id("order_id", "Claims on this order"),
        Filter::id("ticket_id", "Claims for this ticket"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(w::table, w::BoxedQuery<'static, MultiBackend>, {
    "created_at" => w::created_at,
    "id" => w::id,
});

fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<WarrantyClaim> {
    crm_core::visibility::check_sees(me, "warranty claim")?;
    w::table
        .find(id)
        .select(WarrantyClaim::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("warranty claim"))
}

/// The decision for a product ordered on `ordered_on` with `months` of warranty, today.
pub fn decide(
    ordered_on: NaiveDate,
    months: Option<i32>,
    today: NaiveDate,
) -> (&'static str, String, Option<NaiveDate>) {
    let Some(months) = months.filter(|m| *m > 0) else {
        return ("rejected", "the product has no warranty".into(), None);
    };
    let end = ordered_on
        .checked_add_months(Months::new(months as u32))
        .and_then(|d| d.pred_opt())
        .unwrap_or(ordered_on);
    if today <= end {
        (
            "approved",
            format!("within the {months}-month warranty, which runs through {end}"),
            Some(end),
        )
    } else {
        (
            "rejected",
            format!("the {months}-month warranty ended on {end}"),
            Some(end),
        )
    }
}

fn create(c: &mut DbConn, me: &Principal, input: &WarrantyClaimInput) -> ApiResult<WarrantyClaim> {
    input.validate()?;
    let errors = required(&[
        ("order_id", input.order_id.is_none()),
        ("product_id", input.product_id.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (order, product) = (
        input.order_id.clone().unwrap_or_default(),
        input.product_id.clone().unwrap_or_default(),
    );
    db::write_tx(c, |c| {
        let o: Option<(String, String)> = orders::table
            .find(&order)
            .select((orders::account_id, orders::ordered_on))
            .first(c)
            .optional()?;
        let (account, ordered_on) =
            o.ok_or_else(|| ApiError::field("order_id", "not_found", "no order has this id"))?;
        crm_customers::accounts::find(c, me, &account)
            .map_err(|_| ApiError::field("order_id", "not_found", "no order has this id"))?;
        let on_order: i64 = order_lines::table
            .filter(order_lines::order_id.eq(&order))
            .filter(order_lines::product_id.eq(&product))
            .count()
            .get_result(c)?;
        if on_order == 0 {
            return Err(ApiError::field(
                "product_id",
                "not_on_order",
                "the order doesn't contain this product",
            ));
        }
        if let Some(t) = &input.ticket_id {
            crate::tickets::find(c, me, t)
                .map_err(|_| ApiError::field("ticket_id", "not_found", "no ticket has this id"))?;
        }
        let months: Option<i32> = products::table
            .find(&product)
            .select(products::warranty_months)
            .first(c)?;
        let day = ordered_on
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .unwrap_or_default();
        let (status, reason, until) = decide(day, months, chrono::Utc::now().date_naive());
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(w::table)
            .values((
                w::id.eq(&id),
                w::order_id.eq(&order),
                w::product_id.eq(&product),
                w::ticket_id.eq(&input.ticket_id),
                w::account_id.eq(&account),
                w::description.eq(&input.description),
                w::status.eq(status),
                w::reason.eq(&reason),
                w::warranty_until.eq(until.map(|d| d.to_string())),
                w::version.eq(1),
                w::created_at.eq(&now),
                w::updated_at.eq(&now),
            ))
            .execute(c)?;
        let claim = find(c, me, &id)?;
        audit_change(
            c,
            me,
            "warranty_claim",
            "created",
            &id,
            to_json(&claim),
            &claim,
        )?;
        Ok(claim)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<WarrantyClaim> {
    let input: WarrantyClaimInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<WarrantyClaims>(c, me, id)?;
        etag::check(expected, before.version)?;
        let description = match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description.clone(),
        };
        let changed = diesel::update(w::table.find(id))
            .filter(w::version.eq(before.version))
            .set((
                w::description.eq(&description),
                w::version.eq(before.version + 1),
                w::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "warranty_claim", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Warranty claims on the resource kernel.
pub struct WarrantyClaims;

impl Resource for WarrantyClaims {
    type Record = WarrantyClaim;
    type Input = WarrantyClaimInput;
    type Patch = WarrantyClaimInput;
    crm_core::resource_paths!("warranty-claims");
    const ENTITY: &'static str = "warranty_claim";
    const TABLE: &'static str = "warranty_claims";
    const TAG: &'static str = "field-service";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["order_id", "product_id"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        ("order_id", "a claim is decided for its order; file another"),
        (
            "product_id",
            "a claim is decided for its product; file another",
        ),
        ("ticket_id", "a claim stays with its ticket; file another"),
    ];

    crm_core::record_meta!(WarrantyClaim);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<WarrantyClaim> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<WarrantyClaim>> {
        let mut q = crm_core::visible!(w::table.into_boxed::<MultiBackend>(), me, w::id);
        if !p.include_archived {
            q = q.filter(w::archived_at.is_null());
        }
        if let Some(v) = p.filter("status") {
            q = q.filter(w::status.eq(v.to_string()));
        }
        if let Some(v) = p.id_filter("order_id")? {
            q = q.filter(w::order_id.eq(v));
        }
        if let Some(v) = p.id_filter("ticket_id")? {
            q = q.filter(w::ticket_id.eq(v));
        }
        let rows: Vec<WarrantyClaim> = apply_sort(q, p)?
            .select(WarrantyClaim::as_select())
            .load(c)?;
        list::page(rows, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &WarrantyClaimInput,
    ) -> ApiResult<WarrantyClaim> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<WarrantyClaim> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(warranty_claims);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn the_warranty_runs_through_the_day_before_its_anniversary() {
        let ordered = day("2025-12-03");
        assert_eq!(decide(ordered, Some(12), day("2026-12-02")).0, "approved");
        let (status, reason, until) = decide(ordered, Some(12), day("2026-12-03"));
        assert_eq!((status, until), ("rejected", Some(day("2026-12-02"))));
        assert!(reason.contains("ended on 2026-12-02"));
        assert_eq!(
            decide(ordered, None, ordered).1,
            "the product has no warranty"
        );
    }
}
