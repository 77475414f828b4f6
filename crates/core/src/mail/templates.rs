//! Mail templates with merge fields (`{{ ticket.number }}`, minijinja syntax). Each mail the
//! server writes has a built-in template, declared by its domain with the merge fields it
//! offers; `/mail-templates` overrides one by key. A template naming a field its key does
//! not offer is refused on write (422 naming the fields), never discovered at send time.

use crate::access::Permission;
use crate::audit::{self, Actor, Change};
use crate::auth::Principal;
use crate::db::{self, DbConn, MultiBackend};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::list::{self, Filter, ListParams, ListSpec, Page};
use crate::schema::mail_templates;
use crate::{etag, ids};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::ToSchema;
use validator::Validate;

/// A built-in template: what a domain mails and the merge fields it fills in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Template {
    pub key: &'static str,
    pub description: &'static str,
    pub subject: &'static str,
    pub body: &'static str,
    /// Merge fields the template may use (`ticket.number`); a list field (`articles`) is
    /// looped over with `{% for a in articles %}`.
    pub fields: &'static [&'static str],
}

static BUILT_IN: OnceLock<Vec<&'static Template>> = OnceLock::new();

/// Declare every domain's templates once at start-up (later calls are ignored).
pub fn install(templates: Vec<&'static Template>) {
    let _ = BUILT_IN.set(templates);
}

pub fn built_in() -> &'static [&'static Template] {
    BUILT_IN.get().map(Vec::as_slice).unwrap_or_default()
}

fn lookup(key: &str) -> Option<&'static Template> {
    built_in().iter().copied().find(|t| t.key == key)
}

/// The merge fields `source` uses that `allowed` does not offer; a syntax error is one
/// "field" too, so it is reported the same way.
fn unknown_fields(source: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let env = minijinja::Environment::new();
    let tpl = env.template_from_str(source).map_err(|e| e.to_string())?;
    let mut unknown: Vec<String> = tpl
        .undeclared_variables(true)
        .into_iter()
        .filter(|v| {
            !allowed
                .iter()
                .any(|a| a == v || v.starts_with(&format!("{a}.")))
        })
        .collect();
    unknown.sort();
    Ok(unknown)
}

/// A 422 entry when `source` uses merge fields `allowed` does not offer, or does not parse.
pub fn check_fields(errors: &mut Vec<FieldError>, field: &str, source: &str, allowed: &[&str]) {
    match unknown_fields(source, allowed) {
        Ok(unknown) if unknown.is_empty() => {}
        Ok(unknown) => errors.push(FieldError::new(
            field,
            "unknown_merge_field",
            format!(
                "uses unknown merge fields {}; this template offers {}",
                unknown.join(", "),
                allowed.join(", ")
            ),
        )),
        Err(e) => errors.push(FieldError::new(field, "syntax", &e)),
    }
}

/// Render a template source that `check_fields` accepted.
pub fn render_source(source: &str, context: &Value) -> ApiResult<String> {
    minijinja::Environment::new()
        .render_str(source, context)
        .map_err(|e| ApiError::Internal(format!("rendering a mail template: {e}")))
}

/// Render the template `key` (its override when one is active) with `context`.
pub fn render(c: &mut DbConn, t: &Template, context: &Value) -> ApiResult<(String, String)> {
    let custom: Option<(String, String)> = mail_templates::table
        .filter(mail_templates::key.eq(t.key))
        .filter(mail_templates::archived_at.is_null())
        .select((mail_templates::subject, mail_templates::body_text))
        .first(c)
        .optional()?;
    let (subject, body) = custom.unwrap_or_else(|| (t.subject.into(), t.body.into()));
    let env = minijinja::Environment::new();
    let fill = |src: &str| {
        env.render_str(src, context)
            .map_err(|e| ApiError::Internal(format!("rendering mail template {}: {e}", t.key)))
    };
    // A subject is one line whatever the merge fields held.
    let subject = fill(&subject)?.replace(['\r', '\n'], " ");
    Ok((subject, fill(&body)?))
}

/// A stored override of a built-in template.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = mail_templates)]
pub struct MailTemplate {
    pub id: String,
    /// The built-in template it replaces (`GET /api/v1/mail-template-keys`).
    pub key: String,
    pub subject: String,
    pub body_text: String,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A template as sent. `key` is set on create only.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailTemplateInput {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub key: Option<String>,
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub subject: Option<String>,
    #[validate(length(min = 1, max = 100000))]
    #[schema(min_length = 1, max_length = 100000)]
    pub body_text: Option<String>,
}

const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "key"],
    default_sort: "key",
    filters: &[Filter::text("key", "Built-in template key")],
    search: None,
    null_sorts_as: &[],
};

crate::sortable!(mail_templates::table, mail_templates::BoxedQuery<'static, MultiBackend>, {
    "created_at" => mail_templates::created_at,
    "key" => mail_templates::key,
    "id" => mail_templates::id,
});

fn find(c: &mut DbConn, id: &str) -> ApiResult<MailTemplate> {
    mail_templates::table
        .find(id)
        .select(MailTemplate::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("mail template"))
}

