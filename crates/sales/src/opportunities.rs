//! Opportunities: deals with an account, moving through the stages of a pipeline. A deal
//! is sold by its owner, optionally with a team whose revenue splits sum to 100%, and
//! optionally through a partner account. It changes stage only through
//! `POST /opportunities/{id}/stage`, which enforces the stage's exit criteria and keeps the
//! stage history; its status (open, won, lost) follows the stage's forecast category.

use crate::common::{enum_filter, enum_text, record_change};
use crate::invoices::{currency_field, date_field, date_filter, id_field};
use crate::pipelines::{self, ForecastCategory, Pipeline};
use crate::pricing::{self, Line, LineInput};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use crm_core::access::{Ownership, Permission};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::objects::{self, ObjectKind};
use crm_core::params::IfMatchParams;
use crm_core::resource::{self, Resource};
use crm_core::respond::{self, ReadProblems, WriteProblems};
use crm_core::schema::{opportunities, opportunity_stage_history as history};
use crm_core::state::AppState;
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// A deal's outcome so far.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityStatus {
    Open,
    Won,
    Lost,
}

/// Someone selling the deal with the owner, and their share of its revenue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    #[schema(format = "uuid")]
    pub user_id: String,
    /// `owner`, `sales_engineer`, `executive_sponsor`, … as the team calls it.
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub role: String,
    /// Percent of the revenue credited to this member; a team's splits sum to 100.
    #[validate(range(min = 0, max = 100))]
    #[schema(minimum = 0, maximum = 100)]
    pub split_percent: i32,
}

#[derive(Queryable, Clone)]
pub struct OpportunityRow {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub primary_contact_id: Option<String>,
    pub pipeline_id: String,
    pub stage: String,
    pub stage_entered_at: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub close_date: Option<String>,
    pub owner_id: Option<String>,
    pub partner_account_id: Option<String>,
    pub next_step: Option<String>,
    pub competitors: String,
    pub team: String,
    pub close_reason: Option<String>,
    pub closed_at: Option<String>,
    pub lead_id: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    pub lines: String,
    pub price_book_id: Option<String>,
}

