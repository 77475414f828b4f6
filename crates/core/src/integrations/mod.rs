//! The integration surface, generic over every registered object (`crate::objects`):
//! upserts by external key, batch and composite writes, imports, exports, the change feed,
//! its server-sent event stream, and webhooks.

pub mod batch;
pub mod composite;
pub mod exports;
pub mod feed;
pub mod imports;
pub mod stream;
pub mod upsert;
pub mod webhooks;

use crate::access::{Access, Operation, Permission};
use crate::extract::only;
use crate::objects::ObjectRegistry;
use actix_web::web::{self, ServiceConfig};
use serde_json::{json, Map, Value};

/// Routes relative to `/api/v1`. Mounted before the domain crates, so that
/// `/accounts/batch` is not taken for an account id.
pub fn configure(cfg: &mut ServiceConfig) {
    use webhooks as w;
    cfg.service(
        web::resource("/events")
            .route(web::get().to(feed::list_events))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/events/stream")
            .route(web::get().to(stream::stream))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/imports")
            .route(web::post().to(imports::create_import))
            .default_service(only("POST")),
    )
    .service(
        web::resource("/imports/{id}")
            .route(web::get().to(imports::get_import))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/webhooks")
            .route(web::get().to(w::list_webhooks))
            .route(web::post().to(w::create_webhook))
            .default_service(only("GET, POST")),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(w::get_webhook))
            .route(web::patch().to(w::update_webhook))
            .route(web::delete().to(w::delete_webhook))
            .default_service(only("GET, PATCH, DELETE")),
    )
    .service(
        web::resource("/webhooks/{id}/ping")
            .route(web::post().to(w::ping))
            .default_service(only("POST")),
    )
    .service(
        web::resource("/webhooks/{id}/deliveries")
            .route(web::get().to(w::list_deliveries))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/webhooks/{id}/deliveries/{delivery_id}")
            .route(web::get().to(w::get_delivery))
            .default_service(only("GET")),
    )
    .service(
        web::resource("/webhooks/{id}/deliveries/{delivery_id}/redeliver")
            .route(web::post().to(w::redeliver))
            .default_service(only("POST")),
    )
    .service(
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
        web::resource("/{collection}/by-email")
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
    &[("PUT", "/api/v1/{collection}/by-email", Needs::Write)];

/// The rows of the permission table for operations that are not per object.
pub const OPERATIONS: &[Operation] = {
    const HOOKS: Access = Access::Needs(Permission::WebhooksManage);
    const IMPORTS: Access = Access::Needs(Permission::ImportsRun);
    &[
        Operation::new("POST", "/api/v1/composite", Access::Authenticated),
        // Everyone may read the feed; what each caller sees is filtered in the query.
        Operation::new("GET", "/api/v1/events", Access::Authenticated),
        Operation::new("GET", "/api/v1/events/stream", Access::Authenticated),
        Operation::new("POST", "/api/v1/imports", IMPORTS),
        Operation::new("GET", "/api/v1/imports/{id}", IMPORTS),
        Operation::new("GET", "/api/v1/webhooks", HOOKS),
        Operation::new("POST", "/api/v1/webhooks", HOOKS),
        Operation::new("GET", "/api/v1/webhooks/{id}", HOOKS),
        Operation::new("PATCH", "/api/v1/webhooks/{id}", HOOKS),
        Operation::new("DELETE", "/api/v1/webhooks/{id}", HOOKS),
        Operation::new("POST", "/api/v1/webhooks/{id}/ping", HOOKS),
        Operation::new("GET", "/api/v1/webhooks/{id}/deliveries", HOOKS),
        Operation::new(
            "GET",
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
            HOOKS,
        ),
        Operation::new(
            "POST",
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            HOOKS,
        ),
    ]
};

/// Register the integration jobs (webhook deliveries, imports) and housekeeping (event
/// retention).
pub fn register_jobs(
    registry: &mut crate::jobs::JobRegistry,
    config: std::sync::Arc<crate::config::Config>,
    objects: std::sync::Arc<ObjectRegistry>,
    pool: crate::db::DbPool,
) {
    webhooks::register_jobs(registry, config.clone());
    imports::register_jobs(registry, objects, pool);
    let retention =
        chrono::Duration::from_std(config.event_retention).unwrap_or(chrono::Duration::days(30));
    registry.register_periodic(
        "event-retention",
        std::time::Duration::from_secs(600),
        move |conn| match feed::prune(conn, retention) {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned events past retention"),
            Err(e) => tracing::error!(error = %e, "pruning events failed"),
        },
    );
}

fn per_object(
    registry: &ObjectRegistry,
) -> Vec<(&'static str, &'static str, &'static str, Permission)> {
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
            out.push((*method, *template, kind.name, permission));
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
            Operation::new(method, path, Access::Needs(permission)).served_by(template)
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
    let mut batches = vec![];
    for template in generic {
        let Some(item) = paths.remove(&template) else {
            continue;
        };
        for (method, _, name, _) in per_object(registry)
            .into_iter()
            .filter(|(_, t, _, _)| *t == template)
        {
            let concrete = template.replace("{collection}", name);
            let Some(Value::Object(mut op)) = item.get(method.to_lowercase()).cloned() else {
                continue;
            };
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.retain(|p| p.get("name").and_then(Value::as_str) != Some("collection"));
            }
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                let unique = format!("{id}_{}", name.replace('-', "_"));
                op.insert("operationId".into(), Value::String(unique));
            }
            op.insert("tags".into(), serde_json::json!(["integrations", name]));
            if let Some(Value::String(summary)) = op.get_mut("summary") {
                // One summary per object's copy: `… (accounts)`.
                *summary = format!("{} ({name})", summary.trim_end_matches('.'));
            }
            if let Ok(kind) = registry.get(name) {
                typed_bodies(&mut op, &(kind.schema_name)(), &mut batches);
            }
            if let Value::Object(entry) = paths
                .entry(concrete)
                .or_insert_with(|| Value::Object(Default::default()))
            {
                entry.insert(method.to_lowercase(), Value::Object(op));
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        batch_schemas(schemas, &batches);
    }
}

/// A per-object operation's free-form bodies replaced by the object's own schemas: upserts
/// take `<Record>Create` (a PUT carries the whole record, as a create would) and answer
/// `<Record>`; a batch takes `<Record>BatchRequest` (see `batch_schemas`).
fn typed_bodies(op: &mut Map<String, Value>, record: &str, batches: &mut Vec<String>) {
    let body = op
        .get_mut("requestBody")
        .and_then(|b| b.pointer_mut("/content/application~1json/schema"));
    let Some(body) = body else {
        return;
    };
    if body.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/BatchRequest") {
        *body = schema_ref(&format!("{record}BatchRequest"));
        batches.push(record.to_string());
        return;
    }
    *body = schema_ref(&format!("{record}Create"));
    for status in ["200", "201"] {
        let path = format!("/{status}/content/application~1json/schema");
        if let Some(schema) = op.get_mut("responses").and_then(|r| r.pointer_mut(&path)) {
            *schema = schema_ref(record);
        }
    }
}

