//! What every part of natter's OpenAPI description shares: the security schemes of login
//! tokens and API tokens, and the contract's error answers. The operations themselves are
//! derived from the handlers (`#[utoipa::path]` next to each); [`finish`] adds to each the
//! errors that can befall it, from what the operation is (authenticated or not, with path
//! parameters or not, a command or a query), so no handler has to repeat them.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::info::LicenseBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder,
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
             `X-Natter-Position`. Commands take an `Idempotency-Key` header; `429` and \
             `409 in_progress` answer `Retry-After`.",
        ))
        .license(Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    // Relative: the natter that serves this document, wherever it listens.
    api.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some("the natter serving this document"))
            .build(),
    ]);
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
        if !authenticated {
            // Public, said so: no token needed.
            op.security = Some(vec![SecurityRequirement::default()]);
        }
        if method != "get" && authenticated {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(RefOr::T(idempotency_key()));
        }
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
        for (status, response) in op.responses.responses.iter_mut() {
            if let ("429" | "409", RefOr::T(response)) = (status.as_str(), response) {
                response.headers.insert(
                    "Retry-After".to_string(),
                    RefOr::T(HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
                        ))
                        .description(Some(if status == "429" {
                            "seconds to wait before trying again"
                        } else {
                            "with `in_progress`: seconds to wait before retrying with the same key"
                        }))
                        .build()),
                );
            }
        }
    }
    api
}

/// The `Idempotency-Key` header every command takes.
fn idempotency_key() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "A retry with the same key by the same caller within 24 hours appends nothing and \
             answers what the first request did; the same key with a different request is \
             `409 conflict`; while the first still runs, `409 in_progress` with `Retry-After`.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(128)),
        ))
        .build()
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
