//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timer, at most
//! `max_connections` at once, and a graceful shutdown; and the per-request time limit.
//!
//! - A connection whose request headers are incomplete after `header_timeout` is closed (hyper's timer
//!   starts when the server begins to wait for a request's headers: on a new connection, and on a kept-alive
//!   one after each answer, so it is also the idle limit between requests).
//! - A permit of a semaphore is taken *before* each `accept`: with `max_connections` open, the loop waits
//!   and further connections wait in the kernel's listen queue; the open ones are served as before.
//! - At shutdown the listener is closed first; idle connections are closed, requests in flight finish.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::ApiError;
use crate::config::HttpLimits;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then waits for the
/// connections' requests in flight to be answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((permit, tcp, peer)) = accepted else { continue };
        let conn = http.serve_connection(TokioIo::new(tcp), service(router.clone(), peer));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                // Header timeouts, clients that left: the connection's own business, not an error of ours.
                tracing::debug!(error = %err, "connection ended");
            }
            drop(permit);
        });
    }
    // New connections are refused from here on; kept-alive ones are closed once their request is answered.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection's permit, socket and peer; `None` after an error the loop goes past.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(tokio::sync::OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    match listener.accept().await {
        Ok((tcp, peer)) => {
            // Responses are written whole: Nagle's algorithm would only hold back the last segment.
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
            Some((permit, tcp, peer))
        }
        Err(err) if is_connection_error(&err) => None,
        Err(err) => {
            // Out of file descriptors, most likely: give the open connections time to finish.
            tracing::error!(error = %err, "accept failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The router for one connection: each request carries the peer's address (`ConnectInfo`).
fn service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<hyper::Request<Incoming>, Response = Response, Error = Infallible, Future: Send> + Clone
{
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req.map(axum::body::Body::new))
    })
}

/// Middleware: a request not answered within the limit gets 503. Work the handler handed to a task of
/// its own (a refresh under way) goes on; only the wait for it is cut.
pub async fn limit_request_time(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Unavailable(format!(
            "The request was not answered within {} s; try again",
            limit.as_secs()
        ))
        .into_response(),
    }
}
