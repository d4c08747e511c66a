//! The accept loop: HTTP/1.1 connections, at most `max_connections` at once, and a graceful shutdown;
//! and the per-request time limit.
//!
//! - A permit of a semaphore is taken *before* each `accept`: with `max_connections` open, the loop waits
//!   and further connections wait in the kernel's listen queue; the open ones are served as before.
//! - Each connection is a task running `http/connection.rs`: hyper holds it only while a request is read
//!   or answered (with its header-read timer); between requests it is the socket alone, closed when
//!   silent for `header_timeout` (the idle limit).
//! - At shutdown the listener is closed first; waiting connections are closed, requests in flight finish.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::ApiError;
use super::connection::{Serving, serve_connection};
use crate::config::HttpLimits;
use crate::metrics::ClientConnections;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then waits for the
/// connections' requests in flight to be answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    gauges: ClientConnections,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let serving = Serving {
        http: Arc::new(http),
        router,
        header_timeout: limits.header_timeout,
        stop: stopping,
        gauges,
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((permit, tcp, peer)) = accepted else { continue };
        let serving = serving.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, serving).await;
            drop(permit);
        });
    }
    // New connections are refused from here on; waiting ones are closed, kept-alive ones once their
    // request is answered. Each connection holds a receiver: all gone, all done.
    drop(listener);
    drop(serving);
    let _ = stop.send(true);
    stop.closed().await;
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
