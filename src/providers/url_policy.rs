//! Policy for user-supplied URLs (Grafana/Netdata/Splunk base URLs, the Coroot URL, ...): no SSRF.
//!
//! By default a user-given URL must be `https`, carry no userinfo, and name a public host: IP literals in
//! loopback, private, link-local, unique-local, CGNAT, multicast, broadcast, documentation and other
//! non-global ranges (also embedded in IPv4-mapped/compatible, NAT64 and 6to4 IPv6 addresses) are refused, and
//! so are `localhost`, `*.localhost`, `*.local`, `*.internal` (e.g. `metadata.google.internal`), `metadata` and
//! other single-label names. [`UrlPolicy`] relaxes this for tests and private deployments.
//!
//! A hostname that *resolves* to a private address passes [`check_url`]: only the text is checked at store
//! time. Whenever Tokenkeeper itself connects to a user-given URL (a credential check), it goes through
//! [`crate::net::SafeFetcher`], which resolves the name, checks every address it would connect to and connects
//! only to those, so a name pointing (or re-pointed, DNS rebinding) at a private address is refused there.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

pub use crate::net::is_public_ip;

/// Maximum length of a user-supplied URL.
pub const MAX_URL_LEN: usize = 2048;

/// What user-supplied URLs may point at. Default (both `false`) is the production setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlPolicy {
    /// Allow loopback, private, link-local and similar addresses and local hostnames (tests, private labs).
    pub allow_private: bool,
    /// Allow plain `http` URLs (tests).
    pub allow_http: bool,
}

impl UrlPolicy {
    /// The production policy: https only, public hosts only.
    pub const STRICT: UrlPolicy = UrlPolicy {
        allow_private: false,
        allow_http: false,
    };
    /// Everything allowed (except userinfo): for tests against local mock servers.
    pub const PERMISSIVE: UrlPolicy = UrlPolicy {
        allow_private: true,
        allow_http: true,
    };
}

/// Why a URL or address was refused. The `Display` text completes a sentence starting with the field name,
/// e.g. `"base_url " + "must be an https URL"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPolicyError {
    #[error("must be a valid absolute URL")]
    Invalid,
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must be an https URL")]
    NotHttps,
    #[error("must not contain a user name or password")]
    UserInfo,
    #[error("must not contain a query or fragment")]
    QueryOrFragment,
    #[error("must name a host")]
    NoHost,
    #[error("must not point at a private, loopback or link-local address")]
    PrivateAddress,
    #[error("must not point at a local or internal host name")]
    LocalHostname,
}

/// Parse and check a user-supplied URL against the policy.
pub fn check_url(raw: &str, policy: &UrlPolicy) -> Result<Url, UrlPolicyError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(UrlPolicyError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| UrlPolicyError::Invalid)?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(UrlPolicyError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlPolicyError::UserInfo);
    }
    match url.host() {
        None => return Err(UrlPolicyError::NoHost),
        Some(Host::Ipv4(ip)) => check_resolved_ip(IpAddr::V4(ip), policy)?,
        Some(Host::Ipv6(ip)) => check_resolved_ip(IpAddr::V6(ip), policy)?,
        Some(Host::Domain(name)) => check_hostname(name, policy)?,
    }
    Ok(url)
}

/// Check a base URL and return it normalized: parsed by the `url` crate (lower-case host, default port
/// dropped), without query or fragment, and without a trailing slash (`https://x.example/` → `https://x.example`).
pub fn normalize_base_url(raw: &str, policy: &UrlPolicy) -> Result<String, UrlPolicyError> {
    let url = check_url(raw, policy)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlPolicyError::QueryOrFragment);
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Check an address a hostname resolved to (or an IP literal) against the policy. The HTTP client layer calls
/// this for every address it is about to connect to for a user-supplied URL.
pub fn check_resolved_ip(ip: IpAddr, policy: &UrlPolicy) -> Result<(), UrlPolicyError> {
    if policy.allow_private || is_public_ip(ip) {
        Ok(())
    } else {
        Err(UrlPolicyError::PrivateAddress)
    }
}

