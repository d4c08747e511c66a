//! OAuth2 token-endpoint grants: `refresh_token` (RFC 6749 §6) and `client_credentials` (§4.4), and the
//! token response parsing shared with the JWT-bearer grant.

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};

use super::classify::classify;
use super::{GrantContext, GrantError, Refreshed, send, token_url, updated};
use crate::providers::{ClientAuth, ProviderSpec, TokenData};

const FORM: &str = "application/x-www-form-urlencoded";

/// A successful token response.
pub(super) struct TokenResponse {
    pub access_token: String,
    /// `now + expires_in` (or [`super::DEFAULT_LIFETIME_SECS`] when absent).
    pub expires_at: i64,
    /// A new refresh token (rotation), when given.
    pub refresh_token: Option<String>,
}

/// `grant_type=refresh_token` with the platform's OAuth client (or the one stored with the credential).
pub(super) async fn refresh_token_grant(
    spec: &ProviderSpec,
    client_auth: ClientAuth,
    token_data: &TokenData,
    ctx: &GrantContext<'_>,
) -> Result<Refreshed, GrantError> {
    let refresh_token = token_data
        .str_field("refresh_token")
        .ok_or_else(|| GrantError::reauth("no refresh_token stored"))?;
    // A refresh token is bound to the client it was issued to: a client stored with the credential wins.
    let (client_id, client_secret) = match token_data.str_field("client_id") {
        Some(id) => (id, token_data.str_field("client_secret")),
        None => {
            let platform = ctx.settings.provider(spec);
            let id = platform
                .client_id
                .as_deref()
                .ok_or_else(|| GrantError::misconfigured(format!("{} is not set", spec.client_id_env_var())))?;
            (id, platform.client_secret.as_ref().map(|s| s.expose_secret()))
        }
    };
    let url = token_url(spec, token_data, ctx.settings)?;
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    let (status, body) = post_form(ctx, &url, &form, client_auth, client_id, client_secret).await?;
    let resp = parse_token_response(status, &body, ctx.now)?;
    let mut fields = vec![("access_token", Value::from(resp.access_token))];
    if let Some(rt) = resp.refresh_token {
        fields.push(("refresh_token", Value::from(rt)));
    }
    Ok(updated(token_data, fields, resp.expires_at))
}

/// `grant_type=client_credentials` with the user's own `client_id`/`client_secret` (kept in the secret
/// store with the credential).
pub(super) async fn client_credentials_grant(
    spec: &ProviderSpec,
    scope: Option<&str>,
    token_data: &TokenData,
    ctx: &GrantContext<'_>,
) -> Result<Refreshed, GrantError> {
    let client_id = token_data
        .str_field("client_id")
        .ok_or_else(|| GrantError::reauth("no client_id stored"))?;
    let client_secret = token_data
        .str_field("client_secret")
        .ok_or_else(|| GrantError::reauth("no client_secret stored"))?;
    let url = token_url(spec, token_data, ctx.settings)?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let (status, body) = post_form(ctx, &url, &form, ClientAuth::Body, client_id, Some(client_secret)).await?;
    let resp = parse_token_response(status, &body, ctx.now)?;
    Ok(updated(
        token_data,
        [("access_token", Value::from(resp.access_token))],
        resp.expires_at,
    ))
}

/// POST a form to an OAuth endpoint with the client authenticated as `auth` says: the status and body.
pub(super) async fn post_form(
    ctx: &GrantContext<'_>,
    url: &str,
    form: &[(&str, &str)],
    auth: ClientAuth,
    client_id: &str,
    client_secret: Option<&str>,
) -> Result<(u16, Vec<u8>), GrantError> {
    let mut req = ctx.http.post(url).header(reqwest::header::ACCEPT, "application/json");
    if auth == ClientAuth::Basic {
        req = req.header(
            reqwest::header::AUTHORIZATION,
            basic_auth(client_id, client_secret.unwrap_or("")),
        );
    }
    // Built in a block: the serializer is not `Send` and must not live across the await.
    let form_body = {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        if auth == ClientAuth::Body {
            body.append_pair("client_id", client_id);
            if let Some(secret) = client_secret {
                body.append_pair("client_secret", secret);
            }
        }
        body.finish()
    };
    let req = req.header(reqwest::header::CONTENT_TYPE, FORM).body(form_body);
    send(req).await
}

