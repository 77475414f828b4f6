//! Web forms: lead capture from a company's web site. A form maps its fields to lead fields,
//! may ask for consent to mail, and lists the origins allowed to post it. Visitors post to
//! `POST /api/v1/forms/{public_key}/submissions` without login (JSON or form-encoded). A
//! submission whose email belongs to a contact is recorded against that contact (with the
//! consent it gives); one whose email belongs to a lead, against that lead; otherwise a lead is
//! created (source `web_form`, the form's campaign) as the form's owner, so assignment rules
//! and duplicate checks run as for any lead. A filled honeypot field (`_hp`) is answered like a
//! success and recorded nowhere; floods meet the anonymous rate limit (429).

use crate::common::{audit_change, required};
use actix_web::{post, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::respond::WriteProblems;
use crm_core::schema::{contact_emails as ce, form_submissions as fs, forms, lead_emails};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use crm_customers::contacts::{record_consent, Channel as ConsentChannel, ConsentStatus};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use validator::Validate;

/// The honeypot: a field people never see, so only robots fill it.
pub const HONEYPOT: &str = "_hp";

/// Lead fields a form field may fill.
const TARGETS: &[&str] = &[
    "first_name",
    "last_name",
    "company",
    "job_title",
    "email",
    "phone",
    "country",
    "industry",
];

/// One field of a form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(as = FormField)]
pub struct Field {
    /// The name the page posts it under.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub name: String,
    /// The lead field it fills: `first_name`, `last_name`, `company`, `job_title`, `email`,
    /// `phone`, `country`, `industry`.
    pub maps_to: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = forms)]
struct Row {
    id: String,
    name: String,
    public_key: String,
    fields: String,
    consent_text: Option<String>,
    allowed_origins: String,
    campaign_id: Option<String>,
    owner_id: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A web form.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WebForm)]
