//! The connect flows' two outbound calls: the authorization-code exchange (RFC 6749 §4.1.3 with the PKCE
//! verifier of RFC 7636) and token revocation (RFC 7009; Google's and Slack's endpoints take the same form).

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};

use super::oauth::{parse_token_response, post_form};
use super::{GrantContext, GrantError, check_endpoint, token_url};
use crate::providers::{AnswerValue, OAuthConnect, ProviderSpec, RefreshKind, TokenData};

/// Exchanges `code` at the provider's token endpoint and maps the answer onto the catalog's field names
/// (`oauth.answer`). The platform's client authenticates as the provider's refresh grant does.
pub async fn exchange_code(
    spec: &ProviderSpec,
    oauth: &OAuthConnect,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    ctx: &GrantContext<'_>,
) -> Result<Map<String, Value>, GrantError> {
    let platform = ctx.settings.provider(spec);
    let client_id = platform
        .client_id
        .as_deref()
        .ok_or_else(|| GrantError::misconfigured(format!("{} is not set", spec.client_id_env_var())))?;
    let client_secret = platform.client_secret.as_ref().map(|s| s.expose_secret());
    let url = token_url(spec, &TokenData::new(Map::new()), ctx.settings)?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let (status, body) = post_form(ctx, &url, &form, client_auth(spec), client_id, client_secret).await?;
    // Errors (and Slack's `ok: false`) are sorted like a refresh's; a success has an access token.
    parse_token_response(status, &body, ctx.now)?;
    let answer: Value = serde_json::from_slice(&body).map_err(|_| GrantError::transient("invalid_response"))?;
    Ok(map_answer(oauth, &answer, ctx.now))
}

/// How the platform's client authenticates at this provider's token endpoint (as its refresh grant does).
fn client_auth(spec: &ProviderSpec) -> crate::providers::ClientAuth {
    let kinds = std::iter::once(spec.refresh).chain(spec.variants.iter().map(|v| v.refresh));
    kinds
        .filter_map(|k| match k {
            RefreshKind::OAuthRefreshToken { client_auth, .. } => Some(client_auth),
            _ => None,
        })
        .next()
        .unwrap_or(crate::providers::ClientAuth::Body)
}

/// The token data the catalog's `answer` describes; absent values are left out.
fn map_answer(oauth: &OAuthConnect, answer: &Value, now: i64) -> Map<String, Value> {
    let expires_in = match answer.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0);
    let mut out = Map::new();
    for (field, source) in oauth.answer {
        let value = match source {
            AnswerValue::Pointer(p) => answer.pointer(p).filter(|v| !v.is_null() && *v != "").cloned(),
            AnswerValue::Const(c) => Some(Value::from(*c)),
            AnswerValue::ExpiresAt => expires_in.map(|s| Value::from(now.saturating_add(s))),
            AnswerValue::Now => Some(Value::from(now)),
        };
        if let Some(v) = value {
            out.insert((*field).to_string(), v);
        }
    }
    out
}

/// Revokes a deleted credential's grant at `url` (the catalog's endpoint or `TOKENKEEPER_<P>_REVOKE_URL`):
/// the first of `token_fields` present is posted with the platform's client. `Ok(true)`: the provider
/// confirmed (2xx, and not Slack's `ok: false`); `Ok(false)`: it refused; `Err`: it could not be asked.
pub async fn revoke(
    spec: &ProviderSpec,
    url: &str,
    token_fields: &[&str],
    token_data: &TokenData,
    ctx: &GrantContext<'_>,
) -> Result<bool, GrantError> {
    check_endpoint(url)?;
    let Some((field, token)) = token_fields
        .iter()
        .find_map(|f| token_data.str_field(f).map(|t| (*f, t)))
    else {
        return Ok(false);
    };
    let platform = ctx.settings.provider(spec);
    let hint = if field == "refresh_token" {
        "refresh_token"
    } else {
        "access_token"
    };
    let form = [("token", token), ("token_type_hint", hint)];
    let (status, body) = match platform.client_id.as_deref() {
        Some(id) => {
            let secret = platform.client_secret.as_ref().map(|s| s.expose_secret());
            post_form(ctx, url, &form, client_auth(spec), id, secret).await?
        }
        None => {
            let req = ctx.http.post(url).form(&form);
            super::send(req).await?
        }
    };
    let refused = serde_json::from_slice::<Value>(&body).is_ok_and(|j| j.get("ok") == Some(&Value::Bool(false)));
    Ok((200..300).contains(&status) && !refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_answer_maps_to_aurora_fields() {
        let spec = crate::providers::find("slack").unwrap();
        let crate::providers::Connect::OAuth(oauth) = spec.connect else {
            panic!("slack connects by OAuth")
        };
        let answer = serde_json::json!({"ok": true, "access_token": "xoxe.xoxb-1-a", "refresh_token": "xoxe-1-r",
            "expires_in": 43200, "team": {"id": "T1", "name": "Acme"}, "authed_user": {"id": "U1"}});
        let m = map_answer(oauth, &answer, 1000);
        assert_eq!(m["team_id"], "T1");
        assert_eq!(m["team_name"], "Acme");
        assert_eq!(m["user_id"], "U1");
        assert_eq!(m["expires_at"], 44200);
        assert_eq!(m["connected_at"], 1000);
        // Without rotation: no refresh token, no expiry.
        let m = map_answer(
            oauth,
            &serde_json::json!({"ok": true, "access_token": "xoxb-1", "team": {"id": "T1"}}),
            5,
        );
        assert!(!m.contains_key("refresh_token") && !m.contains_key("expires_at"));
    }
}
