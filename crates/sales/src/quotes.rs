//! Quotes: an opportunity's proposal, priced line by line from a price book (see
//! `crate::pricing`). A quote is edited while a draft, then sent, then accepted, rejected
//! or expired; accepting one creates its order. `GET /quotes/{id}/document` renders it.

use crate::common::{enum_filter, enum_from, record_change};
use crate::invoices::{currency_field, date_field, id_field};
use crate::orders;
use crate::pricing::{self, Line, LineInput, Totals};
use actix_web::{post, web, HttpRequest, HttpResponse};
use crm_core::access::{Ownership, Permission};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::params::IfMatchParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::{self, WriteProblems};
use crm_core::schema::{price_books, quotes};
use crm_core::state::AppState;
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    Draft,
    Sent,
    Accepted,
    Rejected,
    Expired,
    /// A later revision replaced it (`POST /quotes/{id}/revise` on a sent quote).
    Superseded,
}

impl QuoteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QuoteStatus::Draft => "draft",
            QuoteStatus::Sent => "sent",
            QuoteStatus::Accepted => "accepted",
            QuoteStatus::Rejected => "rejected",
            QuoteStatus::Expired => "expired",
            QuoteStatus::Superseded => "superseded",
        }
    }

    /// Where a quote may go from here.
    fn may_become(self, next: QuoteStatus) -> bool {
        use QuoteStatus::*;
        matches!(
            (self, next),
            (Draft, Sent) | (Sent, Accepted) | (Sent, Rejected) | (Sent, Expired)
        )
    }
}

#[derive(Queryable, Clone)]
pub struct QuoteRow {
    pub id: String,
    pub opportunity_id: String,
    pub account_id: String,
    pub price_book_id: String,
    pub currency: String,
    pub status: String,
    pub valid_until: Option<String>,
    pub lines: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub notes: Option<String>,
    pub order_id: Option<String>,
    pub sent_at: Option<String>,
    pub decided_at: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    pub family_id: String,
    pub revision: i32,
    pub supersedes_id: Option<String>,
}