fn check_hostname(name: &str, policy: &UrlPolicy) -> Result<(), UrlPolicyError> {
    if policy.allow_private {
        return Ok(());
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let local = name.is_empty()
        || !name.contains('.')
        || name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".local")
        || name.ends_with(".internal")
        || name.ends_with(".home.arpa")
        || name.ends_with(".in-addr.arpa")
        || name.ends_with(".ip6.arpa");
    if local {
        Err(UrlPolicyError::LocalHostname)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy::STRICT;

    #[test]
    fn https_public_ok_and_normalized() {
        assert_eq!(
            normalize_base_url("https://Grafana.Example.com/", &STRICT).unwrap(),
            "https://grafana.example.com"
        );
        assert_eq!(
            normalize_base_url("  https://example.com:443/splunk/ ", &STRICT).unwrap(),
            "https://example.com/splunk"
        );
        assert_eq!(
            normalize_base_url("https://example.com:8089", &STRICT).unwrap(),
            "https://example.com:8089"
        );
        assert!(check_url("https://8.8.8.8/", &STRICT).is_ok());
        assert!(check_url("https://[2606:4700::1111]/", &STRICT).is_ok());
    }

    #[test]
    fn refused_urls() {
        let cases = [
            ("http://grafana.example.com", UrlPolicyError::NotHttps),
            ("ftp://grafana.example.com", UrlPolicyError::NotHttps),
            ("file:///etc/passwd", UrlPolicyError::NotHttps),
            ("not a url", UrlPolicyError::Invalid),
            ("grafana.example.com", UrlPolicyError::Invalid),
            ("https://user:pw@grafana.example.com", UrlPolicyError::UserInfo),
            ("https://user@grafana.example.com", UrlPolicyError::UserInfo),
            ("https://127.0.0.1/", UrlPolicyError::PrivateAddress),
            ("https://127.1/", UrlPolicyError::PrivateAddress),
            ("https://2130706433/", UrlPolicyError::PrivateAddress),
            ("https://0x7f000001/", UrlPolicyError::PrivateAddress),
            ("https://10.1.2.3/", UrlPolicyError::PrivateAddress),
            ("https://172.16.0.1/", UrlPolicyError::PrivateAddress),
            ("https://172.31.255.255/", UrlPolicyError::PrivateAddress),
            ("https://192.168.1.1/", UrlPolicyError::PrivateAddress),
            (
                "https://169.254.169.254/latest/meta-data",
                UrlPolicyError::PrivateAddress,
            ),
            ("https://100.64.0.1/", UrlPolicyError::PrivateAddress),
            ("https://0.0.0.0/", UrlPolicyError::PrivateAddress),
            ("https://224.0.0.1/", UrlPolicyError::PrivateAddress),
            ("https://255.255.255.255/", UrlPolicyError::PrivateAddress),
            ("https://[::1]/", UrlPolicyError::PrivateAddress),
            ("https://[::]/", UrlPolicyError::PrivateAddress),
            ("https://[fe80::1]/", UrlPolicyError::PrivateAddress),
            ("https://[fd00::1]/", UrlPolicyError::PrivateAddress),
            ("https://[fc00::1]/", UrlPolicyError::PrivateAddress),
            ("https://[ff02::1]/", UrlPolicyError::PrivateAddress),
            ("https://[::ffff:127.0.0.1]/", UrlPolicyError::PrivateAddress),
            ("https://[::ffff:169.254.169.254]/", UrlPolicyError::PrivateAddress),
            ("https://[::ffff:10.0.0.1]/", UrlPolicyError::PrivateAddress),
            ("https://[64:ff9b::a9fe:a9fe]/", UrlPolicyError::PrivateAddress),
            ("https://[2002:c0a8:0101::1]/", UrlPolicyError::PrivateAddress),
            ("https://localhost/", UrlPolicyError::LocalHostname),
            ("https://LOCALHOST./", UrlPolicyError::LocalHostname),
            ("https://grafana.localhost/", UrlPolicyError::LocalHostname),
            ("https://printer.local/", UrlPolicyError::LocalHostname),
            ("https://metadata.google.internal/", UrlPolicyError::LocalHostname),
            ("https://metadata/", UrlPolicyError::LocalHostname),
            ("https://svc.corp.internal:8443/", UrlPolicyError::LocalHostname),
        ];
        for (url, want) in cases {
            assert_eq!(check_url(url, &STRICT).err(), Some(want.clone()), "{url}");
        }
        assert_eq!(
            normalize_base_url("https://example.com/?a=b", &STRICT).err(),
            Some(UrlPolicyError::QueryOrFragment)
        );
        assert_eq!(
            normalize_base_url("https://example.com/#x", &STRICT).err(),
            Some(UrlPolicyError::QueryOrFragment)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check_url(&long, &STRICT).err(), Some(UrlPolicyError::TooLong));
    }

    #[test]
    fn relaxed_policies() {
        let private = UrlPolicy {
            allow_private: true,
            allow_http: false,
        };
        assert!(check_url("https://127.0.0.1:8443/", &private).is_ok());
        assert!(check_url("https://localhost/", &private).is_ok());
        assert!(check_url("https://[::1]/", &private).is_ok());
        assert_eq!(
            check_url("http://127.0.0.1/", &private).err(),
            Some(UrlPolicyError::NotHttps)
        );
        let http = UrlPolicy {
            allow_private: false,
            allow_http: true,
        };
        assert!(check_url("http://grafana.example.com/", &http).is_ok());
        assert_eq!(
            check_url("http://127.0.0.1/", &http).err(),
            Some(UrlPolicyError::PrivateAddress)
        );
        assert!(check_url("http://127.0.0.1:9000/", &UrlPolicy::PERMISSIVE).is_ok());
        // userinfo is never allowed
        assert_eq!(
            check_url("http://a:b@127.0.0.1/", &UrlPolicy::PERMISSIVE).err(),
            Some(UrlPolicyError::UserInfo)
        );
    }

    #[test]
    fn resolved_ips() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                check_resolved_ip(ip, &STRICT),
                Err(UrlPolicyError::PrivateAddress),
                "{ip}"
            );
            assert!(check_resolved_ip(ip, &UrlPolicy::PERMISSIVE).is_ok());
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_resolved_ip(ip, &STRICT).is_ok(), "{ip}");
        }
    }
}
