//! Lead scoring. A model (`/scoring-models`) scores leads or contacts with rules on
//! attributes (job title, industry, size, …) and on behaviour (form submissions, mail opens
//! and clicks, campaign responses, logged activities), each behaviour's points halving every
//! `half_life_days` since it happened. Scores are recomputed when a behaviour is recorded
//! (a form submission, an open, a click), for all records on demand
//! (`POST /scoring-models/{id}/recompute`) and daily by the `scoring.decay` task, and written
//! to the lead's or contact's `score`, where assignment rules, segments and campaigns read it.
//! Every change is kept with its reasons (`GET /score-history`). A lead that reaches the
//! model's `handoff_score` is handed to sales: the lead assignment rules run for it. One that
//! falls below `nurture_below` goes to nurturing, where the lead recycle policy disqualifies or
//! recycles it if it stays there too long (a nurturing lead reaching the hand-off comes back).

use crate::common::{audit_change, required};
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::extract::path_id;
use crm_core::jobs::{JobFailure, JobResult};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::respond::{ListProblems, WriteProblems};
use crm_core::schema::{
    activities as act, activity_links as al, campaign_members as cm, contact_scores as cs,
    contacts, form_submissions as fs, leads, score_changes as sc, scoring_models as sm,
};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

pub const RECOMPUTE: &str = "scoring.recompute";
pub const DECAY_TASK: &str = "scoring.decay";

/// What a model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ScoredObject)]
pub enum AppliesTo {
    Lead,
    Contact,
}

/// One scoring rule: an attribute test, or points for each time a behaviour happened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = ScoringRule)]
pub struct Rule {
    /// `attribute` or `behaviour`.
    pub kind: String,
    /// For attributes: `job_title`, `industry`, `employee_count`, `country`, `source`,
    /// `company` (leads) or `job_title`, `lifecycle_stage` (contacts).
    pub field: Option<String>,
    /// For attributes: `eq`, `contains`, `gte`, `lte`, `in`.
    pub op: Option<String>,
    /// For attributes: a number for `gte` and `lte` (and `eq` on numbers), a list of strings
    /// for `in` (at most 200), a string otherwise.
    #[schema(schema_with = crate::common::rule_value)]
    pub value: Option<Value>,
    /// For behaviours: `form_submitted`, `email_opened`, `email_clicked`,
    /// `campaign_responded`, `activity_logged`.
    pub event: Option<String>,
    /// Points (negative to take away).
    pub points: i32,
}

const LEAD_FIELDS: &[&str] = &[
    "job_title",
    "industry",
    "employee_count",
    "country",
    "source",
    "company",
];
const CONTACT_FIELDS: &[&str] = &["job_title", "lifecycle_stage"];
const EVENTS: &[&str] = &[
    "form_submitted",
    "email_opened",
    "email_clicked",
    "campaign_responded",
    "activity_logged",
];
const OPS: &[&str] = &["eq", "contains", "gte", "lte", "in"];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sm)]
struct Row {
    id: String,
    name: String,
    applies_to: String,
    rules: String,
    half_life_days: Option<i32>,
    handoff_score: Option<i32>,
    owner_id: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
    nurture_below: Option<i32>,
}

