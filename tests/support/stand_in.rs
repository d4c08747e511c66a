//! A local HTTP server with the routes a test gives it, counting the requests each path received.
//!
//! ```ignore
//! let server = StandIn::start(Router::new().route("/ok", get(|| async { "ok" }))).await;
//! // server.url("/ok"), server.hits("/ok")
//! ```
//! It runs on the test's own runtime and stops when dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;

#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, u64>>>);

pub struct StandIn {
    pub addr: SocketAddr,
    hits: Hits,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    /// Serve `routes` on 127.0.0.1, on a free port.
    pub async fn start(routes: Router) -> StandIn {
        Self::start_on("127.0.0.1:0", routes).await
    }

    /// Serve `routes` on `bind` (e.g. `"[::1]:0"`).
    pub async fn start_on(bind: &str, routes: Router) -> StandIn {
        let hits = Hits::default();
        let counted = hits.clone();
        let app = routes.layer(middleware::from_fn(move |req: Request, next: Next| {
            let counted = counted.clone();
            async move {
                let path = req.uri().path().to_string();
                *counted.0.lock().unwrap().entry(path).or_default() += 1;
                let resp: Response = next.run(req).await;
                resp
            }
        }));
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind the stand-in");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in server");
        });
        StandIn { addr, hits, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests `path` received so far.
    pub fn hits(&self, path: &str) -> u64 {
        self.hits.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests received so far, all paths together.
    pub fn total_hits(&self) -> u64 {
        self.hits.0.lock().unwrap().values().sum()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
