//! The OpenAPI 3 document (`GET /openapi.json`), generated from the handlers' `#[utoipa::path]` annotations
//! and the request and response types, and Swagger UI at `/docs` (assets vendored into the binary).
//!
//! What the annotations cannot say is added here from the code too: the security schemes, and the
//! provider ids (from the catalog) that `{provider}` takes, with each provider's example credential.

use axum::Router;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, PathItem, RefOr, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tokenkeeper",
        description = "Keeps a platform's user passwords and the provider credentials its users connect. \
                       Secrets live in Vault KV v2 (or the embedded store); SQL keeps references only.\n\n\
                       Every error is answered as `{\"error\": \"...\"}` with its status code.",
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::auth::change_password,
        super::auth::me,
        super::auth::logout,
        super::providers::list,
        super::tokens::list,
        super::tokens::store,
        super::tokens::connection,
        super::tokens::delete,
        super::tokens::credentials,
        super::tokens::refresh,
        super::audit::list,
        super::health::healthz,
        super::health::readyz,
        super::metrics::scrape,
    ),
    components(schemas(super::error::ErrorBody, super::error::ConflictBody)),
    modifiers(&SecuritySchemes, &Providers),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "providers", description = "The provider catalog"),
        (name = "tokens", description = "The caller's provider credentials"),
        (name = "audit", description = "The caller's audit trail"),
        (name = "health", description = "Liveness and readiness"),
    ),
)]
struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json` and Swagger UI under `/docs`.
pub fn routes() -> Router<AppState> {
    SwaggerUi::new("/docs").url("/openapi.json", openapi()).into()
}

/// The three ways to authenticate (SPEC section 2). The first credential present decides: a bad one is
/// refused, it does not fall through to another method.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Tokenkeeper session token (`tks_...`, from `POST /api/auth/login`), or an Auth.js \
                         session token (the JWE of the `authjs.session-token` cookie) sent as a Bearer token.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "authjs_session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "authjs.session-token",
                "The Auth.js session cookie (also `__Secure-authjs.session-token`, and chunked `.0`, `.1`, ... \
                 cookies). A cookie session may not read secret token data.",
            ))),
        );
        components.add_security_scheme(
            "internal_user_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-User-ID",
                "The user acted for, by an internal service; trusted only together with `X-Internal-Secret`.",
            ))),
        );
        components.add_security_scheme(
            "internal_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Internal-Secret",
                "The configured internal secret (`TOKENKEEPER_INTERNAL_SECRET`), with `X-User-ID`.",
            ))),
        );
    }
}

/// `{provider}` takes the catalog's ids; the PUT body gets each provider's example credential.
struct Providers;

impl Modify for Providers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let catalog = crate::providers::catalog();
        let ids: Vec<&str> = catalog.iter().map(|p| p.id).collect();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                for param in op.parameters.iter_mut().flatten().filter(|p| p.name == "provider") {
                    param.schema = Some(RefOr::T(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(ids.clone()))
                            .into(),
                    ));
                }
            }
        }
        let Some(put) = doc
            .paths
            .paths
            .get_mut("/api/tokens/{provider}")
            .and_then(|i| i.put.as_mut())
        else {
            return;
        };
        let Some(content) = put
            .request_body
            .as_mut()
            .and_then(|b| b.content.get_mut("application/json"))
        else {
            return;
        };
        content.example = None;
        for spec in catalog {
            for (n, example) in spec.example_credentials().into_iter().enumerate() {
                let name = if n == 0 {
                    spec.id.to_string()
                } else {
                    format!("{}_{}", spec.id, n + 1)
                };
                let summary = format!("{} (PUT /api/tokens/{})", spec.name, spec.id);
                let example = ExampleBuilder::new().summary(summary).value(Some(example)).build();
                content.examples.insert(name, RefOr::T(example));
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(|o| o.as_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_example_is_in_the_document() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let examples =
            &doc["paths"]["/api/tokens/{provider}"]["put"]["requestBody"]["content"]["application/json"]["examples"];
        for p in crate::providers::catalog() {
            assert!(examples.get(p.id).is_some(), "example for {}", p.id);
        }
        let ids = &doc["paths"]["/api/tokens/{provider}"]["get"]["parameters"][0]["schema"]["enum"];
        assert_eq!(ids.as_array().unwrap().len(), crate::providers::catalog().len());
    }
}
