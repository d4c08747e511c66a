//! A kept-alive connection between requests is only its socket and a task: the HTTP engine (and its
//! read and write buffers) holds it only while a request is read or answered. What a client sees must
//! not change: keep-alive, pipelining, a request split across pauses, bodies left unread, the header
//! timeout as the idle limit, shutdown. The `tokenkeeper_http_connections` gauges show which state a
//! connection is in. The accept loop's business, which the database does not reach: SQLite only.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::http_limits::{HEALTHZ, connect, healthz, read_head};
use crate::support::app::{Db, TestApp, TestConfig, sample, spawn_app};
use crate::support::wait;

/// An app whose header timeout is far beyond the test: the connections open at its start stay.
async fn app() -> TestApp {
    let cfg = TestConfig::default().with("TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS", "3600");
    spawn_app(Db::Sqlite, cfg).await.unwrap()
}

/// Open client connections (waiting, serving), not counting the scrape's own (a connection of its
/// own, closed by the server after the answer: the test client's pooled connections would come and go).
async fn states(app: &TestApp) -> (i64, i64) {
    let mut tcp = connect(app).await;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: tokenkeeper\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = String::from_utf8(closed_by_server(&mut tcp, "the scrape").await).unwrap();
    let gauge = |state: &str| -> i64 { sample(&text, &format!("tokenkeeper_http_connections{{state=\"{state}\"}}")) };
    (gauge("waiting"), gauge("serving") - 1)
}

