//! The loyalty ledger: the only way a member's balance changes. Every entry carries a
//! source key unique per member (`order:<id>`, `order:<id>:reversal`, `client:<key>`), so a
//! retried award or a replayed order is found and not counted again; the balance moves by
//! a conditional `UPDATE … WHERE balance >= n`, under the member's row lock, and the
//! database's `CHECK (balance >= 0)` stands behind both.
//!
//! Orders earn through a `crm_core::hooks` listener on `order`, in the order's own
//! transaction: an order placed (and not cancelled) earns its account's member the
//! programme's points times the member's tier multiplier; cancelling or archiving it takes
//! them back, as far as the balance allows.

use super::members::{self, LoyaltyMember};
use super::LoyaltyProgram;
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::ids;
use crm_core::list::{self, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{
    loyalty_ledger as ll, loyalty_members as lm, loyalty_programs as lp, order_lines, orders,
    products,
};
use crm_core::state::AppState;
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use validator::Validate;

/// What moved a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = LedgerEntryKind)]
pub enum EntryKind {
    /// Points an order earned.
    Earn,
    /// Points given or taken by hand.
    Adjust,
    /// Points spent on a reward or redeemed.
    Redeem,
    /// A cancelled or archived order's points taken back.
    Reversal,
}

/// One change of a member's balance.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LoyaltyLedgerEntry)]
pub struct LedgerEntry {
    pub id: String,
    pub member_id: String,
    pub kind: EntryKind,
    /// Signed: positive adds, negative takes away.
    pub points: i64,
    pub balance_after: i64,
    /// What caused it: `order:<id>`, `order:<id>:reversal` or `client:<key>`.
    pub source_key: String,
    pub order_id: Option<String>,
    pub reward_code: Option<String>,
    pub reason: Option<String>,
    /// The user who made it; null for an order's.
    pub actor_id: Option<String>,
    pub created_at: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = ll)]
struct Row {
    id: String,
    member_id: String,
    kind: String,
    points: i64,
    balance_after: i64,
    source_key: String,
    order_id: Option<String>,
    reward_code: Option<String>,
    reason: Option<String>,
    actor_id: Option<String>,
    created_at: String,
}

impl From<Row> for LedgerEntry {
    fn from(r: Row) -> Self {
        LedgerEntry {
            id: r.id,
            member_id: r.member_id,
            kind: crate::enum_from(&r.kind, EntryKind::Adjust),
            points: r.points,
            balance_after: r.balance_after,
            source_key: r.source_key,
            order_id: r.order_id,
            reward_code: r.reward_code,
            reason: r.reason,
            actor_id: r.actor_id,
            created_at: r.created_at,
        }
    }
}

/// An entry about to be written.
struct Entry<'a> {
    kind: EntryKind,
    points: i64,
    source_key: String,
    order_id: Option<&'a str>,
    reward_code: Option<&'a str>,
    reason: Option<&'a str>,
    actor: Actor,
}

fn existing(c: &mut DbConn, member: &str, key: &str) -> ApiResult<Option<LedgerEntry>> {
    Ok(ll::table
        .filter(ll::member_id.eq(member))
        .filter(ll::source_key.eq(key))
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(LedgerEntry::from))
}

