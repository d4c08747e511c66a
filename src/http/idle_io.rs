//! The socket as hyper sees it, watching for the moment a kept-alive connection has nothing to do.
//!
//! hyper keeps an 8 KB read buffer and an 8 KB write buffer for as long as it serves a connection,
//! idle or not: with 10,000 kept-alive clients between requests that is most of the service's memory.
//! [`IdleIo`] notices when hyper has answered everything it read and waits for more bytes; the
//! connection's driver (`http/connection.rs`) then takes the socket back from hyper, freeing its
//! buffers, and hands it to a new hyper connection when the client sends its next request.
//!
//! "Nothing to do", precisely: the last thing on the socket was an answer that hyper wrote and then
//! flushed whole (hyper flushes the socket only once its own write buffer is empty), no byte has been
//! read since, no request is in a handler, every request body was read to its end, and a read would
//! block. (A handler may answer without reading a body, a 401 before an upload: hyper then reads and
//! discards the rest of the body before the next request, so that connection stays with hyper.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the socket's driver and the connection's requests share.
#[derive(Debug, Default)]
pub(super) struct IdleSignal {
    /// Requests of this connection in a handler.
    in_flight: AtomicUsize,
    /// The last request's body has not been read to its end.
    body_open: AtomicBool,
    /// Set when hyper waits for a next request with nothing left to do.
    idle: AtomicBool,
    /// Spells of idleness begun so far: the number tells one spell from the next.
    spells: AtomicU64,
}

impl IdleSignal {
    /// Counts a request as in a handler until the guard is dropped.
    pub(super) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// The request, its body watched for its end (see [`IdleSignal::body_open`]).
    pub(super) fn watch_body(self: &Arc<Self>, req: hyper::Request<Incoming>) -> hyper::Request<axum::body::Body> {
        let open = !req.body().is_end_stream();
        self.body_open.store(open, Ordering::Release);
        if !open {
            return req.map(axum::body::Body::new);
        }
        let signal = Arc::clone(self);
        req.map(|inner| axum::body::Body::new(WatchedBody { inner, signal }))
    }

    /// While hyper waits with nothing to do, the number of this spell of idleness: it begins at a read
    /// that blocked and ends at the next bytes read or written.
    pub(super) fn idle_spell(&self) -> Option<u64> {
        self.idle
            .load(Ordering::Acquire)
            .then(|| self.spells.load(Ordering::Acquire))
    }

