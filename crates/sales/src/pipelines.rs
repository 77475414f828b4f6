//! Pipelines: the ordered stages an opportunity moves through, each with its win
//! probability, its forecast category and its exit criteria (the opportunity fields that
//! must be filled before a deal may leave the stage: the sales methodology, enforced by
//! `POST /opportunities/{id}/stage`).

use crate::common::record_change;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{opportunities, pipelines};
use crm_core::{audit, etag, ids, visibility};
use crm_customers::common;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use validator::Validate;

/// Where a stage's deals count in a forecast.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ForecastCategory {
    Pipeline,
    BestCase,
    Commit,
    ClosedWon,
    ClosedLost,
}

impl ForecastCategory {
    /// The opportunity status of a deal in a stage of this category.
    pub fn status(self) -> &'static str {
        match self {
            ForecastCategory::ClosedWon => "won",
            ForecastCategory::ClosedLost => "lost",
            _ => "open",
        }
    }
}

/// Opportunity fields a stage may require before a deal leaves it.
pub const EXIT_FIELDS: &[&str] = &[
    "amount",
    "close_date",
    "primary_contact_id",
    "next_step",
    "partner_account_id",
    "competitors",
    "team",
];

/// One stage of a pipeline, as stored and as read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Stable name of the stage within its pipeline; opportunities refer to it.
    #[validate(length(min = 1, max = 40))]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub key: String,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Chance of winning a deal in this stage, in percent: 100 for closed won, 0 for lost.
    #[validate(range(min = 0, max = 100))]
    #[schema(minimum = 0, maximum = 100)]
    pub probability: i32,
    pub forecast_category: ForecastCategory,
    /// Fields that must be filled before a deal may leave this stage: any of `amount`,
    /// `close_date`, `primary_contact_id`, `next_step`, `partner_account_id`,
    /// `competitors`, `team`.
    #[serde(default)]
    #[validate(length(max = 7))]
    #[schema(max_items = 7)]
    pub exit_criteria: Vec<String>,
}

#[derive(Queryable, Clone)]
pub struct PipelineRow {
    pub id: String,
    pub name: String,
    pub stages: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A pipeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    /// In order: a new opportunity starts in the first stage unless it names another.
    pub stages: Vec<Stage>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl Pipeline {
    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key == key)
    }
}