pub struct Form {
    pub id: String,
    pub name: String,
    /// Where the page posts: `/api/v1/forms/{public_key}/submissions`.
    pub public_key: String,
    pub fields: Vec<Field>,
    /// Shown beside the consent box; a submission with `consent` true agrees to it.
    pub consent_text: Option<String>,
    /// Origins (`https://www.example.com`) whose pages may post; empty: any.
    pub allowed_origins: Vec<String>,
    pub campaign_id: Option<String>,
    /// The user submissions act as (leads they create are created by this user).
    pub owner_id: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for Form {
    fn from(r: Row) -> Self {
        Form {
            id: r.id,
            name: r.name,
            public_key: r.public_key,
            fields: parse_json(&r.fields),
            consent_text: r.consent_text,
            allowed_origins: parse_json(&r.allowed_origins),
            campaign_id: r.campaign_id,
            owner_id: r.owner_id,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A form as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebFormInput)]
pub struct FormInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 50, message = "at most 50 fields"))]
    #[schema(max_items = 50)]
    pub fields: Option<Vec<Field>>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub consent_text: Option<String>,
    #[validate(length(max = 20, message = "at most 20 origins"))]
    #[schema(max_items = 20)]
    pub allowed_origins: Option<Vec<String>>,
    #[schema(format = "uuid")]
    pub campaign_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(forms::table, forms::BoxedQuery<'static, MultiBackend>, {
    "name" => forms::name,
    "created_at" => forms::created_at,
    "id" => forms::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Form> {
    forms::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(Form::from)
        .ok_or_else(|| ApiError::not_found("form"))
}

fn check(
    c: &mut DbConn,
    fields: &[Field],
    origins: &[String],
    campaign: &Option<String>,
) -> ApiResult<()> {
    let mut errors = vec![];
    for (i, f) in fields.iter().enumerate() {
        let ok_name = f.name.len() <= 40
            && f.name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && f.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !ok_name || f.name == "consent" {
            errors.push(FieldError::new(
                &format!("fields[{i}].name"),
                "invalid",
                "a-z, 0-9 and _, starting with a letter; not `consent`",
            ));
        }
        if !TARGETS.contains(&f.maps_to.as_str()) {
            errors.push(FieldError::new(
                &format!("fields[{i}].maps_to"),
                "unknown",
                format!("one of {}", TARGETS.join(", ")),
            ));
        }
        if fields.iter().take(i).any(|o| o.name == f.name) {
            errors.push(FieldError::new(
                &format!("fields[{i}].name"),
                "duplicate",
                "is named twice",
            ));
        }
    }
    for (i, o) in origins.iter().enumerate() {
        let ok = match o.trim_end_matches('/').split_once("://") {
            Some((scheme, host)) => {
                ["https", "http"].contains(&scheme)
                    && !host.is_empty()
                    && !host.contains(['/', '?', '#'])
            }
            None => false,
        };
        if !ok {
            errors.push(FieldError::new(
                &format!("allowed_origins[{i}]"),
                "origin",
                "an origin: scheme and host, like https://www.example.com",
            ));
        }
    }
    if let Some(k) = campaign {
        if ids::parse_id(k).is_none() || crate::campaigns::find(c, k).is_err() {
            errors.push(FieldError::new(
                "campaign_id",
                "not_found",
                "no campaign has this id",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn create(c: &mut DbConn, me: &Principal, input: &FormInput) -> ApiResult<Form> {
    input.validate()?;
    let errors = required(&[
        ("name", input.name.is_none()),
        ("fields", input.fields.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let fields = input.fields.clone().unwrap_or_default();
    let origins = input.allowed_origins.clone().unwrap_or_default();
    db::write_tx(c, |c| {
        check(c, &fields, &origins, &input.campaign_id)?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(forms::table)
            .values((
                forms::id.eq(&id),
                forms::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                forms::public_key.eq(format!("frm_{}", auth::random_token(18)?)),
                forms::fields.eq(json_text(&fields)),
                forms::consent_text.eq(&input.consent_text),
                forms::allowed_origins.eq(json_text(&origins)),
                forms::campaign_id.eq(&input.campaign_id),
                forms::owner_id.eq(&me.user_id),
                forms::version.eq(1),
                forms::created_at.eq(&now),
                forms::updated_at.eq(&now),
            ))
            .execute(c)?;
        let f = find(c, &id)?;
        audit_change(c, me, "form", "created", &id, to_json(&f), &f)?;
        Ok(f)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Form> {
    let input: FormInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Forms>(c, me, id)?;
        etag::check(expected, before.version)?;
        let fields = input.fields.clone().unwrap_or(before.fields.clone());
        let origins = input
            .allowed_origins
            .clone()
            .unwrap_or(before.allowed_origins.clone());
        let nullable = |key: &str, sent: &Option<String>, was: &Option<String>| match raw.get(key) {
            Some(Value::Null) => None,
            Some(_) => sent.clone(),
            None => was.clone(),
        };
        let consent = nullable("consent_text", &input.consent_text, &before.consent_text);
        let campaign = nullable("campaign_id", &input.campaign_id, &before.campaign_id);
        check(c, &fields, &origins, &campaign)?;
        let changed = diesel::update(forms::table.find(id))
            .filter(forms::version.eq(before.version))
            .set((
                forms::name.eq(input.name.as_deref().unwrap_or(&before.name).trim()),
                forms::fields.eq(json_text(&fields)),
                forms::consent_text.eq(&consent),
                forms::allowed_origins.eq(json_text(&origins)),
                forms::campaign_id.eq(&campaign),
                forms::version.eq(before.version + 1),
                forms::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "form", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// What a submission did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub accepted: bool,
}

/// The posted fields as text, from JSON or a form-encoded body (400 for anything else).
fn posted(req: &HttpRequest, body: &[u8]) -> ApiResult<Map<String, Value>> {
    let kind = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if kind.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("the form body can't be read: {e}")))?;
        return Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    if kind.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body can't be read: {e}")))?;
        return match v {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::field(
                "body",
                "type",
                "send an object of field names and values",
            )),
        };
    }
    Err(ApiError::UnsupportedMediaType(
        "send application/json or application/x-www-form-urlencoded".into(),
    ))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
        || text(v).is_some_and(|s| ["true", "on", "yes", "1"].contains(&s.to_lowercase().as_str()))
}

/// The lead's fields from the posted ones; a 422 names each required form field missing.
fn lead_fields(form: &Form, posted: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let mut errors = vec![];
    let mut out = Map::new();
    for f in &form.fields {
        match text(posted.get(&f.name)) {
            Some(v) => {
                out.insert(f.maps_to.clone(), Value::String(v));
            }
            None if f.required => errors.push(FieldError::new(&f.name, "required", "is required")),
            None => {}
        }
    }
    for key in posted.keys() {
        if key != HONEYPOT && key != "consent" && !form.fields.iter().any(|f| &f.name == key) {
            errors.push(FieldError::new(
                key,
                "unknown",
                "this form has no such field",
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Record a submission: contact, lead or a new lead, in one transaction.
fn record(
    c: &mut DbConn,
    form: &Form,
    posted: &Map<String, Value>,
    origin: Option<String>,
) -> ApiResult<()> {
    let mut fields = lead_fields(form, posted)?;
    let consent = (form.consent_text.is_some() && truthy(posted.get("consent")))
        .then(|| form.consent_text.clone())
        .flatten();
    let owner = auth::principal_of_user(c, &form.owner_id)?
        .ok_or_else(|| ApiError::Conflict("the form's owner is no longer active".into()))?;
    db::write_tx(c, |c| {
        let email = fields
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let (mut contact, mut lead) = (None, None);
        if let Some(email) = &email {
            // Match-or-create takes turns per address, so two submissions at once (a double
            // click, a retrying browser) find one lead instead of each creating its own. Not a
            // unique index: leads may share an address (duplicate detection reports them, it
            // does not refuse them) and the match spans contacts and leads. The key is the
            // contact upsert's (`PUT /contacts/by-email?email=`), so a contact it creates at
            // the same time is found here rather than shadowed by a new lead.
            db::lock_key(c, &format!("contacts:email:{email}"))?;
            contact = ce::table
                .filter(ce::email.eq(email))
                .select(ce::contact_id)
                .first::<String>(c)
                .optional()?;
            if contact.is_none() {
                lead = lead_emails::table
                    .filter(lead_emails::email.eq(email))
                    .select(lead_emails::lead_id)
                    .first::<String>(c)
                    .optional()?;
            }
        }
        let now = ids::now();
        if let (Some(cid), Some(_)) = (&contact, &consent) {
            record_consent(
                c,
                cid,
                ConsentChannel::Email,
                ConsentStatus::Granted,
                "web_form",
                &now,
            )?;
        }
        if contact.is_none() && lead.is_none() {
            fields.insert("source".into(), json!("web_form"));
            if let Some(k) = &form.campaign_id {
                fields.insert("campaign_id".into(), json!(k));
            }
            let input: crm_sales::leads::LeadInput =
                crm_core::objects::input(&Value::Object(fields.clone()))?;
            lead = Some(crm_sales::leads::create_lead(c, &owner, &input)?.id);
        }
        let id = ids::new_id();
        diesel::insert_into(fs::table)
            .values((
                fs::id.eq(&id),
                fs::form_id.eq(&form.id),
                fs::data.eq(json_text(posted)),
                fs::lead_id.eq(&lead),
                fs::contact_id.eq(&contact),
                fs::consent_text.eq(&consent),
                fs::origin.eq(&origin),
                fs::created_at.eq(&now),
            ))
            .execute(c)?;
        if let Some(subject) = contact
            .as_deref()
            .map(|c| ("contact", c))
            .or(lead.as_deref().map(|l| ("lead", l)))
        {
            crate::journeys::record(
                c,
                &crate::journeys::Touch {
                    subject,
                    kind: crate::journeys::TouchKind::FormSubmission,
                    campaign_id: form.campaign_id.as_deref(),
                    source: ("form_submission", &id),
                    summary: format!("Submitted {}", form.name),
                    occurred_at: &now,
                },
            )?;
        }
        match (&contact, &lead) {
            (Some(cid), _) => {
                crate::scoring::on_behaviour(c, crate::scoring::AppliesTo::Contact, cid)?
            }
            (None, Some(lid)) => {
                crate::scoring::on_behaviour(c, crate::scoring::AppliesTo::Lead, lid)?
            }
            _ => {}
        }
        // Automations and webhooks see who submitted what (the form event carries the form).
        crm_core::audit::emit(
            c,
            "form_submission.created",
            "form_submission",
            &id,
            &crm_core::audit::Actor::from(&owner),
            &json!({"id": id, "form_id": form.id, "lead_id": lead, "contact_id": contact,
                "consent": consent.is_some(), "created_at": now}),
        )?;
        audit_change(
            c,
            &owner,
            "form",
            "submitted",
            &form.id,
            json!({"submission_id": id, "lead_id": lead, "contact_id": contact, "consent": consent.is_some()}),
            form,
        )
    })
}

/// Submit a web form
///
/// What a web page posts, without login: the form's fields by name, as JSON or
/// `application/x-www-form-urlencoded`, plus `consent` (true, `on`) when the form asks for
/// it. A missing required field or one the form doesn't have is a 422 naming it; a page from
/// an origin the form doesn't allow is a 403; an unknown or archived form is a 404. Answers
/// 201 with `{"accepted": true}`, also for a filled honeypot (`_hp`), which records nothing.
/// Public, under the anonymous rate limit (429).
#[utoipa::path(post, path = "/api/v1/forms/{public_key}/submissions", tag = "forms", operation_id = "submit_form",
    params(("public_key" = String, Path, description = "The form's public key")),
    request_body(content = Object, content_type = "application/json", description = "Field names and values"),
    security(()),
    responses(
        (status = 201, description = "Accepted", body = Submitted),
        (status = 415, description = "Neither JSON nor form-encoded", body = crm_core::error::Problem, content_type = "application/problem+json"),
        WriteProblems,
    ))]
#[post("/forms/{public_key}/submissions")]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let fields = posted(&req, &body)?;
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let key = key.into_inner();
    let allowed = state
        .db(move |c| {
            let form: Form = forms::table
                .filter(forms::public_key.eq(&key))
                .filter(forms::archived_at.is_null())
                .select(Row::as_select())
                .first(c)
                .optional()?
                .map(Form::from)
                .ok_or_else(|| ApiError::not_found("form"))?;
            let allowed = match &origin {
                Some(o) if !form.allowed_origins.is_empty() => {
                    if !form
                        .allowed_origins
                        .iter()
                        .any(|a| a.trim_end_matches('/') == o)
                    {
                        return Err(ApiError::Forbidden(
                            "this form does not take posts from that origin".into(),
                        ));
                    }
                    Some(o.clone())
                }
                _ => None,
            };
            if text(fields.get(HONEYPOT)).is_none() {
                record(c, &form, &fields, origin)?;
            }
            Ok(allowed)
        })
        .await?;
    let mut res = HttpResponse::Created();
    if let Some(o) = allowed {
        res.insert_header(("Access-Control-Allow-Origin", o));
        res.insert_header(("Vary", "Origin"));
    }
    Ok(res.json(Submitted { accepted: true }))
}

/// Web forms on the resource kernel: marketers build them.
pub struct Forms;

impl Resource for Forms {
    type Record = Form;
    type Input = FormInput;
    type Patch = FormInput;
    crm_core::resource_paths!("forms");
    const ENTITY: &'static str = "form";
    const TABLE: &'static str = "forms";
    const TAG: &'static str = "forms";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "fields"];

    crm_core::record_meta!(Form);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Form> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Form>> {
        let mut q = forms::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(forms::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(Form::from).collect(), p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &FormInput) -> ApiResult<Form> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Form> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(forms);
}