/// A quote. Every amount is in minor units of `currency`, computed by the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quote {
    pub id: String,
    pub opportunity_id: String,
    /// The opportunity's account.
    pub account_id: String,
    pub price_book_id: String,
    pub currency: String,
    pub status: QuoteStatus,
    #[schema(format = Date)]
    pub valid_until: Option<String>,
    pub lines: Vec<Line>,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub notes: Option<String>,
    /// The order accepting the quote created.
    pub order_id: Option<String>,
    pub sent_at: Option<String>,
    /// When it was accepted, rejected or expired.
    pub decided_at: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    /// The first revision's id, shared by every revision of this proposal.
    pub family_id: String,
    /// 1 for the first quote, then one more per `POST /quotes/{id}/revise`.
    pub revision: i32,
    /// The revision this one replaced.
    pub supersedes_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<QuoteRow> for Quote {
    fn from(r: QuoteRow) -> Self {
        Quote {
            id: r.id,
            opportunity_id: r.opportunity_id,
            account_id: r.account_id,
            price_book_id: r.price_book_id,
            currency: r.currency,
            status: enum_from(&r.status, QuoteStatus::Draft),
            valid_until: r.valid_until,
            lines: common::parse_json(&r.lines),
            subtotal: r.subtotal,
            discount_total: r.discount_total,
            tax_total: r.tax_total,
            total: r.total,
            notes: r.notes,
            order_id: r.order_id,
            sent_at: r.sent_at,
            decided_at: r.decided_at,
            external_source: r.external_source,
            external_id: r.external_id,
            family_id: r.family_id,
            revision: r.revision,
            supersedes_id: r.supersedes_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of a quote a client sends. Lines given replace the stored ones and are priced
/// again; a quote changes only while it is a draft (409 after).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    #[schema(format = "uuid")]
    pub opportunity_id: Option<String>,
    #[schema(format = "uuid")]
    pub price_book_id: Option<String>,
    /// The opportunity's currency when not given.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[schema(format = Date)]
    pub valid_until: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_items = 1, max_items = 200)]
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
    sort_fields: &["created_at", "total"],
    default_sort: "-created_at",
    filters: &[
        Filter::id("opportunity_id", "For this opportunity"),
        Filter::id("account_id", "For this account"),
        Filter::id("family_id", "Every revision of one proposal"),
        Filter::of::<QuoteStatus>(
            "status",
            "draft, sent, accepted, rejected, expired or superseded",
        ),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(quotes::table, quotes::BoxedQuery<'static, MultiBackend>, {
    "created_at" => quotes::created_at,
    "total" => quotes::total,
    "id" => quotes::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<QuoteRow> {
    visibility::check_sees(me, "quote")?;
    quotes::table
        .find(id)
        .first::<QuoteRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("quote"))
}

pub(crate) fn check_book(c: &mut DbConn, id: &str) -> ApiResult<()> {
    let n: i64 = price_books::table
        .filter(price_books::id.eq(id))
        .filter(price_books::archived_at.is_null())
        .count()
        .get_result(c)?;
    if n == 0 {
        return Err(common::invalid(
            "price_book_id",
            "reference",
            "no such price book",
        ));
    }
    Ok(())
}

pub fn create_quote(conn: &mut DbConn, me: &Principal, input: &QuoteInput) -> ApiResult<Quote> {
    input.validate()?;
    let mut errors = vec![];
    let opp = id_field(&mut errors, "opportunity_id", &input.opportunity_id);
    let book = id_field(&mut errors, "price_book_id", &input.price_book_id);
    let valid_until = date_field(&mut errors, "valid_until", &input.valid_until);
    currency_field(&mut errors, &input.currency);
    for (f, missing) in [
        ("opportunity_id", opp.is_none()),
        ("price_book_id", book.is_none()),
        ("lines", input.lines.is_none()),
    ] {
        if missing && !errors.iter().any(|e| e.field == f) {
            errors.push(FieldError::new(f, "required", "is required"));
        }
    }
    let (Some(opp), Some(book), Some(lines), true) = (opp, book, &input.lines, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let deal = crate::opportunities::find(c, me, &opp)
            .map_err(|_| common::invalid("opportunity_id", "reference", "no such opportunity"))?;
        check_book(c, &book)?;
        let currency = input.currency.clone().unwrap_or(deal.currency.clone());
        let (priced, t) = pricing::price_lines(c, Some(&book), &currency, lines)?;
        let id = ids::new_id();
        let now = ids::now();
        diesel::insert_into(quotes::table)
            .values((
                quotes::id.eq(&id),
                quotes::opportunity_id.eq(&opp),
                quotes::account_id.eq(&deal.account_id),
                quotes::price_book_id.eq(&book),
                quotes::currency.eq(&currency),
                quotes::status.eq("draft"),
                quotes::valid_until.eq(&valid_until),
                quotes::lines.eq(common::json_text(&priced)),
                quotes::subtotal.eq(t.subtotal),
                quotes::discount_total.eq(t.discount_total),
                quotes::tax_total.eq(t.tax_total),
                quotes::total.eq(t.total),
                quotes::notes.eq(&input.notes),
                quotes::external_source.eq(&source),
                quotes::external_id.eq(&external),
                quotes::family_id.eq(&id),
                quotes::revision.eq(1),
                quotes::version.eq(1),
                quotes::created_at.eq(&now),
                quotes::updated_at.eq(&now),
            ))
            .execute(c)?;
        let q: Quote = find(c, me, &id)?.into();
        record_change(c, me, "quote", "created", &id, common::to_json(&q), &q)?;
        Ok(q)
    })
}

pub fn update_quote(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Quote> {
    let input: QuoteInput = objects::input(raw)?;
    input.validate()?;
    let mut errors = vec![];
    let book = id_field(&mut errors, "price_book_id", &input.price_book_id);
    let valid_until = date_field(&mut errors, "valid_until", &input.valid_until);
    currency_field(&mut errors, &input.currency);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let cleared = |f: &str| raw.get(f).is_some_and(|v| v.is_null());
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Quotes>(c, me, id)?;
        etag::check(expected, before.version)?;
        if before.status != QuoteStatus::Draft {
            return Err(ApiError::Conflict(format!(
                "the quote is {}; only a draft changes",
                before.status.as_str()
            )));
        }
        if input
            .opportunity_id
            .as_deref()
            .is_some_and(|o| *o != before.opportunity_id)
        {
            return Err(common::invalid(
                "opportunity_id",
                "create_only",
                "a quote stays with its opportunity",
            ));
        }
        let book = book.unwrap_or(before.price_book_id.clone());
        check_book(c, &book)?;
        let currency = input.currency.clone().unwrap_or(before.currency.clone());
        let repriced =
            input.lines.is_some() || book != before.price_book_id || currency != before.currency;
        let (lines, t) = match (&input.lines, repriced) {
            (Some(lines), _) => pricing::price_lines(c, Some(&book), &currency, lines)?,
            (None, true) => {
                return Err(common::invalid(
                    "lines",
                    "required",
                    "send the lines again to price them in the new book or currency",
                ))
            }
            (None, false) => (
                before.lines.clone(),
                Totals {
                    subtotal: before.subtotal,
                    discount_total: before.discount_total,
                    tax_total: before.tax_total,
                    total: before.total,
                },
            ),
        };
        let pick = |f: &str, new: &Option<String>, old: &Option<String>| {
            if cleared(f) {
                None
            } else {
                new.clone().or(old.clone())
            }
        };
        let (source, external) = objects::external_key_after(
            raw,
            (before.external_source.clone(), before.external_id.clone()),
        )?;
        let changed = diesel::update(quotes::table.find(id))
            .filter(quotes::version.eq(before.version))
            .set((
                quotes::price_book_id.eq(&book),
                quotes::currency.eq(&currency),
                quotes::valid_until.eq(pick("valid_until", &valid_until, &before.valid_until)),
                quotes::lines.eq(common::json_text(&lines)),
                quotes::subtotal.eq(t.subtotal),
                quotes::discount_total.eq(t.discount_total),
                quotes::tax_total.eq(t.tax_total),
                quotes::total.eq(t.total),
                quotes::notes.eq(pick("notes", &input.notes, &before.notes)),
                quotes::external_source.eq(&source),
                quotes::external_id.eq(&external),
                quotes::version.eq(before.version + 1),
                quotes::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Quote = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "quote", "updated", id, changes, &after)?;
        Ok(after)
    })
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Quote>> {
    let mut q = crm_core::visible!(quotes::table.into_boxed::<MultiBackend>(), me, quotes::id);
    if !p.include_archived {
        q = q.filter(quotes::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("opportunity_id")? {
        q = q.filter(quotes::opportunity_id.eq(v));
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(quotes::account_id.eq(v));
    }
    if let Some(v) = p.id_filter("family_id")? {
        q = q.filter(quotes::family_id.eq(v));
    }
    if let Some(v) = enum_filter::<QuoteStatus>(p, "status")? {
        q = q.filter(quotes::status.eq(v.as_str()));
    }
    let rows: Vec<QuoteRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Quote::from).collect(), p)
}

/// A quote's next status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteDecision {
    /// `sent` (from draft); `accepted`, `rejected` or `expired` (from sent).
    pub status: QuoteStatus,
}

pub fn decide(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    next: QuoteStatus,
) -> ApiResult<Quote> {
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Quotes>(c, me, id)?;
        etag::check(expected, before.version)?;
        if !before.status.may_become(next) {
            return Err(ApiError::Conflict(format!(
                "a {} quote cannot become {}",
                before.status.as_str(),
                next.as_str()
            )));
        }
        let now = ids::now();
        let order = if next == QuoteStatus::Accepted {
            Some(orders::from_quote(c, me, &before)?)
        } else {
            None
        };
        let changed = diesel::update(quotes::table.find(id))
            .filter(quotes::version.eq(before.version))
            .set((
                quotes::status.eq(next.as_str()),
                quotes::sent_at.eq(if next == QuoteStatus::Sent {
                    Some(now.clone())
                } else {
                    before.sent_at.clone()
                }),
                quotes::decided_at.eq((next != QuoteStatus::Sent).then_some(&now)),
                quotes::order_id.eq(order.as_ref().map(|o| &o.id)),
                quotes::version.eq(before.version + 1),
                quotes::updated_at.eq(&now),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Quote = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "quote", next.as_str(), id, changes, &after)?;
        Ok(after)
    })
}

