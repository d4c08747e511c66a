use serde_json::{Map, Value, json};

use super::*;

const STRICT: UrlPolicy = UrlPolicy::STRICT;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn spec(id: &str) -> &'static ProviderSpec {
    find(id).unwrap_or_else(|| panic!("provider {id}"))
}

fn fails_on(spec: &ProviderSpec, body: Value, field: &str) -> FieldError {
    let err = spec
        .validate(&body, &STRICT)
        .expect_err(&format!("{} should refuse {body}", spec.id));
    assert_eq!(err.field, field, "{}: {body} -> {err}", spec.id);
    assert!(
        err.message.starts_with(field),
        "{}: message should name {field}: {err}",
        spec.id
    );
    err
}

#[test]
fn catalog_has_the_thirteen_providers() {
    let ids: Vec<&str> = catalog().iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [
            "gcp",
            "aws",
            "azure",
            "grafana",
            "datadog",
            "netdata",
            "scaleway",
            "tailscale",
            "splunk",
            "slack",
            "coroot",
            "bitbucket",
            "thousandeyes"
        ]
    );
    for p in catalog() {
        assert!(std::ptr::eq(find(p.id).unwrap(), p));
    }
    assert!(find("GCP").is_none());
    assert!(find("github").is_none());
}

#[test]
fn catalog_is_consistent() {
    for p in catalog() {
        assert!(!p.name.is_empty() && !p.docs.is_empty(), "{}", p.id);
        assert!(!p.examples.is_empty(), "{} needs an example", p.id);
        let mut names: Vec<&str> = p.fields.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), p.fields.len(), "{}: duplicate field", p.id);
        for f in p.fields {
            assert!(
                !(f.secret && f.metadata),
                "{}.{}: secret field kept as metadata",
                p.id,
                f.name
            );
            assert!(!f.description.is_empty(), "{}.{}", p.id, f.name);
            assert!(!(f.required && f.default.is_some()), "{}.{}", p.id, f.name);
            for k in f.metadata_keys {
                assert!(p.fields.iter().all(|g| !g.secret || g.name != *k));
                assert_ne!(*k, "private_key");
            }
            if let Some(default) = f.default {
                // defaults are valid values of their own format
                let mut body = obj(p.example_credential());
                body.insert(f.name.into(), json!(default));
                let v = p.validate(&Value::Object(body), &STRICT).unwrap();
                assert_eq!(v.token_data[f.name], json!(default));
            }
        }
        if let Some(e) = p.expires_at_field {
            assert_eq!(p.field(e).unwrap().format, FieldFormat::EpochSeconds);
        }
        if !p.variants.is_empty() {
            assert_eq!(p.examples.len(), p.variants.len(), "{}: one example per variant", p.id);
            for v in p.variants {
                for f in v.fields {
                    assert!(p.field(f).is_some(), "{}: variant {} lists unknown {f}", p.id, v.name);
                }
            }
            for f in p.fields {
                assert!(
                    p.variants.iter().any(|v| v.fields.contains(&f.name)),
                    "{}.{} in no variant",
                    p.id,
                    f.name
                );
            }
        }
        match p.refresh {
            RefreshKind::OAuthRefreshToken { .. } | RefreshKind::ClientCredentials { .. } => {
                assert!(
                    p.endpoints.token_url.is_some() || p.endpoints.token_path.is_some(),
                    "{}",
                    p.id
                );
            }
            RefreshKind::AwsAssumeRole => assert!(p.endpoints.sts_url.is_some()),
            _ => {}
        }
    }
}

