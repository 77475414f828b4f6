//! Line pricing for quotes and orders, computed by the server in minor units.
//!
//! Per line: `gross = quantity × unit_price`; the discount is `discount_amount`, or
//! `gross × discount_percent / 100` rounded half up to the minor unit; `net = gross −
//! discount`; `tax = net × tax_rate / 100` rounded half up; `total = net + tax`. The
//! document's totals are the sums of its lines. Percentages take at most two decimals. A
//! unit price not given comes from the price book's entry for the product in the
//! document's currency; a bundle without an entry of its own is priced from its
//! components' entries (component quantity × component price).

use crate::invoices::MAX_AMOUNT;
use crm_core::db::DbConn;
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::ids;
use crm_core::schema::{price_book_entries as entries, product_components as parts, products};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// One line of a quote or an order, as a client sends it.
#[derive(Debug, Clone, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    #[schema(format = "uuid")]
    pub product_id: String,
    #[validate(range(min = 1, max = 1_000_000))]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
    /// Overrides the price book's price, in minor units.
    #[validate(range(min = 0, max = 1_000_000_000_000_000_i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub unit_price: Option<i64>,
    /// 0–100, at most two decimals. Not with `discount_amount`.
    #[validate(range(min = 0.0, max = 100.0))]
    #[schema(minimum = 0, maximum = 100)]
    pub discount_percent: Option<f64>,
    /// Off the line's gross amount, in minor units. Not with `discount_percent`.
    #[validate(range(min = 0, max = 1_000_000_000_000_000_i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub discount_amount: Option<i64>,
    /// Tax on the net amount, 0–100, at most two decimals.
    #[validate(range(min = 0.0, max = 100.0))]
    #[schema(minimum = 0, maximum = 100)]
    pub tax_rate: Option<f64>,
}

/// A priced line.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct Line {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub discount_percent: Option<f64>,
    pub tax_rate: f64,
    /// `quantity × unit_price`.
    pub gross: i64,
    pub discount: i64,
    /// `gross − discount`.
    pub net: i64,
    pub tax: i64,
    /// `net + tax`.
    pub total: i64,
}

/// The sums of a document's lines.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub total: i64,
}

/// A percentage in hundredths of a percent (`12.5` → 1250), if it has at most two decimals.
pub fn basis_points(p: f64) -> Option<i64> {
    let scaled = p * 100.0;
    let rounded = scaled.round();
    ((scaled - rounded).abs() < 1e-6 && (0.0..=10_000.0).contains(&rounded))
        .then_some(rounded as i64)
}

/// `amount × bp / 10 000`, rounded half up (amounts are never negative).
pub fn share(amount: i128, bp: i64) -> i128 {
    (amount * i128::from(bp) + 5_000) / 10_000
}

