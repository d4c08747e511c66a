//! A local webhook receiver: records every request (headers and raw body), answers the status a test
//! sets (per provider named in the body, or for all), and can hold requests at a gate (a slow receiver)
//! while counting how many it holds at once.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::watch;

use super::app::TestConfig;
use super::stand_in::StandIn;

/// What the receiver got, as sent.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status it answered.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    /// Status for every request, unless `per_provider` names the body's `data.provider`.
    status: AtomicU16,
    per_provider: Mutex<HashMap<String, u16>>,
    /// Requests are held while this is false.
    open: Option<watch::Sender<bool>>,
    held: AtomicUsize,
    most_held: AtomicUsize,
}

pub struct Receiver {
    inner: Arc<Inner>,
    server: StandIn,
}

/// The secret the tests sign with, and its key bytes (`whsec_` + base64 of them).
pub const SECRET: &str = "whsec_dGVzdC1vbmx5LXdlYmhvb2sta2V5LTAxMjM0NTY3";
pub const KEY: &[u8] = b"test-only-webhook-key-01234567";

impl Receiver {
    pub async fn start() -> Receiver {
        let (open, _) = watch::channel(true);
        let inner = Arc::new(Inner {
            status: AtomicU16::new(200),
            open: Some(open),
            ..Inner::default()
        });
        let server = StandIn::start(Router::new().route("/hook", post(receive)).with_state(inner.clone())).await;
        Receiver { inner, server }
    }

    /// `cfg` sending events here, signed with [`SECRET`]; the background deliverer off (tests run passes).
    pub fn config(&self, cfg: TestConfig) -> TestConfig {
        cfg.with("TOKENKEEPER_WEBHOOK_URL", &self.server.url("/hook"))
            .with("TOKENKEEPER_WEBHOOK_SECRET", SECRET)
            .with("TOKENKEEPER_WEBHOOK_DELIVERER_DISABLED", "true")
    }

    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    pub fn answer_for(&self, provider: &str, status: u16) {
        self.inner.per_provider.lock().unwrap().insert(provider.into(), status);
    }

    pub fn hold(&self) {
        self.inner.open.as_ref().unwrap().send_replace(false);
    }

    pub fn release(&self) {
        self.inner.open.as_ref().unwrap().send_replace(true);
    }

    /// Requests held at the gate now, and the most ever held at once.
    pub fn held(&self) -> (usize, usize) {
        (
            self.inner.held.load(Ordering::SeqCst),
            self.inner.most_held.load(Ordering::SeqCst),
        )
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.answered < 300).collect()
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut open = inner.open.as_ref().unwrap().subscribe();
    if !*open.borrow() {
        let now = inner.held.fetch_add(1, Ordering::SeqCst) + 1;
        inner.most_held.fetch_max(now, Ordering::SeqCst);
        let _ = open.wait_for(|o| *o).await;
        inner.held.fetch_sub(1, Ordering::SeqCst);
    }
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    let provider = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["provider"].as_str().map(String::from));
    let status = provider
        .and_then(|p| inner.per_provider.lock().unwrap().get(&p).copied())
        .unwrap_or_else(|| inner.status.load(Ordering::SeqCst));
    let header = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    inner.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        answered: status,
    });
    StatusCode::from_u16(status).unwrap()
}