/// An opportunity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Opportunity {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub primary_contact_id: Option<String>,
    pub pipeline_id: String,
    /// The key of its stage in the pipeline.
    pub stage: String,
    pub stage_entered_at: String,
    pub status: OpportunityStatus,
    /// In minor units of `currency`: the lines' net total (after discounts, before tax)
    /// when the deal has lines.
    pub amount: i64,
    pub currency: String,
    /// The products the deal is for, priced like a quote's lines.
    pub lines: Vec<Line>,
    /// Where lines without a unit price take theirs from.
    pub price_book_id: Option<String>,
    /// Expected (or actual, once closed) close date.
    #[schema(format = Date)]
    pub close_date: Option<String>,
    pub owner_id: Option<String>,
    /// The partner selling or influencing the deal.
    pub partner_account_id: Option<String>,
    pub next_step: Option<String>,
    pub competitors: Vec<String>,
    /// Empty when the owner sells alone (and takes all the credit).
    pub team: Vec<TeamMember>,
    /// Why the deal was won or lost.
    pub close_reason: Option<String>,
    pub closed_at: Option<String>,
    /// The lead it was opened from at conversion.
    pub lead_id: Option<String>,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<OpportunityRow> for Opportunity {
    fn from(r: OpportunityRow) -> Self {
        Opportunity {
            id: r.id,
            name: r.name,
            account_id: r.account_id,
            primary_contact_id: r.primary_contact_id,
            pipeline_id: r.pipeline_id,
            stage: r.stage,
            stage_entered_at: r.stage_entered_at,
            status: match r.status.as_str() {
                "won" => OpportunityStatus::Won,
                "lost" => OpportunityStatus::Lost,
                _ => OpportunityStatus::Open,
            },
            amount: r.amount,
            currency: r.currency,
            lines: common::parse_json(&r.lines),
            price_book_id: r.price_book_id,
            close_date: r.close_date,
            owner_id: r.owner_id,
            partner_account_id: r.partner_account_id,
            next_step: r.next_step,
            competitors: common::parse_json(&r.competitors),
            team: common::parse_json(&r.team),
            close_reason: r.close_reason,
            closed_at: r.closed_at,
            lead_id: r.lead_id,
            external_source: r.external_source,
            external_id: r.external_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of an opportunity a client sends. The stage is set on create (the pipeline's
/// first stage by default) and changed with `POST /opportunities/{id}/stage`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityInput {
    #[validate(length(min = 1, max = 300))]
    #[schema(min_length = 1, max_length = 300)]
    pub name: Option<String>,
    #[schema(format = "uuid")]
    pub account_id: Option<String>,
    #[schema(format = "uuid")]
    pub primary_contact_id: Option<String>,
    #[schema(format = "uuid")]
    pub pipeline_id: Option<String>,
    /// On create only: the stage to start in.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub stage: Option<String>,
    /// In minor units of `currency`. A deal with lines has the amount they come to: leave
    /// it out (an amount that differs is a 422).
    #[validate(range(min = 0, max = 1_000_000_000_000_000_i64))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub amount: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Replace the deal's line items (`[]` or `null` removes them); priced from
    /// `price_book_id` unless a line gives its `unit_price`.
    #[validate(length(max = 200))]
    #[schema(max_items = 200)]
    pub lines: Option<Vec<LineInput>>,
    #[schema(format = "uuid")]
    pub price_book_id: Option<String>,
    #[schema(format = Date)]
    pub close_date: Option<String>,
    #[schema(format = "uuid")]
    pub owner_id: Option<String>,
    #[schema(format = "uuid")]
    pub partner_account_id: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub next_step: Option<String>,
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub competitors: Option<Vec<String>>,
    /// Replaces the team; splits sum to 100.
    #[validate(length(max = 20), nested)]
    #[schema(max_items = 20)]
    pub team: Option<Vec<TeamMember>>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_source: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "amount", "name"],
    default_sort: "-created_at",
    filters: &[
        Filter::id("account_id", "Of this account"),
        Filter::id("pipeline_id", "In this pipeline"),
        Filter::text("stage", "In this stage (a key of the pipeline)"),
        Filter::of::<OpportunityStatus>("status", "open, won or lost"),
        Filter::id("owner_id", "Owned by this user"),
        Filter::date("close_before", "Closing before this date"),
        Filter::date("close_after", "Closing after this date"),
        Filter::time("created_after", "RFC 3339 timestamp"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(opportunities::table, opportunities::BoxedQuery<'static, MultiBackend>, {
    "created_at" => opportunities::created_at,
    "updated_at" => opportunities::updated_at,
    "amount" => opportunities::amount,
    "name" => opportunities::name,
    "id" => opportunities::id,
});

/// Quotes and orders belong to a deal: whoever may not change the deal may not quote,
/// accept, order or cancel on it either.
pub const PARENT: resource::Parent = resource::Parent {
    field: "opportunity_id",
    entity: "opportunity",
    table: "opportunities",
    edits: crate::common::EDITS,
    owner: owner_of,
};

/// The opportunity's owner; `None` when there is no such opportunity.
pub fn owner_of(conn: &mut DbConn, id: &str) -> ApiResult<Option<Option<String>>> {
    Ok(opportunities::table
        .find(id)
        .select(opportunities::owner_id)
        .first::<Option<String>>(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<OpportunityRow> {
    visibility::check_sees(me, "opportunity")?;
    opportunities::table
        .find(id)
        .first::<OpportunityRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("opportunity"))
}

struct Checked {
    account: Option<String>,
    contact: Option<String>,
    pipeline: Option<String>,
    partner: Option<String>,
    close_date: Option<String>,
    book: Option<String>,
}

fn check_input(input: &OpportunityInput) -> ApiResult<Checked> {
    input.validate()?;
    let mut errors = vec![];
    let account = id_field(&mut errors, "account_id", &input.account_id);
    let contact = id_field(&mut errors, "primary_contact_id", &input.primary_contact_id);
    let pipeline = id_field(&mut errors, "pipeline_id", &input.pipeline_id);
    let partner = id_field(&mut errors, "partner_account_id", &input.partner_account_id);
    let close_date = date_field(&mut errors, "close_date", &input.close_date);
    let book = id_field(&mut errors, "price_book_id", &input.price_book_id);
    currency_field(&mut errors, &input.currency);
    if let Some(team) = &input.team {
        let total: i32 = team.iter().map(|m| m.split_percent).sum();
        if !team.is_empty() && total != 100 {
            errors.push(FieldError::new(
                "team",
                "splits",
                format!("revenue splits sum to {total}%, not 100%"),
            ));
        }
        for (i, m) in team.iter().enumerate() {
            if ids::parse_id(&m.user_id).is_none() {
                errors.push(FieldError::new(
                    &format!("team[{i}].user_id"),
                    "invalid",
                    "must be a UUID",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(Checked {
            account,
            contact,
            pipeline,
            partner,
            close_date,
            book,
        })
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The references of an opportunity exist: its account, contact, partner and team.
fn check_references(
    c: &mut DbConn,
    account: &str,
    contact: Option<&str>,
    partner: Option<&str>,
    team: &[TeamMember],
) -> ApiResult<()> {
    common::check_exists(
        || crm_customers::accounts::exists(c, account),
        "account_id",
        "account",
    )?;
    if let Some(contact) = contact {
        common::check_exists(
            || crm_customers::contacts::exists(c, contact),
            "primary_contact_id",
            "contact",
        )?;
    }
    if let Some(partner) = partner {
        common::check_exists(
            || crm_customers::accounts::exists(c, partner),
            "partner_account_id",
            "account",
        )?;
    }
    for (i, m) in team.iter().enumerate() {
        common::check_active_user(c, &m.user_id, &format!("team[{i}].user_id"))?;
    }
    Ok(())
}

/// A deal's priced lines and the amount they come to (net of discounts, before tax); with
/// no lines, the amount sent.
fn deal_lines(
    c: &mut DbConn,
    book: Option<&str>,
    currency: &str,
    lines: &[LineInput],
    amount: Option<i64>,
) -> ApiResult<(Vec<Line>, i64)> {
    if lines.is_empty() {
        return Ok((vec![], amount.unwrap_or(0)));
    }
    if let Some(book) = book {
        crate::quotes::check_book(c, book)?;
    }
    let (priced, t) = pricing::price_lines(c, book, currency, lines)?;
    let net = t.subtotal - t.discount_total;
    match amount {
        Some(a) if a != net => Err(common::invalid(
            "amount",
            "derived",
            &format!("the lines come to {net}; leave amount out"),
        )),
        _ => Ok((priced, net)),
    }
}

/// The opening values of a new opportunity that a caller (the API, or a lead's conversion)
/// has checked.
pub struct NewOpportunity<'a> {
    pub input: &'a OpportunityInput,
    pub lead_id: Option<String>,
}

pub fn create_opportunity(
    conn: &mut DbConn,
    me: &Principal,
    new: NewOpportunity<'_>,
) -> ApiResult<Opportunity> {
    let input = new.input;
    let checked = check_input(input)?;
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let missing: Vec<FieldError> = [
        ("name", name.is_none()),
        ("account_id", checked.account.is_none()),
        ("pipeline_id", checked.pipeline.is_none()),
        ("currency", input.currency.is_none()),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| FieldError::new(f, "required", "is required"))
    .collect();
    let (Some(name), Some(account), Some(pipeline_id), Some(currency)) =
        (name, &checked.account, &checked.pipeline, &input.currency)
    else {
        return Err(ApiError::validation(missing));
    };
    let team = input.team.clone().unwrap_or_default();
    let (source, external) = objects::external_key_of(&input.external_source, &input.external_id)?;
    db::write_tx(conn, |c| {
        let pipeline = pipelines::referenced(c, pipeline_id, "pipeline_id")?;
        let stage = match &input.stage {
            Some(key) => pipeline
                .stage(key)
                .ok_or_else(|| unknown_stage(&pipeline, key))?,
            None => pipeline.stages.first().ok_or_else(|| {
                common::invalid("pipeline_id", "stages", "the pipeline has no stages")
            })?,
        };
        check_references(
            c,
            account,
            checked.contact.as_deref(),
            checked.partner.as_deref(),
            &team,
        )?;
        let owner = common::resolve_owner(c, me, input.owner_id.as_deref(), None)?;
        let (lines, amount) = deal_lines(
            c,
            checked.book.as_deref(),
            currency,
            input.lines.as_deref().unwrap_or_default(),
            input.amount,
        )?;
        let id = ids::new_id();
        let now = ids::now();
        let status = stage.forecast_category.status();
        diesel::insert_into(opportunities::table)
            .values((
                opportunities::id.eq(&id),
                opportunities::name.eq(name),
                opportunities::account_id.eq(account),
                opportunities::primary_contact_id.eq(&checked.contact),
                opportunities::pipeline_id.eq(&pipeline.id),
                opportunities::stage.eq(&stage.key),
                opportunities::stage_entered_at.eq(&now),
                opportunities::status.eq(status),
                opportunities::amount.eq(amount),
                opportunities::currency.eq(currency),
                opportunities::lines.eq(common::json_text(&lines)),
                opportunities::price_book_id.eq(&checked.book),
                opportunities::close_date.eq(&checked.close_date),
                opportunities::owner_id.eq(&owner),
                opportunities::partner_account_id.eq(&checked.partner),
                opportunities::next_step.eq(&input.next_step),
                opportunities::competitors.eq(common::json_text(
                    &input.competitors.clone().unwrap_or_default(),
                )),
                opportunities::team.eq(common::json_text(&team)),
                opportunities::closed_at.eq((status != "open").then_some(&now)),
                opportunities::lead_id.eq(&new.lead_id),
                opportunities::external_source.eq(&source),
                opportunities::external_id.eq(&external),
                opportunities::version.eq(1),
                opportunities::created_at.eq(&now),
                opportunities::updated_at.eq(&now),
            ))
            .execute(c)?;
        add_history(c, me, &id, None, &stage.key, &now, None)?;
        let opp: Opportunity = find(c, me, &id)?.into();
        record_change(
            c,
            me,
            "opportunity",
            "created",
            &id,
            common::to_json(&opp),
            &opp,
        )?;
        Ok(opp)
    })
}

fn unknown_stage(pipeline: &Pipeline, key: &str) -> ApiError {
    let keys: Vec<&str> = pipeline.stages.iter().map(|s| s.key.as_str()).collect();
    common::invalid(
        "stage",
        "reference",
        &format!(
            "no stage {key:?} in pipeline {}; stages: {}",
            pipeline.name,
            keys.join(", ")
        ),
    )
}

fn add_history(
    c: &mut DbConn,
    me: &Principal,
    opportunity: &str,
    from: Option<(&str, &str)>,
    to: &str,
    at: &str,
    seconds: Option<i64>,
) -> ApiResult<()> {
    diesel::insert_into(history::table)
        .values((
            history::id.eq(ids::new_id()),
            history::opportunity_id.eq(opportunity),
            history::from_stage.eq(from.map(|(stage, _)| stage)),
            history::to_stage.eq(to),
            history::entered_at.eq(at),
            history::seconds_in_from_stage.eq(seconds),
            history::actor_id.eq(&me.user_id),
        ))
        .execute(c)?;
    Ok(())
}

pub fn update_opportunity(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Opportunity> {
    let input: OpportunityInput = objects::input(raw)?;
    let checked = check_input(&input)?;
    let cleared = |field: &str| raw.get(field).is_some_and(|v| v.is_null());
    let pick = |field: &str, new: &Option<String>, old: &Option<String>| {
        if cleared(field) {
            None
        } else {
            new.clone().or(old.clone())
        }
    };
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Opportunities>(c, me, id)?;
        etag::check(expected, before.version)?;
        let row = find(c, me, id)?;
        refuse_moves(&input, &checked, &row)?;
        let account = checked.account.clone().unwrap_or(row.account_id.clone());
        let contact = pick(
            "primary_contact_id",
            &checked.contact,
            &row.primary_contact_id,
        );
        let partner = pick(
            "partner_account_id",
            &checked.partner,
            &row.partner_account_id,
        );
        let team = if cleared("team") {
            vec![]
        } else {
            input.team.clone().unwrap_or(before.team.clone())
        };
        check_references(c, &account, contact.as_deref(), partner.as_deref(), &team)?;
        let owner = if cleared("owner_id") {
            None
        } else {
            common::resolve_owner(c, me, input.owner_id.as_deref(), row.owner_id.as_deref())?
        };
        let competitors = if cleared("competitors") {
            vec![]
        } else {
            input
                .competitors
                .clone()
                .unwrap_or(before.competitors.clone())
        };
        let (source, external) = objects::external_key_after(
            raw,
            (row.external_source.clone(), row.external_id.clone()),
        )?;
        let book = pick("price_book_id", &checked.book, &row.price_book_id);
        let currency = input.currency.clone().unwrap_or(row.currency.clone());
        let (lines, amount) = lines_after(
            c,
            &input,
            &before,
            (book.as_deref(), &currency),
            (cleared("lines"), cleared("amount")),
        )?;
        let changed = diesel::update(opportunities::table.find(id))
            .filter(opportunities::version.eq(row.version))
            .set((
                opportunities::name.eq(input.name.as_deref().map(str::trim).unwrap_or(&row.name)),
                opportunities::account_id.eq(&account),
                opportunities::primary_contact_id.eq(&contact),
                opportunities::amount.eq(amount),
                opportunities::currency.eq(&currency),
                opportunities::lines.eq(common::json_text(&lines)),
                opportunities::price_book_id.eq(&book),
                opportunities::close_date.eq(pick(
                    "close_date",
                    &checked.close_date,
                    &row.close_date,
                )),
                opportunities::owner_id.eq(&owner),
                opportunities::partner_account_id.eq(&partner),
                opportunities::next_step.eq(pick("next_step", &input.next_step, &row.next_step)),
                opportunities::competitors.eq(common::json_text(&competitors)),
                opportunities::team.eq(common::json_text(&team)),
                opportunities::external_source.eq(&source),
                opportunities::external_id.eq(&external),
                opportunities::version.eq(row.version + 1),
                opportunities::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after: Opportunity = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "opportunity", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// The lines and amount after an update: lines sent are priced again; stored lines stay
/// (and keep the amount) unless removed, and moving them to another book or currency needs
/// them sent again.
fn lines_after(
    c: &mut DbConn,
    input: &OpportunityInput,
    before: &Opportunity,
    (book, currency): (Option<&str>, &str),
    (lines_cleared, amount_cleared): (bool, bool),
) -> ApiResult<(Vec<Line>, i64)> {
    let amount = if amount_cleared {
        Some(0)
    } else {
        input.amount
    };
    if lines_cleared {
        return Ok((vec![], amount.unwrap_or(before.amount)));
    }
    if let Some(lines) = &input.lines {
        let kept = if lines.is_empty() {
            amount.or(Some(before.amount))
        } else {
            amount
        };
        return deal_lines(c, book, currency, lines, kept);
    }
    if before.lines.is_empty() {
        return Ok((vec![], amount.unwrap_or(before.amount)));
    }
    if book != before.price_book_id.as_deref() || currency != before.currency {
        return Err(common::invalid(
            "lines",
            "required",
            "send the lines again to price them in the new book or currency",
        ));
    }
    match amount {
        Some(a) if a != before.amount => Err(common::invalid(
            "amount",
            "derived",
            &format!("the lines come to {}; leave amount out", before.amount),
        )),
        _ => Ok((before.lines.clone(), before.amount)),
    }
}

/// 422 for an update that would change the stage or the pipeline (an upsert resending
/// the ones stored is fine); see `Opportunities::CREATE_ONLY`.
fn refuse_moves(
    input: &OpportunityInput,
    checked: &Checked,
    row: &OpportunityRow,
) -> ApiResult<()> {
    let changes = [
        (
            "stage",
            input.stage.as_ref().is_some_and(|s| *s != row.stage),
        ),
        (
            "pipeline_id",
            checked
                .pipeline
                .as_ref()
                .is_some_and(|p| *p != row.pipeline_id),
        ),
    ];
    let refused: Vec<FieldError> = Opportunities::CREATE_ONLY
        .iter()
        .filter(|(f, _)| changes.iter().any(|(c, changed)| c == f && *changed))
        .map(|(f, instead)| FieldError::new(f, "create_only", *instead))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(refused))
    }
}

pub fn load_page(
    conn: &mut DbConn,
    me: &Principal,
    p: &ListParams,
) -> ApiResult<Page<Opportunity>> {
    let mut q = crm_core::visible!(
        opportunities::table.into_boxed::<MultiBackend>(),
        me,
        opportunities::id
    );
    if !p.include_archived {
        q = q.filter(opportunities::archived_at.is_null());
    }
    if let Some(v) = p.id_filter("account_id")? {
        q = q.filter(opportunities::account_id.eq(v));
    }
    if let Some(v) = p.id_filter("pipeline_id")? {
        q = q.filter(opportunities::pipeline_id.eq(v));
    }
    if let Some(v) = p.filter("stage") {
        q = q.filter(opportunities::stage.eq(v.to_string()));
    }
    if let Some(v) = enum_filter::<OpportunityStatus>(p, "status")? {
        q = q.filter(opportunities::status.eq(enum_text(v)));
    }
    if let Some(v) = p.id_filter("owner_id")? {
        q = q.filter(opportunities::owner_id.eq(v));
    }
    if let Some(d) = date_filter(p, "close_before")? {
        q = q.filter(opportunities::close_date.lt(d));
    }
    if let Some(d) = date_filter(p, "close_after")? {
        q = q.filter(opportunities::close_date.gt(d));
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(opportunities::created_at.gt(t));
    }
    let rows: Vec<OpportunityRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Opportunity::from).collect(), p)
}

/// Whether an exit-criteria field is filled on the deal.
fn filled(o: &Opportunity, field: &str) -> bool {
    match field {
        "amount" => o.amount > 0,
        "close_date" => o.close_date.is_some(),
        "primary_contact_id" => o.primary_contact_id.is_some(),
        "next_step" => o.next_step.as_deref().is_some_and(|s| !s.trim().is_empty()),
        "partner_account_id" => o.partner_account_id.is_some(),
        "competitors" => !o.competitors.is_empty(),
        "team" => !o.team.is_empty(),
        _ => true,
    }
}

/// Where a deal goes next.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageMove {
    /// The key of a stage of the deal's pipeline.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub stage: String,
    /// Why it was won or lost; required when moving to a closed-lost stage.
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub close_reason: Option<String>,
}

/// Move a deal to another stage, if the stage it leaves lets it go.
pub fn move_stage(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    to: &StageMove,
) -> ApiResult<Opportunity> {
    to.validate()?;
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Opportunities>(c, me, id)?;
        etag::check(expected, before.version)?;
        if before.status != OpportunityStatus::Open {
            return Err(ApiError::Conflict(format!(
                "the deal is already closed ({}); it does not change stage",
                enum_text(before.status)
            )));
        }
        let pipeline = pipelines::referenced(c, &before.pipeline_id, "stage")?;
        let target = pipeline
            .stage(&to.stage)
            .ok_or_else(|| unknown_stage(&pipeline, &to.stage))?;
        if target.key == before.stage {
            return Ok(before);
        }
        let missing: Vec<FieldError> = pipeline
            .stage(&before.stage)
            .map(|s| s.exit_criteria.clone())
            .unwrap_or_default()
            .iter()
            .filter(|f| !filled(&before, f))
            .map(|f| {
                FieldError::new(
                    f,
                    "exit_criteria",
                    format!(
                        "must be filled before the deal leaves stage {}",
                        before.stage
                    ),
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::validation(missing));
        }
        if target.forecast_category == ForecastCategory::ClosedLost && to.close_reason.is_none() {
            return Err(common::invalid(
                "close_reason",
                "required",
                "say why the deal was lost",
            ));
        }
        let now = ids::now();
        let status = target.forecast_category.status();
        let seconds = seconds_between(&before.stage_entered_at, &now);
        let changed = diesel::update(opportunities::table.find(id))
            .filter(opportunities::version.eq(before.version))
            .set((
                opportunities::stage.eq(&target.key),
                opportunities::stage_entered_at.eq(&now),
                opportunities::status.eq(status),
                opportunities::closed_at.eq((status != "open").then_some(&now)),
                opportunities::close_reason
                    .eq(to.close_reason.as_ref().or(before.close_reason.as_ref())),
                opportunities::version.eq(before.version + 1),
                opportunities::updated_at.eq(&now),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        add_history(
            c,
            me,
            id,
            Some((&before.stage, &before.stage_entered_at)),
            &target.key,
            &now,
            seconds,
        )?;
        let after: Opportunity = find(c, me, id)?.into();
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "opportunity", "updated", id, changes, &after)?;
        Ok(after)
    })
}

fn seconds_between(from: &str, to: &str) -> Option<i64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    Some((to - from).num_seconds().max(0))
}

/// Move a deal to another stage.
///
/// The stage the deal leaves must have its exit criteria filled (422 naming each missing
/// field); moving to a closed-lost stage needs a `close_reason`. A closed-won or closed-lost
/// stage closes the deal (`status` won or lost, `closed_at` set); a closed deal does not change
/// stage again (409). Each move is kept in the stage history with the time spent in the stage
/// left. Send `If-Match` to refuse the move (412) if the deal changed since you read it.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/stage", tag = "opportunities",
    request_body = StageMove,
    params(("id" = String, Path, format = "uuid", description = "Opportunity id"), IfMatchParams),
    responses(
        (status = 200, description = "Moved (or already there)", body = Opportunity, headers(("ETag" = String))),
        WriteProblems))]
#[post("/opportunities/{id}/stage")]
pub async fn change_stage(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesWrite)?;
    // The id before the body: a malformed id is a 400 whatever the body says.
    let id = path_id(&id)?;
    let expected = crm_core::extract::if_match(&req)?;
    let body: StageMove = objects::input(&body.into_inner())?;
    let opp = state
        .db(move |c| move_stage(c, &me, &id, expected, &body))
        .await?;
    Ok(respond::with_etag(opp.version, &opp))
}

/// One stage a deal entered.
#[derive(Debug, Clone, Queryable, Serialize, ToSchema)]
pub struct StageChange {
    pub id: String,
    #[serde(skip)]
    pub opportunity_id: String,
    /// The stage it left; null for the stage it started in.
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub entered_at: String,
    /// How long the deal stayed in `from_stage`.
    pub seconds_in_from_stage: Option<i64>,
    /// Who moved it.
    pub actor_id: Option<String>,
}

/// List the stages a deal went through.
///
/// Every stage the deal entered, oldest first, with the time it spent in the stage it left:
/// what the forecast's cycle lengths are computed from.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}/stage-history", tag = "opportunities",
    params(("id" = String, Path, format = "uuid", description = "Opportunity id")),
    responses((status = 200, description = "The moves, oldest first", body = Vec<StageChange>), ReadProblems))]
#[get("/opportunities/{id}/stage-history")]
pub async fn stage_history(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = path_id(&id)?;
    let moves = state
        .db(move |c| {
            find(c, &me, &id)?;
            Ok(history::table
                .filter(history::opportunity_id.eq(&id))
                .order((history::entered_at.asc(), history::id.asc()))
                .load::<StageChange>(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(moves))
}

/// Opportunities on the resource kernel: every role reads them (partners only what is
/// shared with them); reps and marketers work them; owner, team or a manager may change one.
pub struct Opportunities;

impl Resource for Opportunities {
    type Record = Opportunity;
    type Input = OpportunityInput;
    type Patch = OpportunityInput;
    crm_core::resource_paths!("opportunities");
    const ENTITY: &'static str = "opportunity";
    const TABLE: &'static str = "opportunities";
    const TAG: &'static str = "opportunities";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesWrite;
    const EDITS: Ownership = crate::common::EDITS;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "account_id", "pipeline_id", "currency"];
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[
        ("stage", "move a deal with POST /opportunities/{id}/stage"),
        (
            "pipeline_id",
            "a deal stays in its pipeline; open a new one in the other",
        ),
    ];

    crm_core::record_meta!(Opportunity, owner_id);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Opportunity> {
        find(c, me, id).map(Opportunity::from)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Opportunity>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &OpportunityInput) -> ApiResult<Opportunity> {
        create_opportunity(
            c,
            me,
            NewOpportunity {
                input,
                lead_id: None,
            },
        )
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Opportunity> {
        update_opportunity(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(opportunities);
}

/// Opportunities as an integrable object (upserts, batch, composite, imports, exports, feed).
pub const OBJECT: ObjectKind =
    resource::object::<Opportunities>(crm_core::find_by_external!(opportunities), None);
