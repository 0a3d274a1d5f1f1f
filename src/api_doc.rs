//! The documents that describe natter to app developers, built once per process from the
//! handlers and types themselves: the REST API as OpenAPI 3.1 (`/api/v1/openapi.json`) and
//! the websocket protocol as AsyncAPI 3.0 (`/api/v1/asyncapi.json`). Every instance serves
//! the whole description, whichever roles it runs.

use std::sync::OnceLock;

use serde_json::Value;

/// The OpenAPI description of every REST endpoint.
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    let mut api = natter_command::openapi();
    api.merge(natter_query::openapi());
    api.merge(natter_gateway::openapi());
    api.merge(crate::ops::openapi());
    api.merge(crate::web::openapi());
    natter_edge::openapi::finish(api)
}

pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(openapi_doc()).expect("the description serializes"))
}

pub fn asyncapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(natter_gateway::asyncapi::document)
}
