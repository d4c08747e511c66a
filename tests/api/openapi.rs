//! `GET /openapi.json` (generated from the code) covers every route of the router; Swagger UI at `/docs`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::app::{Db, TestConfig, spawn_app};

/// Every route of the router, as (method, OpenAPI path). Add a route here when you add one to the router.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/change-password"),
    ("get", "/api/auth/me"),
    ("post", "/api/auth/logout"),
    ("get", "/api/providers"),
    ("get", "/api/tokens"),
    ("put", "/api/tokens/{provider}"),
    ("get", "/api/tokens/{provider}"),
    ("delete", "/api/tokens/{provider}"),
    ("get", "/api/tokens/{provider}/credentials"),
    ("post", "/api/tokens/{provider}/refresh"),
    ("get", "/api/audit"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options", "trace"];

async fn document_covers_every_route(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let r = app.client.get(app.at("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("/openapi.json is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3.x: {}",
        doc["openapi"]
    );

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "documented operations = the router's routes");

    // Each documented route exists: it does not fall through to the 404/405 fallbacks.
    for (method, path) in ROUTES {
        let url = app.at(&path.replace("{provider}", "github"));
        let r = app
            .client
            .request(method.to_uppercase().parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 405, "{method} {path} is routed");
        if !path.contains("{provider}") {
            assert_ne!(r.status(), 404, "{method} {path} is routed");
        }
    }

    let schemas = doc["components"]["schemas"].as_object().expect("component schemas");
    let operation_ids: Vec<&str> = documented
        .iter()
        .map(|(m, p)| doc["paths"][p][m]["operationId"].as_str().expect("operationId"))
        .collect();
    assert_eq!(
        operation_ids.iter().collect::<BTreeSet<_>>().len(),
        operation_ids.len(),
        "unique operation ids"
    );
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: a success response"
        );
        let secured = op.get("security").is_some();
        if secured {
            assert!(responses.contains_key("401"), "{method} {path}: 401 documented");
        }
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415"] {
                assert!(responses.contains_key(s), "{method} {path}: {s} documented");
            }
        }
        // Every error response has the `{"error": string}` body.
        for (status, resp) in responses
            .iter()
            .filter(|(s, _)| s.starts_with('4') || s.starts_with('5'))
        {
            let schema = &resp["content"]["application/json"]["schema"]["$ref"];
            let name = schema.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"));
            let name = name.unwrap_or_else(|| panic!("{method} {path} {status}: a schema ref"));
            assert_eq!(
                schemas[name]["properties"]["error"]["type"], "string",
                "{method} {path} {status}"
            );
            assert!(schemas[name]["required"].as_array().unwrap().contains(&"error".into()));
        }
    }
    for path in ["/api/auth/login", "/api/auth/change-password"] {
        assert!(
            doc["paths"][path]["post"]["responses"]["429"]["headers"]["Retry-After"].is_object(),
            "{path} 429"
        );
    }
    let reauth = &schemas["ConflictError"]["properties"];
    assert!(
        reauth["provider"].is_object() && reauth["reason"].is_object(),
        "409 needs_reauth fields"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["authjs_session_cookie"]["in"], "cookie");
    assert_eq!(schemes["authjs_session_cookie"]["name"], "authjs.session-token");
    assert_eq!(schemes["internal_user_id"]["name"], "X-User-ID");
    assert_eq!(schemes["internal_secret"]["name"], "X-Internal-Secret");
    let internal = doc["paths"]["/api/tokens"]["get"]["security"].as_array().unwrap();
    assert!(
        internal
            .iter()
            .any(|s| s.get("internal_user_id").is_some() && s.get("internal_secret").is_some()),
        "X-User-ID and X-Internal-Secret go together"
    );
}

async fn swagger_ui_is_served(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let r = app.client.get(app.at("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(r.text().await.unwrap().contains("swagger-ui"));
    let r = app
        .client
        .get(app.at("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "vendored assets are served");
    let init = app
        .client
        .get(app.at("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(
        init.text().await.unwrap().contains("/openapi.json"),
        "Swagger UI loads /openapi.json"
    );
}

crate::on_both_backends!(document_covers_every_route, swagger_ui_is_served);
