//! Running automations: the relay that reads the event log and enrols subjects, the daily
//! trigger, the `automation.advance` job that walks a run through its steps, and the run
//! history (`/automation-runs`).
//!
//! Exactly once: the relay's position in the event log moves in the same transaction as the
//! runs it creates (and a unique index on automation, trigger and subject backs that up), and
//! each `automation.advance` job names the step it is for, so a retried or duplicated job
//! finds the run already past it and does nothing. A step's effects, its history row and the
//! run's next position commit together; a wait is a job due at its end, so runs survive
//! restarts.

use crate::automations::{self, all_match, Automation, Status, Step};
use crate::common::audit_change;
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::{self, Actor};
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::ids;
use crm_core::integrations::feed::{self, FeedEvent, FeedPage, FeedQuery};
use crm_core::jobs::{self, JobFailure, JobResult};
use crm_core::list::{self, Filter, FilterKind, ListParams, ListSpec, Page};
use crm_core::params::PageParams;
use crm_core::resource::Resource;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{
    automation_cursor as cur, automation_runs as ar, automation_steps as ast,
    campaign_members as cm, contact_accounts as ca, contacts, leads, list_members, opportunities,
    order_lines as ol, products,
};
use crm_core::state::AppState;
use crm_customers::common::to_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::ToSchema;

pub const ADVANCE: &str = "automation.advance";
pub const DAILY_TASK: &str = "automations.daily";
const RELAY_BATCH: i64 = 200;
/// How often a run of a paused automation looks again.
const PAUSED_RECHECK: Duration = Duration::from_secs(60);

/// Whom a run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    Contact,
    Lead,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AutomationRunStatus)]
pub enum RunStatus {
    Active,
    Completed,
    Exited,
    Failed,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ar)]
