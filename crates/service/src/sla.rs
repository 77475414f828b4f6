//! The SLA clock of a ticket, the scheduled breach check, and the compliance report.
//!
//! Due times are business time from the ticket's creation: `target + paused` business
//! minutes of its policy's calendar, where `paused` is the business time the ticket spent
//! pending customer. Leaving pending customer adds the pause and recomputes the due times,
//! so they are exact to the minute however often the clock stops.

use crate::sla_policies::{self, SlaPolicy, Target};
use crate::tickets::{self, Priority, Status, Ticket};
use crate::{common, mailing};
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::ids;
use crm_core::jobs::{JobFailure, JobResult};
use crm_core::respond::ReadProblems;
use crm_core::schema::tickets as t;
use crm_core::state::AppState;
use crm_customers::common::{json_text, parse_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

pub const TASK: &str = "sla.check";

/// What the clock remembers beside the due times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlaState {
    #[serde(default)]
    pub paused_minutes: i64,
    /// `resolution_breach`, `first_response_warning`, …: each escalated once.
    #[serde(default)]
    pub escalated: Vec<String>,
}

/// A ticket's due times.
pub struct Dues {
    pub policy_id: Option<String>,
    pub first_response: Option<String>,
    pub resolution: Option<String>,
}

impl Dues {
    pub fn kept(t: &Ticket) -> Dues {
        Dues {
            policy_id: t.sla_policy_id.clone(),
            first_response: t.first_response_due_at.clone(),
            resolution: t.resolution_due_at.clone(),
        }
    }
}

fn target(p: &SlaPolicy, priority: Priority) -> Target {
    p.targets
        .get(&crate::enum_text(priority))
        .copied()
        .unwrap_or_default()
}

fn ts(raw: &str) -> Option<DateTime<Utc>> {
    raw.parse().ok()
}

/// Due times of a new ticket.
pub fn initial(
    c: &mut DbConn,
    tier: Option<&str>,
    priority: Priority,
    created: DateTime<Utc>,
) -> ApiResult<Dues> {
    let Some((policy, clock)) = sla_policies::for_tier(c, tier)? else {
        return Ok(Dues {
            policy_id: None,
            first_response: None,
            resolution: None,
        });
    };
    let tg = target(&policy, priority);
    let at = |m: Option<i64>| m.map(|m| ids::format_ts(clock.add(created, m)));
    Ok(Dues {
        policy_id: Some(policy.id.clone()),
        first_response: at(tg.first_response_minutes),
        resolution: at(tg.resolution_minutes),
    })
}

/// Due times recomputed for a priority and a pause total (a first response already given
/// keeps the due time it was measured against).
fn recompute(c: &mut DbConn, ticket: &Ticket, priority: Priority, paused: i64) -> ApiResult<Dues> {
    let Some(policy_id) = &ticket.sla_policy_id else {
        return Ok(Dues::kept(ticket));
    };
    let (policy, clock) = sla_policies::policy_clock(c, policy_id)?;
    let created = ts(&ticket.created_at).unwrap_or_else(Utc::now);
    let tg = target(&policy, priority);
    let at = |m: Option<i64>| m.map(|m| ids::format_ts(clock.add(created, m + paused)));
    Ok(Dues {
        policy_id: Some(policy.id.clone()),
        first_response: if ticket.first_responded_at.is_some() {
            ticket.first_response_due_at.clone()
        } else {
            at(tg.first_response_minutes)
        },
        resolution: at(tg.resolution_minutes),
    })
}

pub fn for_priority(c: &mut DbConn, ticket: &Ticket, priority: Priority) -> ApiResult<Dues> {
    recompute(c, ticket, priority, ticket.sla_paused_minutes)
}

/// The clock after a status change.
pub struct ClockChange {
    pub paused_at: Option<String>,
    pub state: SlaState,
    pub dues: Dues,
}

fn state_of(c: &mut DbConn, id: &str) -> ApiResult<SlaState> {
    let raw: String = t::table.find(id).select(t::sla_state).first(c)?;
    Ok(parse_json(&raw))
}

