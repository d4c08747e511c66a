//! `GET /openapi.json` (generated from the code) covers every route of the router, and describes each provider's
//! PUT body as the catalog does; Swagger UI at `/docs`.

use std::collections::BTreeSet;

use serde_json::Value;
use tokenkeeper::providers::{FieldSpec, catalog};

use crate::support::app::{Db, TestConfig, error_of, spawn_app};

/// Every route the router declares, as (method, OpenAPI path): read from the `.route(path, methods)` calls
/// in `src/http/`, so a route added there without documentation fails this test.
fn router_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                routes.extend(declared_routes(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(routes.len() >= 10, "the scan found the router's routes: {routes:?}");
    routes
}

/// The (method, path) pairs of each `.route("path", routing::get(a).post(b))` call in `source`.
fn declared_routes(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        // The call's arguments: up to the parenthesis that closes it.
        let args = &source[at + ".route(".len()..];
        let mut depth = 1;
        let end = args
            .char_indices()
            .find(|(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route( call");
        let args = &args[..end];
        let path = args.split('"').nth(1).expect("a path literal");
        for method in ["get", "post", "put", "delete", "patch"] {
            if args.contains(&format!("routing::{method}(")) || args.contains(&format!(".{method}(")) {
                out.push((method.to_string(), path.to_string()));
            }
        }
    }
    out
}

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
    // Plus every operation of `/api/tokens/{provider}` once more for each provider (the PUT with its exact
    // body): a concrete path matches before the template, so all three must be there.
    let per_provider = catalog()
        .iter()
        .flat_map(|p| ["get", "put", "delete"].map(|m| (m.to_string(), format!("/api/tokens/{}", p.id))));
    let routes = router_routes();
    let expected: BTreeSet<(String, String)> = routes.iter().cloned().chain(per_provider).collect();
    assert_eq!(documented, expected, "documented operations = the router's routes");

    // Each documented route exists: it does not fall through to the 404/405 fallbacks.
    for (method, path) in &routes {
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
    for (method, path) in &expected {
        let op = &doc["paths"][path][method];
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: responses"));
        // A success: a 2xx, or the 303 of a browser's redirect (the connect callback).
        assert!(
            responses.keys().any(|s| s.starts_with('2') || s == "303"),
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
    // A session that must change its password first: 403 everywhere but on its own account.
    for (method, path) in [("get", "/api/orgs"), ("put", "/api/tokens/gcp"), ("get", "/api/tokens")] {
        let forbidden = doc["paths"][path][method]["responses"]["403"]["description"].as_str();
        let forbidden = forbidden.unwrap_or_else(|| panic!("{method} {path}: 403"));
        assert!(
            forbidden.contains("password_change_required"),
            "{method} {path}: {forbidden}"
        );
    }
    for (method, path) in [("get", "/api/auth/me"), ("post", "/api/auth/change-password")] {
        assert!(
            doc["paths"][path][method]["responses"]["403"].is_null(),
            "{method} {path}"
        );
    }
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

/// Every provider's PUT body schema is built from the catalog: its fields, exactly its required ones, one
/// branch per variant. Each example the schema carries is one the schema accepts and the PUT route stores;
/// without one of its required fields, the schema refuses it and so does the route (400 naming the field).
async fn put_body_schemas_follow_the_catalog(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("schemas@example.com").await;
    let doc: Value = app
        .client
        .get(app.at("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let body_schema = |path: &str| &doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"];

    let any_of: Vec<&str> = body_schema("/api/tokens/{provider}")["anyOf"]
        .as_array()
        .expect("the generic PUT body is anyOf the providers' bodies")
        .iter()
        .map(|r| r["$ref"].as_str().unwrap())
        .collect();
    let refs: Vec<String> = catalog()
        .iter()
        .map(|p| format!("#/components/schemas/TokenBody_{}", p.id))
        .collect();
    assert_eq!(any_of, refs);

    for spec in catalog() {
        let name = format!("TokenBody_{}", spec.id);
        let schema = &schemas[&name];
        assert_eq!(
            body_schema(&format!("/api/tokens/{}", spec.id))["$ref"],
            format!("#/components/schemas/{name}")
        );
        // The schema's shapes (one per variant, else itself) against the catalog's.
        let shapes: Vec<&Value> = match schema.get("oneOf") {
            Some(branches) => branches.as_array().unwrap().iter().collect(),
            None => vec![schema],
        };
        // Required in a shape: required everywhere, or by the variant, or its tag when not the default.
        let wanted: Vec<Vec<(&FieldSpec, bool)>> = if spec.variants.is_empty() {
            vec![spec.fields.iter().map(|f| (f, f.required)).collect()]
        } else {
            spec.variants
                .iter()
                .map(|v| {
                    v.fields
                        .iter()
                        .map(|f| spec.field(f).unwrap())
                        .map(|f| {
                            let tag = v.tag.is_some_and(|t| t.field == f.name && f.default != Some(t.value));
                            (f, f.required || v.required.contains(&f.name) || tag)
                        })
                        .collect()
                })
                .collect()
        };
        assert_eq!(shapes.len(), wanted.len(), "{name}: one shape per variant");
        let mut examples = Vec::new();
        for (shape, fields) in shapes.iter().zip(&wanted) {
            let names: BTreeSet<&str> = fields.iter().map(|(f, _)| f.name).collect();
            let required: BTreeSet<&str> = fields.iter().filter(|(_, r)| *r).map(|(f, _)| f.name).collect();
            let properties: BTreeSet<&str> = shape["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let listed: BTreeSet<&str> = shape["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(properties, names, "{name}: properties");
            assert_eq!(listed, required, "{name}: required");
            assert_eq!(
                shape["additionalProperties"], false,
                "{name}: unknown fields are refused"
            );
            examples.extend(shape["examples"].as_array().expect("examples").iter().cloned());
        }
        assert_eq!(examples.len(), spec.examples.len(), "{name}: every catalog example");

        let path = format!("/api/tokens/{}", spec.id);
        for example in examples {
            let errors = schema_errors(&doc, schema, &example);
            assert!(
                errors.is_empty(),
                "{name}: example {example} fails its schema: {errors:?}"
            );
            let r = app.put_auth(&path, &token, example.clone()).await;
            assert_eq!(r.status(), 200, "PUT {path} {example}: {:?}", r.text().await);
            let present = example.as_object().unwrap();
            for field in spec
                .fields
                .iter()
                .filter(|f| f.required && present.contains_key(f.name))
            {
                let mut body = example.clone();
                body.as_object_mut().unwrap().remove(field.name);
                let errors = schema_errors(&doc, schema, &body);
                let missing = format!("missing required property {}", field.name);
                assert!(
                    errors.iter().any(|e| e.contains(&missing)),
                    "{name} without {}: {errors:?}",
                    field.name
                );
                let r = app.put_auth(&path, &token, body).await;
                assert_eq!(r.status(), 400, "PUT {path} without {}", field.name);
                let error = error_of(r).await;
                assert!(error.contains(field.name), "{path} without {}: {error}", field.name);
            }
        }
    }
}

/// Why `value` does not match `schema` (empty: it matches), for the JSON Schema keywords the body schemas use.
/// `pattern` is not evaluated (no regex engine among the dependencies; scripts/schemathesis.sh validates the
/// examples against the whole document); a keyword this does not know is an error, so nothing new passes
/// unchecked.
fn schema_errors(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(doc, schema, value, "body", &mut errors);
    errors
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        errors.push(format!("{at}: schema {schema} is not an object"));
        return;
    };
    for (keyword, want) in schema {
        match keyword.as_str() {
            "$ref" => {
                let name = want.as_str().unwrap().strip_prefix("#/components/schemas/").unwrap();
                check(doc, &doc["components"]["schemas"][name], value, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match want {
                    Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                    t => vec![t.as_str().unwrap()],
                };
                let is = |t: &str| match t {
                    "string" => value.is_string(),
                    "number" => value.is_number(),
                    "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => panic!("type {other}"),
                };
                if !types.iter().any(|t| is(t)) {
                    errors.push(format!("{at}: not of type {want}"));
                }
            }
            "enum" => {
                if !want.as_array().unwrap().contains(value) {
                    errors.push(format!("{at}: not one of {want}"));
                }
            }
            "required" => {
                for name in want.as_array().unwrap().iter().map(|n| n.as_str().unwrap()) {
                    if value.as_object().is_some_and(|o| !o.contains_key(name)) {
                        errors.push(format!("{at}: missing required property {name}"));
                    }
                }
            }
            "properties" => {
                for (name, sub) in want.as_object().unwrap() {
                    if let Some(v) = value.get(name) {
                        check(doc, sub, v, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(want, &Value::Bool(false), "only `additionalProperties: false` is used");
                let known = schema.get("properties").and_then(Value::as_object);
                for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !known.is_some_and(|k| k.contains_key(key)) {
                        errors.push(format!("{at}: additional property {key}"));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let mut branch_errors = Vec::new();
                let matched = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|branch| {
                        let mut e = Vec::new();
                        check(doc, branch, value, at, &mut e);
                        branch_errors.extend(e.iter().cloned());
                        e.is_empty()
                    })
                    .count();
                let ok = if keyword == "oneOf" { matched == 1 } else { matched >= 1 };
                if !ok {
                    errors.push(format!("{at}: {matched} branches of {keyword} match"));
                    errors.extend(branch_errors);
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = value.as_str() {
                    let (n, bound) = (s.chars().count() as u64, want.as_u64().unwrap());
                    if (keyword == "minLength" && n < bound) || (keyword == "maxLength" && n > bound) {
                        errors.push(format!("{at}: {keyword} {bound}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let Some(n) = value.as_f64() {
                    let bound = want.as_f64().unwrap();
                    if (keyword == "minimum" && n < bound) || (keyword == "maximum" && n > bound) {
                        errors.push(format!("{at}: {keyword} {bound}"));
                    }
                }
            }
            // The JSON text holds what `contentSchema` says (an annotation in JSON Schema, asserted here).
            "contentSchema" => {
                if let Some(text) = value.as_str() {
                    match serde_json::from_str::<Value>(text) {
                        Ok(inner) => check(doc, want, &inner, &format!("{at}(JSON text)"), errors),
                        Err(e) => errors.push(format!("{at}: not JSON text: {e}")),
                    }
                }
            }
            // Annotations, and `pattern` (see above).
            "title" | "description" | "examples" | "default" | "format" | "writeOnly" | "contentMediaType"
            | "pattern" => {}
            other => errors.push(format!("{at}: keyword {other} is not known to this check")),
        }
    }
}

crate::on_both_backends!(
    document_covers_every_route,
    put_body_schemas_follow_the_catalog,
    swagger_ui_is_served
);
