//! Automations (`/automations`): a trigger, enrolment and exit rules, and a sequence of
//! steps that each enrolled contact or lead walks through.
//!
//! - The **trigger** is a domain event read from the event log (`order.created`,
//!   `lead.created`, `ticket.updated`, `contact.score_changed`, `lead.score_changed`,
//!   `form_submission.created`, any `<entity>.<action>` or `<entity>.*`), narrowed by `when`
//!   conditions on the event's record and, for orders, a `product_family` bought; or `daily`,
//!   segment criteria evaluated once a day (a date field reached: `{"field":
//!   "custom.renewal_on", "op": "eq", "value": "+30d"}`).
//! - **Steps**: `wait` (seconds, minutes, hours, days), `condition` (segment criteria for a
//!   contact, `when` on the subject's record for both; a false one ends the run), and the
//!   actions `send_email` (a campaign's message, with its consent, suppression, unsubscribe
//!   and once-per-contact guarantees), `send_sms` (an sms campaign's text, likewise),
//!   `add_to_list`, `set_field`, `create_task` (for the subject's owner) and `notify` (an
//!   `automation_run.notified` event, delivered to webhook subscribers, signed).
//! - **Enrolment**: optional criteria the contact must meet, and `once_per_subject`. A
//!   subject is never enrolled twice by the same event. **Exit**: events that end a
//!   subject's run (`order.created` ends a "come back" sequence) and criteria checked
//!   before every step.
//!
//! Runs are executed by `crate::automation_runs` on the job queue.

use crate::common::{audit_change, required};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{automations as au, campaigns, marketing_lists as ml};
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Whether an automation enrols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AutomationStatus)]
pub enum Status {
    /// Being built: enrols nobody.
    Draft,
    Active,
    /// Enrols nobody; runs under way hold before their next step until it is active again.
    Paused,
}

/// A test on a field of a record (dotted paths reach into objects: `custom.plan`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationMatch)]
pub struct Match {
    pub field: String,
    /// eq, ne, gt, gte, lt, lte, in, contains, exists, not_exists. Text compares without case.
    pub op: String,
    /// What the field is compared with: a string, number or boolean, a list for `in`;
    /// nothing for `exists` and `not_exists`.
    #[schema(schema_with = crate::common::test_value)]
    pub value: Option<Value>,
}

/// Tests in one `when`, and events in `exit.events`.
const MAX_TESTS: usize = 20;

const MATCH_OPS: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "contains",
    "exists",
    "not_exists",
];

/// What enrols subjects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationTrigger)]
pub struct Trigger {
    /// An event type (`order.created`) or `<entity>.*`.
    pub event: Option<String>,
    /// Conditions on the event's record, all of which must hold (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub when: Vec<Match>,
    /// Order events only: the order has a line of a product of this family.
    pub product_family: Option<String>,
    /// Instead of an event: segment criteria over contacts, evaluated once a day; each
    /// matching contact is enrolled at most once that day.
    #[schema(value_type = Option<Object>)]
    pub daily: Option<Value>,
}

