//! The nurture and recycle policy: leads left untouched (no change) for a number of days in
//! a status go back to the pool (no owner, status `new`), to nurturing, or are disqualified,
//! as the policy says. The scheduler's `lead-recycle` task applies it (hourly by default;
//! see `GET /schedules/lead-recycle`); each lead it moves records when and why on itself
//! (`recycled_at`, `recycle_reason`), in its audit trail and on its timeline
//! (`lead.recycled`).

use crate::leads::{LeadRow, LeadStatus};
use actix_web::{get, put, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor, Change};
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::{if_match, Json};
use crm_core::jobs::JobResult;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{leads, sales_settings};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// The scheduled task (and job kind) that applies the policy.
pub const TASK: &str = "lead-recycle";
const SETTING: &str = "lead_recycle_policy";
/// Leads moved per transaction: a large backlog is worked through in short writes.
const BATCH: i64 = 200;

/// The statuses a rule may watch: a disqualified or converted lead is not recycled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WatchedStatus {
    New,
    Working,
    Nurturing,
    Qualified,
}

/// What happens to a lead the rule catches.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecycleAction {
    /// No owner, status `new`: the lead is up for assignment again.
    ReturnToPool,
    /// Status `nurturing`, owner kept.
    Nurture,
    /// Status `disqualified`, with the rule's reason as `disqualified_reason`.
    Disqualify,
}

/// Leads in `status` untouched for `after_days` days get `action`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecycleRule {
    pub status: WatchedStatus,
    #[validate(range(min = 1, max = 3650))]
    #[schema(minimum = 1, maximum = 3650)]
    pub after_days: i32,
    pub action: RecycleAction,
    /// Recorded on each lead moved (and as the disqualification reason).
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// The policy as sent: at most one rule per status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecyclePolicyInput {
    #[validate(nested, length(max = 4))]
    #[schema(max_items = 4)]
    pub rules: Vec<RecycleRule>,
}

/// The policy in force. Without one, no lead is recycled.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecyclePolicy {
    /// What its audit rows and events name it by; null until the policy is first set.
    pub id: Option<String>,
    pub rules: Vec<RecycleRule>,
    pub version: i32,
    /// Null until the policy is first set.
    pub updated_at: Option<String>,
}

fn load(c: &mut DbConn) -> ApiResult<RecyclePolicy> {
    let row: Option<(String, String, i32, String)> = sales_settings::table
        .find(SETTING)
        .select((
            sales_settings::id,
            sales_settings::value,
            sales_settings::version,
            sales_settings::updated_at,
        ))
        .first(c)
        .optional()?;
    Ok(match row {
        Some((id, value, version, at)) => RecyclePolicy {
            id: Some(id),
            rules: serde_json::from_str::<RecyclePolicyInput>(&value)
                .map_err(ApiError::internal)?
                .rules,
            version,
            updated_at: Some(at),
        },
        None => RecyclePolicy {
            id: None,
            rules: vec![],
            version: 0,
            updated_at: None,
        },
    })
}

fn check(input: &RecyclePolicyInput) -> ApiResult<()> {
    input.validate()?;
    let mut errors = vec![];
    for (i, rule) in input.rules.iter().enumerate() {
        if input.rules.iter().take(i).any(|r| r.status == rule.status) {
            errors.push(FieldError::new(
                &format!("rules[{i}].status"),
                "duplicate",
                "one rule per status",
            ));
        }
        if rule.status == WatchedStatus::Nurturing && rule.action == RecycleAction::Nurture {
            errors.push(FieldError::new(
                &format!("rules[{i}].action"),
                "invalid",
                "nurturing leads are already nurtured; return them to the pool or disqualify them",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn save(
    c: &mut DbConn,
    me: &Principal,
    expected: Option<i32>,
    input: RecyclePolicyInput,
) -> ApiResult<RecyclePolicy> {
    check(&input)?;
    db::write_tx(c, |c| {
        let before = load(c)?;
        etag::check(expected, before.version)?;
        let value = serde_json::to_string(&input).map_err(ApiError::internal)?;
        let now = ids::now();
        if before.version == 0 {
            diesel::insert_into(sales_settings::table)
                .values((
                    sales_settings::name.eq(SETTING),
                    sales_settings::id.eq(ids::new_id()),
                    sales_settings::value.eq(&value),
                    sales_settings::version.eq(1),
                    sales_settings::updated_at.eq(&now),
                ))
                .execute(c)?;
        } else {
            let n = diesel::update(
                sales_settings::table
                    .find(SETTING)
                    .filter(sales_settings::version.eq(before.version)),
            )
            .set((
                sales_settings::value.eq(&value),
                sales_settings::version.eq(before.version + 1),
                sales_settings::updated_at.eq(&now),
            ))
            .execute(c)?;
            crm_core::resource::changed_one(n)?;
        }
        let after = load(c)?;
        let record = serde_json::to_value(&after).unwrap_or_default();
        audit::record(
            c,
            Change {
                actor: &Actor::from(me),
                action: "updated",
                entity_type: "lead_recycle_policy",
                entity_id: after.id.as_deref().unwrap_or_default(),
                changes: audit::diff(
                    &serde_json::json!({"rules": before.rules}),
                    &serde_json::json!({"rules": after.rules}),
                    &[],
                ),
                record,
            },
        )?;
        Ok(after)
    })
}

fn respond(p: RecyclePolicy) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("ETag", etag::format(p.version)))
        .json(p)
}

/// Get the lead recycle policy.
///
/// The rules the hourly `lead-recycle` task applies: for each watched status, after how many
/// untouched days a lead returns to the pool, goes to nurturing or is disqualified, and the
/// reason recorded. `version` 0 and no rules until a manager sets it. Needs `SalesRead`.
#[utoipa::path(get, path = "/api/v1/lead-recycle-policy", tag = "leads",
    responses((status = 200, description = "The policy in force", body = RecyclePolicy,
        headers(("ETag" = String, description = "The policy's version"))), ReadProblems))]
#[get("/lead-recycle-policy")]
pub async fn get_policy(state: web::Data<AppState>, me: Principal) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesRead)?;
    Ok(respond(state.db(|c| load(c)).await?))
}

