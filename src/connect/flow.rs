//! The pieces of one authorization-code flow: the random state and PKCE verifier, the S256 challenge, the
//! authorize URL, and the checks on what `POST /api/connect/{provider}` is given.

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use super::ConnectError;
use crate::ids::ConnectionName;
use crate::providers::OAuthConnect;

/// The most scopes a request may name, and the longest scope.
const MAX_SCOPES: usize = 50;
const MAX_SCOPE_LEN: usize = 256;
/// The longest return URL accepted.
const MAX_RETURN_URL: usize = 2048;

/// 32 random bytes, base64url: a state (256 bits) or a PKCE verifier (43 characters, RFC 7636 §4.1).
pub(super) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What SQL keeps of a state: its SHA-256, hex.
pub(super) fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// `code_challenge` for `code_challenge_method=S256`.
pub(super) fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the authorize URL carries besides the catalog's data.
pub(super) struct AuthorizeParams<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub challenge: &'a str,
}

/// The provider's authorize URL with the flow's parameters added to any it already has.
pub(super) fn authorize_url(
    endpoint: &str,
    oauth: &OAuthConnect,
    p: &AuthorizeParams<'_>,
) -> Result<String, ConnectError> {
    let mut url = url::Url::parse(endpoint).map_err(|_| ConnectError::Misconfigured("authorize URL"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", p.client_id)
            .append_pair("redirect_uri", p.redirect_uri);
        if !p.scopes.is_empty() {
            q.append_pair(oauth.scope_param, &p.scopes.join(oauth.scope_separator));
        }
        q.append_pair("state", p.state)
            .append_pair("code_challenge", p.challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in oauth.extra_params {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// The scopes asked for: the request's (visible ASCII, no separators), else the catalog's defaults.
pub(super) fn scopes(requested: Option<Vec<String>>, oauth: &OAuthConnect) -> Result<Vec<String>, ConnectError> {
    let Some(scopes) = requested.filter(|s| !s.is_empty()) else {
        return Ok(oauth.default_scopes.iter().map(|s| s.to_string()).collect());
    };
    if scopes.len() > MAX_SCOPES {
        return Err(ConnectError::Invalid(format!("scopes: at most {MAX_SCOPES}")));
    }
    for s in &scopes {
        let ok = !s.is_empty()
            && s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"' && b != b'\\');
        if !ok {
            return Err(ConnectError::Invalid(format!(
                "scopes: each is 1 to {MAX_SCOPE_LEN} visible ASCII characters without ',', '\"' or '\\'"
            )));
        }
    }
    Ok(scopes)
}

/// The connection name (see [`ConnectionName`]), default `default`.
pub(super) fn connection_name(name: Option<String>) -> Result<ConnectionName, ConnectError> {
    match name {
        None => Ok(ConnectionName::default()),
        Some(text) => ConnectionName::parse(&text).ok_or_else(|| {
            ConnectError::Invalid("name must be 1 to 40 of a-z, 0-9 and '-', starting with a letter or digit".into())
        }),
    }
}

/// The return URL: the request's when it starts with one of `allowed` (which end their origin with a
/// `/`, so `https://app.example.com.evil.test` is not a match for `https://app.example.com/`), else the first.
pub(super) fn return_url(requested: Option<String>, allowed: &[String]) -> Result<String, ConnectError> {
    let Some(url) = requested else {
        return allowed
            .first()
            .cloned()
            .ok_or(ConnectError::Misconfigured("TOKENKEEPER_CONNECT_RETURN_URLS"));
    };
    let parsed_ok = url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
    let control = url.chars().any(char::is_control);
    if url.len() > MAX_RETURN_URL || !parsed_ok || control || !allowed.iter().any(|a| url.starts_with(a.as_str())) {
        return Err(ConnectError::Invalid(
            "returnUrl is not allowed: it must start with one of TOKENKEEPER_CONNECT_RETURN_URLS".into(),
        ));
    }
    Ok(url)
}

/// `return_url` with `params` added to its query.
pub(super) fn with_query(return_url: &str, params: &[(&str, String)]) -> String {
    match url::Url::parse(return_url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            u.into()
        }
        Err(_) => return_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(challenge(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(random_token().len(), 43);
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn return_urls_match_by_prefix_only() {
        let allowed = vec!["https://app.example.com/".to_string()];
        assert_eq!(return_url(None, &allowed).unwrap(), "https://app.example.com/");
        assert!(return_url(Some("https://app.example.com/settings?x=1".into()), &allowed).is_ok());
        for bad in [
            "https://app.example.com.evil.test/",
            "https://evil.test/https://app.example.com/",
            "javascript:alert(1)",
        ] {
            assert!(return_url(Some(bad.into()), &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_the_connection_pattern() {
        assert_eq!(connection_name(None).unwrap().as_str(), "default");
        assert!(connection_name(Some("prod-1".into())).is_ok());
        for bad in ["", "-x", "Prod", "a_b", &"x".repeat(41)] {
            assert!(connection_name(Some(bad.into())).is_err(), "{bad:?}");
        }
    }
}