/// `client_secret_basic` (RFC 6749 §2.3.1): id and secret form-urlencoded, then joined and base64-encoded.
pub(super) fn basic_auth(client_id: &str, client_secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(client_secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// Parse a token endpoint's answer. Errors take only the `error` code (a JSON body with `ok: false`, as
/// Slack answers with HTTP 200, is an error too); a success must carry a non-empty `access_token`.
pub(super) fn parse_token_response(status: u16, body: &[u8], now: i64) -> Result<TokenResponse, GrantError> {
    let json: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let code = json.as_ref().and_then(|j| j.get("error")).and_then(Value::as_str);
    let ok_false = json.as_ref().is_some_and(|j| j.get("ok") == Some(&Value::Bool(false)));
    if !(200..300).contains(&status) || ok_false || code.is_some() {
        return Err(classify(status, code.or(ok_false.then_some("ok_false"))));
    }
    let Some(json) = json else {
        return Err(GrantError::transient("invalid_response"));
    };
    let access_token = match json.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(GrantError::transient("invalid_response")),
    };
    let expires_in = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64().and_then(crate::clock::whole_secs),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
    .unwrap_or(super::DEFAULT_LIFETIME_SECS);
    let refresh_token = match json.get("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        expires_at: now.saturating_add(expires_in),
        refresh_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_per_rfc6749() {
        // "a b:c" / "p&q" -> "a+b%3Ac:p%26q"
        assert_eq!(basic_auth("a b:c", "p&q"), "Basic YStiJTNBYzpwJTI2cQ==");
        assert_eq!(basic_auth("id", "secret"), "Basic aWQ6c2VjcmV0");
    }

    #[test]
    fn parses_standard_and_slack_answers() {
        let ok = br#"{"access_token":"at","expires_in":3599,"token_type":"Bearer"}"#;
        let r = parse_token_response(200, ok, 1000).unwrap();
        assert_eq!((r.access_token.as_str(), r.expires_at), ("at", 4599));
        assert!(r.refresh_token.is_none());

        let slack = br#"{"ok":true,"access_token":"xoxe.xoxb-1","refresh_token":"xoxe-1-n","expires_in":43200,"team":{"id":"T1"}}"#;
        let r = parse_token_response(200, slack, 0).unwrap();
        assert_eq!(r.refresh_token.as_deref(), Some("xoxe-1-n"));
        assert_eq!(r.expires_at, 43200);

        let bad = br#"{"ok":false,"error":"invalid_refresh_token"}"#;
        assert_eq!(
            parse_token_response(200, bad, 0).err(),
            Some(GrantError::reauth("invalid_refresh_token"))
        );
        let azure =
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: secret abc","error_codes":[7000215]}"#;
        let e = parse_token_response(401, azure, 0).err().unwrap();
        assert_eq!(e, GrantError::reauth("invalid_client"));
        assert!(!e.to_string().contains("AADSTS"));
    }

    #[test]
    fn malformed_answers() {
        assert_eq!(
            parse_token_response(200, b"<html>", 0).err(),
            Some(GrantError::transient("invalid_response"))
        );
        assert_eq!(
            parse_token_response(200, br#"{"ok":false}"#, 0).err(),
            Some(GrantError::reauth("ok_false"))
        );
        assert_eq!(
            parse_token_response(502, b"Bad gateway", 0).err(),
            Some(GrantError::transient("http_502"))
        );
        // Missing expires_in: the default lifetime.
        let r = parse_token_response(200, br#"{"access_token":"x"}"#, 10).unwrap();
        assert_eq!(r.expires_at, 10 + crate::refresh::grants::DEFAULT_LIFETIME_SECS);
        // A lifetime no number of seconds can hold is no lifetime: the default, not "never expires".
        for absurd in ["1e300", "-1e300", "1.5e15"] {
            let body = format!(r#"{{"access_token":"x","expires_in":{absurd}}}"#);
            let r = parse_token_response(200, body.as_bytes(), 10).unwrap();
            assert_eq!(
                r.expires_at,
                10 + crate::refresh::grants::DEFAULT_LIFETIME_SECS,
                "{absurd}"
            );
        }
    }
}