/// `<Record>BatchRequest` and `<Record>BatchItem`: the generic batch schemas, each item's
/// `body` described by the object's create and patch schemas. It is an open object in the
/// schema because the server checks each body as a write of its own: one that does not fit
/// (a wrong type, a too-short name) fails that item alone, with a 422 in its result, while
/// the others go in — the request itself is not refused for it.
fn batch_schemas(schemas: &mut Map<String, Value>, records: &[String]) {
    let (Some(request), Some(item)) = (
        schemas.get("BatchRequest").cloned(),
        schemas.get("BatchItem").cloned(),
    ) else {
        return;
    };
    // Every batch path is per object, so the generic pair would be left unused.
    if !records.is_empty() {
        schemas.remove("BatchRequest");
        schemas.remove("BatchItem");
    }
    for record in records {
        let mut typed_item = item.clone();
        if let Some(body) = typed_item.pointer_mut("/properties/body") {
            let about = format!(
                "The fields, for `create` (as `{record}Create`), `update` and `upsert` (as \
                 `{record}Patch`). Checked per item: a body that does not fit fails its item \
                 with a 422 in the item's result (with `all_or_none`, the whole call)."
            );
            *body = json!({"type": ["object", "null"], "additionalProperties": true,
                "description": about});
        }
        let mut typed_request = request.clone();
        if let Some(items) = typed_request.pointer_mut("/properties/items/items") {
            *items = schema_ref(&format!("{record}BatchItem"));
        }
        schemas.insert(format!("{record}BatchItem"), typed_item);
        schemas.insert(format!("{record}BatchRequest"), typed_request);
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// This part of the OpenAPI document (generic paths; see `expand_document`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        upsert::upsert_external, upsert::upsert_by_email, batch::batch, composite::composite,
        exports::export,
        imports::create_import, imports::get_import,
        feed::list_events, stream::stream,
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::get_webhook,
        webhooks::update_webhook, webhooks::delete_webhook, webhooks::ping,
        webhooks::list_deliveries, webhooks::get_delivery, webhooks::redeliver,
    ),
    tags(
        (name = "webhooks", description = "Signed event deliveries to your URLs, with a delivery log, redelivery and ping"),
        (name = "integrations", description = "Upserts by external key, batch and composite writes, imports, exports, the change feed, the event stream and webhooks"),
    )
)]
pub struct Api;
