//! The OpenAPI 3 document (`GET /openapi.json`), generated from the handlers' `#[utoipa::path]` annotations
//! and the request and response types, and Swagger UI at `/docs` (assets vendored into the binary).
//!
//! What the annotations cannot say is added here from the code too: the security schemes, and from the
//! catalog the provider ids that `{provider}` takes and each provider's PUT body schema and examples.

use axum::Router;
use utoipa::openapi::example::{Example, ExampleBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, PathItem, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use crate::providers::ProviderSpec;

mod password_change;
use password_change::PasswordChangeRequired;
mod provider_schemas;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tokenkeeper",
        description = "Keeps a platform's user passwords and the provider credentials its users connect. \
                       Secrets live in Vault KV v2 (or the embedded store); SQL keeps references only.\n\n\
                       Every error is answered as `{\"error\": \"...\"}` with its status code; a Tokenkeeper \
                       session whose user must change their password first gets 403 with \
                       `\"code\": \"password_change_required\"` from every operation but change-password, me \
                       and logout.",
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
        super::connect::start,
        super::connect::callback,
        super::checks::check,
        super::connect_aws::onboard,
        super::orgs::list,
        super::orgs::create,
        super::orgs::members,
        super::orgs::add_member,
        super::orgs::set_role,
        super::orgs::remove_member,
        super::audit::list,
        super::health::healthz,
        super::health::readyz,
        super::metrics::scrape,
    ),
    components(schemas(
        super::error::ErrorBody,
        super::error::ConflictBody,
        super::error::PasswordChangeRequiredBody,
        super::checks::CheckFailedBody,
        super::checks::StoreRefusedBody
    )),
    modifiers(&SecuritySchemes, &Providers, &PasswordChangeRequired),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "providers", description = "The provider catalog"),
        (name = "tokens", description = "The provider credentials of the org a request acts in (`X-Org-ID`, else the caller's personal org)"),
        (name = "orgs", description = "Organizations, their members and roles"),
        (name = "connect", description = "Connect flows: the provider's consent page, then the credential stored like a `PUT /api/tokens/{provider}`"),
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

/// The three ways to authenticate (`docs/IDENTITY.md`). The first credential present decides: a bad one is
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

/// `{provider}` takes the catalog's ids, and the PUT body schemas come from the catalog too: one component
/// `TokenBody_<id>` per provider ([`provider_schemas`]). OpenAPI cannot tie a body schema to a path parameter's
/// value, so on `PUT /api/tokens/{provider}` the body can only be "one of the providers' bodies", and a client or
/// fuzzer working from it would mostly send one provider's fields to another. Hence also one operation per
/// provider, `PUT /api/tokens/<id>` (tag `connect`), whose body is exactly that provider's schema: the same
/// route, described for each value of `{provider}`.
struct Providers;

impl Modify for Providers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let catalog = crate::providers::catalog();
        let ids: Vec<&str> = catalog.iter().map(|p| p.id).collect();
        // `POST /api/connect/{provider}` starts OAuth flows only; AWS's onboarding has a path of its own.
        let oauth_ids: Vec<&str> = catalog
            .iter()
            .filter(|p| matches!(p.connect, crate::providers::Connect::OAuth(_)))
            .map(|p| p.id)
            .collect();
        for (path, item) in doc.paths.paths.iter_mut() {
            let ids = if path == "/api/connect/{provider}" {
                &oauth_ids
            } else {
                &ids
            };
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
        let components = doc.components.get_or_insert_with(Default::default);
        for spec in catalog {
            let schema = provider_schemas::token_body(spec);
            components
                .schemas
                .insert(provider_schemas::component_name(spec.id), RefOr::T(schema));
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
        // anyOf, not oneOf: bodies of different providers can be alike (bitbucket's is gcp's oauth shape, a
        // splunk body is also a netdata one), and then it is the path, not the body, that decides.
        let any_of = catalog.iter().fold(AnyOfBuilder::new(), |any_of, spec| {
            any_of.item(Ref::from_schema_name(provider_schemas::component_name(spec.id)))
        });
        content.schema = Some(
            any_of
                .description(Some(
                    "The fields of the provider named by `{provider}`: its `TokenBody_<provider>` schema.",
                ))
                .into(),
        );
        content.example = None;
        content.examples = catalog.iter().flat_map(examples).collect();
        let template = doc.paths.paths["/api/tokens/{provider}"].clone();
        for spec in catalog {
            doc.paths
                .paths
                .insert(format!("/api/tokens/{}", spec.id), provider_path(&template, spec));
        }
    }
}

/// `/api/tokens/<id>`: every operation of `/api/tokens/{provider}` with `{provider}` fixed. A concrete path
/// matches before a templated one (OpenAPI 3.1, "Path Templating Matching"), so GET and DELETE must be here
/// too, or tools that follow the rule would see them as undocumented for this provider.
fn provider_path(template: &PathItem, spec: &ProviderSpec) -> PathItem {
    let mut item = template.clone();
    item.parameters = None;
    if let Some(put) = item.put.as_mut() {
        *put = provider_operation(put, spec);
    }
    for (op, verb) in [(&mut item.get, "get"), (&mut item.delete, "delete")] {
        if let Some(op) = op.as_mut() {
            let id = op.operation_id.take().unwrap_or_else(|| verb.to_string());
            op.operation_id = Some(format!("{id}_{}", spec.id));
            op.tags = Some(vec!["connect".into()]);
            without_path_parameters(op);
        }
    }
    item
}

/// The operation's parameters but `{provider}` (fixed in the path): `X-Org-ID` stays.
fn without_path_parameters(op: &mut Operation) {
    if let Some(params) = op.parameters.as_mut() {
        params.retain(|p| p.parameter_in != utoipa::openapi::path::ParameterIn::Path);
    }
}

/// `PUT /api/tokens/<id>`: the templated operation with `{provider}` fixed, so that its body schema is exact.
fn provider_operation(template: &Operation, spec: &ProviderSpec) -> Operation {
    let mut op = template.clone();
    op.operation_id = Some(format!("storeCredential_{}", spec.id));
    op.tags = Some(vec!["connect".into()]);
    op.summary = Some(format!("Connect {}", spec.name));
    op.description = Some(format!(
        "{} The same route as `PUT /api/tokens/{{provider}}`, for `{}`.",
        spec.docs, spec.id
    ));
    without_path_parameters(&mut op);
    // The provider exists: a 404 is only for an org the caller is not a member of.
    op.responses.responses.insert(
        "404".into(),
        utoipa::openapi::ResponseBuilder::new()
            .description("An org the caller is not a member of")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .into(),
    );
    if let Some(body) = op.request_body.as_mut() {
        body.description = Some(format!(
            "The {} fields (Aurora's names; unknown fields are refused)",
            spec.name
        ));
        if let Some(content) = body.content.get_mut("application/json") {
            content.schema = Some(Ref::from_schema_name(provider_schemas::component_name(spec.id)).into());
            content.examples = examples(spec).collect();
        }
    }
    op
}

/// A provider's example credentials, named `<id>`, `<id>_2`, ...
fn examples(spec: &ProviderSpec) -> impl Iterator<Item = (String, RefOr<Example>)> {
    spec.example_credentials()
        .into_iter()
        .enumerate()
        .map(move |(n, example)| {
            let name = if n == 0 {
                spec.id.to_string()
            } else {
                format!("{}_{}", spec.id, n + 1)
            };
            let summary = format!("{} (PUT /api/tokens/{})", spec.name, spec.id);
            let example = ExampleBuilder::new().summary(summary).value(Some(example)).build();
            (name, RefOr::T(example))
        })
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
