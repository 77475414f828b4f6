//! The served OpenAPI document: every crate's fragment merged, with bearer security.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi as Document};
use utoipa::OpenApi;

pub fn document() -> Document {
    let mut doc = crm_core::identity::IdentityApi::openapi();
    for part in [
        crm_core::identity::resource_document(),
        crate::observability::HealthApi::openapi(),
        crm_core::integrations::Api::openapi(),
        crm_customers::Api::openapi(),
        crm_customers::resource_document(),
        crm_sales::Api::openapi(),
        crm_sales::resource_document(),
        crm_marketing::Api::openapi(),
        crm_service::Api::openapi(),
        crm_partners::Api::openapi(),
        crm_analytics::Api::openapi(),
    ] {
        doc.merge(part);
    }
    doc.info = InfoBuilder::new()
        .title("CRM API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Headless operational CRM. Authenticate with `Authorization: Bearer <token>` \
             (a JWT from /api/v1/auth/login or an API key). Errors are RFC 9457 problem documents.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT or API key")
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    expand_per_object(doc)
}

/// One path per registered object for the generic integration paths.
fn expand_per_object(doc: Document) -> Document {
    let Ok(mut json) = serde_json::to_value(&doc) else {
        return doc;
    };
    crm_core::integrations::expand_document(&mut json, &crate::objects());
    serde_json::from_value(json).unwrap_or(doc)
}

/// The document as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