pub fn on_status(
    c: &mut DbConn,
    ticket: &Ticket,
    to: Status,
    now: DateTime<Utc>,
) -> ApiResult<ClockChange> {
    let mut state = state_of(c, &ticket.id)?;
    let pausing = to == Status::PendingCustomer;
    match (&ticket.sla_paused_at, pausing) {
        (None, true) => Ok(ClockChange {
            paused_at: Some(ids::format_ts(now)),
            state,
            dues: Dues::kept(ticket),
        }),
        (Some(since), false) => {
            let since = ts(since).unwrap_or(now);
            if let Some(policy_id) = &ticket.sla_policy_id {
                let (_, clock) = sla_policies::policy_clock(c, policy_id)?;
                state.paused_minutes += clock.between(since, now);
            }
            let dues = recompute(c, ticket, ticket.priority, state.paused_minutes)?;
            Ok(ClockChange {
                paused_at: None,
                state,
                dues,
            })
        }
        _ => Ok(ClockChange {
            paused_at: ticket.sla_paused_at.clone(),
            state,
            dues: Dues::kept(ticket),
        }),
    }
}

/// The scheduled check: breaches and upcoming breaches of unsolved, running clocks, each
/// escalated once. A breach raises the priority one step, hands a resolution breach to the
/// queue's manager, mails the manager, and emits `ticket.sla_breached` (webhooks); a warning
/// mails the assignee and emits `ticket.sla_warning`.
pub fn check(c: &mut DbConn) -> JobResult {
    let now = Utc::now();
    let horizon = ids::format_ts(now + Duration::days(7));
    let candidates: Vec<String> = t::table
        .filter(t::status.eq_any(tickets::UNSOLVED))
        .filter(t::sla_paused_at.is_null())
        .filter(t::archived_at.is_null())
        .filter(t::sla_policy_id.is_not_null())
        .filter(
            t::resolution_due_at
                .le(&horizon)
                .or(t::first_responded_at
                    .is_null()
                    .and(t::first_response_due_at.le(&horizon)))
                .or(t::next_response_due_at.le(&horizon)),
        )
        .select(t::id)
        .load(c)
        .map_err(|e| JobFailure::from(e.to_string()))?;
    for id in candidates {
        db::write_tx(c, |c| escalate(c, &id, now)).map_err(|e| JobFailure::from(e.to_string()))?;
    }
    Ok(())
}

fn escalate(c: &mut DbConn, id: &str, now: DateTime<Utc>) -> ApiResult<()> {
    db::lock_row(c, "tickets", id)?;
    let ticket = tickets::find_any(c, id)?;
    let Some(policy_id) = ticket.sla_policy_id.clone() else {
        return Ok(());
    };
    if ticket.sla_paused_at.is_some()
        || !tickets::UNSOLVED.contains(&crate::enum_text(ticket.status).as_str())
    {
        return Ok(());
    }
    let policy = sla_policies::find(c, &policy_id)?;
    let warn = Duration::minutes(i64::from(policy.warn_before_minutes));
    let mut state = state_of(c, id)?;
    let mut priority = ticket.priority;
    let mut assignee = ticket.assignee_id.clone();
    let manager = match &ticket.queue_id {
        Some(q) => crate::queues::find(c, q)?.manager_id,
        None => None,
    };
    let clocks = [
        (
            "first_response",
            ticket
                .first_response_due_at
                .clone()
                .filter(|_| ticket.first_responded_at.is_none()),
        ),
        ("next_response", ticket.next_response_due_at.clone()),
        ("resolution", ticket.resolution_due_at.clone()),
    ];
    let mut acted = vec![];
    for (kind, due) in clocks {
        let Some(due_at) = due.as_deref().and_then(ts) else {
            continue;
        };
        let (breach, warning) = (format!("{kind}_breach"), format!("{kind}_warning"));
        if now >= due_at && !state.escalated.contains(&breach) {
            state.escalated.push(breach);
            priority = priority.raised();
            if kind == "resolution" && manager.is_some() {
                assignee = manager.clone();
            }
            acted.push(("sla_breached", kind, due.clone()));
        } else if now < due_at && now >= due_at - warn && !state.escalated.contains(&warning) {
            state.escalated.push(warning);
            acted.push(("sla_warning", kind, due.clone()));
        }
    }
    if acted.is_empty() {
        return Ok(());
    }
    diesel::update(t::table.find(id))
        .set((
            t::sla_state.eq(json_text(&state)),
            t::priority.eq(crate::enum_text(priority)),
            t::priority_rank.eq(priority.rank()),
            t::assignee_id.eq(&assignee),
            t::version.eq(ticket.version + 1),
            t::updated_at.eq(ids::now()),
        ))
        .execute(c)?;
    let after = tickets::find_any(c, id)?;
    for (action, kind, due) in acted {
        let changes = json!({"clock": kind, "due_at": due, "priority": {"from": ticket.priority, "to": priority}});
        common::record_as(c, &Actor::system(), "ticket", action, id, changes, &after)?;
        let to = if action == "sla_breached" {
            manager.clone()
        } else {
            ticket.assignee_id.clone().or(manager.clone())
        };
        if let Some(user) = to {
            mailing::escalation(
                c,
                &after,
                &user,
                action,
                kind,
                due.as_deref().unwrap_or_default(),
            )?;
        }
    }
    Ok(())
}

