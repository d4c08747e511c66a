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

/// The code the OAuth parser passes for an `ok: false` answer that names no error at all. Slack names one
/// in every documented `ok: false`, so this is not a shape of a throttle or an outage either; it keeps
/// its earlier meaning (re-authorization, rule 3), which the parser's own tests pin.
pub const OK_FALSE: &str = "ok_false";

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
/// 2. HTTP 408, 429 and 5xx -> [`GrantError::Transient`], whatever the code: the server says "later";
/// 3. a known re-authorization code -> [`GrantError::NeedsReauth`] with that code (OAuth's 400/401 bodies,
///    STS's 403 `SignatureDoesNotMatch`, Slack's `ok: false` on a 200);
/// 4. HTTP 400 and 401 with any other code or none -> [`GrantError::NeedsReauth`] (`docs/REFRESH.md`: 400/401 from
///    STS and Azure; an OAuth server answers a refused grant or client with these), with the code, else
///    `http_<status>`;
/// 5. anything else -> [`GrantError::Transient`]: 403 without a known code, 404, 405 and other 4xx, a 2xx
///    with an unknown code, 1xx/3xx (redirects are not followed).
///
/// Why rule 5 is transient: `needs_reauth` stops all calls until the user reconnects, so it is kept for
/// answers that say *this credential* was refused. A 404/405 or a bare 403 comes from a wrong endpoint
/// override, a proxy or a WAF, and hits every user of the provider at once: marking them all
/// `needs_reauth` would lock every user out for good over a configuration error an operator can fix.
/// Transient means `degraded` with backoff (at most an hour apart), so the connections recover by
/// themselves once the endpoint answers properly again. The same goes for Slack error codes this table
/// does not know: retrying with backoff is cheap, a wrong `needs_reauth` is not.
/// The one exception is [`OK_FALSE`].
pub fn classify(status: u16, code: Option<&str>) -> GrantError {
    let code = code.and_then(sanitize_code);
    if let Some(c) = code.as_deref()
        && TRANSIENT_CODES.contains(&c)
    {
        return GrantError::Transient { reason: c.to_string() };
    }
    let reason = code.clone().unwrap_or_else(|| format!("http_{status}"));
    if matches!(status, 408 | 429 | 500..=599) {
        return GrantError::Transient { reason };
    }
    if let Some(c) = code.as_deref()
        && (REAUTH_CODES.contains(&c) || c == OK_FALSE)
    {
        return GrantError::NeedsReauth { reason: c.to_string() };
    }
    match status {
        400 | 401 => GrantError::NeedsReauth { reason },
        200..=299 | 402..=499 => GrantError::Transient { reason },
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
        // An error this table does not know: retried with backoff, not a lock-out.
        assert_eq!(classify(200, Some("something_new")), transient("something_new"));
        // `ok: false` without any code keeps its meaning (see OK_FALSE).
        assert_eq!(classify(200, Some(OK_FALSE)), reauth(OK_FALSE));
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(500, None), transient("http_500"));
        assert_eq!(classify(503, None), transient("http_503"));
        assert_eq!(classify(429, None), transient("http_429"));
        assert_eq!(classify(408, None), transient("http_408"));
        assert_eq!(classify(401, None), reauth("http_401"));
        assert_eq!(classify(400, None), reauth("http_400"));
        assert_eq!(classify(302, None), transient("unexpected_status_302"));
        assert_eq!(classify(200, None), transient("http_200"));
        // A 5xx with an unknown code is still transient; a 400 with an unknown code is not.
        assert_eq!(classify(502, Some("weird")), transient("weird"));
        assert_eq!(classify(400, Some("invalid_request")), reauth("invalid_request"));
        assert_eq!(classify(401, Some("weird")), reauth("weird"));
    }

    /// What a wrong endpoint override, a proxy or a WAF answers must not lock every user out.
    #[test]
    fn endpoint_and_proxy_errors_are_transient() {
        for status in [403, 404, 405, 409, 410, 413, 415, 418, 451] {
            assert_eq!(classify(status, None), transient(&format!("http_{status}")), "{status}");
        }
        assert_eq!(classify(404, Some("not_found")), transient("not_found"));
        assert_eq!(classify(403, Some("Forbidden")), transient("Forbidden"));
    }

    /// "Later" statuses win over a code; the OAuth re-authorization codes win over other statuses.
    #[test]
    fn precedence() {
        assert_eq!(classify(429, Some("invalid_grant")), transient("invalid_grant"));
        assert_eq!(classify(503, Some("invalid_client")), transient("invalid_client"));
        for c in ["invalid_grant", "invalid_client", "unauthorized_client"] {
            for status in [400, 401, 403, 404] {
                assert_eq!(classify(status, Some(c)), reauth(c), "{status} {c}");
            }
        }
        assert_eq!(
            classify(401, Some("temporarily_unavailable")),
            transient("temporarily_unavailable")
        );
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