/// Write one entry and move the balance, in the caller's transaction: the entry already
/// written under this key when there is one (`false`), else the new one (`true`). A
/// deduction the balance does not cover is a 409 and writes nothing.
fn post_entry(
    c: &mut DbConn,
    member: &LoyaltyMember,
    program: &LoyaltyProgram,
    e: Entry,
) -> ApiResult<(LedgerEntry, bool)> {
    if let Some(found) = existing(c, &member.id, &e.source_key)? {
        return Ok((found, false));
    }
    // Earned points count towards the tier; a reversal takes back what its order earned.
    let lifetime_delta = match e.kind {
        EntryKind::Earn => e.points,
        EntryKind::Adjust if e.points > 0 => e.points,
        _ => 0,
    };
    let moved = diesel::update(lm::table.find(&member.id))
        .filter(lm::balance.ge(-e.points))
        .set((
            lm::balance.eq(lm::balance + e.points),
            lm::lifetime_points.eq(lm::lifetime_points + lifetime_delta),
            lm::version.eq(lm::version + 1),
            lm::updated_at.eq(ids::now()),
        ))
        .execute(c)?;
    if moved == 0 {
        return Err(ApiError::Conflict(format!(
            "the balance is {} points, fewer than the {} asked for",
            member.balance, -e.points
        )));
    }
    let after = members::find(c, &member.id)?;
    let tier = program
        .tier_for(after.lifetime_points)
        .map(|t| t.name.clone());
    if tier != after.tier {
        diesel::update(lm::table.find(&member.id))
            .set(lm::tier.eq(&tier))
            .execute(c)?;
    }
    let id = ids::new_id();
    diesel::insert_into(ll::table)
        .values((
            ll::id.eq(&id),
            ll::member_id.eq(&member.id),
            ll::kind.eq(crate::enum_text(e.kind)),
            ll::points.eq(e.points),
            ll::balance_after.eq(after.balance),
            ll::source_key.eq(&e.source_key),
            ll::order_id.eq(e.order_id),
            ll::reward_code.eq(e.reward_code),
            ll::reason.eq(e.reason),
            ll::actor_id.eq(&e.actor.id),
            ll::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    let member = members::find(c, &member.id)?;
    audit::record(
        c,
        Change {
            actor: &e.actor,
            action: "points_changed",
            entity_type: "loyalty_member",
            entity_id: &member.id,
            changes: json!({"kind": e.kind, "points": e.points, "balance": member.balance,
                "tier": member.tier}),
            record: to_json(&member),
        },
    )?;
    let entry = existing(c, &member.id, &e.source_key)?
        .ok_or_else(|| ApiError::Internal("the ledger entry just written is missing".into()))?;
    Ok((entry, true))
}

/// The member and its programme, locked for a balance change; 409 when either is archived.
fn open_for_change(c: &mut DbConn, id: &str) -> ApiResult<(LoyaltyMember, LoyaltyProgram)> {
    db::lock_row(c, "loyalty_members", id)?;
    let member = members::find(c, id)?;
    let program = super::find(c, &member.program_id)?;
    if member.archived_at.is_some() || program.archived_at.is_some() {
        return Err(ApiError::Conflict(
            "the member or its programme is archived".into(),
        ));
    }
    Ok((member, program))
}

// ---- Orders ----

/// Live members earning for this account in live programmes of this currency.
fn earning_members(c: &mut DbConn, account: &str, currency: &str) -> ApiResult<Vec<LoyaltyMember>> {
    Ok(lm::table
        .inner_join(lp::table.on(lp::id.eq(lm::program_id)))
        .filter(lm::account_id.eq(account))
        .filter(lm::archived_at.is_null())
        .filter(lp::archived_at.is_null())
        .filter(lp::currency.eq(currency))
        .select(LoyaltyMember::as_select())
        .load(c)?)
}

/// Points an order earns before the tier: its lines' net amounts with their families.
fn order_lines_with_family(c: &mut DbConn, order: &str) -> ApiResult<Vec<(i64, Option<String>)>> {
    Ok(order_lines::table
        .left_join(products::table.on(products::id.eq(order_lines::product_id)))
        .filter(order_lines::order_id.eq(order))
        .select((order_lines::net, products::family.nullable()))
        .load::<(i64, Option<String>)>(c)?)
}

/// The `order` listener: earn on a live order, take back on a cancelled or archived one.
/// Idempotent (the source keys), so it runs on every change of the order.
pub fn on_order_change(
    c: &mut DbConn,
    _entity: &str,
    order_id: &str,
    _action: &str,
) -> Result<(), ApiError> {
    let Some((account, currency, status, created, archived)) = orders::table
        .find(order_id)
        .select((
            orders::account_id,
            orders::currency,
            orders::status,
            orders::created_at,
            orders::archived_at,
        ))
        .first::<(String, String, String, String, Option<String>)>(c)
        .optional()?
    else {
        return Ok(());
    };
    let members = earning_members(c, &account, &currency)?;
    if members.is_empty() {
        return Ok(());
    }
    let live = status != "cancelled" && archived.is_none();
    let lines = if live {
        order_lines_with_family(c, order_id)?
    } else {
        vec![]
    };
    for m in members {
        let (member, program) = open_for_change(c, &m.id)?;
        if live {
            // An order from before the enrolment earns nothing.
            if created >= member.created_at {
                earn(c, &member, &program, order_id, &lines)?;
            }
        } else {
            reverse(c, &member, &program, order_id)?;
        }
    }
    Ok(())
}

fn earn(
    c: &mut DbConn,
    member: &LoyaltyMember,
    program: &LoyaltyProgram,
    order_id: &str,
    lines: &[(i64, Option<String>)],
) -> ApiResult<()> {
    let multiplier = program
        .tier_for(member.lifetime_points)
        .map_or(100, |t| t.multiplier_percent);
    let points = program.points_for(lines) * multiplier / 100;
    if points <= 0 {
        return Ok(());
    }
    post_entry(
        c,
        member,
        program,
        Entry {
            kind: EntryKind::Earn,
            points,
            source_key: format!("order:{order_id}"),
            order_id: Some(order_id),
            reward_code: None,
            reason: None,
            actor: Actor::system(),
        },
    )?;
    Ok(())
}

/// Take back what the order earned, as far as the balance goes (points already spent stay
/// spent); the lifetime points and so the tier lose all of it.
fn reverse(
    c: &mut DbConn,
    member: &LoyaltyMember,
    program: &LoyaltyProgram,
    order_id: &str,
) -> ApiResult<()> {
    let key = format!("order:{order_id}:reversal");
    let Some(earned) = existing(c, &member.id, &format!("order:{order_id}"))? else {
        return Ok(());
    };
    if existing(c, &member.id, &key)?.is_some() {
        return Ok(());
    }
    let take = earned.points.min(member.balance);
    diesel::update(lm::table.find(&member.id))
        .set(
            lm::lifetime_points.eq(lm::lifetime_points - earned.points.min(member.lifetime_points)),
        )
        .execute(c)?;
    post_entry(
        c,
        member,
        program,
        Entry {
            kind: EntryKind::Reversal,
            points: -take,
            source_key: key,
            order_id: Some(order_id),
            reward_code: None,
            reason: Some("the order was cancelled or archived"),
            actor: Actor::system(),
        },
    )?;
    Ok(())
}

// ---- HTTP ----

/// Points given or taken by hand.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwardInput {
    /// Positive to give, negative to take (never below a zero balance).
    #[validate(range(min = -1000000000, max = 1000000000))]
    #[schema(minimum = -1000000000, maximum = 1000000000)]
    pub points: i64,
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
    /// Names this award: sent again (a retry), it counts once.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub key: Option<String>,
}

/// A redemption: a reward of the programme, or a number of points.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemInput {
    /// A reward's code; its points are spent.
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub reward: Option<String>,
    /// Points to spend, without a reward.
    #[validate(range(min = 1, max = 1000000000))]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub points: Option<i64>,
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
    /// Names this redemption: sent again (a retry), it is spent once.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub key: Option<String>,
}

