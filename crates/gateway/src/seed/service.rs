//! The service side of `crm seed`. At scale 1: one pull queue worked by the seeded users,
//! a round-the-clock business calendar and SLA policy, and 500,000 tickets of the seeded
//! contacts: about 70% solved or closed, the rest open, most of them assigned and a fifth
//! waiting in the queue for the next agent to pull them.

use super::{Gen, CHUNK};
use chrono::Duration;
use crm_core::db::DbConn;
use crm_core::schema::{
    business_calendars, contact_accounts, counters, queues, sla_policies, tickets,
};
use diesel::prelude::*;
use rand::Rng;

const CATEGORIES: [&str; 5] = ["billing", "login", "delivery", "hardware", "other"];
const SUBJECTS: [&str; 6] = [
    "Invoice missing",
    "Cannot log in",
    "Parcel late",
    "Printer jams",
    "Wrong item delivered",
    "Refund request",
];
const CHANNELS: [&str; 4] = ["email", "web", "phone", "chat"];

/// Priority and its rank, weighted towards normal.
const PRIORITIES: [(&str, i32); 6] = [
    ("low", 1),
    ("normal", 2),
    ("normal", 2),
    ("normal", 2),
    ("high", 3),
    ("urgent", 4),
];

pub(super) fn seed_service(
    conn: &mut DbConn,
    gen: &mut Gen,
    agents: &[String],
    scale: f64,
) -> QueryResult<usize> {
    let queue = seed_queue(conn, gen, agents)?;
    let policy = seed_policy(conn, gen)?;
    let people: Vec<(String, String)> = contact_accounts::table
        .select((contact_accounts::contact_id, contact_accounts::account_id))
        .order(contact_accounts::contact_id)
        .load(conn)?;
    let n = ((500_000.0 * scale) as usize).max(50);
    let mut rows = vec![];
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let (contact, account) = people
            .get(gen.skewed(people.len(), 2))
            .cloned()
            .map_or((None, None), |(c, a)| (Some(c), Some(a)));
        let roll: u32 = gen.rng.random_range(0..100);
        let status = match roll {
            0..=59 => "solved",
            60..=69 => "closed",
            70..=79 => "new",
            80..=89 => "open",
            90..=94 => "pending_customer",
            _ => "on_hold",
        };
        let assignee = if status == "new" {
            None
        } else {
            agents.get(gen.rng.random_range(0..agents.len())).cloned()
        };
        let (priority, rank) = PRIORITIES
            .get(gen.rng.random_range(0..PRIORITIES.len()))
            .copied()
            .unwrap_or(("normal", 2));
        let created: chrono::DateTime<chrono::Utc> = at.parse().unwrap_or_default();
        let due = |minutes: i64| crm_core::ids::format_ts(created + Duration::minutes(minutes));
        let solved =
            matches!(status, "solved" | "closed").then(|| due(gen.rng.random_range(30..4000)));
        rows.push((
            (
                tickets::id.eq(id),
                tickets::number.eq(1001 + i as i64),
                tickets::subject.eq(gen.pick(&SUBJECTS)),
                tickets::description.eq(Some("Seeded ticket")),
                tickets::channel.eq(gen.pick(&CHANNELS)),
                tickets::contact_id.eq(contact),
                tickets::account_id.eq(account),
                tickets::category.eq(Some(gen.pick(&CATEGORIES))),
                tickets::language.eq(Some("en")),
                tickets::priority.eq(priority),
                tickets::priority_rank.eq(rank),
                tickets::status.eq(status),
                tickets::queue_id.eq(Some(queue.clone())),
                tickets::assignee_id.eq(assignee),
            ),
            (
                tickets::tags.eq("[]"),
                tickets::sla_policy_id.eq(Some(policy.clone())),
                tickets::first_response_due_at.eq(Some(due(240))),
                tickets::resolution_due_at.eq(Some(due(2400))),
                tickets::first_responded_at
                    .eq((status != "new").then(|| due(gen.rng.random_range(5..400)))),
                tickets::sla_state.eq(r#"{"paused_minutes":0,"escalated":[]}"#),
                tickets::solved_at.eq(solved),
                tickets::version.eq(1),
                tickets::created_at.eq(at.clone()),
                tickets::updated_at.eq(at),
            ),
        ));
        if rows.len() >= CHUNK || i + 1 == n {
            insert_rows!(conn, tickets::table, &rows)?;
            rows.clear();
        }
    }
    diesel::update(counters::table.find("ticket_number"))
        .set(counters::value.eq(1000 + n as i64))
        .execute(conn)?;
    Ok(n)
}

fn seed_queue(conn: &mut DbConn, gen: &mut Gen, agents: &[String]) -> QueryResult<String> {
    let (id, at) = gen.id_and_time();
    let members: Vec<serde_json::Value> = agents
        .iter()
        .map(|a| serde_json::json!({"user_id": a, "skills": []}))
        .collect();
    insert_rows!(
        conn,
        queues::table,
        &vec![(
            queues::id.eq(id.clone()),
            queues::name.eq("Support"),
            queues::assignment.eq("pull"),
            queues::members.eq(serde_json::Value::from(members).to_string()),
            queues::version.eq(1),
            queues::created_at.eq(at.clone()),
            queues::updated_at.eq(at),
        )]
    )?;
    Ok(id)
}

fn seed_policy(conn: &mut DbConn, gen: &mut Gen) -> QueryResult<String> {
    let (cal, at) = gen.id_and_time();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hours: Vec<serde_json::Value> = days
        .iter()
        .map(|d| serde_json::json!({"day": d, "start": "00:00", "end": "24:00"}))
        .collect();
    insert_rows!(
        conn,
        business_calendars::table,
        &vec![(
            business_calendars::id.eq(cal.clone()),
            business_calendars::name.eq("Around the clock"),
            business_calendars::time_zone.eq("UTC"),
            business_calendars::weekly_hours.eq(serde_json::Value::from(hours).to_string()),
            business_calendars::holidays.eq("[]"),
            business_calendars::version.eq(1),
            business_calendars::created_at.eq(at.clone()),
            business_calendars::updated_at.eq(at.clone()),
        )]
    )?;
    let (id, at) = gen.id_and_time();
    let targets = serde_json::json!({
        "normal": {"first_response_minutes": 240, "resolution_minutes": 2400},
        "urgent": {"first_response_minutes": 30, "resolution_minutes": 480},
    });
    insert_rows!(
        conn,
        sla_policies::table,
        &vec![(
            sla_policies::id.eq(id.clone()),
            sla_policies::name.eq("Standard"),
            sla_policies::calendar_id.eq(cal),
            sla_policies::targets.eq(targets.to_string()),
            sla_policies::warn_before_minutes.eq(60),
            sla_policies::version.eq(1),
            sla_policies::created_at.eq(at.clone()),
            sla_policies::updated_at.eq(at),
        )]
    )?;
    Ok(id)
}