/// Send, accept, reject or expire a quote.
///
/// A draft is `sent`; a sent quote is `accepted`, `rejected` or `expired`; any other move is a
/// 409. Accepting creates the order (its lines and totals as quoted) in the same transaction and
/// records it as `order_id`. Events `quote.sent`, `quote.accepted`, … Send `If-Match` to refuse
/// the change (412) if the quote changed since you read it.
#[utoipa::path(post, path = "/api/v1/quotes/{id}/status", tag = "quotes",
    request_body = QuoteDecision,
    params(("id" = String, Path, format = "uuid", description = "Quote id"), IfMatchParams),
    responses((status = 200, description = "The quote in its new status", body = Quote, headers(("ETag" = String))), WriteProblems))]
#[post("/quotes/{id}/status")]
pub async fn set_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesWrite)?;
    let id = path_id(&id)?;
    let expected = crm_core::extract::if_match(&req)?;
    let decision: QuoteDecision = objects::input(&body.into_inner())?;
    let q = state
        .db(move |c| decide(c, &me, &id, expected, decision.status))
        .await?;
    Ok(respond::with_etag(q.version, &q))
}

/// Why a quote can't be revised, if it can't.
fn revisable(q: &Quote, later: Option<(String, i32)>) -> ApiResult<()> {
    if let Some((id, n)) = later {
        return Err(ApiError::Conflict(format!(
            "revision {n} ({id}) already replaces this one; revise the latest"
        )));
    }
    match q.status {
        QuoteStatus::Draft => Err(ApiError::Conflict(
            "a draft is edited in place (PATCH); revise a quote once it was sent".into(),
        )),
        QuoteStatus::Accepted => Err(ApiError::Conflict(format!(
            "the quote was accepted (order {}); it is final",
            q.order_id.as_deref().unwrap_or("?")
        ))),
        _ => Ok(()),
    }
}

