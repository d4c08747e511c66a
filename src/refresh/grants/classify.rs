//! Sorting outbound failures into [`GrantError`]s: one set of rules for every grant type.
//!
//! Only an error *code* ever reaches a [`GrantError`] (OAuth's `error` field, Slack's `error` next to
//! `ok: false`, STS's `<Code>`), and only after [`sanitize_code`]: never a response body, an
//! `error_description` or a message, which may echo tokens back.

use super::GrantError;

/// Codes that mean the credential (or the client it is bound to) is no longer accepted: the user must
/// reconnect. OAuth2 (RFC 6749 §5.2), Slack's `oauth.v2.access`, and STS/IAM authentication failures.
const REAUTH_CODES: &[&str] = &[
    // OAuth2
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "unsupported_grant_type",
    "access_denied",
    // Slack
    "invalid_refresh_token",
    "token_revoked",
    "token_expired",
    "invalid_client_id",
    "bad_client_secret",
    "invalid_grant_type",
    "account_inactive",
    "invalid_auth",
    "not_authed",
    "app_missing_action_url",
    // STS / IAM
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "RegionDisabledException",
];

/// Codes that mean "try again later", whatever the HTTP status (STS throttles with 400, Slack with 200).
const TRANSIENT_CODES: &[&str] = &[
    // OAuth2
    "temporarily_unavailable",
    "server_error",
    // Slack
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
    // STS / AWS
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "RequestExpired",
    "IDPCommunicationError",
];

/// The longest error code kept; longer ones are replaced by a generic reason.
const MAX_CODE_LEN: usize = 64;

/// An error code fit to be stored and shown: 1..=64 characters of `[A-Za-z0-9_.:-]`, else `None`.
pub fn sanitize_code(code: &str) -> Option<String> {
    let code = code.trim();
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    ok.then(|| code.to_string())
}

/// Classify a token endpoint's answer that is not a success.
///
/// `status` is the HTTP status; `code` the provider's error code, if the body carried one (it is sanitized
/// here). Rules, in order:
/// 1. a known transient code (throttling, server errors) -> [`GrantError::Transient`];
/// 2. a known re-authorization code -> [`GrantError::NeedsReauth`] with that code;
/// 3. HTTP 429, 408 and 5xx -> [`GrantError::Transient`];
/// 4. any other 4xx (400 and 401 from OAuth servers, STS and Azure included) -> [`GrantError::NeedsReauth`],
///    with the code when there is one, else `http_<status>`;
/// 5. a 2xx with an error code (Slack's `ok: false`) -> [`GrantError::NeedsReauth`] with the code;
/// 6. anything else (1xx, 3xx: redirects are not followed; a 2xx without a usable answer) ->
///    [`GrantError::Transient`].
pub fn classify(status: u16, code: Option<&str>) -> GrantError {
    let code = code.and_then(sanitize_code);
    if let Some(c) = code.as_deref() {
        if TRANSIENT_CODES.contains(&c) {
            return GrantError::Transient { reason: c.to_string() };
        }
        if REAUTH_CODES.contains(&c) {
            return GrantError::NeedsReauth { reason: c.to_string() };
        }
    }
    let reason = code.unwrap_or_else(|| format!("http_{status}"));
    match status {
        429 | 408 | 500..=599 => GrantError::Transient { reason },
        400..=499 | 200..=299 => GrantError::NeedsReauth { reason },
        _ => GrantError::Transient {
            reason: format!("unexpected_status_{status}"),
        },
    }
}

/// Classify a transport failure: timeouts, connection failures and other network errors are all
/// [`GrantError::Transient`] (`timeout`, `connect_error`, `network_error`). The error's text (which holds the
/// URL) is not kept.
pub fn classify_transport(err: &reqwest::Error) -> GrantError {
    let reason = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect_error"
    } else {
        "network_error"
    };
    GrantError::Transient {
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reauth(r: &str) -> GrantError {
        GrantError::NeedsReauth { reason: r.into() }
    }
    fn transient(r: &str) -> GrantError {
        GrantError::Transient { reason: r.into() }
    }

    #[test]
    fn oauth_codes() {
        assert_eq!(classify(400, Some("invalid_grant")), reauth("invalid_grant"));
        assert_eq!(classify(401, Some("invalid_client")), reauth("invalid_client"));
        assert_eq!(
            classify(400, Some("unauthorized_client")),
            reauth("unauthorized_client")
        );
        assert_eq!(
            classify(503, Some("temporarily_unavailable")),
            transient("temporarily_unavailable")
        );
    }

    #[test]
    fn slack_ok_false_on_200() {
        for c in [
            "invalid_refresh_token",
            "token_revoked",
            "invalid_client_id",
            "bad_client_secret",
            "invalid_grant_type",
        ] {
            assert_eq!(classify(200, Some(c)), reauth(c));
        }
        assert_eq!(classify(200, Some("ratelimited")), transient("ratelimited"));
        assert_eq!(classify(200, Some("something_new")), reauth("something_new"));
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(500, None), transient("http_500"));
        assert_eq!(classify(503, None), transient("http_503"));
        assert_eq!(classify(429, None), transient("http_429"));
        assert_eq!(classify(401, None), reauth("http_401"));
        assert_eq!(classify(404, None), reauth("http_404"));
        assert_eq!(classify(302, None), transient("unexpected_status_302"));
        // A 5xx with an unknown code is still transient; a 400 with an unknown code is not.
        assert_eq!(classify(502, Some("weird")), transient("weird"));
        assert_eq!(classify(400, Some("invalid_request")), reauth("invalid_request"));
    }

    #[test]
    fn sts_codes() {
        assert_eq!(
            classify(403, Some("InvalidClientTokenId")),
            reauth("InvalidClientTokenId")
        );
        assert_eq!(
            classify(403, Some("SignatureDoesNotMatch")),
            reauth("SignatureDoesNotMatch")
        );
        assert_eq!(classify(400, Some("Throttling")), transient("Throttling"));
    }

    #[test]
    fn codes_are_sanitized() {
        assert_eq!(classify(400, Some("ya29.secret token")), reauth("http_400"));
        assert_eq!(classify(400, Some(&"x".repeat(65))), reauth("http_400"));
        assert_eq!(classify(400, Some("  ")), reauth("http_400"));
        assert_eq!(sanitize_code("AADSTS:7000215"), Some("AADSTS:7000215".into()));
    }
}