/// 201 for a new entry, 200 for the one a retried key already wrote; 409 when the key
/// was used for something else.
fn respond(
    (entry, new): (LedgerEntry, bool),
    points: i64,
    kind: EntryKind,
) -> ApiResult<HttpResponse> {
    if !new && (entry.points != points || entry.kind != kind) {
        return Err(ApiError::Conflict(
            "this key was already used for a different entry".into(),
        ));
    }
    Ok(if new {
        HttpResponse::Created().json(entry)
    } else {
        HttpResponse::Ok().json(entry)
    })
}

fn client_key(key: &Option<String>) -> String {
    format!("client:{}", key.clone().unwrap_or_else(ids::new_id))
}

/// Give or take points
///
/// Adds `points` to the member's balance (and lifetime points, which set the tier), or
/// takes them away when negative — a 409, writing nothing, when the balance does not
/// cover it. With `key`, a retry returns the entry already written (200) instead of
/// counting twice. Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/loyalty-members/{id}/awards", tag = "loyalty", operation_id = "award_loyalty_points",
    params(("id" = String, Path, format = "uuid", description = "Member id")),
    request_body = AwardInput,
    responses(
        (status = 201, description = "The entry written", body = LedgerEntry),
        (status = 200, description = "The entry this key already wrote", body = LedgerEntry),
        WriteProblems))]
