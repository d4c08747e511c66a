//! Identity (`docs/IDENTITY.md`): X-User-ID only with the internal secret; Auth.js sessions made by the
//! real `@auth/core` (fixtures in tests/fixtures/authjs).

use crate::support::app::{Db, TestConfig, spawn_app};

async fn x_user_id_needs_the_internal_secret(db: Db) {
    // Setting empty: the header is ignored, never trusted, even with a matching-looking secret header.
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (uid, _) = app.user("internal@example.com").await;
    for secret in [None, Some(""), Some("anything")] {
        let mut req = app.client.get(app.at("/api/auth/me")).header("X-User-ID", &uid);
        if let Some(s) = secret {
            req = req.header("X-Internal-Secret", s);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            401,
            "unset setting, secret {secret:?}"
        );
    }

    let app = spawn_app(
        db,
        TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", "s3cret-internal"),
    )
    .await
    .unwrap();
    let (uid, _) = app.user("internal@example.com").await;
    let me = |secret: Option<&'static str>| {
        let mut req = app.client.get(app.at("/api/auth/me")).header("X-User-ID", uid.clone());
        if let Some(s) = secret {
            req = req.header("X-Internal-Secret", s);
        }
        req.send()
    };
    assert_eq!(me(None).await.unwrap().status(), 401);
    assert_eq!(me(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(me(Some("s3cret-internal-")).await.unwrap().status(), 401);
    assert_eq!(me(Some("")).await.unwrap().status(), 401);
    assert_eq!(me(Some("s3cret-internal")).await.unwrap().status(), 200);
}

/// `TOKENKEEPER_INTERNAL_SECRET` set but empty (or blank, or an empty `_FILE`) is no secret: `X-User-ID` is
/// refused whatever `X-Internal-Secret` says, including the empty string that would "match" it.
async fn x_user_id_refused_when_the_internal_secret_is_empty(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let empty_file = dir.path().join("internal-secret");
    std::fs::write(&empty_file, "\n").unwrap();
    let configs = [
        TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", ""),
        TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", "  "),
        TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET_FILE", empty_file.to_str().unwrap()),
    ];
    for (i, cfg) in configs.into_iter().enumerate() {
        let app = spawn_app(db, cfg).await.unwrap();
        let (uid, token) = app.user("empty-secret@example.com").await;
        for secret in [None, Some(""), Some("  "), Some("anything")] {
            let mut req = app.client.get(app.at("/api/auth/me")).header("X-User-ID", &uid);
            if let Some(s) = secret {
                req = req.header("X-Internal-Secret", s);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "config {i}, secret {secret:?}");
            assert_eq!(crate::support::app::error_of(r).await, "Authentication required");
        }
        // Nor does the header take over another route, or a valid session (the Bearer token wins).
        let r = app
            .client
            .post(app.at("/api/auth/change-password"))
            .header("X-User-ID", &uid)
            .header("X-Internal-Secret", "")
            .json(&serde_json::json!({"currentPassword": "correct-horse-battery", "newPassword": "new-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "config {i}: change-password");
        let me: serde_json::Value = app
            .client
            .get(app.at("/api/auth/me"))
            .bearer_auth(&token)
            .header("X-User-ID", "someone-else")
            .header("X-Internal-Secret", "")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["id"], uid.as_str());
    }
}

async fn garbage_credentials_are_401(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("AUTH_SECRET", "some-auth-secret"))
        .await
        .unwrap();
    for token in ["tks_not-a-real-session", "a.b.c.d.e", "plainly-wrong", ""] {
        let r = app
            .client
            .get(app.at("/api/auth/me"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{token}");
    }
    let r = app
        .client
        .get(app.at("/api/auth/me"))
        .header("Cookie", "authjs.session-token=a.b.c.d.e")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

mod authjs {
    use secrecy::SecretString;
    use serde_json::{Value, json};
    use tokenkeeper::db::User;

    use crate::support::app::{Db, TestApp, TestConfig, spawn_app};

    fn fixtures() -> Value {
        serde_json::from_str(include_str!("../fixtures/authjs/fixtures.json")).unwrap()
    }

    fn token(f: &Value, name: &str) -> String {
        f["tokens"][name]["token"].as_str().unwrap().to_string()
    }

    async fn app_with_fixture_secrets(db: Db) -> (TestApp, Value) {
        let f = fixtures();
        let secrets: Vec<&str> = f["accepted_secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let app = spawn_app(db, TestConfig::default().with("AUTH_SECRET", &secrets.join(",")))
            .await
            .unwrap();
        app.clock.set_ms(f["now"].as_i64().unwrap() * 1000);
        (app, f)
    }

    /// A local account whose id is the fixture's `sub`, with the password "tokenkeeper-fixture"
    /// (the hash made by Python's bcrypt).
    async fn local_user(app: &TestApp, id: &str) {
        let hash = include_str!("../fixtures/python-bcrypt.txt").trim().to_string();
        let user = User {
            id: id.into(),
            email: format!("{id}@example.com"),
            name: None,
            password_hash: Some(SecretString::from(hash)),
            password_changed_at: None,
            password_generation: 0,
            created_at: 0,
            must_change_password: false,
        };
        app.services.store.create_user(&user).await.unwrap();
    }

    async fn me_bearer(app: &TestApp, token: &str) -> u16 {
        app.get_auth("/api/auth/me", token).await.status().as_u16()
    }

    async fn me_cookie(app: &TestApp, cookie: &str) -> u16 {
        let r = app
            .client
            .get(app.at("/api/auth/me"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    pub(super) async fn fixtures_through_http(db: Db) {
        let (app, f) = app_with_fixture_secrets(db).await;
        for name in [
            "valid",
            "valid_with_auth_time",
            "valid_id_only",
            "valid_second_secret",
            "valid_no_kid",
            "chunked",
        ] {
            local_user(&app, f["tokens"][name]["expected"]["user_id"].as_str().unwrap()).await;
        }
        local_user(&app, "user-authjs-secure-cookie").await;
        // Valid tokens, as a cookie and as a Bearer JWE: authenticated and resolved to their own user.
        for name in [
            "valid",
            "valid_with_auth_time",
            "valid_id_only",
            "valid_second_secret",
            "valid_no_kid",
        ] {
            let t = token(&f, name);
            assert_eq!(
                me_cookie(&app, &format!("authjs.session-token={t}")).await,
                200,
                "{name} cookie"
            );
            assert_eq!(me_bearer(&app, &t).await, 200, "{name} bearer");
            let me: Value = app.get_auth("/api/auth/me", &t).await.json().await.unwrap();
            assert_eq!(me["id"], f["tokens"][name]["expected"]["user_id"], "{name}");
        }
        let secure = token(&f, "valid_secure_cookie");
        assert_eq!(
            me_cookie(&app, &format!("__Secure-authjs.session-token={secure}")).await,
            200
        );
        // Its salt is the cookie name: under the other name it does not decrypt.
        assert_eq!(me_cookie(&app, &format!("authjs.session-token={secure}")).await, 401);
        // Chunked cookie, chunks in any order among other cookies.
        let chunks = f["tokens"]["chunked"]["chunks"].as_array().unwrap();
        let mut parts: Vec<String> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| format!("authjs.session-token.{i}={}", c.as_str().unwrap()))
            .collect();
        parts.reverse();
        parts.insert(1, "theme=dark".into());
        assert_eq!(me_cookie(&app, &parts.join("; ")).await, 200);
        // Expired, wrong secret, tampered: 401.
        for name in ["expired", "other_secret", "tampered"] {
            let t = token(&f, name);
            assert_eq!(
                me_cookie(&app, &format!("authjs.session-token={t}")).await,
                401,
                "{name} cookie"
            );
            assert_eq!(me_bearer(&app, &t).await, 401, "{name} bearer");
        }
    }

    pub(super) async fn authjs_refused_without_auth_secret(db: Db) {
        let f = fixtures();
        let app = spawn_app(db, TestConfig::default()).await.unwrap();
        app.clock.set_ms(f["now"].as_i64().unwrap() * 1000);
        assert_eq!(me_bearer(&app, &token(&f, "valid")).await, 401);
        assert_eq!(
            me_cookie(&app, &format!("authjs.session-token={}", token(&f, "valid"))).await,
            401
        );
    }

    /// Tokens whose sign-in time (auth_time, else iat) is before the last password change are refused.
    pub(super) async fn password_change_refuses_earlier_sessions(db: Db) {
        let (app, f) = app_with_fixture_secrets(db).await;
        let iat = f["tokens"]["valid"]["expected"]["iat"].as_i64().unwrap();
        local_user(&app, "user-authjs-1").await;
        local_user(&app, "user-authjs-auth-time").await;
        let valid = token(&f, "valid");
        let with_auth_time = token(&f, "valid_with_auth_time");
        let change = |t: String, new: &'static str| {
            let body = json!({"currentPassword": "tokenkeeper-fixture", "newPassword": new});
            let app = &app;
            async move {
                app.post_auth("/api/auth/change-password", &t, body)
                    .await
                    .status()
                    .as_u16()
            }
        };
        // Change one hour before the tokens' iat: iat is after the change, so `valid` still works,
        // but `valid_with_auth_time` signed in a week before iat, so it is refused (auth_time wins over iat).
        app.clock.set_ms((iat - 3600) * 1000);
        assert_eq!(change(valid.clone(), "second-password").await, 200);
        assert_eq!(change(with_auth_time.clone(), "second-password").await, 200);
        assert_eq!(me_bearer(&app, &valid).await, 200, "issued after the change");
        assert_eq!(
            me_bearer(&app, &with_auth_time).await,
            401,
            "signed in before the change"
        );
        // A change within the second of the token's iat: JWT times are whole seconds, so the token may
        // have been issued before the change; it is refused, as cookie and as Bearer.
        let hash = SecretString::from(include_str!("../fixtures/python-bcrypt.txt").trim().to_string());
        for changed_ms in [iat * 1000 + 999, (iat + 60) * 1000] {
            app.clock.set_ms(changed_ms);
            let set = app
                .services
                .store
                .set_password("user-authjs-1", &hash, changed_ms, None);
            assert!(set.await.unwrap());
            // Written past the services: the identity cache is told, as the password workflows do.
            let changed = tokenkeeper::db::identity_cache::Changed::User("user-authjs-1");
            app.services.identity.changed(changed).await;
            assert_eq!(me_bearer(&app, &valid).await, 401, "changed at {changed_ms}");
            assert_eq!(me_cookie(&app, &format!("authjs.session-token={valid}")).await, 401);
        }
    }
}

async fn authjs_fixtures_through_http(db: Db) {
    authjs::fixtures_through_http(db).await
}
async fn authjs_refused_without_auth_secret(db: Db) {
    authjs::authjs_refused_without_auth_secret(db).await
}
async fn authjs_password_change_refuses_earlier_sessions(db: Db) {
    authjs::password_change_refuses_earlier_sessions(db).await
}

crate::on_both_backends!(
    x_user_id_needs_the_internal_secret,
    x_user_id_refused_when_the_internal_secret_is_empty,
    garbage_credentials_are_401,
    authjs_fixtures_through_http,
    authjs_refused_without_auth_secret,
    authjs_password_change_refuses_earlier_sessions
);