struct RunRow {
    id: String,
    automation_id: String,
    subject_type: String,
    subject_id: String,
    trigger_key: String,
    status: String,
    step: i32,
    wake_at: Option<String>,
    exit_reason: Option<String>,
    started_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

/// One subject's walk through an automation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutomationRun {
    pub id: String,
    pub automation_id: String,
    pub subject_type: SubjectType,
    pub subject_id: String,
    /// What enrolled it: an event id, `day:<date>` for a daily trigger, `manual:<id>`.
    pub trigger_key: String,
    pub status: RunStatus,
    /// The next step to run (0-based).
    pub step: i32,
    /// When a waiting run goes on.
    pub wake_at: Option<String>,
    pub exit_reason: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<RunRow> for AutomationRun {
    fn from(r: RunRow) -> Self {
        AutomationRun {
            id: r.id,
            automation_id: r.automation_id,
            subject_type: crate::enum_from(&r.subject_type, SubjectType::Contact),
            subject_id: r.subject_id,
            trigger_key: r.trigger_key,
            status: crate::enum_from(&r.status, RunStatus::Active),
            step: r.step,
            wake_at: r.wake_at,
            exit_reason: r.exit_reason,
            started_at: r.started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

/// What happened at one step.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = ast)]
#[schema(as = AutomationRunStep)]
pub struct RunStep {
    /// The step's index; -1 for the enrolment itself.
    pub step: i32,
    /// enrolled, wait, condition, send_email, … or exit.
    pub action: String,
    /// done, waiting, skipped, exited or failed.
    pub outcome: String,
    /// JSON: what the step did or why not.
    pub detail: String,
    pub at: String,
}

/// A run with its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutomationRunDetail {
    #[serde(flatten)]
    pub run: AutomationRun,
    pub history: Vec<RunStep>,
}

fn find_run(c: &mut DbConn, id: &str) -> ApiResult<AutomationRun> {
    ar::table
        .find(id)
        .select(RunRow::as_select())
        .first(c)
        .optional()?
        .map(AutomationRun::from)
        .ok_or_else(|| ApiError::not_found("automation run"))
}

fn log(
    c: &mut DbConn,
    run: &str,
    step: i32,
    action: &str,
    outcome: &str,
    detail: Value,
) -> ApiResult<()> {
    diesel::insert_into(ast::table)
        .values((
            ast::id.eq(ids::new_id()),
            ast::run_id.eq(run),
            ast::step.eq(step),
            ast::action.eq(action),
            ast::outcome.eq(outcome),
            ast::detail.eq(detail.to_string()),
            ast::at.eq(ids::now()),
        ))
        .execute(c)?;
    Ok(())
}

fn finish(c: &mut DbConn, run: &str, status: RunStatus, reason: Option<&str>) -> ApiResult<()> {
    let now = ids::now();
    diesel::update(ar::table.find(run))
        .set((
            ar::status.eq(crate::enum_text(status)),
            ar::exit_reason.eq(reason),
            ar::wake_at.eq(None::<String>),
            ar::updated_at.eq(&now),
            ar::finished_at.eq(&now),
        ))
        .execute(c)?;
    Ok(())
}

// ---- enrolment ----

/// The principal an automation's actions run as; none when its owner left.
fn owner_of(c: &mut DbConn, a: &Automation) -> ApiResult<Option<Principal>> {
    auth::principal_of_user(c, &a.owner_id)
}

/// Whether a live contact matches segment criteria now.
fn contact_matches(c: &mut DbConn, me: &Principal, criteria: &Value, id: &str) -> ApiResult<bool> {
    let node = crate::segments::checked(c, criteria)?;
    let n: i64 = crate::segments::matching(me, &node)
        .filter(contacts::id.eq(id.to_string()))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}

/// Enrol a subject unless the rules say no; the new run's id.
pub fn enrol(
    c: &mut DbConn,
    a: &Automation,
    (kind, subject): (SubjectType, &str),
    key: &str,
) -> ApiResult<Option<String>> {
    let Some(owner) = owner_of(c, a)? else {
        return Ok(None);
    };
    if let Some(criteria) = &a.enrolment.criteria {
        if kind == SubjectType::Lead || !contact_matches(c, &owner, criteria, subject)? {
            return Ok(None);
        }
    }
    // Enrolments of one subject in one automation take turns, so the check below sees a run
    // another enrolment just started (two hand enrolments at once, one racing the relay or
    // the daily task). Not a unique index: `once_per_subject` is the automation's setting,
    // and "one active run" holds only while a run is active.
    db::lock_key(c, &format!("automation_runs:{}:{subject}", a.id))?;
    let theirs = ar::table
        .filter(ar::automation_id.eq(&a.id))
        .filter(ar::subject_id.eq(subject));
    // One run at a time per subject; with once_per_subject, one ever; never two per trigger.
    let blocking: i64 = if a.enrolment.once_per_subject {
        theirs.count().get_result(c)?
    } else {
        theirs
            .filter(ar::status.eq("active").or(ar::trigger_key.eq(key)))
            .count()
            .get_result(c)?
    };
    if blocking > 0 {
        return Ok(None);
    }
    let (id, now) = (ids::new_id(), ids::now());
    diesel::insert_into(ar::table)
        .values((
            ar::id.eq(&id),
            ar::automation_id.eq(&a.id),
            ar::subject_type.eq(crate::enum_text(kind)),
            ar::subject_id.eq(subject),
            ar::trigger_key.eq(key),
            ar::status.eq("active"),
            ar::step.eq(0),
            ar::started_at.eq(&now),
            ar::updated_at.eq(&now),
        ))
        .execute(c)?;
    log(c, &id, -1, "enrolled", "done", json!({"trigger": key}))?;
    jobs::enqueue(c, ADVANCE, &json!({"run_id": id, "step": 0}), 10)?;
    Ok(Some(id))
}

/// The contact an order is for: its opportunity's primary contact, else the account's
/// buyer, decision maker or first contact.
fn order_contact(c: &mut DbConn, data: &Value) -> ApiResult<Option<String>> {
    if let Some(opp) = data.get("opportunity_id").and_then(Value::as_str) {
        let primary: Option<Option<String>> = opportunities::table
            .find(opp)
            .select(opportunities::primary_contact_id)
            .first(c)
            .optional()?;
        if let Some(Some(p)) = primary {
            return Ok(Some(p));
        }
    }
    let Some(account) = data.get("account_id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let mut people: Vec<(String, String)> = ca::table
        .filter(ca::account_id.eq(account))
        .select((ca::contact_id, ca::role))
        .load(c)?;
    let rank = |role: &str| match role {
        "buyer" => 0,
        "decision_maker" => 1,
        _ => 2,
    };
    people.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then(a.0.cmp(&b.0)));
    Ok(people.into_iter().next().map(|p| p.0))
}

/// Whom an event is about.
fn subject_of(c: &mut DbConn, e: &FeedEvent) -> ApiResult<Option<(SubjectType, String)>> {
    let text = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(match e.entity_type.as_str() {
        "contact" => Some((SubjectType::Contact, e.entity_id.clone())),
        "lead" => Some((SubjectType::Lead, e.entity_id.clone())),
        "order" => order_contact(c, &e.data)?.map(|id| (SubjectType::Contact, id)),
        _ => match (text("contact_id"), text("lead_id")) {
            (Some(id), _) => Some((SubjectType::Contact, id)),
            (None, Some(id)) => Some((SubjectType::Lead, id)),
            _ => None,
        },
    })
}

/// Whether an order has a line of a product of this family.
fn bought_family(c: &mut DbConn, order: &str, family: &str) -> ApiResult<bool> {
    let families: Vec<Option<String>> = ol::table
        .inner_join(products::table.on(products::id.eq(ol::product_id)))
        .filter(ol::order_id.eq(order))
        .select(products::family)
        .load(c)?;
    Ok(families
        .iter()
        .flatten()
        .any(|f| f.eq_ignore_ascii_case(family)))
}

fn triggered_by(c: &mut DbConn, a: &Automation, e: &FeedEvent) -> ApiResult<bool> {
    let t = &a.trigger;
    let Some(pattern) = &t.event else {
        return Ok(false);
    };
    // What happened before the automation existed is not its business.
    if !automations::event_matches(pattern, &e.event_type)
        || e.occurred_at < a.created_at
        || !all_match(&e.data, &t.when)
    {
        return Ok(false);
    }
    match &t.product_family {
        Some(f) => bought_family(c, &e.entity_id, f),
        None => Ok(true),
    }
}

/// Exits and enrolments for one event.
fn on_event(c: &mut DbConn, autos: &[Automation], e: &FeedEvent) -> ApiResult<()> {
    if e.entity_type == "automation_run" {
        // An automation's own notifications never trigger automations (no loops).
        return Ok(());
    }
    let Some((kind, subject)) = subject_of(c, e)? else {
        return Ok(());
    };
    for a in autos {
        if a.exit
            .events
            .iter()
            .any(|p| automations::event_matches(p, &e.event_type))
        {
            let runs: Vec<String> = ar::table
                .filter(ar::automation_id.eq(&a.id))
                .filter(ar::subject_id.eq(&subject))
                .filter(ar::status.eq("active"))
                .select(ar::id)
                .load(c)?;
            for run in runs {
                let reason = format!("exit event {}", e.event_type);
                log(c, &run, -1, "exit", "exited", json!({"event_id": e.id}))?;
                finish(c, &run, RunStatus::Exited, Some(&reason))?;
            }
        }
        if triggered_by(c, a, e)? {
            enrol(c, a, (kind, &subject), &e.id)?;
        }
    }
    Ok(())
}

fn cursor(c: &mut DbConn) -> ApiResult<feed::Position> {
    let (tx, seq): (i64, i64) = cur::table.find(1).select((cur::tx, cur::seq)).first(c)?;
    Ok(feed::Position { tx, seq })
}

/// Read the next events of the log and act on them; how many were read.
pub fn relay(c: &mut DbConn) -> ApiResult<usize> {
    if cursor(c)? >= feed::head(c)? {
        return Ok(0);
    }
    db::write_tx(c, |c| {
        // The row lock: two servers' relays take turns.
        diesel::update(cur::table.find(1))
            .set(cur::tx.eq(cur::tx))
            .execute(c)?;
        let query = FeedQuery {
            after: Some(cursor(c)?),
            types: vec![],
            limit: RELAY_BATCH,
            entities: None,
        };
        let page = match feed::read(c, &query) {
            Err(ApiError::Gone(_)) => {
                tracing::warn!("the automation relay fell behind event retention; skipping ahead");
                FeedPage {
                    data: vec![],
                    next_cursor: feed::head(c)?.to_string(),
                    has_more: false,
                }
            }
            other => other?,
        };
        let autos = if page.data.is_empty() {
            vec![]
        } else {
            automations::active(c)?
        };
        if !autos.is_empty() {
            for e in &page.data {
                on_event(c, &autos, e)?;
            }
        }
        let next = feed::parse_cursor(&page.next_cursor)?;
        diesel::update(cur::table.find(1))
            .set((cur::tx.eq(next.tx), cur::seq.eq(next.seq)))
            .execute(c)?;
        Ok(page.data.len())
    })
}

/// The `automations.daily` task: enrol the contacts each daily trigger matches today; each
/// page of matches is a criteria query bounded by `budget` (`CRM_CRITERIA_TIMEOUT_MS`).
pub fn daily(c: &mut DbConn, budget: std::time::Duration) -> JobResult {
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let autos = automations::active(c).map_err(fail)?;
    let key = format!("day:{}", chrono::Utc::now().format("%Y-%m-%d"));
    for a in autos.iter().filter(|a| a.trigger.daily.is_some()) {
        let Some(owner) = owner_of(c, a).map_err(fail)? else {
            continue;
        };
        let criteria = a.trigger.daily.clone().unwrap_or_default();
        let mut after = String::new();
        loop {
            // Pages of 500 by id, each enrolled in its own transaction.
            let page: Vec<String> = crate::segments::checked(c, &criteria)
                .and_then(|node| {
                    crate::segments::evaluate(c, budget, |c| {
                        Ok(crate::segments::matching(&owner, &node)
                            .filter(contacts::id.gt(after.clone()))
                            .order(contacts::id)
                            .limit(500)
                            .select(contacts::id)
                            .load(c)?)
                    })
                })
                .map_err(fail)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            db::write_tx(c, |c| {
                page.iter()
                    .try_for_each(|id| enrol(c, a, (SubjectType::Contact, id), &key).map(|_| ()))
            })
            .map_err(fail)?;
            after = last;
        }
    }
    Ok(())
}

// ---- steps ----

/// What a step did: go on (with its outcome and detail) or end the run.
enum Flow {
    Next(&'static str, Value),
    Stop(String),
}

fn done(detail: Value) -> ApiResult<Flow> {
    Ok(Flow::Next("done", detail))
}

fn skipped(reason: &str) -> ApiResult<Flow> {
    Ok(Flow::Next("skipped", json!({"reason": reason})))
}

/// The subject's current record as JSON (404 when it is gone).
fn record_of(c: &mut DbConn, me: &Principal, run: &AutomationRun) -> ApiResult<Value> {
    Ok(match run.subject_type {
        SubjectType::Contact => to_json(&crm_customers::contacts::find(c, me, &run.subject_id)?),
        SubjectType::Lead => to_json(&<crm_sales::leads::Leads as Resource>::find(
            c,
            me,
            &run.subject_id,
        )?),
    })
}

fn condition(c: &mut DbConn, me: &Principal, run: &AutomationRun, s: &Step) -> ApiResult<Flow> {
    if let Some(criteria) = &s.criteria {
        let met = run.subject_type == SubjectType::Contact
            && contact_matches(c, me, criteria, &run.subject_id)?;
        if !met {
            return Ok(Flow::Stop("condition not met".into()));
        }
    }
    if let Some(when) = &s.when {
        if !all_match(&record_of(c, me, run)?, when) {
            return Ok(Flow::Stop("condition not met".into()));
        }
    }
    done(json!({"met": true}))
}

/// `send_email` and `send_sms`: the campaign's message to the contact, once, by its channel.
fn send_campaign(c: &mut DbConn, run: &AutomationRun, s: &Step) -> ApiResult<Flow> {
    if run.subject_type != SubjectType::Contact {
        return skipped("leads are mailed once they are contacts");
    }
    let campaign = crate::campaigns::find(c, s.campaign_id.as_deref().unwrap_or_default())?;
    if campaign.archived_at.is_some() {
        return skipped("campaign_archived");
    }
    let member = cm::table
        .filter(cm::campaign_id.eq(&campaign.id))
        .filter(cm::contact_id.eq(&run.subject_id));
    let known: Option<String> = member.select(cm::status).first(c).optional()?;
    match known.as_deref() {
        None => {
            diesel::insert_into(cm::table)
                .values((
                    cm::campaign_id.eq(&campaign.id),
                    cm::contact_id.eq(&run.subject_id),
                    cm::status.eq("targeted"),
                    cm::added_at.eq(ids::now()),
                ))
                .execute(c)?;
        }
        Some("targeted") => {}
        // The same campaign message never reaches a contact twice.
        Some(_) => return skipped("already_sent"),
    }
    crate::sending::mail_member(c, &campaign, &run.subject_id)?;
    let (status, reason, mail): (String, Option<String>, Option<String>) = member
        .select((cm::status, cm::skip_reason, cm::mail_id))
        .first(c)?;
    match status.as_str() {
        "sent" => done(json!({"campaign_id": campaign.id, "mail_id": mail})),
        _ => skipped(reason.as_deref().unwrap_or("not_sent")),
    }
}

fn add_to_list(c: &mut DbConn, me: &Principal, run: &AutomationRun, s: &Step) -> ApiResult<Flow> {
    if run.subject_type != SubjectType::Contact {
        return skipped("lists hold contacts");
    }
    let list = s.list_id.clone().unwrap_or_default();
    let on: i64 = list_members::table
        .filter(list_members::list_id.eq(&list))
        .filter(list_members::contact_id.eq(&run.subject_id))
        .count()
        .get_result(c)?;
    if on > 0 {
        return skipped("already_on_list");
    }
    let input = crate::lists::AddMembers {
        contact_ids: vec![run.subject_id.clone()],
    };
    crate::lists::add(c, me, &list, &input)?;
    done(json!({"list_id": list}))
}

fn set_field(c: &mut DbConn, me: &Principal, run: &AutomationRun, s: &Step) -> ApiResult<Flow> {
    let field = s.field.clone().unwrap_or_default();
    let value = s.value.clone().unwrap_or(Value::Null);
    let settable = match run.subject_type {
        SubjectType::Contact => automations::CONTACT_SETTABLE,
        SubjectType::Lead => automations::LEAD_SETTABLE,
    };
    if !settable.contains(&field.as_str()) {
        return skipped("not_a_field_of_this_subject");
    }
    // Writing what is there already changes nothing, and so triggers nothing.
    if record_of(c, me, run)?.get(&field) == Some(&value) {
        return skipped("unchanged");
    }
    let patch = json!({ field.as_str(): value });
    match run.subject_type {
        SubjectType::Contact => {
            <crm_customers::contacts::Contacts as Resource>::update(
                c,
                me,
                &run.subject_id,
                None,
                &patch,
            )?;
        }
        SubjectType::Lead => {
            crm_sales::leads::update_lead(c, me, &run.subject_id, None, &patch)?;
        }
    }
    done(patch)
}

fn create_task(
    c: &mut DbConn,
    me: &Principal,
    a: &Automation,
    run: &AutomationRun,
    s: &Step,
) -> ApiResult<Flow> {
    let owner: Option<Option<String>> = match run.subject_type {
        SubjectType::Contact => contacts::table
            .find(&run.subject_id)
            .select(contacts::owner_id)
            .first(c)
            .optional()?,
        SubjectType::Lead => leads::table
            .find(&run.subject_id)
            .select(leads::owner_id)
            .first(c)
            .optional()?,
    };
    let assignee = owner.flatten().unwrap_or_else(|| a.owner_id.clone());
    let due = ids::now_plus(chrono::Duration::days(i64::from(
        s.due_in_days.unwrap_or(1),
    )));
    let input: crm_customers::activities::ActivityInput = crm_core::objects::input(&json!({
        "kind": "task",
        "subject": s.subject.as_deref().unwrap_or_default().trim(),
        "body": format!("From the automation \"{}\".", a.name),
        "due_at": due,
        "assignee_id": assignee,
        "links": [{"entity_type": crate::enum_text(run.subject_type), "entity_id": run.subject_id}],
    }))?;
    let task = crm_customers::activities::create_activity(c, me, &input)?;
    done(json!({"activity_id": task.id, "assignee_id": assignee}))
}

fn notify(
    c: &mut DbConn,
    a: &Automation,
    run: &AutomationRun,
    i: usize,
    s: &Step,
) -> ApiResult<Flow> {
    let payload = json!({
        "id": run.id,
        "automation_id": a.id,
        "automation_name": a.name,
        "subject_type": run.subject_type,
        "subject_id": run.subject_id,
        "step": i,
        "data": s.data.clone().unwrap_or(Value::Null),
    });
    audit::emit(
        c,
        "automation_run.notified",
        "automation_run",
        &run.id,
        &Actor::system(),
        &payload,
    )?;
    done(json!({"event": "automation_run.notified"}))
}

fn act(
    c: &mut DbConn,
    me: &Principal,
    a: &Automation,
    run: &AutomationRun,
    i: usize,
    s: &Step,
) -> ApiResult<Flow> {
    match s.kind.as_str() {
        "condition" => condition(c, me, run, s),
        "send_email" | "send_sms" => send_campaign(c, run, s),
        "add_to_list" => add_to_list(c, me, run, s),
        "set_field" => set_field(c, me, run, s),
        "create_task" => create_task(c, me, a, run, s),
        "notify" => notify(c, a, run, i, s),
        other => Err(ApiError::BadRequest(format!("unknown step type {other}"))),
    }
}

/// Failures worth a retry of the whole job (the database, a lost lock race); any other
/// error is the step's own and fails the run.
fn transient(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::TooManyRequests { .. }
    )
}

/// Run steps from the run's position until a wait, the end, an exit or a failure.
fn walk(c: &mut DbConn, a: &Automation, run: &AutomationRun, me: &Principal) -> ApiResult<()> {
    let mut i = usize::try_from(run.step).unwrap_or(0);
    loop {
        let Some(s) = a.steps.get(i) else {
            return finish(c, &run.id, RunStatus::Completed, None);
        };
        let step = i as i32;
        if let Some(criteria) = &a.exit.criteria {
            if run.subject_type == SubjectType::Contact
                && contact_matches(c, me, criteria, &run.subject_id)?
            {
                log(
                    c,
                    &run.id,
                    step,
                    "exit",
                    "exited",
                    json!({"reason": "exit criteria"}),
                )?;
                return finish(c, &run.id, RunStatus::Exited, Some("exit criteria met"));
            }
        }
        if s.kind == "wait" {
            let pause = automations::wait_of(s);
            let until = ids::now_plus(pause);
            log(c, &run.id, step, "wait", "waiting", json!({"until": until}))?;
            diesel::update(ar::table.find(&run.id))
                .set((
                    ar::step.eq(step + 1),
                    ar::wake_at.eq(&until),
                    ar::updated_at.eq(ids::now()),
                ))
                .execute(c)?;
            let payload = json!({"run_id": run.id, "step": step + 1});
            jobs::enqueue_after(c, ADVANCE, &payload, 10, pause.to_std().unwrap_or_default())?;
            return Ok(());
        }
        // A savepoint: a step that fails leaves nothing of itself behind.
        match db::write_tx(c, |c| act(c, me, a, run, i, s)) {
            Ok(Flow::Next(outcome, detail)) => log(c, &run.id, step, &s.kind, outcome, detail)?,
            Ok(Flow::Stop(reason)) => {
                log(
                    c,
                    &run.id,
                    step,
                    &s.kind,
                    "exited",
                    json!({"reason": reason}),
                )?;
                return finish(c, &run.id, RunStatus::Exited, Some(&reason));
            }
            Err(e) if transient(&e) => return Err(e),
            Err(e) => {
                log(
                    c,
                    &run.id,
                    step,
                    &s.kind,
                    "failed",
                    json!({"error": e.to_string()}),
                )?;
                return finish(c, &run.id, RunStatus::Failed, Some(&e.to_string()));
            }
        }
        i += 1;
        diesel::update(ar::table.find(&run.id))
            .set((ar::step.eq(i as i32), ar::updated_at.eq(ids::now())))
            .execute(c)?;
    }
}

/// The `automation.advance` job: `{"run_id", "step"}`.
pub fn advance(c: &mut DbConn, payload: &Value) -> JobResult {
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let id = payload["run_id"].as_str().unwrap_or_default().to_string();
    let step = payload["step"].as_i64().unwrap_or(-1);
    db::write_tx(c, |c| {
        db::lock_row(c, "automation_runs", &id)?;
        let Ok(run) = find_run(c, &id) else {
            return Ok(());
        };
        // A retried or late job for a step the run has left does nothing.
        if run.status != RunStatus::Active || i64::from(run.step) != step {
            return Ok(());
        }
        let a = automations::find(c, &run.automation_id)?;
        if a.archived_at.is_some() {
            return finish(c, &id, RunStatus::Exited, Some("automation archived"));
        }
        if a.status != Status::Active {
            jobs::enqueue_after(c, ADVANCE, payload, 10, PAUSED_RECHECK)?;
            return Ok(());
        }
        let Some(me) = owner_of(c, &a)? else {
            return finish(
                c,
                &id,
                RunStatus::Failed,
                Some("the automation's owner is inactive"),
            );
        };
        walk(c, &a, &run, &me)
    })
    .map_err(fail)
}

// ---- HTTP ----

pub const RUNS: ListSpec = ListSpec {
    sort_fields: &["started_at"],
    default_sort: "-started_at",
    filters: &[
        Filter::new("automation_id", FilterKind::Id, "Runs of this automation"),
        Filter::new("subject_id", FilterKind::Id, "Runs of this contact or lead"),
        Filter::of::<RunStatus>("status", "Runs in this status"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(ar::table, ar::BoxedQuery<'static, MultiBackend>, {
    "started_at" => ar::started_at,
    "id" => ar::id,
});

fn run_page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<AutomationRun>> {
    let mut q = ar::table.into_boxed::<MultiBackend>();
    let id_filter = |name: &str| -> ApiResult<Option<String>> {
        p.filter(name)
            .map(|raw| {
                ids::parse_id(raw)
                    .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a UUID")))
            })
            .transpose()
    };
    if let Some(id) = id_filter("automation_id")? {
        q = q.filter(ar::automation_id.eq(id));
    }
    if let Some(id) = id_filter("subject_id")? {
        q = q.filter(ar::subject_id.eq(id));
    }
    if let Some(s) = crate::enum_filter::<RunStatus>(p, "status")? {
        q = q.filter(ar::status.eq(crate::enum_text(s)));
    }
    let q = crm_core::visible!(q, me, ar::subject_id);
    let rows: Vec<RunRow> = apply_sort(q, p)?.select(RunRow::as_select()).load(c)?;
    list::page(rows.into_iter().map(AutomationRun::from).collect(), p)
}

/// Automation runs
///
/// Runs newest first: `automation_id=` for one automation's, `subject_id=` for one contact's
/// or lead's history across automations, `status=` for one status. Everyone inside the
/// company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/automation-runs", tag = "automations", operation_id = "list_automation_runs",
    params(
        PageParams,
        ("sort" = Option<String>, Query, nullable = false, pattern = r"^-?started_at$", description = "-started_at (default) or started_at"),
        ("automation_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Runs of this automation"),
        ("subject_id" = Option<String>, Query, nullable = false, format = "uuid", description = "Runs of this contact or lead"),
        ("status" = Option<RunStatus>, Query, nullable = false, description = "Runs in this status"),
    ),
    responses((status = 200, description = "A page of runs", body = Page<AutomationRun>), ReadProblems))]
#[get("/automation-runs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let p = list::parse(query.into_inner(), &RUNS)?;
    let page = state.db(move |c| run_page(c, &me, &p)).await?;
    Ok(HttpResponse::Ok().json(page))
}

fn detail(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AutomationRunDetail> {
    let run = find_run(c, id)?;
    crm_core::visibility::check_sees(me, "automation run")?;
    let history = ast::table
        .filter(ast::run_id.eq(id))
        .order((ast::at, ast::id))
        .select(RunStep::as_select())
        .load(c)?;
    Ok(AutomationRunDetail { run, history })
}

/// An automation run
///
/// The run with the history of every step: what it did, what it skipped and why, where it
/// waits. Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/automation-runs/{id}", tag = "automations", operation_id = "get_automation_run",
    params(("id" = String, Path, format = "uuid", description = "Run id")),
    responses((status = 200, description = "The run", body = AutomationRunDetail), ReadProblems))]
#[get("/automation-runs/{id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let id = path_id(&id)?;
    let out = state.db(move |c| detail(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Whom to enrol by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolInput {
    /// At most 1,000 per call.
    #[schema(max_items = 1000, min_items = 1)]
    pub contact_ids: Vec<String>,
}

/// What an enrolment did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    /// Runs started.
    pub enrolled: i64,
    /// Contacts the enrolment rules kept out (criteria, a run under way, once per subject).
    pub refused: i64,
}

fn enrol_by_hand(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    input: &EnrolInput,
) -> ApiResult<Enrolled> {
    db::write_tx(c, |c| {
        let a = automations::find(c, id)?;
        if a.archived_at.is_some() || a.status != Status::Active {
            return Err(ApiError::Conflict(
                "only an active automation enrols".into(),
            ));
        }
        crate::lists::check_contacts(c, me, &input.contact_ids)?;
        let key = format!("manual:{}", ids::new_id());
        let mut unique = input.contact_ids.clone();
        unique.sort();
        unique.dedup();
        let mut enrolled = 0;
        for cid in &unique {
            enrolled += i64::from(enrol(c, &a, (SubjectType::Contact, cid), &key)?.is_some());
        }
        audit_change(
            c,
            me,
            "automation",
            "enrolled",
            id,
            json!({"contact_ids": unique}),
            &a,
        )?;
        Ok(Enrolled {
            enrolled,
            refused: unique.len() as i64 - enrolled,
        })
    })
}

/// Enrol contacts
///
/// Starts a run for each contact the enrolment rules admit, as if the trigger had fired.
/// An id that is not a live contact is a 422 naming it; an automation that is not active is a
/// 409. Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/automations/{id}/enrolments", tag = "automations", operation_id = "enrol_automation",
    params(("id" = String, Path, format = "uuid", description = "Automation id")),
    request_body = EnrolInput,
    responses((status = 200, description = "How many were enrolled", body = Enrolled), WriteProblems))]