#[test]
fn every_example_stores() {
    for p in catalog() {
        for (i, example) in p.example_credentials().into_iter().enumerate() {
            let v = p
                .validate(&example, &STRICT)
                .unwrap_or_else(|e| panic!("{} example {i}: {e}", p.id));
            for key in example.as_object().unwrap().keys() {
                assert!(v.token_data.contains_key(key), "{}: {key} not stored", p.id);
            }
            for key in v.metadata.keys() {
                if let Some(f) = p.field(key) {
                    assert!(!f.secret, "{}: secret {key} in metadata", p.id);
                }
            }
            // no secret value leaks into metadata, even nested
            let meta_text = serde_json::to_string(&v.metadata).unwrap();
            for f in p.fields.iter().filter(|f| f.secret) {
                if let Some(Value::String(s)) = v.token_data.get(f.name) {
                    assert!(!meta_text.contains(s.as_str()), "{}: {} leaks", p.id, f.name);
                }
            }
            assert!(!meta_text.contains(super::validate::PRIVATE_KEY_LABEL));
            assert_eq!(v.metadata, p.metadata_of(&v.token_data));
            assert_eq!(v.expires_at, p.expires_at_of(&v.token_data));
            assert_eq!(p.variant_of(&v.token_data).map(|x| x.name), v.variant);
            assert_eq!(p.refresh_kind_for(&v.token_data), v.refresh);
            // validating stored token data again is idempotent
            let again = p.validate(&Value::Object(v.token_data.clone()), &STRICT).unwrap();
            assert_eq!(again, v, "{}", p.id);
        }
    }
}

#[test]
fn every_required_field_is_required() {
    for p in catalog() {
        for example in p.example_credentials() {
            let v = p.validate(&example, &STRICT).unwrap();
            let required: Vec<&str> = p
                .fields
                .iter()
                .filter(|f| f.required)
                .filter(|f| {
                    v.variant
                        .is_none_or(|vn| p.variants.iter().any(|x| x.name == vn && x.fields.contains(&f.name)))
                })
                .map(|f| f.name)
                .collect();
            assert!(!required.is_empty(), "{}", p.id);
            for name in required {
                for absent in [None, Some(Value::Null), Some(json!("")), Some(json!("   "))] {
                    let mut body = obj(example.clone());
                    match &absent {
                        None => {
                            body.remove(name);
                        }
                        Some(a) => {
                            body.insert(name.into(), a.clone());
                        }
                    }
                    let res = p.validate(&Value::Object(body.clone()), &STRICT);
                    // with nothing left, a multi-variant provider asks for its first variant's field
                    let nothing_left = body
                        .values()
                        .all(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()));
                    let expected = if nothing_left && !p.variants.is_empty() {
                        p.variants[0]
                            .fields
                            .iter()
                            .find(|n| p.field(n).unwrap().required)
                            .copied()
                            .unwrap()
                    } else {
                        name
                    };
                    let err = res.expect_err(&format!("{}: {name} missing must fail", p.id));
                    assert_eq!(err.field, expected, "{}: {err}", p.id);
                    assert!(err.message.starts_with(&format!("{expected} is required")), "{err}");
                }
            }
        }
    }
}