    fn begin_idle(&self) {
        if !self.idle.swap(true, Ordering::AcqRel) {
            self.spells.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// No request in a handler and no request body partly read.
    fn settled(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.body_open.load(Ordering::Acquire)
    }
}

/// A request body that tells its connection's signal when it was read to its end.
struct WatchedBody {
    inner: Incoming,
    signal: Arc<IdleSignal>,
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.signal.body_open.store(false, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request in a handler; see [`IdleSignal::enter`].
pub(super) struct InFlight(Arc<IdleSignal>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where the exchange on the socket stands, as far as the bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Bytes of a request were read and no answer written since (also a new connection).
    Reading,
    /// Bytes of an answer were written, not yet flushed.
    Writing,
    /// An answer was flushed whole and nothing read since.
    Answered,
}

/// A client's socket, with the bytes hyper had read but not used when it last gave the socket back.
#[derive(Debug)]
pub(super) struct IdleIo {
    tcp: TcpStream,
    unread: Bytes,
    phase: Phase,
    signal: Arc<IdleSignal>,
}

impl IdleIo {
    pub(super) fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            unread: Bytes::new(),
            phase: Phase::Reading,
            signal: Arc::default(),
        }
    }

    pub(super) fn signal(&self) -> &Arc<IdleSignal> {
        &self.signal
    }

    /// Takes back bytes hyper had read ahead (a pipelined request's start): they are read first.
    pub(super) fn give_back(&mut self, unread: Bytes) {
        debug_assert!(self.unread.is_empty(), "hyper read everything given back before");
        self.unread = unread;
        // The spell that made hyper give the socket back is over: the next hyper starts afresh.
        self.reading();
    }

    /// Whether bytes are waiting already (no need to wait for the socket).
    pub(super) fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    pub(super) fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Bytes of a request came: whatever an earlier blocked read signalled no longer holds.
    fn reading(&mut self) {
        self.phase = Phase::Reading;
        self.signal.idle.store(false, Ordering::Release);
    }

    fn wrote(&mut self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.phase = Phase::Writing;
            self.signal.idle.store(false, Ordering::Release);
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            this.reading();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.reading(),
            Poll::Pending if this.phase == Phase::Answered && this.signal.settled() => {
                this.signal.begin_idle();
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_flush(cx);
        // hyper flushes the socket only when its write buffer is empty: the answer is out whole.
        if matches!(polled, Poll::Ready(Ok(()))) && self.phase == Phase::Writing {
            self.phase = Phase::Answered;
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// The server's end of a fresh connection, and the client's.
    async fn pair() -> (IdleIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (IdleIo::new(server), client)
    }

    /// One exchange: the client's request read whole, an answer written (and flushed if `flush`).
    async fn exchange(io: &mut IdleIo, client: &mut TcpStream, flush: bool) {
        client.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        io.read_exact(&mut got).await.unwrap();
        io.write_all(b"answer").await.unwrap();
        if flush {
            io.flush().await.unwrap();
        }
    }

    /// Polls one read of `io` once: `None` if it would block.
    fn read_once(io: &mut IdleIo) -> Option<usize> {
        let mut buf = [0u8; 16];
        io.read(&mut buf).now_or_never().map(Result::unwrap)
    }

    #[tokio::test]
    async fn an_answer_flushed_whole_then_a_read_that_blocks_is_idle() {
        let (mut io, mut client) = pair().await;
        assert_eq!(read_once(&mut io), None);
        assert_eq!(io.signal().idle_spell(), None, "a new connection has answered nothing");
        exchange(&mut io, &mut client, true).await;
        assert_eq!(read_once(&mut io), None);
        let spell = io.signal().idle_spell().expect("idle");
        assert_eq!(read_once(&mut io), None);
        assert_eq!(
            io.signal().idle_spell(),
            Some(spell),
            "the same spell: nothing came since"
        );
        // A request and its answer between two looks: a new spell, not the same one.
        exchange(&mut io, &mut client, true).await;
        assert_eq!(read_once(&mut io), None);
        let next = io.signal().idle_spell().expect("idle again");
        assert_ne!(next, spell);
        client.write_all(b"next").await.unwrap();
        let mut got = [0u8; 4];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(io.signal().idle_spell(), None, "bytes came");
    }

    #[tokio::test]
    async fn not_idle_while_unflushed_in_a_handler_or_after_new_bytes() {
        let (mut io, mut client) = pair().await;
        exchange(&mut io, &mut client, false).await;
        assert_eq!(read_once(&mut io), None);
        assert_eq!(io.signal().idle_spell(), None, "written, not flushed");

        let in_handler = io.signal().enter();
        io.flush().await.unwrap();
        assert_eq!(read_once(&mut io), None);
        assert_eq!(io.signal().idle_spell(), None, "a request in a handler");
        drop(in_handler);

        client.write_all(b"next").await.unwrap();
        let mut got = [0u8; 4];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(read_once(&mut io), None);
        assert_eq!(io.signal().idle_spell(), None, "a request begun since the answer");
    }

    #[tokio::test]
    async fn bytes_given_back_are_read_before_the_socket() {
        let (mut io, mut client) = pair().await;
        exchange(&mut io, &mut client, true).await;
        io.give_back(Bytes::from_static(b"GET / HT"));
        assert!(io.has_unread());
        client.write_all(b"TP/1.1").await.unwrap();
        let mut got = [0u8; 14];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1");
        assert!(!io.has_unread());
        assert_eq!(read_once(&mut io), None);
        assert_eq!(io.signal().idle_spell(), None, "bytes read since the answer");
    }
}
