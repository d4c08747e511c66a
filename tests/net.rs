//! The safe fetcher (`tokenkeeper::net::SafeFetcher`) against local servers: which addresses it reaches,
//! what it refuses before any connection, and what it does with redirects, large answers and hangs.
//!
//! DNS rebinding needs no test of its own: the fetcher's resolver checks the addresses of one lookup and
//! hands only those to the connector, so there is no second lookup an attacker's DNS could answer
//! differently (see `src/net/fetch.rs`).

mod support;

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokenkeeper::net::{AddressPolicy, FetchError, SafeFetcher, parse_networks};

use support::stand_in::StandIn;

const TIMEOUT: Duration = Duration::from_secs(2);
const CAP: usize = 64 * 1024;

fn fetcher(policy: AddressPolicy) -> SafeFetcher {
    // http allowed: the stand-ins speak plain http (the https-only rule has its own test).
    SafeFetcher::new(policy, true, TIMEOUT, CAP)
}

fn loopback_allowed() -> AddressPolicy {
    AddressPolicy::allowing(parse_networks("127.0.0.0/8, ::1").unwrap())
}

async fn ok_server() -> StandIn {
    StandIn::start(Router::new().route("/ok", get(|| async { "fine" }))).await
}

async fn get_url(f: &SafeFetcher, url: &str) -> Result<tokenkeeper::net::Fetched, FetchError> {
    f.send(f.request(reqwest::Method::GET, url)?).await
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_by_default_and_allowed_by_the_setting() {
    let server = ok_server().await;
    let url = format!("http://localhost:{}/ok", server.addr.port());

    let refused = get_url(&fetcher(AddressPolicy::public_only()), &url).await;
    match refused {
        Err(FetchError::Refused(reason)) => {
            assert!(reason.contains("localhost resolves to"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(server.hits("/ok"), 0, "no connection was made");

    let allowed = get_url(&fetcher(loopback_allowed()), &url)
        .await
        .expect("allowed network");
    assert_eq!((allowed.status, allowed.body.as_slice()), (200, b"fine".as_slice()));
    assert_eq!(server.hits("/ok"), 1);

    // The same through the service's setting.
    let map = std::collections::HashMap::from([(
        "TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS".to_string(),
        "127.0.0.0/8".to_string(),
    )]);
    let settings = tokenkeeper::config::Settings::from_lookup(&|k| map.get(k).cloned()).unwrap();
    let from_settings = get_url(&fetcher(settings.address_policy()), &url).await.unwrap();
    assert_eq!(from_settings.status, 200);
    let default = tokenkeeper::config::Settings::from_lookup(&|_| None).unwrap();
    assert!(matches!(
        get_url(&fetcher(default.address_policy()), &url).await,
        Err(FetchError::Refused(_))
    ));
}

#[tokio::test]
async fn ip_literals_are_checked_before_connecting() {
    let server = ok_server().await;
    let port = server.addr.port();
    let f = fetcher(AddressPolicy::public_only());
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://[::ffff:7f00:1]:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        format!("http://0x7f.1:{port}/ok"),
        format!("http://169.254.169.254:{port}/latest/meta-data"),
        format!("http://[fd00:ec2::254]:{port}/"),
    ] {
        match get_url(&f, &url).await {
            Err(FetchError::Refused(reason)) => assert!(reason.contains("private or special"), "{url}: {reason}"),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(server.total_hits(), 0);
    // An allowed IPv4 network covers the IPv4-mapped form of its addresses.
    let mapped = get_url(
        &fetcher(loopback_allowed()),
        &format!("http://[::ffff:127.0.0.1]:{port}/ok"),
    )
    .await;
    assert_eq!(mapped.expect("allowed mapped address").status, 200);
}

#[tokio::test]
async fn only_https_without_userinfo() {
    let server = ok_server().await;
    let strict = SafeFetcher::new(AddressPolicy::any(), false, TIMEOUT, CAP);
    assert!(matches!(
        get_url(&strict, &server.url("/ok")).await,
        Err(FetchError::Refused(_))
    ));
    let f = fetcher(AddressPolicy::any());
    let with_user = format!("http://user:pw@{}/ok", server.addr);
    assert!(matches!(get_url(&f, &with_user).await, Err(FetchError::Refused(_))));
    assert_eq!(server.total_hits(), 0);
}

#[tokio::test]
async fn a_redirect_is_answered_not_followed() {
    // The target stands for a private address: it counts the requests it gets.
    let target = ok_server().await;
    let location = format!("http://localhost:{}/ok", target.addr.port());
    let redirector = StandIn::start(Router::new().route(
        "/moved",
        get(move || {
            let location = location.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, location)]).into_response() }
        }),
    ))
    .await;
    // Only the redirecting server's own address is allowed.
    let only_redirector = AddressPolicy::allowing(parse_networks("127.0.0.1/32").unwrap());
    let answer = get_url(&fetcher(only_redirector), &redirector.url("/moved"))
        .await
        .unwrap();
    assert_eq!(answer.status, 302);
    assert_eq!(redirector.hits("/moved"), 1);
    assert_eq!(target.hits("/ok"), 0, "the redirect was not followed");
}

#[tokio::test]
async fn answers_over_the_cap_are_an_error() {
    let big = StandIn::start(Router::new().route("/big", get(|| async { "x".repeat(CAP + 1) }))).await;
    let exact = StandIn::start(Router::new().route("/exact", get(|| async { "x".repeat(CAP) }))).await;
    let f = fetcher(AddressPolicy::any());
    assert_eq!(
        get_url(&f, &big.url("/big")).await.err(),
        Some(FetchError::TooLarge(CAP))
    );
    assert_eq!(get_url(&f, &exact.url("/exact")).await.unwrap().body.len(), CAP);
}

#[tokio::test]
async fn a_hanging_server_is_bounded_by_the_timeout() {
    let hang = StandIn::start(Router::new().route("/hang", get(std::future::pending::<String>))).await;
    let f = SafeFetcher::new(AddressPolicy::any(), true, Duration::from_millis(300), CAP);
    assert_eq!(get_url(&f, &hang.url("/hang")).await.err(), Some(FetchError::Timeout));
    assert_eq!(hang.hits("/hang"), 1);
}

#[tokio::test]
async fn an_unresolvable_name_cannot_connect() {
    let f = fetcher(AddressPolicy::public_only());
    let r = get_url(&f, "http://name-that-does-not-exist.invalid/").await;
    assert_eq!(r.err(), Some(FetchError::Connect));
}