/// The head of a JSON request to `request_line` (`POST /path`) whose body is `body`.
fn json_head(request_line: &str, body: &str) -> String {
    format!(
        "{request_line} HTTP/1.1\r\nHost: tokenkeeper\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
}

/// Waits (bounded) until the gauges show `want`: compared with a baseline taken at the test's start
/// (the test client's pooled connection from the app's start waits too; a closed scrape leaves a moment
/// after its answer).
async fn wait_states(app: &TestApp, want: (i64, i64), what: &str) {
    wait::until(what, || async { states(app).await == want }).await;
}

/// Waits (bounded) for the server to close `tcp`; what it sent before.
async fn closed_by_server(tcp: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    wait::bounded(what, tcp.read_to_end(&mut got)).await.unwrap();
    got
}

fn request_with_id(id: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: tokenkeeper\r\nX-Request-Id: {id}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_requests_a_connection_waits_outside_the_http_engine() {
    let app = app().await;
    let (waiting, serving) = states(&app).await;
    let mut tcp = connect(&app).await;
    // Connected, nothing sent: waiting.
    wait_states(&app, (waiting + 1, serving), "the new connection to wait").await;
    // Half a request: the engine reads it.
    tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    wait_states(&app, (waiting, serving + 1), "the started request to be served").await;
    tcp.write_all(b"Host: tokenkeeper\r\n\r\n").await.unwrap();
    let head = wait::bounded("the answer", read_head(&mut tcp)).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    // Answered: waiting again, and kept alive through several rounds.
    for round in 0..3 {
        wait_states(
            &app,
            (waiting + 1, serving),
            &format!("the answered connection to wait ({round})"),
        )
        .await;
        assert_eq!(healthz(&mut tcp).await, "HTTP/1.1 200 OK");
    }
    drop(tcp);
    wait_states(&app, (waiting, serving), "the closed connection to be gone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_across_the_waits() {
    let app = spawn_app(Db::Sqlite, TestConfig::default()).await.unwrap();
    let mut tcp = connect(&app).await;
    // Two whole requests and the start of a third in one write.
    let third = request_with_id("third");
    let (third_start, third_rest) = third.split_at(20);
    let sent = format!("{}{}{third_start}", request_with_id("first"), request_with_id("second"));
    tcp.write_all(sent.as_bytes()).await.unwrap();
    let answers = wait::bounded("two pipelined answers", read_answers(&mut tcp, 2)).await;
    assert_eq!(answers, ["first", "second"]);
    // The third's start was read with the others: it is kept, and the rest completes it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tcp.write_all(third_rest.as_bytes()).await.unwrap();
    assert_eq!(
        wait::bounded("the third answer", read_answers(&mut tcp, 1)).await,
        ["third"]
    );
    assert_eq!(healthz(&mut tcp).await, "HTTP/1.1 200 OK");
}

/// Reads `n` whole 200 answers to `/healthz` (their bodies are `{"status":"ok"}`); their request ids.
async fn read_answers(tcp: &mut TcpStream, n: usize) -> Vec<String> {
    const BODY: &str = r#"{"status":"ok"}"#;
    let mut text = String::new();
    while text.matches(BODY).count() < n {
        let mut chunk = [0u8; 4096];
        let read = tcp.read(&mut chunk).await.unwrap();
        assert!(read > 0, "closed after {text:?}");
        text.push_str(std::str::from_utf8(&chunk[..read]).unwrap());
    }
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), n, "{text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("x-request-id: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_request_with_a_body_the_connection_waits_and_is_kept() {
    let app = app().await;
    let (waiting, serving) = states(&app).await;
    let mut tcp = connect(&app).await;
    // A login the handler reads whole (an unknown user: 401), its body sent in two parts.
    let body = r#"{"email":"nobody@example.com","password":"not-the-password"}"#;
    let head = json_head("POST /api/auth/login", body);
    let (first_half, second_half) = body.split_at(10);
    tcp.write_all(format!("{head}{first_half}").as_bytes()).await.unwrap();
    wait_states(
        &app,
        (waiting, serving + 1),
        "the request with half its body to be served",
    )
    .await;
    tcp.write_all(second_half.as_bytes()).await.unwrap();
    let answer = wait::bounded("the 401", read_head(&mut tcp)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    wait_states(&app, (waiting + 1, serving), "the answered connection to wait").await;
    assert_eq!(healthz(&mut tcp).await, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_handler_did_not_read_is_never_taken_for_a_request() {
    let app = spawn_app(Db::Sqlite, TestConfig::default()).await.unwrap();
    let mut tcp = connect(&app).await;
    // No credentials: 401 before the body is read, half the body still to come.
    let body = r#"{"api_key":"glsa_0123456789abcdef0123"}"#;
    let head = json_head("PUT /api/tokens/grafana", body);
    let (first_half, second_half) = body.split_at(10);
    tcp.write_all(format!("{head}{first_half}").as_bytes()).await.unwrap();
    let answer = wait::bounded("the 401", read_head(&mut tcp)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The rest of the body shaped as a request: hyper closes such a connection (as it did before the
    // connections waited outside it); the bytes are never answered as a request of their own.
    let _ = tcp
        .write_all(format!("{second_half}GET /healthz HTTP/1.1\r\n\r\n").as_bytes())
        .await;
    let mut rest = Vec::new();
    let _ = wait::bounded("the connection to end", tcp.read_to_end(&mut rest)).await;
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let cfg = TestConfig::default().with("TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS", "1");
    let app = spawn_app(Db::Sqlite, cfg).await.unwrap();
    // A new connection that never sends a byte.
    let mut silent = connect(&app).await;
    assert!(
        closed_by_server(&mut silent, "the silent connection to be closed")
            .await
            .is_empty()
    );
    // A kept-alive one that sends nothing after its answer.
    let mut kept = connect(&app).await;
    assert_eq!(healthz(&mut kept).await, "HTTP/1.1 200 OK");
    assert!(
        closed_by_server(&mut kept, "the idle kept-alive connection to be closed")
            .await
            .is_empty()
    );
    // One that starts a second request after its answer and never finishes it: the engine's own timer.
    let mut slow = connect(&app).await;
    assert_eq!(healthz(&mut slow).await, "HTTP/1.1 200 OK");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nX-Half: ").await.unwrap();
    let got = closed_by_server(&mut slow, "the half-sent second request to be dropped").await;
    assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_waiting_connections_close_and_a_request_in_the_engine_is_answered() {
    // (A header timeout far beyond the test: only the shutdown closes connections.)
    let mut app = app().await;
    let (w, s) = states(&app).await;
    let mut waiting = connect(&app).await;
    assert_eq!(healthz(&mut waiting).await, "HTTP/1.1 200 OK");
    // A request whose headers are half sent when the shutdown starts is in the engine: it may finish.
    let mut started = connect(&app).await;
    let (start, rest) = HEALTHZ.split_at(10);
    started.write_all(start).await.unwrap();
    wait_states(&app, (w + 1, s + 1), "one connection waiting, one in the engine").await;
    app.begin_shutdown().await;
    assert!(
        closed_by_server(&mut waiting, "the waiting connection to be closed")
            .await
            .is_empty()
    );
    started.write_all(rest).await.unwrap();
    let head = wait::bounded("the started request's answer", read_head(&mut started)).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    closed_by_server(&mut started, "the answered connection to be closed").await;
    wait::bounded("the server to stop", app.shutdown()).await;
}
