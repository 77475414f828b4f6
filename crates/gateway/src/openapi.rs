//! The served OpenAPI document: every crate's fragment merged, with bearer security, then
//! the house rules of `conventions` applied.

mod conventions;

use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi as Document};
use utoipa::OpenApi;

const ABOUT: &str = "Headless operational CRM: customers, sales, marketing, service, partners \
and analytics behind one REST/JSON API.\n\n\
Authenticate with `Authorization: Bearer <token>`: a JWT from `POST /api/v1/auth/login` or an \
API key from `POST /api/v1/api-keys`. Every operation's description ends with who may call it. \
Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`; \
validation problems list the failing fields in `errors`.\n\n\
Lists are cursor-paged (`limit`, `cursor`, `next_cursor`) and sorted with `sort`. Writes take \
an `Idempotency-Key`; updates take `If-Match` with the record's `ETag`.\n\n\
Compatibility: within `/api/v1` fields and operations are only added. A deprecated operation \
says `deprecated: true` here and answers with `Deprecation` and `Sunset` headers before it is \
removed; CHANGELOG.md in the repository lists every change.";

/// Every crate's fragment of the document.
fn parts() -> Vec<Document> {
    vec![
        crm_core::identity::IdentityApi::openapi(),
        crm_core::identity::resource_document(),
        crate::observability::HealthApi::openapi(),
        crm_core::integrations::Api::openapi(),
        crm_core::mail::Api::openapi(),
        crm_core::mail::resource_document(),
        crm_customers::Api::openapi(),
        crm_customers::resource_document(),
        crm_sales::Api::openapi(),
        crm_sales::resource_document(),
        crm_marketing::Api::openapi(),
        crm_marketing::resource_document(),
        crm_service::Api::openapi(),
        crm_service::resource_document(),
        crm_partners::Api::openapi(),
        crm_analytics::Api::openapi(),
    ]
}

/// The document as a JSON value: what `/openapi.json` serves and the repository commits.
pub fn document() -> Value {
    let mut parts = parts().into_iter();
    let mut doc = parts
        .next()
        .unwrap_or_else(crm_core::identity::IdentityApi::openapi);
    for part in parts {
        doc.merge(part);
    }
    doc.info = InfoBuilder::new()
        .title("CRM API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(ABOUT))
        .license(Some(
            utoipa::openapi::LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    add_bearer(&mut doc);
    let mut json = serde_json::to_value(&doc).unwrap_or_default();
    crm_core::integrations::expand_document(&mut json, &crate::objects());
    crm_core::integrations::webhooks::split_schemas(&mut json);
    crm_customers::custom_fields::split_schemas(&mut json);
    conventions::apply(&mut json, &crate::access_table());
    // Relative to where the document is served, so "try it out" and generated clients
    // call the server the spec came from.
    if let Some(doc) = json.as_object_mut() {
        doc.insert(
            "servers".into(),
            json!([{"url": "/", "description": "The server that serves this document"}]),
        );
    }
    json
}

fn add_bearer(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT or API key")
                .description(Some("A JWT from `POST /api/v1/auth/login`, or an API key"))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// The document as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `merge` keeps the first schema of a name and silently drops the rest: two crates that
    /// both declare a `Status` would publish one of them for both. Same name, same schema.
    #[test]
    fn no_two_crates_publish_different_schemas_under_one_name() {
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        let mut clashes = Vec::new();
        for part in parts() {
            let Some(components) = part.components else {
                continue;
            };
            for (name, schema) in components.schemas {
                let schema = serde_json::to_value(&schema).unwrap_or_default();
                match seen.get(&name) {
                    Some(first) if *first != schema => clashes.push(name),
                    Some(_) => {}
                    None => {
                        seen.insert(name, schema);
                    }
                }
            }
        }
        assert!(
            clashes.is_empty(),
            "schemas declared twice, differently: {clashes:?}"
        );
    }

    /// Operation ids come from each resource's ENTITY, which also names its audit entries and
    /// events: one word or snake_case, never "routing rule".
    #[test]
    fn operation_ids_are_snake_case() {
        let doc = document();
        let bad: Vec<String> = doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(_, ops)| ops.as_object().into_iter().flatten())
            .filter_map(|(_, op)| op.get("operationId").and_then(Value::as_str))
            .filter(|id| {
                !id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_string)
            .collect();
        assert!(
            bad.is_empty(),
            "operation ids that are not snake_case: {bad:?}"
        );
    }
}
