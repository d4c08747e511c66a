//! One client connection's life: hyper serves it while there is a request to read or answer; between
//! requests the connection is only its socket and this task (a kept-alive client costs no buffers).
//!
//! - A new connection waits until its first bytes arrive, then goes to hyper.
//! - When hyper has answered everything and waits for the next request ([`IdleIo`] sees it; for a
//!   client sending back to back, a second or two later: [`Pace`]), hyper's graceful shutdown is asked
//!   for: on an idle connection it ends at once without writing anything, and the socket comes back (with
//!   any bytes read ahead) to wait for the client's next request.
//! - The wait for bytes is bounded by the header timeout, as hyper's own wait for a request is: a new
//!   connection or a kept-alive one silent that long (counted from its last answer, give or take the
//!   second between looks) is closed.
//! - At shutdown a waiting connection is closed at once; one in hyper finishes its request first.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::idle_io::{IdleIo, IdleSignal};
use crate::metrics::ClientConnections;

/// What every connection is served with.
#[derive(Clone)]
pub(super) struct Serving {
    pub http: Arc<http1::Builder>,
    pub router: Router,
    pub header_timeout: Duration,
    /// Turns `true` at shutdown.
    pub stop: watch::Receiver<bool>,
    pub gauges: ClientConnections,
}

/// How a connection's client has been sending, which decides when hyper gives the connection back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// A new connection, or one whose last request came after a long wait: handed back as soon as it is
    /// idle (a client that sends one request now and then costs no buffers between them).
    Seldom,
    /// One that came back within [`IDLE_LOOK`] of being handed back: a client sending requests back to back
    /// (a pool under load). Handing such a socket back and forth for each request cost 18 % of `/healthz`'s
    /// rate under wrk (benches/README.md); it stays with hyper until it was idle at two looks a second apart.
    Busy,
}

/// How often a busy connection with hyper is looked at (see [`Pace::Busy`]).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Serves one connection until the client leaves, a limit closes it, or the service shuts down.
pub(super) async fn serve_connection(tcp: tokio::net::TcpStream, peer: SocketAddr, mut serving: Serving) {
    let mut io = IdleIo::new(tcp);
    // The wait for bytes: the header timeout for a new connection; for one handed back, what is left of
    // it (the idle limit counts from the answer; a busy one was idle up to two looks with hyper).
    let mut silence_limit = serving.header_timeout;
    let mut handed_back: Option<Instant> = None;
    loop {
        if !io.has_unread() {
            let _waiting = serving.gauges.waiting();
            let header_timeout = silence_limit;
            let mut first = [0u8; 1];
            tokio::select! {
                biased;
                _ = serving.stop.wait_for(|stopping| *stopping) => return,
                // A peek, not `readable()`: tokio reports a new socket readable before any byte came.
                peeked = tokio::time::timeout(header_timeout, io.tcp().peek(&mut first)) => {
                    if !matches!(peeked, Ok(Ok(1))) {
                        return; // silent too long, the client left (0: end of stream), or an error
                    }
                }
            }
        }
        let pace = match handed_back {
            Some(at) if at.elapsed() < IDLE_LOOK => Pace::Busy,
            _ => Pace::Seldom,
        };
        // Boxed: a waiting connection's task is then only as large as its wait, not as hyper's service.
        match Box::pin(serve_until_idle(io, peer, pace, &mut serving)).await {
            Some(back) => io = back,
            None => return,
        }
        handed_back = Some(Instant::now());
        silence_limit = match pace {
            Pace::Seldom => serving.header_timeout,
            Pace::Busy => serving.header_timeout.saturating_sub(IDLE_LOOK),
        };
    }
}

/// How one hyper connection ended.
enum Ended {
    /// Idle, on our request: the socket is handed back.
    Idle,
    /// The client left, HTTP said close, an error, or shutdown: the socket is done.
    Done(Result<(), hyper::Error>),
}

/// Lets hyper serve `io` until it is idle (the socket is returned) or done (`None`).
async fn serve_until_idle(io: IdleIo, peer: SocketAddr, pace: Pace, serving: &mut Serving) -> Option<IdleIo> {
    let _serving = serving.gauges.serving();
    let signal = Arc::clone(io.signal());
    let service = service(serving.router.clone(), peer, Arc::clone(&signal));
    // Boxed: the task keeps hyper's state (and its buffers) only while hyper serves.
    let mut conn = Box::new(serving.http.serve_connection(TokioIo::new(io), service));
    let stop = serving.stop.wait_for(|stopping| *stopping);
    let look = tokio::time::sleep(IDLE_LOOK);
    tokio::pin!(stop, look);
    let (mut asked, mut stopping) = (false, false);
    let mut last_spell = None;
    let ended = poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            Pin::new(&mut *conn).graceful_shutdown();
        }
        let polled = conn.poll_without_shutdown(cx);
        if polled.is_ready() || stopping || asked {
            return polled.map(Ended::Done);
        }
        match pace {
            Pace::Seldom if signal.idle_spell().is_none() => return Poll::Pending,
            Pace::Seldom => {}
            Pace::Busy => {
                if look.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let spell = signal.idle_spell();
                if spell.is_none() || spell != last_spell {
                    last_spell = spell;
                    look.as_mut().reset(tokio::time::Instant::now() + IDLE_LOOK);
                    let _registered = look.as_mut().poll(cx);
                    return Poll::Pending;
                }
            }
        }
        // Idle by the bytes (a busy one since the last look): hyper's graceful shutdown ends an idle
        // connection at once, writing nothing. If it does not end now, hyper was not idle after all; it
        // then closes after its exchange.
        asked = true;
        Pin::new(&mut *conn).graceful_shutdown();
        match conn.poll_without_shutdown(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ended::Idle),
            Poll::Ready(Err(err)) => Poll::Ready(Ended::Done(Err(err))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    match ended {
        Ended::Idle => {
            io.give_back(parts.read_buf);
            Some(io)
        }
        Ended::Done(Ok(())) => {
            // As hyper would: the answer is out; say so with a FIN.
            let _ = io.tcp().shutdown().await;
            None
        }
        Ended::Done(Err(err)) => {
            // Header timeouts, clients that left: the connection's own business, not an error of ours.
            tracing::debug!(error = %err, "connection ended");
            None
        }
    }
}

/// The router for one connection: each request carries the peer's address (`ConnectInfo`), counts as
/// in a handler until its answer is ready, and its body is watched for its end.
fn service(
    router: Router,
    peer: SocketAddr,
    signal: Arc<IdleSignal>,
) -> impl hyper::service::Service<hyper::Request<Incoming>, Response = Response, Error = Infallible, Future: Send + Unpin>
+ Unpin {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = signal.enter();
        let answer = router.clone().oneshot(signal.watch_body(req));
        Box::pin(async move {
            let res = answer.await;
            drop(in_flight);
            res
        })
    })
}