/// Set the lead recycle policy.
///
/// Replaces the rules (at most one per status; `nurturing` leads can't be sent to nurturing).
/// Audited; honours `If-Match` with the ETag last read. Takes effect at the task's next tick,
/// or at once with `POST /schedules/lead-recycle/run`. Needs `SalesManage`.
#[utoipa::path(put, path = "/api/v1/lead-recycle-policy", tag = "leads",
    request_body = RecyclePolicyInput,
    params(("If-Match" = Option<String>, Header, description = "The ETag last read; 412 when the policy changed since")),
    responses((status = 200, description = "The policy now in force", body = RecyclePolicy,
        headers(("ETag" = String, description = "The policy's version"))), WriteProblems))]
#[put("/lead-recycle-policy")]
pub async fn put_policy(
    state: web::Data<AppState>,
    me: Principal,
    req: HttpRequest,
    body: Json<RecyclePolicyInput>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesManage)?;
    let expected = if_match(&req)?;
    let input = body.into_inner();
    Ok(respond(
        state.db(move |c| save(c, &me, expected, input)).await?,
    ))
}

/// The job of each `lead-recycle` tick: apply every rule to the leads it catches.
pub fn run(conn: &mut DbConn) -> JobResult {
    let policy = load(conn).map_err(|e| e.to_string())?;
    for rule in &policy.rules {
        let cutoff = ids::now_plus(-chrono::Duration::days(i64::from(rule.after_days)));
        loop {
            let moved = recycle_batch(conn, rule, &cutoff).map_err(|e| e.to_string())?;
            if moved < BATCH as usize {
                break;
            }
            if !crm_core::jobs::keep_alive(conn).map_err(|e| e.to_string())? {
                return Err("the job's lease was lost".into());
            }
        }
    }
    Ok(())
}

fn recycle_batch(conn: &mut DbConn, rule: &RecycleRule, cutoff: &str) -> ApiResult<usize> {
    let status = crate::common::enum_text(rule.status);
    db::write_tx(conn, |c| {
        let stale: Vec<LeadRow> = leads::table
            .filter(leads::status.eq(&status))
            .filter(leads::updated_at.lt(cutoff))
            .filter(leads::archived_at.is_null())
            .order((leads::updated_at.asc(), leads::id.asc()))
            .limit(BATCH)
            .select(LeadRow::as_select())
            .load(c)?;
        for lead in &stale {
            recycle_one(c, lead, rule.action, &rule.reason)?;
        }
        Ok(stale.len())
    })
}

/// Move a lead as its score says (`crm_marketing::scoring`): `Nurture` when it cools below
/// the model's nurturing score, `ReturnToPool` when a nurturing lead heats up to the hand-off.
/// Recorded like a recycle, with `reason`; a lead in none of the `from` statuses (or archived)
/// stays as it is. Whether it moved.
pub fn move_by_score(
    c: &mut DbConn,
    id: &str,
    from: &[LeadStatus],
    action: RecycleAction,
    reason: &str,
) -> ApiResult<bool> {
    let lead: LeadRow = leads::table
        .find(id)
        .select(LeadRow::as_select())
        .first(c)?;
    let movable = from.iter().any(|s| s.as_str() == lead.status);
    if lead.archived_at.is_some() || !movable {
        return Ok(false);
    }
    recycle_one(c, &lead, action, reason)?;
    Ok(true)
}

fn recycle_one(
    c: &mut DbConn,
    lead: &LeadRow,
    action: RecycleAction,
    reason: &str,
) -> ApiResult<()> {
    let (status, owner, disqualified) = match action {
        RecycleAction::ReturnToPool => (LeadStatus::New, None, None),
        RecycleAction::Nurture => (LeadStatus::Nurturing, lead.owner_id.clone(), None),
        RecycleAction::Disqualify => (
            LeadStatus::Disqualified,
            lead.owner_id.clone(),
            Some(reason.to_string()),
        ),
    };
    let now = ids::now();
    diesel::update(leads::table.find(&lead.id))
        .filter(leads::version.eq(lead.version))
        .set((
            leads::status.eq(status.as_str()),
            leads::owner_id.eq(&owner),
            leads::disqualified_reason.eq(&disqualified),
            leads::recycled_at.eq(&now),
            leads::recycle_reason.eq(reason),
            leads::version.eq(lead.version + 1),
            leads::updated_at.eq(&now),
        ))
        .execute(c)?;
    let after: crate::leads::Lead = leads::table
        .find(&lead.id)
        .select(LeadRow::as_select())
        .first(c)?
        .into();
    let after = crm_core::list::only(crate::lead_channels::attach(c, vec![after])?)?;
    audit::record(
        c,
        Change {
            actor: &Actor::system(),
            action: "recycled",
            entity_type: "lead",
            entity_id: &lead.id,
            changes: serde_json::json!({
                "status": {"from": lead.status, "to": status.as_str()},
                "owner_id": {"from": lead.owner_id, "to": owner},
                "reason": reason,
                "untouched_since": lead.updated_at,
            }),
            record: crm_customers::common::to_json(&after),
        },
    )
}
