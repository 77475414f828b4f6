//! The route table from the OpenAPI document, so that a known path called with a method
//! it does not accept answers 405 with `Allow`, and an unknown path answers 404.

use actix_web::dev::ResourceDef;
use actix_web::{web, HttpRequest};
use crm_core::error::ApiError;

pub struct RouteTable(Vec<(ResourceDef, Vec<String>)>);

impl RouteTable {
    pub fn from_document(doc: &serde_json::Value) -> Self {
        let routes = doc
            .get("paths")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_uppercase())
                    .filter(|m| {
                        [
                            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
                        ]
                        .contains(&m.as_str())
                    })
                    .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        RouteTable(routes)
    }

    /// The methods a path accepts, if the path is a route of the API.
    pub fn allowed(&self, path: &str) -> Option<Vec<String>> {
        let mut all: Vec<String> = self
            .0
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, m)| m.clone())
            .collect();
        if all.is_empty() {
            return None;
        }
        all.sort();
        all.dedup();
        Some(all)
    }
}

/// The default service: 405 for a known path with another method, else 404.
pub async fn fallback(
    req: HttpRequest,
    table: web::Data<RouteTable>,
) -> Result<actix_web::HttpResponse, ApiError> {
    if let Some(methods) = table.allowed(req.path()) {
        return Err(ApiError::MethodNotAllowed {
            allow: methods.join(", "),
        });
    }
    Err(ApiError::NotFound(format!(
        "no route {} {}; see /openapi.json",
        req.method(),
        req.path()
    )))
}
