//! One OpenAPI document for the whole platform, merged from the services' own documents and
//! trimmed to what the route table exposes, plus a docs page that works offline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use utoipa::openapi::OpenApi;

use crate::Gateway;
use crate::routes::{Lookup, RouteTable};

const CACHE_FOR: Duration = Duration::from_secs(30);
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

pub struct Docs {
    /// Documents of services running in this process.
    local: Vec<OpenApi>,
    merged: Mutex<Option<(Instant, Arc<Value>)>>,
}

impl Docs {
    pub fn new(local: Vec<OpenApi>) -> Self {
        Self { local, merged: Mutex::new(None) }
    }
}

pub async fn openapi_json(State(gw): State<Arc<Gateway>>) -> Response {
    let mut cached = gw.docs.merged.lock().await;
    if let Some((at, doc)) = cached.as_ref()
        && at.elapsed() < CACHE_FOR
    {
        return axum::Json(doc.as_ref().clone()).into_response();
    }
    let doc = Arc::new(merge(&gw).await);
    *cached = Some((Instant::now(), doc.clone()));
    axum::Json(doc.as_ref().clone()).into_response()
}

async fn merge(gw: &Gateway) -> Value {
    let mut merged = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("OllamaNet API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Every public route of the platform, through the gateway."))
                .build(),
        )
        .build();
    for doc in &gw.docs.local {
        merged.merge(doc.clone());
    }
    // Services in other processes serve their own document.
    for (name, upstream) in &gw.upstreams {
        if upstream.is_in_process() {
            continue;
        }
        match upstream.get_json::<OpenApi>("/openapi.json").await {
            Ok(doc) => merged.merge(doc),
            Err(e) => tracing::warn!(service = %name, error = %e, "could not fetch the service's OpenAPI document"),
        }
    }
    let mut value = serde_json::to_value(&merged).unwrap_or_else(|_| json!({}));
    keep_routed(&mut value, &gw.table.load());
    value["components"]["securitySchemes"]["bearer"] = json!({"type": "http", "scheme": "bearer", "description": "An access token (JWT) or a personal API key (onk_…)"});
    value
}

/// Drops operations the gateway does not route (internal endpoints such as introspection).
fn keep_routed(doc: &mut Value, table: &RouteTable) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    paths.retain(|path, item| {
        let Some(ops) = item.as_object_mut() else { return false };
        ops.retain(|key, _| {
            let Some(method) = METHODS.iter().find(|m| **m == key) else { return true };
            let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("valid method");
            matches!(table.lookup(&method, path), Lookup::Found(..))
        });
        ops.keys().any(|k| METHODS.contains(&k.as_str()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_routed_operations() {
        let table =
            RouteTable::parse("[[route]]\npath = \"/api/a/{id}\"\nmethods = [\"GET\"]\nservice = \"s\"").unwrap();
        let mut doc = json!({"paths": {
            "/api/a/{id}": {"get": {}, "delete": {}, "parameters": []},
            "/api/internal": {"post": {}}
        }});
        keep_routed(&mut doc, &table);
        assert_eq!(doc["paths"].as_object().unwrap().len(), 1);
        let a = &doc["paths"]["/api/a/{id}"];
        assert!(a.get("get").is_some() && a.get("delete").is_none() && a.get("parameters").is_some());
    }
}