/// A scoring model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoringModel {
    pub id: String,
    pub name: String,
    pub applies_to: AppliesTo,
    pub rules: Vec<Rule>,
    /// Behaviour points halve every this many days; null: they never fade.
    pub half_life_days: Option<i32>,
    /// A lead reaching this score is handed to sales (the lead assignment rules run); a
    /// `nurturing` one first returns to `new`.
    pub handoff_score: Option<i32>,
    /// A `new` or `working` lead falling below this score goes to `nurturing`; the lead
    /// recycle policy's `nurturing` rule then disqualifies or recycles the ones that stay.
    pub nurture_below: Option<i32>,
    /// Hand-offs run as this user.
    pub owner_id: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for ScoringModel {
    fn from(r: Row) -> Self {
        ScoringModel {
            id: r.id,
            name: r.name,
            applies_to: serde_json::from_value(Value::String(r.applies_to))
                .unwrap_or(AppliesTo::Lead),
            rules: parse_json(&r.rules),
            half_life_days: r.half_life_days,
            handoff_score: r.handoff_score,
            nurture_below: r.nurture_below,
            owner_id: r.owner_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A model as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoringModelInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub applies_to: Option<AppliesTo>,
    #[validate(length(max = 100, message = "at most 100 rules"))]
    #[schema(max_items = 100)]
    pub rules: Option<Vec<Rule>>,
    #[validate(range(min = 1, max = 3650))]
    #[schema(minimum = 1, maximum = 3650)]
    pub half_life_days: Option<i32>,
    pub handoff_score: Option<i32>,
    /// Leads only; below `handoff_score` when both are set.
    pub nurture_below: Option<i32>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(sm::table, sm::BoxedQuery<'static, MultiBackend>, {
    "name" => sm::name,
    "created_at" => sm::created_at,
    "id" => sm::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<ScoringModel> {
    sm::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(ScoringModel::from)
        .ok_or_else(|| ApiError::not_found("scoring model"))
}

fn check_rules(applies: AppliesTo, rules: &[Rule]) -> ApiResult<()> {
    let fields = if applies == AppliesTo::Lead {
        LEAD_FIELDS
    } else {
        CONTACT_FIELDS
    };
    let mut errors = vec![];
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        match r.kind.as_str() {
            "attribute" => {
                if !r.field.as_deref().is_some_and(|f| fields.contains(&f)) {
                    errors.push(FieldError::new(
                        &at("field"),
                        "unknown",
                        format!("one of {}", fields.join(", ")),
                    ));
                }
                if !r.op.as_deref().is_some_and(|o| OPS.contains(&o)) {
                    errors.push(FieldError::new(
                        &at("op"),
                        "unknown",
                        format!("one of {}", OPS.join(", ")),
                    ));
                }
                let numeric = matches!(r.op.as_deref(), Some("gte" | "lte"));
                let ok = match &r.value {
                    Some(Value::Number(_)) => numeric || r.op.as_deref() == Some("eq"),
                    Some(Value::String(_)) => !numeric,
                    Some(Value::Array(a)) => {
                        r.op.as_deref() == Some("in")
                            && a.len() <= crate::common::MAX_IN_VALUES
                            && a.iter().all(Value::is_string)
                    }
                    _ => false,
                };
                if !ok {
                    errors.push(FieldError::new(
                        &at("value"),
                        "invalid",
                        "a number for gte and lte, at most 200 strings for in, a string otherwise",
                    ));
                }
            }
            "behaviour" => {
                if !r.event.as_deref().is_some_and(|e| EVENTS.contains(&e)) {
                    errors.push(FieldError::new(
                        &at("event"),
                        "unknown",
                        format!("one of {}", EVENTS.join(", ")),
                    ));
                }
            }
            _ => errors.push(FieldError::new(
                &at("kind"),
                "unknown",
                "attribute or behaviour",
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Nurturing is for leads, and starts below the hand-off.
fn check_thresholds(
    applies: AppliesTo,
    handoff: Option<i32>,
    nurture: Option<i32>,
) -> ApiResult<()> {
    let Some(nurture) = nurture else {
        return Ok(());
    };
    if applies != AppliesTo::Lead {
        return Err(ApiError::field(
            "nurture_below",
            "invalid",
            "only lead models move leads to nurturing",
        ));
    }
    if handoff.is_some_and(|h| nurture > h) {
        return Err(ApiError::field(
            "nurture_below",
            "invalid",
            "must not be above handoff_score",
        ));
    }
    Ok(())
}

fn create(c: &mut DbConn, me: &Principal, input: &ScoringModelInput) -> ApiResult<ScoringModel> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("applies_to", input.applies_to.is_none()),
        ("rules", input.rules.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let applies = input.applies_to.unwrap_or(AppliesTo::Lead);
    let rules = input.rules.clone().unwrap_or_default();
    check_rules(applies, &rules)?;
    check_thresholds(applies, input.handoff_score, input.nurture_below)?;
    db::write_tx(c, |c| {
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(sm::table)
            .values((
                sm::id.eq(&id),
                sm::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                sm::applies_to.eq(crate::enum_text(applies)),
                sm::rules.eq(json_text(&rules)),
                sm::half_life_days.eq(input.half_life_days),
                sm::handoff_score.eq(input.handoff_score),
                sm::nurture_below.eq(input.nurture_below),
                sm::owner_id.eq(&me.user_id),
                sm::version.eq(1),
                sm::created_at.eq(&now),
                sm::updated_at.eq(&now),
            ))
            .execute(c)?;
        let m = find(c, &id)?;
        audit_change(c, me, "scoring_model", "created", &id, to_json(&m), &m)?;
        Ok(m)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<ScoringModel> {
    let input: ScoringModelInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<ScoringModels>(c, me, id)?;
        etag::check(expected, before.version)?;
        let applies = input.applies_to.unwrap_or(before.applies_to);
        let rules = input.rules.clone().unwrap_or(before.rules.clone());
        check_rules(applies, &rules)?;
        let nullable = |key: &str, sent: Option<i32>, was: Option<i32>| match raw.get(key) {
            Some(Value::Null) => None,
            Some(_) => sent,
            None => was,
        };
        let handoff = nullable("handoff_score", input.handoff_score, before.handoff_score);
        let nurture = nullable("nurture_below", input.nurture_below, before.nurture_below);
        check_thresholds(applies, handoff, nurture)?;
        let changed = diesel::update(sm::table.find(id))
            .filter(sm::version.eq(before.version))
            .set((
                sm::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                sm::applies_to.eq(crate::enum_text(applies)),
                sm::rules.eq(json_text(&rules)),
                sm::half_life_days.eq(nullable(
                    "half_life_days",
                    input.half_life_days,
                    before.half_life_days,
                )),
                sm::handoff_score.eq(handoff),
                sm::nurture_below.eq(nurture),
                sm::version.eq(before.version + 1),
                sm::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "scoring_model", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// The attributes a rule may test, as JSON.
fn attributes(c: &mut DbConn, applies: AppliesTo, id: &str) -> ApiResult<Option<Value>> {
    Ok(match applies {
        AppliesTo::Lead => leads::table
            .find(id)
            .select((leads::job_title, leads::industry, leads::employee_count, leads::country, leads::source, leads::company))
            .first::<(Option<String>, Option<String>, Option<i64>, Option<String>, String, Option<String>)>(c)
            .optional()?
            .map(|(t, i, e, co, s, cp)| json!({"job_title": t, "industry": i, "employee_count": e, "country": co, "source": s, "company": cp})),
        AppliesTo::Contact => contacts::table
            .find(id)
            .select((contacts::job_title, contacts::lifecycle_stage))
            .first::<(Option<String>, String)>(c)
            .optional()?
            .map(|(t, l)| json!({"job_title": t, "lifecycle_stage": l})),
    })
}

fn attribute_matches(rule: &Rule, attrs: &Value) -> bool {
    let have = &attrs[rule.field.as_deref().unwrap_or_default()];
    let want = rule.value.clone().unwrap_or_default();
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_lowercase)
            .or_else(|| v.as_f64().map(|n| n.to_string()))
    };
    match rule.op.as_deref() {
        Some("eq") => match (have.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => text(have).is_some() && text(have) == text(&want),
        },
        Some("contains") => text(have)
            .zip(text(&want))
            .is_some_and(|(a, b)| a.contains(&b)),
        Some("gte") => have
            .as_f64()
            .zip(want.as_f64())
            .is_some_and(|(a, b)| a >= b),
        Some("lte") => have
            .as_f64()
            .zip(want.as_f64())
            .is_some_and(|(a, b)| a <= b),
        Some("in") => want
            .as_array()
            .is_some_and(|l| l.iter().any(|w| text(w).is_some() && text(w) == text(have))),
        _ => false,
    }
}

/// When each behaviour happened for a record.
fn behaviours(
    c: &mut DbConn,
    applies: AppliesTo,
    id: &str,
) -> ApiResult<Vec<(&'static str, String)>> {
    let mut out = vec![];
    let forms: Vec<String> = match applies {
        AppliesTo::Lead => fs::table
            .filter(fs::lead_id.eq(id))
            .select(fs::created_at)
            .load(c)?,
        AppliesTo::Contact => fs::table
            .filter(fs::contact_id.eq(id))
            .select(fs::created_at)
            .load(c)?,
    };
    out.extend(forms.into_iter().map(|t| ("form_submitted", t)));
    if applies == AppliesTo::Contact {
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = cm::table
            .filter(cm::contact_id.eq(id))
            .select((cm::opened_at, cm::clicked_at, cm::responded_at))
            .load(c)?;
        for (o, k, r) in rows {
            out.extend(o.map(|t| ("email_opened", t)));
            out.extend(k.map(|t| ("email_clicked", t)));
            out.extend(r.map(|t| ("campaign_responded", t)));
        }
    }
    let entity = crate::enum_text(applies);
    let logged: Vec<String> = act::table
        .inner_join(al::table.on(al::activity_id.eq(act::id)))
        .filter(al::entity_type.eq(entity))
        .filter(al::entity_id.eq(id))
        .select(act::created_at)
        .load(c)?;
    out.extend(logged.into_iter().map(|t| ("activity_logged", t)));
    Ok(out)
}

/// A record's score under a model, with the reasons.
fn score_of(
    c: &mut DbConn,
    m: &ScoringModel,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Option<(i32, Vec<Value>)>> {
    let Some(attrs) = attributes(c, m.applies_to, id)? else {
        return Ok(None);
    };
    let happened = behaviours(c, m.applies_to, id)?;
    let mut total = 0.0;
    let mut reasons = vec![];
    for (i, r) in m.rules.iter().enumerate() {
        if r.kind == "attribute" {
            if attribute_matches(r, &attrs) {
                total += f64::from(r.points);
                reasons.push(json!({"rule": i, "points": r.points}));
            }
            continue;
        }
        let event = r.event.as_deref().unwrap_or_default();
        let mut points = 0.0;
        let mut times = 0;
        for (_, at) in happened.iter().filter(|(e, _)| *e == event) {
            let age = chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| {
                    (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as f64 / 86_400.0
                })
                .unwrap_or(0.0);
            let weight = m
                .half_life_days
                .map_or(1.0, |h| 0.5_f64.powf(age / f64::from(h)));
            points += f64::from(r.points) * weight;
            times += 1;
        }
        if times > 0 {
            total += points;
            reasons.push(json!({"rule": i, "event": event, "times": times, "points": (points * 100.0).round() / 100.0}));
        }
    }
    Ok(Some((total.round() as i32, reasons)))
}

/// Recompute one record's score under a model, in the caller's transaction: write it when it
/// changed, keep the change, and hand a lead crossing the hand-off score to sales.
pub fn rescore(c: &mut DbConn, m: &ScoringModel, id: &str) -> ApiResult<Option<i32>> {
    // A read-modify-write of the record's score: two rescorings of one record (submissions at
    // once, an open during the recompute job) take turns on its row, so the later one counts
    // the behaviours the earlier committed and starts from the score it wrote, instead of both
    // writing the same step and missing a hand-off between them.
    let table = match m.applies_to {
        AppliesTo::Lead => "leads",
        AppliesTo::Contact => "contacts",
    };
    db::lock_row(c, table, id)?;
    let Some((score, reasons)) = score_of(c, m, id, chrono::Utc::now())? else {
        return Ok(None);
    };
    let old: i32 = match m.applies_to {
        AppliesTo::Lead => leads::table.find(id).select(leads::score).first(c)?,
        AppliesTo::Contact => cs::table
            .find(id)
            .select(cs::score)
            .first(c)
            .optional()?
            .unwrap_or(0),
    };
    if old == score {
        return Ok(Some(score));
    }
    match m.applies_to {
        AppliesTo::Lead => diesel::update(leads::table.find(id))
            .set(leads::score.eq(score))
            .execute(c)?,
        AppliesTo::Contact => {
            let now = ids::now();
            // The contact's row lock taken above also makes only one insert this row.
            let changed = diesel::update(cs::table.find(id))
                .set((cs::score.eq(score), cs::updated_at.eq(&now)))
                .execute(c)?;
            if changed == 0 {
                diesel::insert_into(cs::table)
                    .values((
                        cs::contact_id.eq(id),
                        cs::score.eq(score),
                        cs::updated_at.eq(&now),
                    ))
                    .execute(c)?
            } else {
                changed
            }
        }
    };
    diesel::insert_into(sc::table)
        .values((
            sc::id.eq(ids::new_id()),
            sc::model_id.eq(&m.id),
            sc::entity_type.eq(crate::enum_text(m.applies_to)),
            sc::entity_id.eq(id),
            sc::old_score.eq(old),
            sc::new_score.eq(score),
            sc::reasons.eq(json_text(&reasons)),
            sc::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    let kind = crate::enum_text(m.applies_to);
    crm_core::audit::emit(
        c,
        &format!("{kind}.score_changed"),
        &kind,
        id,
        &crm_core::audit::Actor::system(),
        &json!({"id": id, "score": score, "previous": old, "model_id": m.id}),
    )?;
    if m.applies_to == AppliesTo::Lead {
        nurture_by_score(c, m, id, old, score)?;
    }
    if let (AppliesTo::Lead, Some(h)) = (m.applies_to, m.handoff_score) {
        if old < h && score >= h {
            if let Some(owner) = auth::principal_of_user(c, &m.owner_id)? {
                // No matching rule leaves the lead where it is: the hand-off is best effort.
                let _ = crm_sales::assignment::assign_lead(c, &owner, id);
            }
        }
    }
    Ok(Some(score))
}

/// A lead cooling below the model's `nurture_below` goes to nurturing; a nurturing lead
/// heating up to its `handoff_score` returns to the pool, for the hand-off to assign it.
fn nurture_by_score(
    c: &mut DbConn,
    m: &ScoringModel,
    id: &str,
    old: i32,
    score: i32,
) -> ApiResult<()> {
    use crm_sales::leads::LeadStatus;
    use crm_sales::recycle::{move_by_score, RecycleAction};
    if let Some(n) = m.nurture_below.filter(|n| old >= *n && score < *n) {
        let reason = format!("score {score} fell below {n} ({})", m.name);
        let from = [LeadStatus::New, LeadStatus::Working];
        move_by_score(c, id, &from, RecycleAction::Nurture, &reason)?;
    }
    if let Some(h) = m.handoff_score.filter(|h| old < *h && score >= *h) {
        let reason = format!("score {score} reached {h} ({})", m.name);
        let from = [LeadStatus::Nurturing];
        move_by_score(c, id, &from, RecycleAction::ReturnToPool, &reason)?;
    }
    Ok(())
}

/// Active models for leads or contacts.
fn active(c: &mut DbConn, applies: AppliesTo) -> ApiResult<Vec<ScoringModel>> {
    Ok(sm::table
        .filter(sm::archived_at.is_null())
        .filter(sm::applies_to.eq(crate::enum_text(applies)))
        .order(sm::created_at)
        .select(Row::as_select())
        .load(c)?
        .into_iter()
        .map(ScoringModel::from)
        .collect())
}

/// After a behaviour was recorded: rescore the record under every active model for it.
pub fn on_behaviour(c: &mut DbConn, applies: AppliesTo, id: &str) -> ApiResult<()> {
    for m in active(c, applies)? {
        rescore(c, &m, id)?;
    }
    Ok(())
}

/// The `scoring.recompute` job: every record of a model, a page of ids per transaction.
pub fn recompute_all(c: &mut DbConn, payload: &Value) -> JobResult {
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let id = payload["model_id"].as_str().unwrap_or_default().to_string();
    let Ok(m) = find(c, &id) else {
        return Ok(());
    };
    let mut after = String::new();
    loop {
        let page: Vec<String> = match m.applies_to {
            AppliesTo::Lead => leads::table
                .filter(leads::id.gt(&after))
                .filter(leads::archived_at.is_null())
                .order(leads::id)
                .limit(500)
                .select(leads::id)
                .load(c),
            AppliesTo::Contact => contacts::table
                .filter(contacts::id.gt(&after))
                .filter(contacts::archived_at.is_null())
                .order(contacts::id)
                .limit(500)
                .select(contacts::id)
                .load(c),
        }
        .map_err(|e| fail(e.into()))?;
        let Some(last) = page.last().cloned() else {
            return Ok(());
        };
        db::write_tx(c, |c| {
            for rid in &page {
                rescore(c, &m, rid)?;
            }
            Ok(())
        })
        .map_err(fail)?;
        after = last;
    }
}

/// The daily `scoring.decay` task: recompute every active model with a half-life.
pub fn decay(c: &mut DbConn) -> JobResult {
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let models: Vec<String> = sm::table
        .filter(sm::archived_at.is_null())
        .filter(sm::half_life_days.is_not_null())
        .select(sm::id)
        .load(c)
        .map_err(|e| fail(e.into()))?;
    for id in models {
        recompute_all(c, &json!({ "model_id": id }))?;
    }
    Ok(())
}

/// Recompute a model's scores
///
/// Queues a job that recomputes every live lead's or contact's score under the model (202).
/// Marketers, managers and admins (`MarketingWrite`).
#[utoipa::path(post, path = "/api/v1/scoring-models/{id}/recompute", tag = "scoring", operation_id = "recompute_scores",
    params(("id" = String, Path, format = "uuid", description = "Scoring model id")),
    responses((status = 202, description = "Queued", body = Object), WriteProblems))]
#[post("/scoring-models/{id}/recompute")]
pub async fn recompute(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingWrite)?;
    let id = path_id(&id)?;
    let job = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let m = find(c, &id)?;
                if m.archived_at.is_some() {
                    return Err(ApiError::Conflict("the model is archived".into()));
                }
                crm_core::jobs::enqueue(c, RECOMPUTE, &json!({ "model_id": id }), 5)
            })
        })
        .await?;
    Ok(HttpResponse::Accepted().json(json!({ "job_id": job })))
}

/// One score change.
#[derive(Debug, Serialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = sc)]
pub struct ScoreChange {
    pub id: String,
    pub model_id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub old_score: i32,
    pub new_score: i32,
    /// JSON list of the rules that gave points: `[{"rule": 0, "points": 10}, …]`.
    pub reasons: String,
    pub created_at: String,
}

/// Whose history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// `lead` or `contact`.
    pub entity_type: AppliesTo,
    #[param(format = "uuid")]
    pub entity_id: String,
}

/// A record's score history
///
/// Every change of a lead's or contact's score, newest first, with the rules that gave the
/// points. Everyone inside the company (`MarketingRead`).
#[utoipa::path(get, path = "/api/v1/score-history", tag = "scoring", operation_id = "score_history",
    params(HistoryParams),
    responses((status = 200, description = "The changes", body = Vec<ScoreChange>), ListProblems))]
#[get("/score-history")]
pub async fn history(
    state: web::Data<AppState>,
    me: Principal,
    q: web::Query<HistoryParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::MarketingRead)?;
    let p = q.into_inner();
    let id = ids::parse_id(&p.entity_id)
        .ok_or_else(|| ApiError::BadRequest("entity_id must be a UUID".into()))?;
    let rows = state
        .db(move |c| {
            Ok(sc::table
                .filter(sc::entity_type.eq(crate::enum_text(p.entity_type)))
                .filter(sc::entity_id.eq(id))
                .order((sc::created_at.desc(), sc::id.desc()))
                .limit(200)
                .select(ScoreChange::as_select())
                .load(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Scoring models on the resource kernel.
pub struct ScoringModels;

impl Resource for ScoringModels {
    type Record = ScoringModel;
    type Input = ScoringModelInput;
    type Patch = ScoringModelInput;
    crm_core::resource_paths!("scoring-models");
    const ENTITY: &'static str = "scoring_model";
    const TABLE: &'static str = "scoring_models";
    const TAG: &'static str = "scoring";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "applies_to", "rules"];

    crm_core::record_meta!(ScoringModel);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<ScoringModel> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<ScoringModel>> {
        let mut q = sm::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(sm::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(ScoringModel::from).collect(), p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &ScoringModelInput,
    ) -> ApiResult<ScoringModel> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<ScoringModel> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(scoring_models);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_rules_compare_text_without_case_and_numbers_by_value() {
        let attrs = json!({"job_title": "Head of IT", "employee_count": 250, "industry": "Retail"});
        let rule = |field: &str, op: &str, value: Value| Rule {
            kind: "attribute".into(),
            field: Some(field.into()),
            op: Some(op.into()),
            value: Some(value),
            event: None,
            points: 1,
        };
        assert!(attribute_matches(
            &rule("job_title", "contains", json!("head")),
            &attrs
        ));
        assert!(attribute_matches(
            &rule("employee_count", "gte", json!(200)),
            &attrs
        ));
        assert!(!attribute_matches(
            &rule("employee_count", "lte", json!(200)),
            &attrs
        ));
        assert!(attribute_matches(
            &rule("industry", "in", json!(["retail", "food"])),
            &attrs
        ));
        assert!(!attribute_matches(
            &rule("country", "eq", json!("NO")),
            &attrs
        ));
    }
}