/// Bad values per format; every one must be refused with an error naming the field.
fn bad_values(format: FieldFormat) -> Vec<Value> {
    let mut bad = match format {
        FieldFormat::Text { max_len } => vec![json!("a\u{7}b"), json!("x".repeat(max_len + 1))],
        FieldFormat::Token { max_len, prefixes } => {
            let mut v = vec![
                json!("has space"),
                json!("line\nbreak"),
                json!("naïve"),
                json!("x".repeat(max_len + 1)),
            ];
            if !prefixes.is_empty() {
                v.push(json!("ghp_notTheRightPrefix"));
            }
            v
        }
        FieldFormat::Password { max_len } => vec![json!("a\0b"), json!("x".repeat(max_len + 1))],
        FieldFormat::Identifier { max_len, .. } => {
            vec![json!("bad value!"), json!("a/b"), json!("x".repeat(max_len + 1))]
        }
        FieldFormat::EpochSeconds => vec![
            json!("soon"),
            json!(-1),
            json!(1_893_456_000_000_i64),
            json!("1e9"),
            json!(true),
            json!([1]),
        ],
        FieldFormat::Email => vec![
            json!("not-an-email"),
            json!("a@b"),
            json!("a b@example.com"),
            json!("@x.com"),
        ],
        FieldFormat::Uuid => vec![json!("1234"), json!("zzzzzzzz-0000-4000-8000-000000000000"), json!(7)],
        FieldFormat::HttpsUrl => vec![
            json!("http://example.com"),
            json!("https://127.0.0.1"),
            json!("https://169.254.169.254/latest/meta-data/"),
            json!("https://[::1]/"),
            json!("https://localhost:3000"),
            json!("https://user:pass@example.com"),
            json!("example.com"),
        ],
        FieldFormat::OneOf { .. } => vec![json!("example.com"), json!("app.datadoghq.com")],
        FieldFormat::AwsRoleArn => vec![
            json!("arn:aws:iam::123:role/x"),
            json!("arn:aws:s3:::bucket"),
            json!("arn:aws:iam::123456789012:user/alice"),
            json!("arn:aws:iam::123456789012:role/"),
            json!("arn:gcp:iam::123456789012:role/x"),
            json!("arn:aws:iam::123456789012:role/has space"),
        ],
        FieldFormat::AwsExternalId => vec![json!("a"), json!("has space"), json!("x".repeat(1225))],
        FieldFormat::ScalewayAccessKey => {
            vec![
                json!("SCW123"),
                json!("ASIAABCDEFGHIJKLMNOP"),
                json!("SCWABCDEFGHJKMNPQRS!"),
            ]
        }
        FieldFormat::AzureTenant => vec![json!("not a tenant"), json!("../evil"), json!("contoso")],
        FieldFormat::GcpServiceAccountJson => vec![
            json!("not json"),
            json!("{}"),
            json!({"type": "authorized_user", "client_email": "a@example.com"}),
            json!({"type": "service_account", "client_email": "a@example.com",
                   "private_key": "not pem", "token_uri": "https://oauth2.googleapis.com/token"}),
            json!({"type": "service_account", "client_email": "a@example.com",
                   "private_key": placeholder_pem(),
                   "token_uri": "https://169.254.169.254/token"}),
            json!({"type": "service_account", "client_email": "nope",
                   "private_key": placeholder_pem(),
                   "token_uri": "https://oauth2.googleapis.com/token"}),
            json!(42),
            json!("x".repeat(16 * 1024 + 1)),
        ],
    };
    // every string format refuses non-strings
    if !matches!(format, FieldFormat::EpochSeconds | FieldFormat::GcpServiceAccountJson) {
        bad.push(json!(42));
        bad.push(json!({"nested": true}));
    }
    bad
}

#[test]
fn malformed_values_are_refused_naming_the_field() {
    for p in catalog() {
        for example in p.example_credentials() {
            let v = p.validate(&example, &STRICT).unwrap();
            for name in v.token_data.keys() {
                let f = p.field(name).unwrap();
                for bad in bad_values(f.format) {
                    let mut body = obj(example.clone());
                    body.insert(name.clone(), bad.clone());
                    fails_on(p, Value::Object(body), name);
                }
            }
        }
    }
}

#[test]
fn unknown_fields_and_non_objects_are_refused() {
    for p in catalog() {
        let mut body = obj(p.example_credential());
        body.insert("api_kee".into(), json!("typo"));
        let err = fails_on(p, Value::Object(body), "api_kee");
        assert!(err.message.contains("not a field"), "{err}");
        // even a null unknown field
        let mut body = obj(p.example_credential());
        body.insert("no_such_field".into(), Value::Null);
        fails_on(p, Value::Object(body), "no_such_field");
        for not_obj in [json!([]), json!("x"), json!(null), json!(1)] {
            let err = p.validate(&not_obj, &STRICT).unwrap_err();
            assert_eq!(err.field, "body");
        }
    }
}