/// Tickets unsolved for longer than `after` are reported once to their queue's manager by
/// mail, and as `ticket.unresolved_notice` (webhooks).
pub fn report_unresolved(c: &mut DbConn, after: std::time::Duration) -> JobResult {
    let before = ids::format_ts(Utc::now() - Duration::seconds(after.as_secs() as i64));
    let stale: Vec<String> = t::table
        .filter(t::status.eq_any(tickets::UNSOLVED))
        .filter(t::archived_at.is_null())
        .filter(t::created_at.lt(&before))
        .filter(t::sla_state.not_like("%unresolved_notice%"))
        .select(t::id)
        .limit(1000)
        .load(c)
        .map_err(|e| JobFailure::from(e.to_string()))?;
    let hours = after.as_secs() / 3600;
    for id in stale {
        db::write_tx(c, |c| notify_unresolved(c, &id, hours))
            .map_err(|e| JobFailure::from(e.to_string()))?;
    }
    Ok(())
}

fn notify_unresolved(c: &mut DbConn, id: &str, hours: u64) -> ApiResult<()> {
    db::lock_row(c, "tickets", id)?;
    let mut state = state_of(c, id)?;
    if state.escalated.iter().any(|e| e == "unresolved_notice") {
        return Ok(());
    }
    state.escalated.push("unresolved_notice".into());
    diesel::update(t::table.find(id))
        .set(t::sla_state.eq(json_text(&state)))
        .execute(c)?;
    let ticket = tickets::find_any(c, id)?;
    let changes = json!({"unresolved_for_hours": hours});
    common::record_as(
        c,
        &Actor::system(),
        "ticket",
        "unresolved_notice",
        id,
        changes,
        &ticket,
    )?;
    let manager = match &ticket.queue_id {
        Some(q) => crate::queues::find(c, q)?.manager_id,
        None => None,
    };
    if let Some(m) = manager {
        let since = format!("{hours} hours after it was opened");
        mailing::escalation(c, &ticket, &m, "unresolved", "resolution", &since)?;
    }
    Ok(())
}

/// The compliance report's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ComplianceParams {
    /// `2026`, `2026-Q4` or `2026-12`: tickets created in it.
    #[param(pattern = "^[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$")]
    pub period: String,
    /// `queue` (default), `agent` or `priority`.
    #[param(pattern = "^(queue|agent|priority)$")]
    pub group_by: Option<String>,
}

/// One group of the compliance report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplianceRow {
    /// The queue id, agent id or priority (null: no queue / unassigned).
    pub key: Option<String>,
    pub tickets: i64,
    /// First responses given by their due time.
    pub first_response_met: i64,
    /// First responses late, or still missing past their due time.
    pub first_response_breached: i64,
    pub resolution_met: i64,
    pub resolution_breached: i64,
}

/// The report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Compliance {
    pub period: String,
    pub group_by: String,
    pub from: String,
    pub to: String,
    /// How the figures are counted.
    pub method: String,
    pub groups: Vec<ComplianceRow>,
}

