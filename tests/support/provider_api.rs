//! A stand-in for the 12 providers' APIs that Tokenkeeper's checks call (AWS is moto's, `support::sts`),
//! answering what each provider documents, and the token endpoints of the minted kinds.
//!
//! | route (under the stand-in's base) | plays |
//! |---|---|
//! | `GET /datadog/api/v1/validate` | `DD-API-KEY` + `DD-APPLICATION-KEY`: `{"valid": true}`, 403, or `{"valid": false}` |
//! | `POST /slack/auth.test` | Bearer: `{"ok": true}` or 200 `{"ok": false, "error": "invalid_auth"}` |
//! | `GET /bitbucket/user` | Bearer (OAuth token) or Basic e-mail:API token (`ATATT...`), not crossed; 401 |
//! | `GET /thousandeyes/account-groups`, `GET /netdata/api/v2/spaces`, `GET /grafana/api/org`, `GET /splunk/services/server/info` | Bearer; 401 |
//! | `POST /coroot/api/login` | JSON e-mail and password; 404 "Invalid email or password" |
//! | `GET /scaleway/iam/v1alpha1/api-keys/{access_key}` | `X-Auth-Token`; 401 |
//! | `POST /gcp/tokeninfo` | form `access_token`; 400 `invalid_token` |
//! | `GET /azure-api/subscriptions/{id}`, `GET /tailscale/tailnet/{t}/devices` | Bearer of a minted token; 401 |
//! | `POST /token` (Azure's, Tailscale's and Google's token endpoint) | mints `minted-N` (client credentials, JWT bearer); 401 `invalid_client` |
//!
//! A credential is accepted when each secret it presents is a secret of a catalog example (or a minted
//! token): so a check that put it elsewhere fails. [`Mode`] switches every route at once.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::app::TestConfig;
use super::stand_in::StandIn;

/// What every route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As documented for a good credential (a wrong one is still refused).
    Accept,
    /// 401/403 (Coroot 404, Google 400), as for a revoked credential; token endpoints `invalid_client`.
    Reject,
    /// The provider's own "invalid" with a 200 (Slack, Datadog); the others as `Reject`.
    Invalid,
    /// Never answers.
    Hang,
}

struct Shared {
    mode: Mutex<Mode>,
    good: Mutex<HashSet<String>>,
}

pub struct ProviderApi {
    pub server: StandIn,
    shared: Arc<Shared>,
}

impl ProviderApi {
    pub async fn start() -> ProviderApi {
        let mut good = HashSet::new();
        for spec in tokenkeeper::providers::catalog() {
            for example in spec.example_credentials() {
                for (_, v) in example.as_object().unwrap() {
                    if let Some(s) = v.as_str() {
                        good.insert(s.to_string());
                    }
                }
            }
        }
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Accept),
            good: Mutex::new(good),
        });
        let routes = Router::new()
            .route("/datadog/api/v1/validate", get(datadog))
            .route("/slack/auth.test", post(slack))
            .route("/coroot/api/login", post(coroot))
            .route("/gcp/tokeninfo", post(tokeninfo))
            .route("/token", post(token))
            .route("/bitbucket/user", get(bitbucket_user))
            .route("/thousandeyes/account-groups", get(bearer_api))
            .route("/netdata/api/v2/spaces", get(bearer_api))
            .route("/grafana/api/org", get(bearer_api))
            .route("/splunk/services/server/info", get(bearer_api))
            .route("/scaleway/iam/v1alpha1/api-keys/{key}", get(bearer_api))
            .route("/azure-api/subscriptions/{id}", get(bearer_api))
            .route("/tailscale/tailnet/{tailnet}/devices", get(bearer_api))
            .with_state(shared.clone());
        ProviderApi {
            server: StandIn::start(routes).await,
            shared,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// The stand-in's URL for `provider`'s API (`{base}/{provider}`).
    pub fn base(&self, provider: &str) -> String {
        format!("{}/{provider}", self.server.base())
    }

    /// Settings pointing every hosted API and token endpoint here; checks on store; a 1 s outbound timeout
    /// (the hang tests).
    pub fn config(&self, cfg: TestConfig) -> TestConfig {
        let mut cfg = cfg
            .with("TOKENKEEPER_CHECK_ON_STORE", "true")
            .with("TOKENKEEPER_ALLOW_PRIVATE_URLS", "true")
            .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "1")
            .with("TOKENKEEPER_AZURE_API_URL", &self.base("azure-api"))
            .with("TOKENKEEPER_AZURE_TOKEN_URL", &self.server.url("/token"))
            .with("TOKENKEEPER_GCP_TOKEN_URL", &self.server.url("/token"))
            .with("TOKENKEEPER_TAILSCALE_TOKEN_URL", &self.server.url("/token"));
        for id in [
            "datadog",
            "slack",
            "bitbucket",
            "thousandeyes",
            "scaleway",
            "tailscale",
            "gcp",
        ] {
            cfg = cfg.with(&tokenkeeper::providers::api_url_env_var(id), &self.base(id));
        }
        cfg
    }

    /// Requests received under `path`.
    pub fn hits(&self, path: &str) -> u64 {
        self.server.hits(path)
    }

    fn mode(&self) -> Mode {
        *self.shared.mode.lock().unwrap()
    }
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn is_good(&self, secret: &str) -> bool {
        self.good.lock().unwrap().contains(secret)
    }

    /// `Some(answer)` for a hang (never) or a rejection; `None`: go on and look at the credential.
    async fn gate(&self, reject: Response) -> Option<Response> {
        match self.mode() {
            Mode::Hang => std::future::pending::<Option<Response>>().await,
            Mode::Reject | Mode::Invalid => Some(reject),
            Mode::Accept => None,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_string)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "unauthorized").into_response()
}

