//! A counting proxy in front of OpenBao: the store under test talks to it as to Vault, and the test reads
//! what happened (logins, renewals, refusals) instead of guessing from the time that passed.
//!
//! ```ignore
//! let proxy = VaultProxy::start(&bao.addr).await;
//! let store = VaultStore::connect(VaultConfig::new(proxy.addr.clone(), auth)).await?;
//! proxy.wait_for("auth/token/renew-self", 2).await; // two renewals answered
//! assert_eq!(proxy.refusals(), 0);                   // no request was answered 401/403
//! ```

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::stand_in::StandIn;
use super::wait;

/// One request that went through: `path` without `/v1/`, the status OpenBao answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
}

pub struct VaultProxy {
    /// `http://127.0.0.1:PORT`, for `VAULT_ADDR`.
    pub addr: String,
    inner: Arc<Inner>,
    _server: StandIn,
}

impl VaultProxy {
    /// A proxy to the OpenBao at `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> VaultProxy {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            seen: Mutex::default(),
        });
        let router = Router::new().fallback(forward).with_state(inner.clone());
        let server = StandIn::start(router).await;
        VaultProxy {
            addr: server.base(),
            inner,
            _server: server,
        }
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests to `path` (e.g. `auth/approle/login`) that OpenBao answered with a 2xx.
    pub fn succeeded(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path == path && (200..300).contains(&s.status))
            .count()
    }

    /// Requests answered 401 or 403: a token that was no longer good.
    pub fn refusals(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status == 401 || s.status == 403)
            .collect()
    }

    /// Waits (bounded) until `n` requests to `path` have succeeded.
    pub async fn wait_for(&self, path: &str, n: usize) {
        wait::until(&format!("{n} successful {path}"), || async {
            self.succeeded(path) >= n
        })
        .await;
    }
}

async fn forward(State(p): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut req = p
        .client
        .request(method.clone(), format!("{}{path_and_query}", p.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    p.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().trim_start_matches("/v1/").to_string(),
        status: status.as_u16(),
    });
    let content_type = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut out = (status, bytes).into_response();
    if let Some(ct) = content_type {
        out.headers_mut().insert("content-type", ct);
    }
    out
}