/// The newest revision after `q` in its family, if any.
fn later_revision(c: &mut DbConn, q: &Quote) -> ApiResult<Option<(String, i32)>> {
    Ok(quotes::table
        .filter(quotes::family_id.eq(&q.family_id))
        .filter(quotes::revision.gt(q.revision))
        .order(quotes::revision.desc())
        .select((quotes::id, quotes::revision))
        .first(c)
        .optional()?)
}

/// The draft that replaces `before`: its lines and prices as quoted, the next number.
fn insert_revision(c: &mut DbConn, before: &Quote) -> ApiResult<String> {
    let id = ids::new_id();
    let now = ids::now();
    let inserted = diesel::insert_into(quotes::table)
        .values((
            quotes::id.eq(&id),
            quotes::opportunity_id.eq(&before.opportunity_id),
            quotes::account_id.eq(&before.account_id),
            quotes::price_book_id.eq(&before.price_book_id),
            quotes::currency.eq(&before.currency),
            quotes::status.eq("draft"),
            quotes::valid_until.eq(&before.valid_until),
            quotes::lines.eq(common::json_text(&before.lines)),
            quotes::subtotal.eq(before.subtotal),
            quotes::discount_total.eq(before.discount_total),
            quotes::tax_total.eq(before.tax_total),
            quotes::total.eq(before.total),
            quotes::notes.eq(&before.notes),
            quotes::family_id.eq(&before.family_id),
            quotes::revision.eq(before.revision + 1),
            quotes::supersedes_id.eq(&before.id),
            quotes::version.eq(1),
            quotes::created_at.eq(&now),
            quotes::updated_at.eq(&now),
        ))
        .execute(c);
    match inserted {
        Ok(_) => Ok(id),
        // Another revision of the same quote committed first.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(ApiError::Conflict(format!(
            "revision {} of this quote was just created; revise the latest",
            before.revision + 1
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Revise a sent, rejected or expired quote: a new draft with the next revision number.
pub fn revise(c: &mut DbConn, me: &Principal, id: &str, expected: Option<i32>) -> ApiResult<Quote> {
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Quotes>(c, me, id)?;
        etag::check(expected, before.version)?;
        revisable(&before, later_revision(c, &before)?)?;
        let new_id = insert_revision(c, &before)?;
        if before.status == QuoteStatus::Sent {
            let changed = diesel::update(quotes::table.find(id))
                .filter(quotes::version.eq(before.version))
                .set((
                    quotes::status.eq(QuoteStatus::Superseded.as_str()),
                    quotes::decided_at.eq(ids::now()),
                    quotes::version.eq(before.version + 1),
                    quotes::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
            resource::changed_one(changed)?;
            let old: Quote = find(c, me, id)?.into();
            let changes = audit::diff(&common::to_json(&before), &common::to_json(&old), &[]);
            record_change(c, me, "quote", "superseded", id, changes, &old)?;
        }
        let q: Quote = find(c, me, &new_id)?.into();
        record_change(c, me, "quote", "revised", &new_id, common::to_json(&q), &q)?;
        Ok(q)
    })
}

/// Revise a quote.
///
/// Creates the next revision of a sent, rejected or expired quote as a new draft with the same
/// lines, prices and terms (edit it with PATCH, then send it); the revisions share `family_id`
/// (`GET /quotes?family_id=` lists them) and the new one names the one it replaces in
/// `supersedes_id`. A sent quote becomes `superseded`, so only the latest revision can be
/// accepted. A draft is edited in place, an accepted quote is final, and only the latest
/// revision is revised: each of those is a 409, as is losing a race to revise the same quote.
/// Events `quote.revised` (the new one) and `quote.superseded`.
#[utoipa::path(post, path = "/api/v1/quotes/{id}/revise", tag = "quotes",
    params(("id" = String, Path, format = "uuid", description = "Quote id"), IfMatchParams),
    responses((status = 201, description = "The new revision, a draft", body = Quote,
        headers(("ETag" = String), ("Location" = String))), WriteProblems))]