#[post("/automations/{id}/enrolments")]
pub async fn enrol_handler(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let input: EnrolInput = crm_core::objects::input(&body.into_inner())?;
    let out = state
        .db(move |c| enrol_by_hand(c, &me, &id, &input))
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

fn stop(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<AutomationRunDetail> {
    db::write_tx(c, |c| {
        db::lock_row(c, "automation_runs", id)?;
        let run = find_run(c, id)?;
        if run.status != RunStatus::Active {
            return Err(ApiError::Conflict("the run has ended".into()));
        }
        log(c, id, run.step, "exit", "exited", json!({"by": me.user_id}))?;
        finish(c, id, RunStatus::Exited, Some("stopped by hand"))?;
        let a = automations::find(c, &run.automation_id)?;
        audit_change(
            c,
            me,
            "automation",
            "run_stopped",
            &a.id,
            json!({"run_id": id}),
            &a,
        )?;
        detail(c, me, id)
    })
}

/// Stop a run
///
/// Ends an active run where it is (`exited`); its pending step never runs. A run that has
/// ended is a 409. Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/automation-runs/{id}/exit", tag = "automations", operation_id = "exit_automation_run",
    params(("id" = String, Path, format = "uuid", description = "Run id")),
    responses((status = 200, description = "The stopped run", body = AutomationRunDetail), WriteProblems))]
#[post("/automation-runs/{id}/exit")]
pub async fn exit(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let out = state.db(move |c| stop(c, &me, &id)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The relay as a periodic task: a full batch is followed at once by the next.
pub fn relay_task(c: &mut DbConn) {
    loop {
        match relay(c) {
            Ok(n) if n as i64 == RELAY_BATCH => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "the automation relay failed");
                break;
            }
        }
    }
}