fn validate_text(key: &str, subject: &str, body: &str) -> ApiResult<()> {
    let Some(t) = lookup(key) else {
        return Err(ApiError::validation(vec![FieldError::new(
            "key",
            "unknown",
            format!(
                "is not a template key; the keys are {}",
                built_in()
                    .iter()
                    .map(|t| t.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]));
    };
    let mut errors = vec![];
    check_fields(&mut errors, "subject", subject, t.fields);
    check_fields(&mut errors, "body_text", body, t.fields);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn refuse_duplicate(c: &mut DbConn, key: &str, except: &str) -> ApiResult<()> {
    let n: i64 = mail_templates::table
        .filter(mail_templates::key.eq(key))
        .filter(mail_templates::archived_at.is_null())
        .filter(mail_templates::id.ne(except))
        .count()
        .get_result(c)?;
    if n > 0 {
        return Err(ApiError::Conflict(format!(
            "the {key} template is already overridden; change that one"
        )));
    }
    Ok(())
}

fn record(
    c: &mut DbConn,
    me: &Principal,
    action: &str,
    changes: Value,
    t: &MailTemplate,
) -> ApiResult<()> {
    audit::record(
        c,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "mail_template",
            entity_id: &t.id,
            changes,
            record: serde_json::to_value(t).unwrap_or_default(),
        },
    )
}

fn create(c: &mut DbConn, me: &Principal, input: &MailTemplateInput) -> ApiResult<MailTemplate> {
    input.validate()?;
    let (Some(key), Some(subject), Some(body)) = (&input.key, &input.subject, &input.body_text)
    else {
        return Err(ApiError::validation(
            [
                ("key", &input.key),
                ("subject", &input.subject),
                ("body_text", &input.body_text),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(f, _)| FieldError::new(f, "required", "is required"))
            .collect(),
        ));
    };
    validate_text(key, subject, body)?;
    db::write_tx(c, |c| {
        refuse_duplicate(c, key, "")?;
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(mail_templates::table)
            .values((
                mail_templates::id.eq(&id),
                mail_templates::key.eq(key),
                mail_templates::subject.eq(subject),
                mail_templates::body_text.eq(body),
                mail_templates::version.eq(1),
                mail_templates::created_at.eq(&now),
                mail_templates::updated_at.eq(&now),
            ))
            .execute(c)?;
        let t = find(c, &id)?;
        record(
            c,
            me,
            "created",
            serde_json::to_value(&t).unwrap_or_default(),
            &t,
        )?;
        Ok(t)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    patch: &Value,
) -> ApiResult<MailTemplate> {
    let input: MailTemplateInput = crate::objects::input(patch)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = crate::resource::find_for_write::<MailTemplates>(c, me, id)?;
        etag::check(expected, before.version)?;
        let subject = input.subject.clone().unwrap_or(before.subject.clone());
        let body = input.body_text.clone().unwrap_or(before.body_text.clone());
        validate_text(&before.key, &subject, &body)?;
        let changed = diesel::update(mail_templates::table.find(id))
            .filter(mail_templates::version.eq(before.version))
            .set((
                mail_templates::subject.eq(&subject),
                mail_templates::body_text.eq(&body),
                mail_templates::version.eq(before.version + 1),
                mail_templates::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        crate::resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = audit::diff(
            &serde_json::to_value(&before).unwrap_or_default(),
            &serde_json::to_value(&after).unwrap_or_default(),
            &[],
        );
        record(c, me, "updated", changes, &after)?;
        Ok(after)
    })
}

/// Template overrides on the resource kernel: managers and admins read them, admins write.
pub struct MailTemplates;

impl crate::resource::Resource for MailTemplates {
    type Record = MailTemplate;
    type Input = MailTemplateInput;
    type Patch = MailTemplateInput;
    crate::resource_paths!("mail-templates");
    const ENTITY: &'static str = "mail_template";
    const TABLE: &'static str = "mail_templates";
    const TAG: &'static str = "mail";
    const READ: Permission = Permission::MailRead;
    const WRITE: Permission = Permission::MailManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["key", "subject", "body_text"];
    const ARCHIVED: &'static str = "Archived: the built-in template is used again";
    const CREATE_ONLY: &'static [(&'static str, &'static str)] = &[(
        "key",
        "an override stays with its template; archive it and create another",
    )];

    crate::record_meta!(MailTemplate);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<MailTemplate> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<MailTemplate>> {
        let mut q = mail_templates::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(mail_templates::archived_at.is_null());
        }
        if let Some(k) = p.filter("key") {
            q = q.filter(mail_templates::key.eq(k.to_string()));
        }
        let rows: Vec<MailTemplate> = apply_sort(q, p)?
            .select(MailTemplate::as_select())
            .load(c)?;
        list::page(rows, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &MailTemplateInput,
    ) -> ApiResult<MailTemplate> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<MailTemplate> {
        update(c, me, id, expected, patch)
    }

    fn before_archive(
        c: &mut DbConn,
        _me: &Principal,
        t: &MailTemplate,
        archiving: bool,
    ) -> ApiResult<()> {
        if archiving {
            Ok(())
        } else {
            refuse_duplicate(c, &t.key, &t.id)
        }
    }

    crate::archive_stamp!(mail_templates);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_merge_fields_are_named() {
        let allowed = ["ticket.number", "contact", "articles"];
        assert_eq!(
            unknown_fields("#{{ ticket.number }} {{ contact.first_name }}", &allowed),
            Ok(vec![])
        );
        assert_eq!(
            unknown_fields("{% for a in articles %}{{ a.title }}{% endfor %}", &allowed),
            Ok(vec![])
        );
        assert_eq!(
            unknown_fields("{{ ticket.secret }} {{ nope }}", &allowed),
            Ok(vec!["nope".to_string(), "ticket.secret".to_string()])
        );
        assert!(unknown_fields("{{ broken", &allowed).is_err());
    }
}
