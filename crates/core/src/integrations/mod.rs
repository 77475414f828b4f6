//! The integration surface, generic over every registered object (`crate::objects`):
//! upserts by external key, batch and composite writes, imports, exports, the change feed,
//! its server-sent event stream, and webhooks.

pub mod batch;
pub mod composite;
pub mod exports;
pub mod upsert;

use crate::access::{Access, Operation, Permission};
use crate::extract::only;
use crate::objects::ObjectRegistry;
use actix_web::web::{self, ServiceConfig};
use serde_json::Value;

/// Routes relative to `/api/v1`. Mounted before the domain crates, so that
/// `/accounts/batch` is not taken for an account id.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource("/composite")
            .route(web::post().to(composite::composite))
            .default_service(only("POST")),
    )
    .service(
        web::resource("/exports/{collection}")
            .route(web::get().to(exports::export))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/{collection}/batch")
            .route(web::post().to(batch::batch))
            .default_service(only("POST")),
    )
    .service(
        web::resource("/{collection}/external/{source}/{external_id}")
            .route(web::put().to(upsert::upsert_external))
            .default_service(only("PUT")),
    )
    .service(
        web::resource("/{collection}/by-email/{email}")
            .route(web::put().to(upsert::upsert_by_email))
            .default_service(only("PUT")),
    );
}

/// Which of an object's permissions a per-object operation needs.
#[derive(Clone, Copy)]
enum Needs {
    Read,
    Write,
}

/// Operations that exist once per registered object; `{collection}` is the object's name.
const PER_OBJECT: &[(&str, &str, Needs)] = &[
    ("GET", "/api/v1/exports/{collection}", Needs::Read),
    ("POST", "/api/v1/{collection}/batch", Needs::Write),
    (
        "PUT",
        "/api/v1/{collection}/external/{source}/{external_id}",
        Needs::Write,
    ),
];

/// Per-object operations only for objects matched by email.
const PER_EMAIL_OBJECT: &[(&str, &str, Needs)] =
    &[("PUT", "/api/v1/{collection}/by-email/{email}", Needs::Write)];

/// The rows of the permission table for operations that are not per object.
pub const OPERATIONS: &[Operation] = &[Operation::new(
    "POST",
    "/api/v1/composite",
    Access::Authenticated,
)];

fn per_object(registry: &ObjectRegistry) -> Vec<(&'static str, String, &'static str, Permission)> {
    let mut out = vec![];
    for kind in registry.all() {
        let by_email: &[_] = if kind.by_email.is_some() {
            PER_EMAIL_OBJECT
        } else {
            &[]
        };
        for (method, template, needs) in PER_OBJECT.iter().chain(by_email) {
            let permission = match needs {
                Needs::Read => kind.read,
                Needs::Write => kind.write,
            };
            out.push((*method, template.to_string(), kind.name, permission));
        }
    }
    out
}

/// The permission rows of the per-object operations of every registered object. The
/// strings live as long as the process: the table is built once at start-up.
pub fn object_operations(registry: &ObjectRegistry) -> Vec<Operation> {
    per_object(registry)
        .into_iter()
        .map(|(method, template, name, permission)| {
            let path: &'static str =
                Box::leak(template.replace("{collection}", name).into_boxed_str());
            Operation::new(method, path, Access::Needs(permission))
        })
        .collect()
}

/// Replace each generic `{collection}` path of the document by one path per registered
/// object, so clients and the fuzzer see `/api/v1/accounts/batch` with its own permission.
pub fn expand_document(doc: &mut Value, registry: &ObjectRegistry) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let generic: Vec<String> = paths
        .keys()
        .filter(|p| p.contains("{collection}"))
        .cloned()
        .collect();
    for template in generic {
        let Some(item) = paths.remove(&template) else {
            continue;
        };
        for (method, _, name, _) in per_object(registry)
            .into_iter()
            .filter(|(_, t, _, _)| *t == template)
        {
            let concrete = template.replace("{collection}", name);
            let mut op = item[method.to_lowercase()].clone();
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.retain(|p| p["name"] != "collection");
            }
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                op["operationId"] = Value::String(format!("{id}_{}", name.replace('-', "_")));
            }
            op["tags"] = serde_json::json!(["integrations", name]);
            let entry = paths
                .entry(concrete)
                .or_insert_with(|| Value::Object(Default::default()));
            entry[method.to_lowercase()] = op;
        }
    }
}

/// This part of the OpenAPI document (generic paths; see `expand_document`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        upsert::upsert_external, upsert::upsert_by_email, batch::batch, composite::composite,
        exports::export,
    ),
    tags(
        (name = "integrations", description = "Upserts by external key, batch and composite writes, imports, exports, the change feed, the event stream and webhooks"),
    )
)]
pub struct Api;