#[post("/loyalty-members/{id}/awards")]
pub async fn award(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: AwardInput = crm_core::objects::input(&body.into_inner())?;
    input.validate()?;
    if input.points == 0 {
        return Err(ApiError::field(
            "points",
            "range",
            "give or take at least one point",
        ));
    }
    let points = input.points;
    let done = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let (member, program) = open_for_change(c, &id)?;
                post_entry(
                    c,
                    &member,
                    &program,
                    Entry {
                        kind: EntryKind::Adjust,
                        points,
                        source_key: client_key(&input.key),
                        order_id: None,
                        reward_code: None,
                        reason: input.reason.as_deref(),
                        actor: Actor::from(&me),
                    },
                )
            })
        })
        .await?;
    respond(done, points, EntryKind::Adjust)
}

/// Redeem points
///
/// Spends a reward's points (`reward`) or a number of points (`points`). A balance that
/// does not cover it is a 409 and nothing is spent; two redemptions at once never take the
/// balance below zero. With `key`, a retry returns the entry already written (200).
/// Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/loyalty-members/{id}/redemptions", tag = "loyalty", operation_id = "redeem_loyalty_points",
    params(("id" = String, Path, format = "uuid", description = "Member id")),
    request_body = RedeemInput,
    responses(
        (status = 201, description = "The entry written", body = LedgerEntry),
        (status = 200, description = "The entry this key already wrote", body = LedgerEntry),
        WriteProblems))]
#[post("/loyalty-members/{id}/redemptions")]
pub async fn redeem(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: RedeemInput = crm_core::objects::input(&body.into_inner())?;
    input.validate()?;
    if input.reward.is_some() == input.points.is_some() {
        return Err(ApiError::field(
            "reward",
            "required",
            "send either a reward code or a number of points",
        ));
    }
    let done = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let (member, program) = open_for_change(c, &id)?;
                let points = match &input.reward {
                    Some(code) => {
                        program
                            .reward(code)
                            .ok_or_else(|| {
                                ApiError::field("reward", "not_found", "no reward has this code")
                            })?
                            .points
                    }
                    None => input.points.unwrap_or_default(),
                };
                post_entry(
                    c,
                    &member,
                    &program,
                    Entry {
                        kind: EntryKind::Redeem,
                        points: -points,
                        source_key: client_key(&input.key),
                        order_id: None,
                        reward_code: input.reward.as_deref(),
                        reason: input.reason.as_deref(),
                        actor: Actor::from(&me),
                    },
                )
            })
        })
        .await?;
    let points = done.0.points;
    respond(done, points, EntryKind::Redeem)
}

pub const LEDGER: ListSpec = ListSpec {
    sort_fields: &["created_at"],
    default_sort: "-created_at",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(ll::table, ll::BoxedQuery<'static, MultiBackend>, {
    "created_at" => ll::created_at,
    "id" => ll::id,
});

/// A member's ledger
///
/// Every change of the member's balance, newest first: what earned, gave, spent or took
/// back points, and the balance after it. Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/loyalty-members/{id}/ledger", tag = "loyalty", operation_id = "list_loyalty_ledger",
    params(
        ("id" = String, Path, format = "uuid", description = "Member id"),
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?created_at$", description = "-created_at (default) or created_at"),
    ),
    responses((status = 200, description = "A page of entries", body = Page<LedgerEntry>), ReadProblems))]
#[get("/loyalty-members/{id}/ledger")]
pub async fn ledger(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let p = list::parse(query.into_inner(), &LEDGER)?;
    let page = state
        .db(move |c| {
            members::find(c, &id)?;
            let q = ll::table
                .into_boxed::<MultiBackend>()
                .filter(ll::member_id.eq(id));
            let rows: Vec<Row> = apply_sort(q, &p)?.select(Row::as_select()).load(c)?;
            list::page(rows.into_iter().map(LedgerEntry::from).collect(), &p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
