//! What every part of natter's OpenAPI description shares: the security schemes of login
//! tokens and API tokens, and the contract's error answers. The operations themselves are
//! derived from the handlers (`#[utoipa::path]` next to each); [`finish`] adds to each the
//! errors that can befall it, from what the operation is (authenticated or not, with path
//! parameters or not, a command or a query), so no handler has to repeat them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{ErrorBody, ErrorDetail};

/// The security scheme of login tokens (JWTs for one user).
pub const LOGIN_TOKEN: &str = "login_token";
/// The security scheme of API tokens (a service client's `natter_…` token).
pub const API_TOKEN: &str = "api_token";

/// Every operation of `api`, with its method and path.
pub fn operations(api: &mut OpenApi) -> Vec<(&'static str, String, &mut Operation)> {
    let mut out = Vec::new();
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
        ] {
            if let Some(op) = op {
                out.push((method, path.clone(), op));
            }
        }
    }
    out
}

/// Adds natter's info, security schemes, the error body and each operation's errors.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("natter")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "A real-time chat backend: REST commands and queries here; the websocket's protocol \
             is described in AsyncAPI at /api/v1/asyncapi.json. Every error answer is \
             `{\"error\": {\"code\", \"message\"}}`. Every command answers the `position` of the \
             event it appended; every read-model query takes `min_position` and answers \
             `X-Natter-Position`. Commands take an `Idempotency-Key` header.",
        ))
        .build();
    let components = api
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    let mut components = components;
    components.add_security_scheme(
        LOGIN_TOKEN,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A user's login token (from register, login, or a service's POST /users). \
                     Websockets may pass it as `?token=`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        API_TOKEN,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("natter_<id>_<secret>")
                .description(Some(
                    "A service client's API token (POST /admin/tokens), role `service` or \
                     `admin`. It acts for no user.",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    components
        .schemas
        .insert(ErrorDetail::name().into_owned(), ErrorDetail::schema());
    api.components = Some(components);

    for (method, path, op) in operations(&mut api) {
        let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let mut errors: Vec<(u16, &str)> = vec![
            (
                400,
                "malformed JSON, wrong types, a malformed UUID or parameter",
            ),
            (408, "the request body did not arrive in time"),
            (413, "the body is over the limit"),
            (422, "well-formed but breaks a rule"),
            (
                503,
                "NATS or Postgres unreachable for this request; nothing was half-applied",
            ),
        ];
        if authenticated {
            errors.push((
                401,
                "missing, malformed, expired, wrongly signed or revoked token",
            ));
            errors.push((403, "authenticated but not allowed"));
        } else if path.ends_with("/auth/login") {
            errors.push((401, "wrong username or password"));
        }
        // A path naming something, or a query parameter naming something (`?room_id=`), can
        // name what does not exist.
        let names_one = op.parameters.iter().flatten().any(|p| match p {
            utoipa::openapi::RefOr::T(p) => p.name.ends_with("_id"),
            utoipa::openapi::RefOr::Ref(_) => false,
        });
        if path.contains('{') || names_one {
            errors.push((
                404,
                "no such thing (or a private room the caller cannot see)",
            ));
        }
        if method != "get" {
            errors.push((
                409,
                "a conflict (`conflict`, `room_full`), or the first request with this \
                 Idempotency-Key still runs (`in_progress`, with Retry-After)",
            ));
        }
        if path.contains("/invites/") {
            errors.push((410, "the invite expired, was revoked or used up"));
        }
        for (status, why) in errors {
            let key = status.to_string();
            if op.responses.responses.contains_key(&key) {
                continue;
            }
            op.responses.responses.insert(key, error_response(why));
        }
    }
    api
}

/// An error answer with the contract's body.
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build(),
    )
}
