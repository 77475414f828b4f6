//! Quotas: what a rep is expected to close in a period (`2027`, `2027-Q1` or `2027-01`), in
//! one currency. Forecasts report attainment against them and commission statements pay
//! their tiers and accelerators by them. One active quota per user, period and currency.

use crate::common::record_change;
use crate::invoices::currency_field;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::quotas;
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// A quota.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = quotas)]
pub struct Quota {
    pub id: String,
    pub user_id: String,
    /// `2027`, `2027-Q1` or `2027-01`.
    pub period: String,
    pub currency: String,
    /// In minor units.
    pub amount: i64,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A quota as sent. `user_id`, `period` and `currency` are set on create only.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaInput {
    #[schema(format = "uuid")]
    pub user_id: Option<String>,
    #[schema(pattern = "^[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$")]
    pub period: Option<String>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[validate(range(min = 0_i64, max = 1_000_000_000_000_000_i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub amount: Option<i64>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["period", "created_at"],
    default_sort: "period",
    filters: &[
        Filter::id("user_id", "This user's quotas"),
        Filter::text("period", "2027, 2027-Q1 or 2027-01"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(quotas::table, quotas::BoxedQuery<'static, MultiBackend>, {
    "period" => quotas::period,
    "created_at" => quotas::created_at,
    "id" => quotas::id,
});

pub fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Quota> {
    visibility::check_sees(me, "quota")?;
    quotas::table
        .find(id)
        .select(Quota::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("quota"))
}

/// The active quota of a user for a period and currency.
pub fn of(c: &mut DbConn, user: &str, period: &str, currency: &str) -> ApiResult<Option<i64>> {
    Ok(quotas::table
        .filter(quotas::user_id.eq(user))
        .filter(quotas::period.eq(period))
        .filter(quotas::currency.eq(currency))
        .filter(quotas::archived_at.is_null())
        .select(quotas::amount)
        .first(c)
        .optional()?)
}

/// Every active quota of a period: (user, currency) → amount.
pub fn of_period(c: &mut DbConn, period: &str) -> ApiResult<Vec<(String, String, i64)>> {
    Ok(quotas::table
        .filter(quotas::period.eq(period))
        .filter(quotas::archived_at.is_null())
        .select((quotas::user_id, quotas::currency, quotas::amount))
        .load(c)?)
}

fn period_field(errors: &mut Vec<FieldError>, raw: &Option<String>) {
    if raw
        .as_deref()
        .is_some_and(|p| crate::forecasts::period_bounds(p).is_err())
    {
        errors.push(FieldError::new(
            "period",
            "period",
            "must be 2027, 2027-Q1 or 2027-01",
        ));
    }
}

fn duplicate(q: &Quota) -> ApiError {
    ApiError::Conflict(format!(
        "the user already has an active {} quota for {}",
        q.currency, q.period
    ))
}

/// The 409 for a quota another active one already covers. The database holds the rule (the
/// partial unique index `quotas_active_key`, which decides between two writes at once); this
/// check only words the common case.
fn refuse_duplicate(c: &mut DbConn, q: &Quota) -> ApiResult<()> {
    let others: i64 = quotas::table
        .filter(quotas::user_id.eq(&q.user_id))
        .filter(quotas::period.eq(&q.period))
        .filter(quotas::currency.eq(&q.currency))
        .filter(quotas::archived_at.is_null())
        .filter(quotas::id.ne(&q.id))
        .count()
        .get_result(c)?;
    if others > 0 {
        return Err(duplicate(q));
    }
    Ok(())
}

/// A write the unique index refused is the same 409 as the check's.
fn unless_duplicate(q: &Quota, e: diesel::result::Error) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => duplicate(q),
        other => other.into(),
    }
}

pub fn create_quota(c: &mut DbConn, me: &Principal, input: &QuotaInput) -> ApiResult<Quota> {
    input.validate()?;
    let mut errors = vec![];
    period_field(&mut errors, &input.period);
    currency_field(&mut errors, &input.currency);
    let user = crate::invoices::id_field(&mut errors, "user_id", &input.user_id);
    for (f, missing) in [
        ("user_id", input.user_id.is_none()),
        ("period", input.period.is_none()),
        ("currency", input.currency.is_none()),
        ("amount", input.amount.is_none()),
    ] {
        if missing {
            errors.push(FieldError::new(f, "required", "is required"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let user = user.unwrap_or_default();
        common::check_active_user(c, &user, "user_id")?;
        let now = ids::now();
        let q = Quota {
            id: ids::new_id(),
            user_id: user,
            period: input.period.clone().unwrap_or_default(),
            currency: input.currency.clone().unwrap_or_default(),
            amount: input.amount.unwrap_or(0),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            archived_at: None,
        };
        refuse_duplicate(c, &q)?;
        diesel::insert_into(quotas::table)
            .values((
                quotas::id.eq(&q.id),
                quotas::user_id.eq(&q.user_id),
                quotas::period.eq(&q.period),
                quotas::currency.eq(&q.currency),
                quotas::amount.eq(q.amount),
                quotas::version.eq(1),
                quotas::created_at.eq(&q.created_at),
                quotas::updated_at.eq(&q.updated_at),
            ))
            .execute(c)
            .map_err(|e| unless_duplicate(&q, e))?;
        record_change(c, me, "quota", "created", &q.id, common::to_json(&q), &q)?;
        Ok(q)
    })
}

pub fn update_quota(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Quota> {
    let input: QuotaInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Quotas>(c, me, id)?;
        etag::check(expected, before.version)?;
        let amount = input.amount.unwrap_or(before.amount);
        let changed = diesel::update(quotas::table.find(id))
            .filter(quotas::version.eq(before.version))
            .set((
                quotas::amount.eq(amount),
                quotas::version.eq(before.version + 1),
                quotas::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "quota", "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Quota>> {
    let mut q = crm_core::visible!(quotas::table.into_boxed::<MultiBackend>(), me, quotas::id);
    if !p.include_archived {
        q = q.filter(quotas::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("user_id")? {
        q = q.filter(quotas::user_id.eq(v));
    }
    if let Some(v) = p.filter("period") {
        q = q.filter(quotas::period.eq(v.to_string()));
    }
    let rows: Vec<Quota> = apply_sort(q, p)?.select(Quota::as_select()).load(c)?;
    list::page(rows, p)
}

/// Quotas on the resource kernel: sales roles read them; managers set them.
pub struct Quotas;

impl Resource for Quotas {
    type Record = Quota;
    type Input = QuotaInput;
    type Patch = QuotaInput;
    crm_core::resource_paths!("quotas");
    const ENTITY: &'static str = "quota";
    const TABLE: &'static str = "quotas";
    const TAG: &'static str = "commissions";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["user_id", "period", "currency", "amount"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        (
            "user_id",
            "a quota stays with its user; archive it and create another",
        ),
        (
            "period",
            "a quota stays in its period; archive it and create another",
        ),
        (
            "currency",
            "a quota keeps its currency; archive it and create another",
        ),
    ];

    crm_core::record_meta!(Quota);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Quota> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Quota>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &QuotaInput) -> ApiResult<Quota> {
        create_quota(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Quota> {
        update_quota(c, me, id, expected, patch)
    }

    /// Restoring a quota while another covers its user, period and currency is a 409.
    fn before_archive(
        c: &mut DbConn,
        _me: &Principal,
        q: &Quota,
        archiving: bool,
    ) -> ApiResult<()> {
        if archiving {
            Ok(())
        } else {
            refuse_duplicate(c, q)
        }
    }

    crm_core::archive_stamp!(quotas);
}