fn accepted(ok: bool, body: Value) -> Response {
    if ok {
        axum::Json(body).into_response()
    } else {
        unauthorized()
    }
}

async fn datadog(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if s.mode() == Mode::Invalid {
        return axum::Json(json!({"valid": false})).into_response();
    }
    let forbidden = (StatusCode::FORBIDDEN, axum::Json(json!({"errors": ["Forbidden"]}))).into_response();
    if let Some(r) = s.gate(forbidden).await {
        return r;
    }
    let key = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| s.is_good(v))
    };
    accepted(key("dd-api-key") && key("dd-application-key"), json!({"valid": true}))
}

async fn slack(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let invalid = axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    if let Some(r) = s.gate(invalid).await {
        return r;
    }
    let ok = bearer(&headers).is_some_and(|t| s.is_good(&t));
    let body = if ok {
        json!({"ok": true, "team_id": "T0123456789"})
    } else {
        json!({"ok": false, "error": "invalid_auth"})
    };
    axum::Json(body).into_response()
}

async fn coroot(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    let wrong = (StatusCode::NOT_FOUND, "Invalid email or password").into_response();
    if let Some(r) = s.gate(wrong).await {
        return r;
    }
    let field = |k: &str| body[k].as_str().is_some_and(|v| s.is_good(v));
    if field("email") && field("password") {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::NOT_FOUND, "Invalid email or password").into_response()
    }
}

async fn tokeninfo(State(s): State<Arc<Shared>>, axum::Form(form): axum::Form<HashMap<String, String>>) -> Response {
    let invalid = (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_token"}))).into_response();
    if let Some(r) = s.gate(invalid).await {
        return r;
    }
    let ok = form.get("access_token").is_some_and(|v| s.is_good(v));
    if ok {
        axum::Json(json!({"expires_in": 3599})).into_response()
    } else {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_token"}))).into_response()
    }
}

/// Client credentials (the client secret in the form) and JWT bearer (an assertion): a new token.
async fn token(State(s): State<Arc<Shared>>, axum::Form(form): axum::Form<HashMap<String, String>>) -> Response {
    let refused = (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    if let Some(r) = s.gate(refused).await {
        return r;
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    let ok = match get("grant_type") {
        Some("client_credentials") => get("client_secret").is_some_and(|v| s.is_good(v)),
        Some(_) => get("assertion").is_some(),
        None => false,
    };
    if !ok {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let minted = format!("minted-{}", uuid::Uuid::new_v4().simple());
    s.good.lock().unwrap().insert(minted.clone());
    axum::Json(json!({"access_token": minted, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

/// The Bearer (or Basic, or `X-Auth-Token`) APIs: ThousandEyes, Netdata, Grafana, Splunk,
/// Scaleway, Azure, Tailscale.
async fn bearer_api(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Some(r) = s.gate(unauthorized()).await {
        return r;
    }
    let headers = req.headers();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).ok()?).ok())
        .is_some_and(|pair| pair.split_once(':').is_some_and(|(u, p)| s.is_good(u) && s.is_good(p)));
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ok = basic || bearer(headers).or(token).is_some_and(|t| s.is_good(&t));
    accepted(ok, json!({"path": req.uri().path()}))
}

/// Bitbucket's `GET /user`: an Atlassian API token (they start `ATATT`) works only as the password of HTTP
/// Basic with the account's e-mail; an OAuth access token only as Bearer.
async fn bitbucket_user(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Some(r) = s.gate(unauthorized()).await {
        return r;
    }
    let headers = req.headers();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).ok()?).ok())
        .is_some_and(|pair| {
            pair.split_once(':')
                .is_some_and(|(u, p)| u.contains('@') && p.starts_with("ATATT") && s.is_good(p))
        });
    let oauth = bearer(headers).is_some_and(|t| !t.starts_with("ATATT") && s.is_good(&t));
    accepted(basic || oauth, json!({"path": req.uri().path()}))
}