#[post("/quotes/{id}/revise")]
pub async fn revise_quote(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesWrite)?;
    let id = path_id(&id)?;
    let expected = crm_core::extract::if_match(&req)?;
    let q = state.db(move |c| revise(c, &me, &id, expected)).await?;
    Ok(respond::created(
        format!("/api/v1/quotes/{}", q.id),
        q.version,
        &q,
    ))
}

/// Quotes on the resource kernel.
pub struct Quotes;

impl Resource for Quotes {
    type Record = Quote;
    type Input = QuoteInput;
    type Patch = QuoteInput;
    crm_core::resource_paths!("quotes");
    const ENTITY: &'static str = "quote";
    const TABLE: &'static str = "quotes";
    const TAG: &'static str = "quotes";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesWrite;
    const EDITS: Ownership = Ownership::FollowsParent("opportunity", Permission::SalesManage);
    const PARENTS: &'static [resource::Parent] = &[crate::opportunities::PARENT];
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["opportunity_id", "price_book_id", "lines"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] =
        &[("opportunity_id", "a quote stays with its opportunity")];

    crm_core::record_meta!(Quote);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Quote> {
        find(c, me, id).map(Quote::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Quote>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &QuoteInput) -> ApiResult<Quote> {
        create_quote(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Quote> {
        update_quote(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(quotes);
}

/// Quotes as an integrable object.
pub const OBJECT: ObjectKind =
    resource::object::<Quotes>(crm_core::find_by_external!(quotes), None);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_move_forward_only() {
        use QuoteStatus::*;
        assert!(Draft.may_become(Sent) && Sent.may_become(Accepted) && Sent.may_become(Expired));
        assert!(
            !Draft.may_become(Accepted)
                && !Accepted.may_become(Rejected)
                && !Sent.may_become(Draft)
        );
    }
}