/// `2026`, `2026-Q4` or `2026-12` as [from, to) timestamps.
pub fn period_bounds(p: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::BadRequest(format!("{p:?} is not a period (2026, 2026-Q4 or 2026-12)"));
    let year: i32 = p.get(..4).and_then(|y| y.parse().ok()).ok_or_else(bad)?;
    let (m0, months) = match p.get(4..) {
        Some("") => (1, 12),
        Some(rest) if rest.starts_with("-Q") => {
            let q: u32 = rest
                .get(2..)
                .and_then(|q| q.parse().ok())
                .filter(|q| (1..=4).contains(q))
                .ok_or_else(bad)?;
            ((q - 1) * 3 + 1, 3)
        }
        Some(rest) if rest.starts_with('-') => {
            let m: u32 = rest
                .get(1..)
                .filter(|m| m.len() == 2)
                .and_then(|m| m.parse().ok())
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?;
            (m, 1)
        }
        _ => return Err(bad()),
    };
    let start = chrono::NaiveDate::from_ymd_opt(year, m0, 1).ok_or_else(bad)?;
    let end = start
        .checked_add_months(chrono::Months::new(months))
        .ok_or_else(bad)?;
    let at =
        |d: chrono::NaiveDate| ids::format_ts(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    Ok((at(start), at(end)))
}

/// SLA compliance.
///
/// For the tickets created in `period` that an SLA policy covers, grouped by `queue`, `agent`
/// (assignee) or `priority`: how many met and breached their first response and resolution
/// targets. A first response is met when given by its due time and breached when given later or
/// still missing after it; resolution likewise with the time the ticket was solved. Counted in
/// the database in one query. Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/sla/compliance", tag = "sla", operation_id = "get_sla_compliance",
    params(ComplianceParams),
    responses((status = 200, description = "The report", body = Compliance), ReadProblems))]
#[get("/sla/compliance")]
pub async fn compliance(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<ComplianceParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let params = query.into_inner();
    let (from, to) = period_bounds(&params.period)?;
    let group_by = params.group_by.clone().unwrap_or_else(|| "queue".into());
    if !["queue", "agent", "priority"].contains(&group_by.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "{group_by:?} is not queue, agent or priority"
        )));
    }
    let (f, tt, by) = (from.clone(), to.clone(), group_by.clone());
    let groups = state.db(move |c| report(c, &f, &tt, &by)).await?;
    Ok(HttpResponse::Ok().json(Compliance {
        period: params.period,
        group_by,
        from,
        to,
        method: "tickets created in the period under an SLA policy; met = answered or solved by the due time, breached = later, or still open after it".into(),
        groups,
    }))
}

/// The report's groups, counted in one grouped query.
fn report(c: &mut DbConn, from: &str, to: &str, by: &str) -> ApiResult<Vec<ComplianceRow>> {
    use diesel::dsl::{case_when, count_star, sum};
    use diesel::sql_types::Integer;
    let one = || 1.into_sql::<Integer>();
    let zero = || 0.into_sql::<Integer>();
    let now = ids::now();
    let base = t::table
        .filter(t::created_at.ge(from.to_string()))
        .filter(t::created_at.lt(to.to_string()))
        .filter(t::sla_policy_id.is_not_null())
        .filter(t::archived_at.is_null());
    let fr_met =
        case_when(t::first_responded_at.le(t::first_response_due_at), one()).otherwise(zero());
    let fr_breached = case_when(
        t::first_responded_at
            .gt(t::first_response_due_at)
            .or(t::first_responded_at
                .is_null()
                .and(t::first_response_due_at.lt(now.clone()))),
        one(),
    )
    .otherwise(zero());
    let res_met = case_when(t::solved_at.le(t::resolution_due_at), one()).otherwise(zero());
    let res_breached = case_when(
        t::solved_at.gt(t::resolution_due_at).or(t::solved_at
            .is_null()
            .and(t::resolution_due_at.lt(now.clone()))),
        one(),
    )
    .otherwise(zero());
    type Counted = (
        Option<String>,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    macro_rules! grouped {
        ($col:expr) => {
            base.group_by($col)
                .select((
                    $col.nullable(),
                    count_star(),
                    sum(fr_met),
                    sum(fr_breached),
                    sum(res_met),
                    sum(res_breached),
                ))
                .order($col)
                .load::<Counted>(c)?
        };
    }
    let rows = match by {
        "agent" => grouped!(t::assignee_id),
        "priority" => grouped!(t::priority),
        _ => grouped!(t::queue_id),
    };
    Ok(rows
        .into_iter()
        .map(|(key, n, a, b, d, e)| ComplianceRow {
            key,
            tickets: n,
            first_response_met: a.unwrap_or(0),
            first_response_breached: b.unwrap_or(0),
            resolution_met: d.unwrap_or(0),
            resolution_breached: e.unwrap_or(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(
            period_bounds("2026-Q4").ok(),
            Some((
                "2026-10-01T00:00:00.000000Z".into(),
                "2027-01-01T00:00:00.000000Z".into()
            ))
        );
        assert!(period_bounds("2026-13").is_err());
        assert!(period_bounds("soon").is_err());
    }
}