impl From<PipelineRow> for Pipeline {
    fn from(r: PipelineRow) -> Self {
        Pipeline {
            id: r.id,
            name: r.name,
            stages: common::parse_json(&r.stages),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// Fields of a pipeline a client sends. `stages` given replace the stored ones; a stage
/// that open deals are in cannot be dropped (409).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// At least one open stage first, and at least one closed-won and one closed-lost stage.
    #[validate(length(min = 3, max = 30), nested)]
    #[schema(min_items = 3, max_items = 30)]
    pub stages: Option<Vec<Stage>>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[Filter::time("created_after", "RFC 3339 timestamp")],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(pipelines::table, pipelines::BoxedQuery<'static, MultiBackend>, {
    "name" => pipelines::name,
    "created_at" => pipelines::created_at,
    "id" => pipelines::id,
});

pub fn find(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Pipeline> {
    visibility::check_sees(me, "pipeline")?;
    pipelines::table
        .find(id)
        .first::<PipelineRow>(conn)
        .optional()?
        .map(Pipeline::from)
        .ok_or_else(|| ApiError::not_found("pipeline"))
}

/// A live pipeline an opportunity may refer to, or a 422 naming `field`.
pub fn referenced(conn: &mut DbConn, id: &str, field: &str) -> ApiResult<Pipeline> {
    pipelines::table
        .find(id)
        .filter(pipelines::archived_at.is_null())
        .first::<PipelineRow>(conn)
        .optional()?
        .map(Pipeline::from)
        .ok_or_else(|| common::invalid(field, "reference", "no such pipeline"))
}

/// The rules of a stage list, each failure naming `stages[i].field`.
fn check_stages(stages: &[Stage]) -> ApiResult<()> {
    let mut errors = vec![];
    let mut keys = BTreeSet::new();
    for (i, s) in stages.iter().enumerate() {
        let at = |f: &str| format!("stages[{i}].{f}");
        let key_ok = s.key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !key_ok {
            errors.push(FieldError::new(
                &at("key"),
                "pattern",
                "lowercase letters, digits and _",
            ));
        }
        if !keys.insert(s.key.as_str()) {
            errors.push(FieldError::new(
                &at("key"),
                "unique",
                "two stages have this key",
            ));
        }
        let fixed = match s.forecast_category {
            ForecastCategory::ClosedWon => Some(100),
            ForecastCategory::ClosedLost => Some(0),
            _ => None,
        };
        if fixed.is_some_and(|p| p != s.probability) {
            errors.push(FieldError::new(
                &at("probability"),
                "closed",
                "a closed-won stage is 100, a closed-lost stage 0",
            ));
        }
        for f in &s.exit_criteria {
            if !EXIT_FIELDS.contains(&f.as_str()) {
                errors.push(FieldError::new(
                    &at("exit_criteria"),
                    "field",
                    format!("{f:?} is not one of {}", EXIT_FIELDS.join(", ")),
                ));
            }
        }
    }
    let has = |c: ForecastCategory| stages.iter().any(|s| s.forecast_category == c);
    if stages
        .first()
        .is_some_and(|s| s.forecast_category.status() != "open")
    {
        errors.push(FieldError::new(
            "stages[0].forecast_category",
            "open",
            "the first stage must be open",
        ));
    }
    if !has(ForecastCategory::ClosedWon) || !has(ForecastCategory::ClosedLost) {
        errors.push(FieldError::new(
            "stages",
            "closed",
            "a pipeline needs a closed_won and a closed_lost stage",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

pub fn create_pipeline(
    conn: &mut DbConn,
    me: &Principal,
    input: &PipelineInput,
) -> ApiResult<Pipeline> {
    input.validate()?;
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let (Some(name), Some(stages)) = (name, &input.stages) else {
        let missing = [("name", name.is_none()), ("stages", input.stages.is_none())]
            .into_iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| FieldError::new(f, "required", "is required"))
            .collect();
        return Err(ApiError::validation(missing));
    };
    check_stages(stages)?;
    db::write_tx(conn, |c| {
        let id = ids::new_id();
        let now = ids::now();
        diesel::insert_into(pipelines::table)
            .values((
                pipelines::id.eq(&id),
                pipelines::name.eq(name),
                pipelines::stages.eq(common::json_text(stages)),
                pipelines::version.eq(1),
                pipelines::created_at.eq(&now),
                pipelines::updated_at.eq(&now),
            ))
            .execute(c)?;
        let p = find(c, me, &id)?;
        record_change(c, me, "pipeline", "created", &id, common::to_json(&p), &p)?;
        Ok(p)
    })
}

pub fn update_pipeline(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &serde_json::Value,
) -> ApiResult<Pipeline> {
    let input: PipelineInput = crm_core::objects::input(raw)?;
    input.validate()?;
    if let Some(stages) = &input.stages {
        check_stages(stages)?;
    }
    db::write_tx(conn, |c| {
        let before = resource::find_for_write::<Pipelines>(c, me, id)?;
        etag::check(expected, before.version)?;
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or(&before.name)
            .to_string();
        let stages = input.stages.clone().unwrap_or(before.stages.clone());
        refuse_dropping_occupied(c, id, &before.stages, &stages)?;
        let changed = diesel::update(pipelines::table.find(id))
            .filter(pipelines::version.eq(before.version))
            .set((
                pipelines::name.eq(&name),
                pipelines::stages.eq(common::json_text(&stages)),
                pipelines::version.eq(before.version + 1),
                pipelines::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, me, id)?;
        let changes = audit::diff(&common::to_json(&before), &common::to_json(&after), &[]);
        record_change(c, me, "pipeline", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// 409 when a stage that live opportunities are in would be dropped.
fn refuse_dropping_occupied(
    c: &mut DbConn,
    id: &str,
    old: &[Stage],
    new: &[Stage],
) -> ApiResult<()> {
    let dropped: Vec<&str> = old
        .iter()
        .filter(|s| !new.iter().any(|n| n.key == s.key))
        .map(|s| s.key.as_str())
        .collect();
    if dropped.is_empty() {
        return Ok(());
    }
    let occupied: Vec<String> = opportunities::table
        .filter(opportunities::pipeline_id.eq(id))
        .filter(opportunities::archived_at.is_null())
        .filter(opportunities::stage.eq_any(&dropped))
        .select(opportunities::stage)
        .distinct()
        .load(c)?;
    if occupied.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "opportunities are in stage {}; move them before dropping it",
            occupied.join(", ")
        )))
    }
}

pub fn load_page(conn: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Pipeline>> {
    let mut q = crm_core::visible!(
        pipelines::table.into_boxed::<MultiBackend>(),
        me,
        pipelines::id
    );
    if !p.include_archived {
        q = q.filter(pipelines::archived_at.is_null());
    }
    if let Some(t) = p.time_filter("created_after")? {
        q = q.filter(pipelines::created_at.gt(t));
    }
    let rows: Vec<PipelineRow> = apply_sort(q, p)?.load(conn)?;
    list::page(rows.into_iter().map(Pipeline::from).collect(), p)
}

/// Pipelines on the resource kernel: every role reads them; managers and admins shape them.
pub struct Pipelines;

impl Resource for Pipelines {
    type Record = Pipeline;
    type Input = PipelineInput;
    type Patch = PipelineInput;
    crm_core::resource_paths!("pipelines");
    const ENTITY: &'static str = "pipeline";
    const TABLE: &'static str = "pipelines";
    const TAG: &'static str = "opportunities";
    const READ: Permission = Permission::SalesRead;
    const WRITE: Permission = Permission::SalesManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "stages"];

    crm_core::record_meta!(Pipeline);

    fn find(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<Pipeline> {
        find(c, me, id)
    }

    fn page(c: &mut DbConn, me: &Principal, p: &ListParams) -> ApiResult<Page<Pipeline>> {
        load_page(c, me, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &PipelineInput) -> ApiResult<Pipeline> {
        create_pipeline(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &serde_json::Value,
    ) -> ApiResult<Pipeline> {
        update_pipeline(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(pipelines);
}