#[test]
fn normalization() {
    let v = spec("grafana")
        .validate(
            &json!({"api_key": "  glsa_abc \n", "base_url": "https://Grafana.Example.com/"}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.token_data["api_key"], "glsa_abc");
    assert_eq!(v.token_data["base_url"], "https://grafana.example.com");
    assert_eq!(v.metadata, obj(json!({"base_url": "https://grafana.example.com"})));
    assert_eq!(v.refresh, RefreshKind::None);
    assert_eq!(v.expires_at, None);

    let v = spec("bitbucket")
        .validate(
            &json!({"access_token": "a", "refresh_token": "r", "expires_at": " 1700000000 "}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.token_data["expires_at"], json!(1_700_000_000));
    assert_eq!(v.expires_at, Some(1_700_000_000));
    // Python's time.time() + expires_in is a float
    let v = spec("gcp")
        .validate(
            &json!({"access_token": "a", "refresh_token": "r", "expires_at": 1700000000.75}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.expires_at, Some(1_700_000_000));
    assert_eq!(v.variant, Some("oauth"));

    let v = spec("datadog")
        .validate(
            &json!({"api_key": "k", "app_key": "a", "site": " US5.DatadogHQ.com "}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.token_data["site"], "us5.datadoghq.com");
    let v = spec("datadog")
        .validate(&json!({"api_key": "k", "app_key": "a"}), &STRICT)
        .unwrap();
    assert_eq!(v.token_data["site"], "datadoghq.com");

    let v = spec("netdata")
        .validate(&json!({"api_token": "t", "base_url": ""}), &STRICT)
        .unwrap();
    assert_eq!(v.token_data["base_url"], "https://app.netdata.cloud");
    assert!(!v.token_data.contains_key("space_name"));

    let v = spec("tailscale")
        .validate(&json!({"client_id": "k1", "client_secret": "s"}), &STRICT)
        .unwrap();
    assert_eq!(v.token_data["tailnet"], "-");
    assert_eq!(v.refresh, RefreshKind::ClientCredentials { scope: None });

    let v = spec("scaleway")
        .validate(
            &json!({"access_key": "SCWABCDEFGHJKMNPQRST",
                    "secret_key": "11111111-2222-4333-8444-55555555555A",
                    "organization_id": "66666666-7777-4888-9999-AAAAAAAAAAAA",
                    "default_project_id": null}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.token_data["organization_id"], "66666666-7777-4888-9999-aaaaaaaaaaaa");
    assert!(!v.token_data.contains_key("default_project_id"));
    assert!(!v.metadata.contains_key("secret_key") && !v.metadata.contains_key("access_key"));

    // passwords are kept exactly
    let v = spec("coroot")
        .validate(
            &json!({"url": "https://coroot.example.com/", "email": "admin", "password": " pw with spaces "}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(v.token_data["password"], " pw with spaces ");
    assert_eq!(v.token_data["url"], "https://coroot.example.com");
    assert!(!v.metadata.contains_key("password"));

    // aws: external_id optional, generated later by the credential service
    let aws = spec("aws");
    let v = aws
        .validate(
            &json!({"role_arn": "arn:aws-us-gov:iam::123456789012:role/path/to/Role+x=y,z.@-"}),
            &STRICT,
        )
        .unwrap();
    assert!(!v.token_data.contains_key("external_id"));
    assert!(aws.field("external_id").unwrap().generated_if_absent);
    assert_eq!(v.refresh, RefreshKind::AwsAssumeRole);
}

#[test]
fn gcp_variants() {
    let gcp = spec("gcp");
    let err = gcp.validate(&json!({}), &STRICT).unwrap_err();
    assert_eq!(err.field, "access_token");
    assert!(err.message.contains("service_account_json"), "{err}");

    let err = gcp
        .validate(
            &json!({"access_token": "a", "refresh_token": "r", "service_account_json": "{}"}),
            &STRICT,
        )
        .unwrap_err();
    assert_eq!(err.field, "service_account_json");
    assert!(err.message.contains("cannot be combined"), "{err}");

    // the key may be given as an object; it is stored as JSON text
    let sa = gcp.example_credentials()[1]["service_account_json"].clone();
    let key: Value = serde_json::from_str(sa.as_str().unwrap()).unwrap();
    let v = gcp.validate(&json!({"service_account_json": key}), &STRICT).unwrap();
    let stored: Value = serde_json::from_str(v.token_data["service_account_json"].as_str().unwrap()).unwrap();
    assert_eq!(stored, key);
    assert_eq!(v.variant, Some("service_account"));
    assert!(matches!(v.refresh, RefreshKind::JwtBearer { .. }));
    assert_eq!(
        v.metadata,
        obj(
            json!({"client_email": "tokenkeeper@example-project.iam.gserviceaccount.com",
                   "project_id": "example-project"})
        )
    );
    assert_eq!(v.expires_at, None);
    assert_eq!(gcp.refresh_kind_for(&v.token_data).as_str(), "jwt_bearer");
    let oauth = gcp.validate(&gcp.example_credential(), &STRICT).unwrap();
    assert_eq!(oauth.refresh.as_str(), "oauth2_refresh_token");
    assert_eq!(oauth.metadata["email"], "user@example.com");
    assert_eq!(oauth.metadata["expires_at"], 1_893_456_000);
}

#[test]
fn slack_variants() {
    let slack = spec("slack");
    let rotating = slack.validate(&slack.example_credentials()[0], &STRICT).unwrap();
    assert_eq!(
        rotating.refresh,
        RefreshKind::OAuthRefreshToken {
            client_auth: ClientAuth::Body,
            rotates: true
        }
    );
    let fixed = slack.validate(&slack.example_credentials()[1], &STRICT).unwrap();
    assert_eq!(fixed.refresh, RefreshKind::None);
    assert_eq!(fixed.metadata, obj(json!({"team_id": "T0123456789"})));
    fails_on(slack, json!({"access_token": "ghp_x", "team_id": "T1"}), "access_token");
}

#[test]
fn bitbucket_forms_are_named_by_auth_type() {
    let bb = spec("bitbucket");
    let token = bb
        .validate(
            &json!({"auth_type": "API_TOKEN ", "access_token": "ATATT-x", "email": "dev@example.com"}),
            &STRICT,
        )
        .unwrap();
    assert_eq!(token.variant, Some("api_token"));
    assert_eq!(token.refresh, RefreshKind::None);
    assert_eq!(
        token.token_data,
        obj(json!({"auth_type": "api_token", "access_token": "ATATT-x", "email": "dev@example.com"}))
    );
    assert_eq!(bb.variant_of(&token.token_data).map(|v| v.name), Some("api_token"));
    // Without auth_type: the OAuth form, stored with its auth_type as Aurora does.
    let oauth = bb
        .validate(&json!({"access_token": "a", "refresh_token": "r"}), &STRICT)
        .unwrap();
    assert_eq!(
        (oauth.variant, oauth.token_data["auth_type"].clone()),
        (Some("oauth"), json!("oauth"))
    );
    assert!(oauth.refresh.refreshes());
    // Stored OAuth data from before auth_type existed is the OAuth form.
    assert_eq!(
        bb.variant_of(&obj(json!({"access_token": "a", "refresh_token": "r"})))
            .map(|v| v.name),
        Some("oauth")
    );
    let err = fails_on(bb, json!({"auth_type": "api_token", "access_token": "t"}), "email");
    assert_eq!(
        err.message,
        "email is required (or give the fields of oauth (auth_type \"oauth\", access_token, refresh_token))"
    );
    fails_on(
        bb,
        json!({"access_token": "t", "email": "dev@example.com"}),
        "refresh_token",
    );
    fails_on(
        bb,
        json!({"auth_type": "api_token", "access_token": "t", "refresh_token": "r", "email": "dev@example.com"}),
        "refresh_token",
    );
    let err = fails_on(bb, json!({"auth_type": "basic", "access_token": "t"}), "auth_type");
    assert_eq!(err.message, "auth_type must be one of: oauth, api_token");
    fails_on(bb, json!({"auth_type": 1, "access_token": "t"}), "auth_type");
}

#[test]
fn revocation_follows_the_catalog_and_the_configured_endpoint() {
    let at = |id: &str, data: Value, url: Option<&'static str>| spec(id).revocation_for(&obj(data), url);
    let gcp_oauth = json!({"access_token": "a", "refresh_token": "r"});
    assert_eq!(
        at("gcp", gcp_oauth.clone(), None),
        Some(RevokeAt {
            url: "https://oauth2.googleapis.com/revoke",
            token_fields: &["refresh_token", "access_token"]
        })
    );
    assert_eq!(
        at("gcp", gcp_oauth, Some("http://127.0.0.1:1/r")).unwrap().url,
        "http://127.0.0.1:1/r"
    );
    // A service-account key is not a grant.
    assert_eq!(at("gcp", spec("gcp").example_credentials()[1].clone(), None), None);
    let slack = at("slack", json!({"access_token": "xoxb-1", "team_id": "T1"}), None).unwrap();
    assert_eq!(
        (slack.url, slack.token_fields),
        ("https://slack.com/api/auth.revoke", &["access_token"][..])
    );
    // Bitbucket: none, unless configured (RFC 7009), and then for OAuth grants only.
    let bb_oauth = json!({"access_token": "a", "refresh_token": "r"});
    assert_eq!(at("bitbucket", bb_oauth.clone(), None), None);
    assert!(at("bitbucket", bb_oauth, Some("http://127.0.0.1:1/r")).is_some());
    let bb_token = json!({"auth_type": "api_token", "access_token": "t", "email": "dev@example.com"});
    assert_eq!(at("bitbucket", bb_token, Some("http://127.0.0.1:1/r")), None);
    // Static keys and client-credentials providers: never.
    assert_eq!(
        at(
            "grafana",
            spec("grafana").example_credential(),
            Some("http://127.0.0.1:1/r")
        ),
        None
    );
    assert_eq!(
        at(
            "azure",
            spec("azure").example_credential(),
            Some("http://127.0.0.1:1/r")
        ),
        None
    );
}

#[test]
fn url_policy_through_validation() {
    let grafana = spec("grafana");
    let body = |url: &str| json!({"api_key": "k", "base_url": url});
    let err = fails_on(grafana, body("http://grafana.example.com"), "base_url");
    assert_eq!(err.message, "base_url must be an https URL");
    for bad in [
        "https://127.0.0.1:3000",
        "https://10.0.0.5",
        "https://169.254.169.254",
        "https://[::1]",
        "https://[fe80::1]",
        "https://localhost",
        "https://metadata.google.internal",
        "https://admin:pw@grafana.example.com",
    ] {
        fails_on(grafana, body(bad), "base_url");
    }
    let private = UrlPolicy {
        allow_private: true,
        allow_http: false,
    };
    let v = grafana.validate(&body("https://127.0.0.1:3000/"), &private).unwrap();
    assert_eq!(v.token_data["base_url"], "https://127.0.0.1:3000");
    assert!(grafana.validate(&body("http://127.0.0.1:3000"), &private).is_err());
    assert!(
        grafana
            .validate(&body("http://127.0.0.1:3000"), &UrlPolicy::PERMISSIVE)
            .is_ok()
    );
    for id in ["netdata", "splunk"] {
        fails_on(
            spec(id),
            json!({"api_token": "t", "base_url": "https://192.168.0.1"}),
            "base_url",
        );
    }
    fails_on(
        spec("coroot"),
        json!({"url": "https://10.1.1.1", "email": "a", "password": "p"}),
        "url",
    );
}

#[test]
fn debug_redacts_secrets() {
    for p in catalog() {
        for example in p.example_credentials() {
            let v = p.validate(&example, &STRICT).unwrap();
            let dbg = format!("{v:?}");
            for f in p.fields.iter().filter(|f| f.secret) {
                if let Some(Value::String(s)) = v.token_data.get(f.name) {
                    assert!(!dbg.contains(s.as_str()), "{}: {} in Debug", p.id, f.name);
                }
            }
            assert!(dbg.contains("redacted"));
        }
    }
}

#[test]
fn catalog_serializes_without_secrets_or_examples() {
    let json = serde_json::to_value(catalog()).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 13);
    let text = json.to_string();
    assert!(!text.contains("example-access-token") && !text.contains(super::validate::PRIVATE_KEY_LABEL));
    let by_id = |id: &str| list.iter().find(|p| p["id"] == id).unwrap().clone();
    let gcp = by_id("gcp");
    assert_eq!(gcp["refresh"], "oauth2_refresh_token");
    assert_eq!(gcp["endpoints"]["token_url"], "https://oauth2.googleapis.com/token");
    assert_eq!(gcp["token_url_env"], "TOKENKEEPER_GCP_TOKEN_URL");
    assert_eq!(gcp["variants"][1]["refresh"], "jwt_bearer");
    let f0 = &gcp["fields"][0];
    assert_eq!(f0["name"], "access_token");
    assert_eq!(f0["secret"], true);
    assert_eq!(f0["required"], true);
    assert_eq!(f0["format"]["type"], "token");
    assert!(f0["description"].is_string());
    assert_eq!(by_id("aws")["refresh"], "aws_sts_assume_role");
    assert_eq!(by_id("aws")["fields"][1]["generated_if_absent"], true);
    assert_eq!(by_id("azure")["refresh"], "client_credentials");
    assert_eq!(by_id("azure")["scope"], "https://management.azure.com/.default");
    assert_eq!(
        by_id("azure")["endpoints"]["authority_host_env"],
        "AZURE_AUTHORITY_HOST"
    );
    assert_eq!(by_id("bitbucket")["client_auth"], "basic");
    assert_eq!(by_id("slack")["rotates_refresh_token"], true);
    assert_eq!(by_id("grafana")["refresh"], "static");
    assert_eq!(by_id("datadog")["fields"][2]["default"], "datadoghq.com");
}

#[test]
fn env_vars_and_token_urls() {
    assert_eq!(token_url_env_var("gcp"), "TOKENKEEPER_GCP_TOKEN_URL");
    assert_eq!(client_id_env_var("bitbucket"), "TOKENKEEPER_BITBUCKET_CLIENT_ID");
    assert_eq!(client_secret_env_var("slack"), "TOKENKEEPER_SLACK_CLIENT_SECRET");
    assert_eq!(
        spec("thousandeyes").token_url_env_var(),
        "TOKENKEEPER_THOUSANDEYES_TOKEN_URL"
    );

    let empty = Map::new();
    assert_eq!(
        spec("gcp").token_url(&empty, None, None).as_deref(),
        Some("https://oauth2.googleapis.com/token")
    );
    assert_eq!(
        spec("gcp")
            .token_url(&empty, Some("http://127.0.0.1:9999/token"), None)
            .as_deref(),
        Some("http://127.0.0.1:9999/token")
    );
    assert_eq!(
        spec("bitbucket").token_url(&empty, None, None).as_deref(),
        Some("https://bitbucket.org/site/oauth2/access_token")
    );
    assert_eq!(
        spec("slack").token_url(&empty, None, None).as_deref(),
        Some("https://slack.com/api/oauth.v2.access")
    );
    assert_eq!(
        spec("tailscale").token_url(&empty, None, None).as_deref(),
        Some("https://api.tailscale.com/api/v2/oauth/token")
    );
    assert_eq!(spec("grafana").token_url(&empty, None, None), None);
    assert_eq!(spec("aws").token_url(&empty, None, None), None);

    let azure = spec("azure");
    let data = azure.validate(&azure.example_credential(), &STRICT).unwrap().token_data;
    assert_eq!(
        azure.token_url(&data, None, None).as_deref(),
        Some("https://login.microsoftonline.com/00000000-0000-4000-8000-0000000000aa/oauth2/v2.0/token")
    );
    assert_eq!(
        azure
            .token_url(&data, None, Some("https://login.microsoftonline.us/"))
            .as_deref(),
        Some("https://login.microsoftonline.us/00000000-0000-4000-8000-0000000000aa/oauth2/v2.0/token")
    );
    assert_eq!(
        azure
            .token_url(&data, Some("http://127.0.0.1:1/{tenant_id}/token"), None)
            .as_deref(),
        Some("http://127.0.0.1:1/00000000-0000-4000-8000-0000000000aa/token")
    );
    assert_eq!(azure.token_url(&empty, None, None), None, "tenant missing");
    let odd = obj(json!({"tenant_id": "a/b?c"}));
    assert_eq!(
        azure.token_url(&odd, None, Some("https://h")).as_deref(),
        Some("https://h/a%2Fb%3Fc/oauth2/v2.0/token")
    );
}

#[test]
fn epoch_seconds_forms() {
    use super::validate::epoch_seconds;
    assert_eq!(epoch_seconds(&json!(0)), Ok(0));
    assert_eq!(epoch_seconds(&json!("1700000000")), Ok(1_700_000_000));
    assert_eq!(epoch_seconds(&json!("1700000000.9")), Ok(1_700_000_000));
    assert_eq!(epoch_seconds(&json!(1.7e9)), Ok(1_700_000_000));
    assert!(epoch_seconds(&json!("NaN")).is_err());
    assert!(epoch_seconds(&json!("inf")).is_err());
    assert!(epoch_seconds(&json!(-5)).is_err());
    assert!(epoch_seconds(&json!(null)).is_err());
}

/// A PEM block with the PKCS#8 label around four bytes of nothing: the shape the validator looks at, no key
/// (built, so that no text in the tree looks like a committed private key).
fn placeholder_pem() -> String {
    format!("-----BEGIN {0} KEY-----\nAAAA\n-----END {0} KEY-----\n", "PRIVATE")
}
