//! [`SafeFetcher`]: the one way Tokenkeeper sends a request to a URL a user gave it.
//!
//! How each rule is kept:
//! - **Resolve, check, connect to what was checked.** The client's DNS resolver is [`CheckedResolver`]: it
//!   looks the name up once, drops every address the [`AddressPolicy`] refuses, and hands the connector only
//!   the addresses that passed; the connector connects to exactly those (it never looks the name up again).
//!   An IP literal (`https://10.0.0.1/`, `https://[::ffff:127.0.0.1]/`) never reaches a resolver, so
//!   [`SafeFetcher::send`] checks it before sending.
//! - **DNS rebinding cannot work, by construction.** A rebinding attack answers a harmless address to the
//!   check and a private one to the connection. Here the check and the connection use one lookup's answer:
//!   there is no second lookup whose answer could differ. A new connection (each redirect would be one, but
//!   none is followed) resolves anew and is checked anew.
//! - **No redirect** is followed ([`reqwest::redirect::Policy::none`]): a 3xx comes back as the answer, so a
//!   public URL cannot bounce the request to a private one.
//! - **No proxy**: a proxy would resolve the name itself, out of the resolver's reach.
//! - **Size cap**: at most `max_bytes` of the answer are read; a longer one is an error, not a truncation.
//! - **Timeout**: the client's timeout covers connecting, sending and reading the whole answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

use super::AddressPolicy;

/// What went wrong with a fetch. The texts are short, fixed and hold no URL, header or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one that may be fetched (a special address, a scheme other than http(s), userinfo).
    #[error("refused: {0}")]
    Refused(String),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The name did not resolve, or no connection could be made.
    #[error("could not connect")]
    Connect,
    /// The answer was longer than the cap.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// Any other transport failure (TLS, a broken connection, a malformed answer).
    #[error("request failed")]
    Failed,
}

/// An answer: its status, headers and body (at most the cap).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// An HTTP client that connects only where its [`AddressPolicy`] allows. Cheap to clone (shared).
#[derive(Clone)]
pub struct SafeFetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    allow_http: bool,
    max_bytes: usize,
}

impl SafeFetcher {
    /// A fetcher for `policy`; `allow_http`: plain `http` URLs too (tests, and endpoints an operator
    /// configured), else `https` only. Every request is bounded by `timeout`; answers by `max_bytes`.
    pub fn new(policy: AddressPolicy, allow_http: bool, timeout: Duration, max_bytes: usize) -> Self {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver { policy: policy.clone() }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tokenkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the outbound HTTP client builds (rustls)");
        Self {
            client,
            policy,
            allow_http,
            max_bytes,
        }
    }

    /// A request to `url`, checked first: its scheme, that it carries no user name or password (reqwest
    /// would turn them into an `Authorization` header), and an IP literal host against the policy.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Refused("not a valid URL".into()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(FetchError::Refused("the URL carries a user name or password".into()));
        }
        self.check_url(&parsed)?;
        Ok(self.client.request(method, parsed))
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Send a request made by [`SafeFetcher::request`] (its URL is checked again), and read the answer up to
    /// the cap.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Fetched, FetchError> {
        let request = request.build().map_err(|_| FetchError::Failed)?;
        self.check_url(request.url())?;
        let mut resp = self.client.execute(request).await.map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, headers, body })
    }

    fn check_url(&self, url: &url::Url) -> Result<(), FetchError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(FetchError::Refused(format!("scheme {other} is not allowed"))),
        }
        let literal = match url.host() {
            None => return Err(FetchError::Refused("the URL names no host".into())),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
        };
        match literal {
            Some(ip) if !self.policy.permits(ip) => Err(FetchError::Refused(refused_address(ip))),
            _ => Ok(()),
        }
    }
}

fn refused_address(ip: IpAddr) -> String {
    format!("{ip} is a private or special address")
}

/// Sort a transport error. A refusal by [`CheckedResolver`] travels inside the connect error as its source.
fn classify(e: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<Blocked>() {
            return FetchError::Refused(blocked.0.clone());
        }
        source = err.source();
    }
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_connect() {
        FetchError::Connect
    } else {
        FetchError::Failed
    }
}

/// Why [`CheckedResolver`] gave no address: carried through reqwest's error to [`classify`].
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// Resolves a name with the system resolver and keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts in the URL's port.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.permits(a.ip())).collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => {}
                (true, Some(refused)) => {
                    let reason = format!("{host} resolves to {}", refused_address(refused.ip()));
                    return Err(Box::new(Blocked(reason)) as Box<dyn std::error::Error + Send + Sync>);
                }
                (true, None) => return Err(std::io::Error::other("the name has no address").into()),
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