/// One step of the sequence; `type` says which of the other fields it reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationStep)]
pub struct Step {
    /// wait, condition, send_email, send_sms, add_to_list, set_field, create_task or notify.
    #[serde(rename = "type")]
    pub kind: String,
    /// wait: the pause is the sum of these.
    pub seconds: Option<i64>,
    pub minutes: Option<i64>,
    pub hours: Option<i64>,
    pub days: Option<i64>,
    /// condition (contacts): segment criteria the contact must match to go on.
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<Value>,
    /// condition: tests on the subject's current record that must all hold to go on (at
    /// most 20).
    #[schema(max_items = 20)]
    pub when: Option<Vec<Match>>,
    /// send_email: the email or newsletter campaign whose subject and text are mailed;
    /// send_sms: the sms campaign whose text is texted.
    #[schema(format = "uuid")]
    pub campaign_id: Option<String>,
    /// add_to_list (contacts).
    #[schema(format = "uuid")]
    pub list_id: Option<String>,
    /// set_field: a field of the contact or lead.
    pub field: Option<String>,
    /// set_field: the value written to it (a string such as `customer`).
    #[schema(schema_with = crate::common::field_value)]
    pub value: Option<Value>,
    /// create_task: the task's subject; it is due this many days later (default 1).
    pub subject: Option<String>,
    pub due_in_days: Option<i32>,
    /// notify: extra data carried in the event.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

const STEP_KINDS: &[&str] = &[
    "wait",
    "condition",
    "send_email",
    "send_sms",
    "add_to_list",
    "set_field",
    "create_task",
    "notify",
];

/// Fields `set_field` may write.
pub const CONTACT_SETTABLE: &[&str] = &["lifecycle_stage", "job_title", "preferred_language"];
pub const LEAD_SETTABLE: &[&str] = &["status", "job_title", "industry"];

/// Who may enrol.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationEnrolment)]
pub struct Enrolment {
    /// Segment criteria a contact must match when enrolled (leads are not enrolled when set).
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<Value>,
    /// At most one run per contact or lead ever, whatever the events.
    #[serde(default)]
    pub once_per_subject: bool,
}

/// What ends a run early.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = AutomationExit)]
pub struct Exit {
    /// Event types (or `<entity>.*`) of the subject that end its run (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub events: Vec<String>,
    /// Segment criteria checked before each step: a contact matching them leaves.
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<Value>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = au)]
struct Row {
    id: String,
    name: String,
    description: Option<String>,
    status: String,
    trigger_spec: String,
    steps: String,
    enrolment: String,
    exit_rules: String,
    owner_id: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// An automation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Automation {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: Status,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    pub enrolment: Enrolment,
    pub exit: Exit,
    /// Its actions run as this user.
    pub owner_id: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for Automation {
    fn from(r: Row) -> Self {
        Automation {
            id: r.id,
            name: r.name,
            description: r.description,
            status: crate::enum_from(&r.status, Status::Draft),
            trigger: parse_json(&r.trigger_spec),
            steps: parse_json(&r.steps),
            enrolment: parse_json(&r.enrolment),
            exit: parse_json(&r.exit_rules),
            owner_id: r.owner_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// An automation as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// Default `draft`.
    pub status: Option<Status>,
    pub trigger: Option<Trigger>,
    #[schema(min_items = 1, max_items = 50)]
    pub steps: Option<Vec<Step>>,
    pub enrolment: Option<Enrolment>,
    pub exit: Option<Exit>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[Filter::of::<Status>("status", "draft, active or paused")],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(au::table, au::BoxedQuery<'static, MultiBackend>, {
    "name" => au::name,
    "created_at" => au::created_at,
    "id" => au::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Automation> {
    au::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Automation::from)
        .ok_or_else(|| ApiError::not_found("automation"))
}

/// Active automations, oldest first.
pub fn active(c: &mut DbConn) -> ApiResult<Vec<Automation>> {
    let rows: Vec<Row> = au::table
        .filter(au::status.eq("active"))
        .filter(au::archived_at.is_null())
        .order((au::created_at, au::id))
        .select(Row::as_select())
        .load(c)?;
    Ok(rows.into_iter().map(Automation::from).collect())
}

/// An event type or `<entity>.*`.
fn event_pattern_ok(p: &str) -> bool {
    let Some((entity, action)) = p.split_once('.') else {
        return false;
    };
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    word(entity) && (action == "*" || word(action))
}

/// Whether an event type matches a pattern of `event_pattern_ok`.
pub fn event_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(entity) => event_type.split_once('.').is_some_and(|(e, _)| e == entity),
        None => pattern == event_type,
    }
}

/// The pause of a wait step.
pub fn wait_of(s: &Step) -> chrono::Duration {
    let part = |v: Option<i64>, unit: i64| v.unwrap_or(0).saturating_mul(unit);
    chrono::Duration::seconds(
        part(s.seconds, 1)
            .saturating_add(part(s.minutes, 60))
            .saturating_add(part(s.hours, 3600))
            .saturating_add(part(s.days, 86_400)),
    )
}

struct Checker<'a> {
    c: &'a mut DbConn,
    errors: Vec<FieldError>,
}

impl Checker<'_> {
    fn push(&mut self, at: &str, code: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(at, code, message));
    }

    fn criteria(&mut self, at: &str, doc: &Value) -> ApiResult<()> {
        match crate::segments::checked(self.c, doc) {
            Ok(_) => Ok(()),
            Err(ApiError::Validation { errors, .. }) => {
                for e in errors {
                    // Segment errors are named from `criteria`; here they hang off `at`.
                    let tail = e.field.strip_prefix("criteria").unwrap_or(&e.field);
                    self.errors
                        .push(FieldError::new(&format!("{at}{tail}"), &e.code, e.message));
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn matches(&mut self, at: &str, list: &[Match]) {
        if list.len() > MAX_TESTS {
            self.push(at, "length", format!("at most {MAX_TESTS} tests"));
            return;
        }
        for (i, m) in list.iter().enumerate() {
            if m.field.is_empty() || m.field.len() > 100 {
                self.push(&format!("{at}[{i}].field"), "invalid", "a field name");
            }
            if !MATCH_OPS.contains(&m.op.as_str()) {
                self.push(
                    &format!("{at}[{i}].op"),
                    "unknown",
                    format!("one of {}", MATCH_OPS.join(", ")),
                );
            } else if !matches!(m.op.as_str(), "exists" | "not_exists") && m.value.is_none() {
                self.push(&format!("{at}[{i}].value"), "required", "is required");
            }
            if m.value
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|a| a.len() > crate::common::MAX_IN_VALUES)
            {
                self.push(
                    &format!("{at}[{i}].value"),
                    "length",
                    format!("at most {} values", crate::common::MAX_IN_VALUES),
                );
            }
        }
    }

    fn trigger(&mut self, t: &Trigger) -> ApiResult<()> {
        match (&t.event, &t.daily) {
            (Some(e), None) => {
                if !event_pattern_ok(e) {
                    self.push(
                        "trigger.event",
                        "invalid",
                        "an event type such as order.created, or <entity>.*",
                    );
                }
                if t.product_family.is_some() && !event_matches(e, "order.created") {
                    self.push(
                        "trigger.product_family",
                        "invalid",
                        "only order events carry products",
                    );
                }
            }
            (None, Some(doc)) => {
                self.criteria("trigger.daily", doc)?;
                if t.product_family.is_some() || !t.when.is_empty() {
                    self.push(
                        "trigger.daily",
                        "invalid",
                        "a daily trigger takes criteria only, no when or product_family",
                    );
                }
            }
            _ => self.push("trigger", "invalid", "give either event or daily"),
        }
        self.matches("trigger.when", &t.when);
        Ok(())
    }

    fn exists(&mut self, at: &str, found: QueryResult<i64>) -> ApiResult<()> {
        if found? == 0 {
            self.push(at, "not_found", "no such record");
        }
        Ok(())
    }

    fn step(&mut self, i: usize, s: &Step) -> ApiResult<()> {
        let at = |f: &str| format!("steps[{i}].{f}");
        let need = |this: &mut Self, f: &str, missing: bool| {
            if missing {
                this.push(&at(f), "required", "is required for this step type");
            }
        };
        match s.kind.as_str() {
            "wait" => {
                let d = wait_of(s);
                if d < chrono::Duration::seconds(1) || d > chrono::Duration::days(365) {
                    self.push(&at("seconds"), "invalid", "a wait of 1 second to 365 days");
                }
            }
            "condition" => {
                need(self, "criteria", s.criteria.is_none() && s.when.is_none());
                if let Some(doc) = &s.criteria {
                    self.criteria(&at("criteria"), doc)?;
                }
                self.matches(&at("when"), s.when.as_deref().unwrap_or_default());
            }
            "send_email" | "send_sms" => {
                need(self, "campaign_id", s.campaign_id.is_none());
                if let Some(id) = &s.campaign_id {
                    let k: Option<(String, Option<String>, Option<String>)> = campaigns::table
                        .find(id)
                        .filter(campaigns::archived_at.is_null())
                        .select((campaigns::channel, campaigns::subject, campaigns::body_text))
                        .first(self.c)
                        .optional()?;
                    match k {
                        None => self.push(&at("campaign_id"), "not_found", "no live campaign"),
                        Some((channel, subject, body)) => {
                            let (fits, wanted) = if s.kind == "send_sms" {
                                (channel == "sms", "an sms campaign with text")
                            } else {
                                (
                                    matches!(channel.as_str(), "email" | "newsletter")
                                        && subject.is_some(),
                                    "an email or newsletter campaign with a subject and text",
                                )
                            };
                            if !fits || body.is_none() {
                                self.push(&at("campaign_id"), "invalid", wanted);
                            }
                        }
                    }
                }
            }
            "add_to_list" => {
                need(self, "list_id", s.list_id.is_none());
                if let Some(id) = &s.list_id {
                    let n = ml::table
                        .find(id)
                        .filter(ml::archived_at.is_null())
                        .count()
                        .get_result(self.c);
                    self.exists(&at("list_id"), n)?;
                }
            }
            "set_field" => {
                need(self, "value", s.value.is_none());
                let f = s.field.as_deref().unwrap_or_default();
                if !CONTACT_SETTABLE.contains(&f) && !LEAD_SETTABLE.contains(&f) {
                    self.push(
                        &at("field"),
                        "unknown",
                        format!(
                            "contacts: {}; leads: {}",
                            CONTACT_SETTABLE.join(", "),
                            LEAD_SETTABLE.join(", ")
                        ),
                    );
                }
            }
            "create_task" => {
                let ok = s
                    .subject
                    .as_deref()
                    .is_some_and(|t| !t.trim().is_empty() && t.len() <= 300);
                need(self, "subject", !ok);
                if s.due_in_days.is_some_and(|d| !(0..=365).contains(&d)) {
                    self.push(&at("due_in_days"), "invalid", "0 to 365");
                }
            }
            "notify" => {}
            _ => self.push(
                &at("type"),
                "unknown",
                format!("one of {}", STEP_KINDS.join(", ")),
            ),
        }
        Ok(())
    }
}

/// Every problem of a definition, named by its path (422), or nothing.
fn check(c: &mut DbConn, a: &Automation) -> ApiResult<()> {
    let mut ck = Checker { c, errors: vec![] };
    ck.trigger(&a.trigger)?;
    if a.steps.is_empty() || a.steps.len() > 50 {
        ck.push("steps", "length", "1 to 50 steps");
    }
    for (i, s) in a.steps.iter().enumerate() {
        ck.step(i, s)?;
    }
    if let Some(doc) = &a.enrolment.criteria {
        ck.criteria("enrolment.criteria", doc)?;
    }
    if let Some(doc) = &a.exit.criteria {
        ck.criteria("exit.criteria", doc)?;
    }
    if a.exit.events.len() > MAX_TESTS {
        ck.push(
            "exit.events",
            "length",
            format!("at most {MAX_TESTS} events"),
        );
    }
    for (i, e) in a.exit.events.iter().enumerate().take(MAX_TESTS) {
        if !event_pattern_ok(e) {
            ck.push(&format!("exit.events[{i}]"), "invalid", "an event type");
        }
    }
    if ck.errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(ck.errors))
    }
}

