//! What an account owes, per currency: the unpaid part of its open and overdue invoices
//! and the payments not applied to any invoice yet. Summed by the database, grouped by
//! currency; archived and void invoices and archived payments do not count.

use crate::invoices::today;
use actix_web::{get, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::DbConn;
use crm_core::error::ApiResult;
use crm_core::extract::path_id;
use crm_core::respond::ReadProblems;
use crm_core::schema::{invoices, payments};
use crm_core::state::AppState;
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An account's balance in one currency. Amounts are in minor units of `currency`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrencyBalance {
    pub currency: String,
    /// Still owed on open and overdue invoices: the sum of `amount_total - amount_paid`.
    pub open_balance: i64,
    /// The part of `open_balance` that is overdue.
    pub overdue_amount: i64,
    /// Invoices not paid yet, overdue ones included.
    pub invoices_open: i64,
    /// Invoices open and past their due date.
    pub invoices_overdue: i64,
    /// Payments received but not applied to any invoice.
    pub unapplied_payments: i64,
}

impl CurrencyBalance {
    fn zero(currency: String) -> Self {
        CurrencyBalance {
            currency,
            open_balance: 0,
            overdue_amount: 0,
            invoices_open: 0,
            invoices_overdue: 0,
            unapplied_payments: 0,
        }
    }
}

/// What an account owes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountBalance {
    pub account_id: String,
    /// The day (UTC) overdue invoices are judged against.
    #[schema(format = Date)]
    pub as_of: String,
    /// One entry per currency the account has open invoices or unapplied payments in,
    /// by currency code; empty when it owes nothing.
    pub balances: Vec<CurrencyBalance>,
}

/// The balance of an account the caller can see (404 otherwise).
pub fn account_balance(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AccountBalance> {
    crm_customers::accounts::find(conn, me, id)?;
    let today = today();
    let unpaid = "invoices.amount_total - invoices.amount_paid";
    let owed: Vec<(String, i64, i64, i64, i64)> = invoices::table
        .filter(invoices::account_id.eq(id))
        .filter(invoices::archived_at.is_null())
        .filter(invoices::status.eq("open"))
        .group_by(invoices::currency)
        .select((
            invoices::currency,
            sql::<BigInt>(&format!("CAST(SUM({unpaid}) AS BIGINT)")),
            sql::<BigInt>("CAST(SUM(CASE WHEN invoices.due_on < ")
                .bind::<Text, _>(today.clone())
                .sql(&format!(" THEN {unpaid} ELSE 0 END) AS BIGINT)")),
            count_star(),
            sql::<BigInt>("CAST(SUM(CASE WHEN invoices.due_on < ")
                .bind::<Text, _>(today.clone())
                .sql(" THEN 1 ELSE 0 END) AS BIGINT)"),
        ))
        .load(conn)?;
    let unapplied: Vec<(String, i64)> = payments::table
        .filter(payments::account_id.eq(id))
        .filter(payments::invoice_id.is_null())
        .filter(payments::archived_at.is_null())
        .group_by(payments::currency)
        .select((
            payments::currency,
            sql::<BigInt>("CAST(SUM(payments.amount) AS BIGINT)"),
        ))
        .load(conn)?;
    let mut by_currency: BTreeMap<String, CurrencyBalance> = BTreeMap::new();
    for (currency, open, overdue, n_open, n_overdue) in owed {
        let b = by_currency
            .entry(currency.clone())
            .or_insert_with(|| CurrencyBalance::zero(currency));
        b.open_balance = open;
        b.overdue_amount = overdue;
        b.invoices_open = n_open;
        b.invoices_overdue = n_overdue;
    }
    for (currency, amount) in unapplied {
        by_currency
            .entry(currency.clone())
            .or_insert_with(|| CurrencyBalance::zero(currency))
            .unapplied_payments = amount;
    }
    Ok(AccountBalance {
        account_id: id.to_string(),
        as_of: today,
        balances: by_currency.into_values().collect(),
    })
}

/// Get what an account owes, per currency.
///
/// For each currency: the unpaid amount of open invoices (`open_balance`), the part past due
/// (`overdue_amount`, judged against `as_of`, today in UTC), how many invoices are open and
/// overdue, and the payments not applied to any invoice. Amounts are in minor units; archived and
/// void invoices and archived payments do not count, and `balances` is empty when nothing is owed.
/// Needs `CustomersRead`; partners get 404.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/balance", tag = "invoices",
    params(("id" = String, Path, format = "uuid", description = "Account id")),
    responses((status = 200, description = "What the account owes, per currency", body = AccountBalance), ReadProblems))]
#[get("/accounts/{id}/balance")]
pub async fn get_balance(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::CustomersRead)?;
    let id = path_id(&id)?;
    let balance = state.db(move |c| account_balance(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(balance))
}
