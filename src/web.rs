//! The web chat at `/`: static files embedded in the binary (`web/`). The page is plain HTML,
//! CSS and ES modules; `web/natter-client.js` is the TypeScript client's bundle, committed so
//! that `cargo build` needs no npm (CI checks that it matches its source).

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use natter_edge::ApiError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "natter-client.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/natter-client.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/style.css"),
    ),
];

fn api() -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(web_page))
        .routes(routes!(web_asset))
}

pub fn routes() -> Router {
    api().split_for_parts().0
}

/// The description of the web page's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

fn file(name: &str) -> Option<Response> {
    let (_, mime, bytes) = FILES.iter().find(|(n, _, _)| *n == name)?;
    Some(
        (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
    )
}

/// The web chat page.
///
/// The web chat.
#[utoipa::path(get, path = "/", operation_id = "getWebPage", tag = "web", responses((status = 200, description = "the chat page", content_type = "text/html")))]
async fn web_page() -> Response {
    file("index.html").expect("the page is embedded")
}

/// The web page's scripts and styles.
///
/// The page's scripts and styles.
#[utoipa::path(get, path = "/web/{file}", operation_id = "getWebAsset", tag = "web",
    params(("file" = String, Path, description = "app.js, natter-client.js, style.css, index.html")),
    responses((status = 200, description = "the file", content_type = "text/javascript"),
        (status = 404, description = "no such file", body = natter_edge::error::ErrorBody)))]
async fn web_asset(Path(name): Path<String>) -> Response {
    file(&name).unwrap_or_else(|| ApiError::not_found("no such file").into_response())
}