/// Price one line whose unit price is known. Errors name `lines[i].<field>`.
pub fn price_line(
    i: usize,
    input: &LineInput,
    unit_price: i64,
    sku: &str,
    name: &str,
) -> ApiResult<Line> {
    let at = |f: &str| format!("lines[{i}].{f}");
    let mut errors = vec![];
    if input.discount_percent.is_some() && input.discount_amount.is_some() {
        errors.push(FieldError::new(
            &at("discount_amount"),
            "exclusive",
            "give a discount percent or an amount, not both",
        ));
    }
    let percent = |field: &str, v: Option<f64>, errors: &mut Vec<FieldError>| match v {
        None => 0,
        Some(p) => basis_points(p).unwrap_or_else(|| {
            errors.push(FieldError::new(
                &at(field),
                "percent",
                "0 to 100, with at most two decimals",
            ));
            0
        }),
    };
    let discount_bp = percent("discount_percent", input.discount_percent, &mut errors);
    let tax_bp = percent("tax_rate", input.tax_rate, &mut errors);
    let gross = i128::from(input.quantity) * i128::from(unit_price);
    let discount = match input.discount_amount {
        Some(d) => i128::from(d),
        None => share(gross, discount_bp),
    };
    if discount > gross {
        errors.push(FieldError::new(
            &at("discount_amount"),
            "range",
            "more than the line's gross amount",
        ));
    }
    let net = (gross - discount).max(0);
    let tax = share(net, tax_bp);
    let total = net + tax;
    if total > i128::from(MAX_AMOUNT) {
        errors.push(FieldError::new(
            &at("quantity"),
            "range",
            "the line comes to more than 10^15",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Each fits: all are at most `total` (≤ 10^15) or `gross` ≤ total + discount ≤ 2 × 10^15.
    let small = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(Line {
        product_id: input.product_id.clone(),
        sku: sku.to_string(),
        name: name.to_string(),
        quantity: input.quantity,
        unit_price,
        discount_percent: input.discount_percent,
        tax_rate: input.tax_rate.unwrap_or(0.0),
        gross: small(gross),
        discount: small(discount),
        net: small(net),
        tax: small(tax),
        total: small(total),
    })
}

pub fn totals(lines: &[Line]) -> ApiResult<Totals> {
    let sum = |f: fn(&Line) -> i64| lines.iter().map(|l| i128::from(f(l))).sum::<i128>();
    let t = Totals {
        subtotal: i64::try_from(sum(|l| l.gross)).unwrap_or(i64::MAX),
        discount_total: i64::try_from(sum(|l| l.discount)).unwrap_or(i64::MAX),
        tax_total: i64::try_from(sum(|l| l.tax)).unwrap_or(i64::MAX),
        total: i64::try_from(sum(|l| l.total)).unwrap_or(i64::MAX),
    };
    if t.total > MAX_AMOUNT {
        return Err(crm_customers::common::invalid(
            "lines",
            "range",
            "the document comes to more than 10^15",
        ));
    }
    Ok(t)
}

/// The price book's price of a product in a currency, or its bundle price from its
/// components' prices.
fn book_price(c: &mut DbConn, book: &str, product: &str, currency: &str) -> ApiResult<Option<i64>> {
    let own: Option<i64> = entries::table
        .filter(entries::price_book_id.eq(book))
        .filter(entries::product_id.eq(product))
        .filter(entries::currency.eq(currency))
        .select(entries::unit_price)
        .first(c)
        .optional()?;
    if own.is_some() {
        return Ok(own);
    }
    let components: Vec<(String, i32)> = parts::table
        .filter(parts::bundle_id.eq(product))
        .select((parts::component_id, parts::quantity))
        .load(c)?;
    if components.is_empty() {
        return Ok(None);
    }
    let mut sum: i64 = 0;
    for (component, qty) in components {
        let Some(price) = book_price(c, book, &component, currency)? else {
            return Ok(None);
        };
        sum = sum.saturating_add(price.saturating_mul(i64::from(qty)));
    }
    Ok(Some(sum))
}

/// Price every line: the given unit price, else the book's (422 when the product has none
/// in the currency).
pub fn price_lines(
    c: &mut DbConn,
    book: Option<&str>,
    currency: &str,
    lines: &[LineInput],
) -> ApiResult<(Vec<Line>, Totals)> {
    let mut out = vec![];
    for (i, input) in lines.iter().enumerate() {
        input
            .validate()
            .map_err(|e| ApiError::from(e).prefixed(&format!("lines[{i}]")))?;
        let at = format!("lines[{i}].product_id");
        let product = ids::parse_id(&input.product_id)
            .ok_or_else(|| crm_customers::common::invalid(&at, "invalid", "must be a UUID"))?;
        let (sku, name): (String, String) = products::table
            .find(&product)
            .filter(products::archived_at.is_null())
            .select((products::sku, products::name))
            .first(c)
            .optional()?
            .ok_or_else(|| crm_customers::common::invalid(&at, "reference", "no such product"))?;
        let unit_price = match (input.unit_price, book) {
            (Some(p), _) => p,
            (None, Some(book)) => book_price(c, book, &product, currency)?.ok_or_else(|| {
                crm_customers::common::invalid(
                    &at,
                    "price",
                    &format!("{sku} has no {currency} price in the price book"),
                )
            })?,
            (None, None) => {
                return Err(crm_customers::common::invalid(
                    &format!("lines[{i}].unit_price"),
                    "required",
                    "give a unit price, or a price book",
                ))
            }
        };
        out.push(price_line(i, input, unit_price, &sku, &name)?);
    }
    let totals = totals(&out)?;
    Ok((out, totals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        quantity: i64,
        discount_percent: Option<f64>,
        discount_amount: Option<i64>,
        tax_rate: Option<f64>,
    ) -> LineInput {
        LineInput {
            product_id: "p".into(),
            quantity,
            unit_price: None,
            discount_percent,
            discount_amount,
            tax_rate,
        }
    }

    #[test]
    fn lines_are_priced_to_the_minor_unit_with_half_up_rounding() {
        // 3 × 19.99 = 59.97; 12.5% off = 7.49625 → 7.50; net 52.47; 20% tax = 10.494 → 10.49.
        let l = price_line(0, &line(3, Some(12.5), None, Some(20.0)), 1999, "S", "N").ok();
        let got = l.map(|l| (l.gross, l.discount, l.net, l.tax, l.total));
        assert_eq!(got, Some((5997, 750, 5247, 1049, 6296)));
        // A discount amount instead; 7% tax of 950 = 66.5 → 67 (half up).
        let l = price_line(0, &line(1, None, Some(50), Some(7.0)), 1000, "S", "N").ok();
        assert_eq!(l.map(|l| (l.net, l.tax, l.total)), Some((950, 67, 1017)));
    }

    #[test]
    fn impossible_lines_are_refused() {
        assert!(price_line(0, &line(1, Some(10.0), Some(5), None), 100, "S", "N").is_err());
        assert!(price_line(0, &line(1, None, Some(101), None), 100, "S", "N").is_err());
        assert!(price_line(0, &line(1, Some(10.001), None, None), 100, "S", "N").is_err());
        assert!(price_line(0, &line(1_000_000, None, None, None), MAX_AMOUNT, "S", "N").is_err());
        assert_eq!(basis_points(12.34), Some(1234));
        assert_eq!(basis_points(100.0), Some(10_000));
    }
}