fn write(c: &mut DbConn, a: &Automation, insert: bool) -> ApiResult<usize> {
    let values = (
        au::name.eq(a.name.trim()),
        au::description.eq(&a.description),
        au::status.eq(crate::enum_text(a.status)),
        au::trigger_spec.eq(json_text(&a.trigger)),
        au::steps.eq(json_text(&a.steps)),
        au::enrolment.eq(json_text(&a.enrolment)),
        au::exit_rules.eq(json_text(&a.exit)),
        au::version.eq(a.version),
        au::updated_at.eq(&a.updated_at),
    );
    Ok(if insert {
        diesel::insert_into(au::table)
            .values((
                values,
                au::id.eq(&a.id),
                au::owner_id.eq(&a.owner_id),
                au::created_at.eq(&a.created_at),
            ))
            .execute(c)?
    } else {
        diesel::update(au::table.find(&a.id))
            .filter(au::version.eq(a.version - 1))
            .set(values)
            .execute(c)?
    })
}

fn create(c: &mut DbConn, me: &Principal, input: &AutomationInput) -> ApiResult<Automation> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("trigger", input.trigger.is_none()),
        ("steps", input.steps.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = ids::now();
    let a = Automation {
        id: ids::new_id(),
        name: input.name.clone().unwrap_or_default(),
        description: input.description.clone(),
        status: input.status.unwrap_or(Status::Draft),
        trigger: input.trigger.clone().unwrap_or_default(),
        steps: input.steps.clone().unwrap_or_default(),
        enrolment: input.enrolment.clone().unwrap_or_default(),
        exit: input.exit.clone().unwrap_or_default(),
        owner_id: me.user_id.clone(),
        version: 1,
        created_at: now.clone(),
        updated_at: now,
        archived_at: None,
    };
    db::write_tx(c, |c| {
        check(c, &a)?;
        write(c, &a, true)?;
        let a = find(c, &a.id)?;
        audit_change(c, me, "automation", "created", &a.id, to_json(&a), &a)?;
        Ok(a)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Automation> {
    let input: AutomationInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Automations>(c, me, id)?;
        etag::check(expected, before.version)?;
        let mut next = before.clone();
        if let Some(v) = &input.name {
            next.name = v.clone();
        }
        next.description = match raw.get("description") {
            Some(Value::Null) => None,
            Some(_) => input.description.clone(),
            None => before.description.clone(),
        };
        next.status = input.status.unwrap_or(before.status);
        next.trigger = input.trigger.clone().unwrap_or(before.trigger.clone());
        next.steps = input.steps.clone().unwrap_or(before.steps.clone());
        next.enrolment = input.enrolment.clone().unwrap_or(before.enrolment.clone());
        next.exit = input.exit.clone().unwrap_or(before.exit.clone());
        next.version = before.version + 1;
        next.updated_at = ids::now();
        check(c, &next)?;
        resource::changed_one(write(c, &next, false)?)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "automation", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Automations on the resource kernel.
pub struct Automations;

impl Resource for Automations {
    type Record = Automation;
    type Input = AutomationInput;
    type Patch = AutomationInput;
    crm_core::resource_paths!("automations");
    const ENTITY: &'static str = "automation";
    const TABLE: &'static str = "automations";
    const TAG: &'static str = "automations";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "trigger", "steps"];

    crm_core::record_meta!(Automation);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Automation> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Automation>> {
        let mut q = au::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(au::archived_at.is_null());
        }
        if let Some(s) = crate::enum_filter::<Status>(p, "status")? {
            q = q.filter(au::status.eq(crate::enum_text(s)));
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(Automation::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &AutomationInput) -> ApiResult<Automation> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Automation> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(automations);
}

/// Whether a record (JSON) passes every test.
pub fn all_match(record: &Value, tests: &[Match]) -> bool {
    tests.iter().all(|m| one_matches(record, m))
}

fn at_path<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(record, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn one_matches(record: &Value, m: &Match) -> bool {
    let got = at_path(record, &m.field);
    let want = m.value.as_ref().unwrap_or(&Value::Null);
    let order = |f: fn(std::cmp::Ordering) -> bool| -> bool {
        let Some(got) = got else { return false };
        match (number(got), number(want)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).is_some_and(f),
            _ => match (got.as_str(), want.as_str()) {
                (Some(x), Some(y)) => f(x.cmp(y)),
                _ => false,
            },
        }
    };
    match m.op.as_str() {
        "exists" => got.is_some(),
        "not_exists" => got.is_none(),
        "eq" => got.is_some_and(|g| same(g, want)),
        "ne" => !got.is_some_and(|g| same(g, want)),
        "gt" => order(|o| o.is_gt()),
        "gte" => order(|o| o.is_ge()),
        "lt" => order(|o| o.is_lt()),
        "lte" => order(|o| o.is_le()),
        "in" => got.is_some_and(|g| {
            want.as_array()
                .is_some_and(|a| a.iter().any(|w| same(g, w)))
        }),
        "contains" => match got {
            Some(Value::String(s)) => want
                .as_str()
                .is_some_and(|w| s.to_lowercase().contains(&w.to_lowercase())),
            Some(Value::Array(items)) => items.iter().any(|i| same(i, want)),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(field: &str, op: &str, value: Value) -> Match {
        Match {
            field: field.into(),
            op: op.into(),
            value: Some(value),
        }
    }

    #[test]
    fn record_tests_compare_text_without_case_numbers_by_value_and_reach_into_objects() {
        let order = json!({"total": 12000, "status": "Confirmed", "custom": {"plan": "gold"},
            "tags": ["vip"]});
        assert!(all_match(&order, &[m("total", "gte", json!(10000))]));
        assert!(!all_match(&order, &[m("total", "lt", json!(10000))]));
        assert!(all_match(&order, &[m("status", "eq", json!("confirmed"))]));
        assert!(all_match(
            &order,
            &[m("custom.plan", "in", json!(["silver", "GOLD"]))]
        ));
        assert!(all_match(&order, &[m("tags", "contains", json!("vip"))]));
        assert!(all_match(&order, &[m("missing", "ne", json!("x"))]));
        assert!(!all_match(&order, &[m("missing", "eq", json!("x"))]));
        assert!(all_match(
            &order,
            &[Match {
                field: "notes".into(),
                op: "not_exists".into(),
                value: None
            }]
        ));
    }

    #[test]
    fn event_patterns_name_one_type_or_an_entity() {
        assert!(event_pattern_ok("order.created"));
        assert!(event_pattern_ok("ticket.*"));
        assert!(!event_pattern_ok("*"));
        assert!(!event_pattern_ok("order.cre*"));
        assert!(event_matches("ticket.*", "ticket.updated"));
        assert!(!event_matches("ticket.*", "tickets.updated"));
        assert!(event_matches("order.created", "order.created"));
        assert!(!event_matches("order.created", "order.updated"));
    }
}
