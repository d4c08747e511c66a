//! The JWT-bearer grant (RFC 7523) with a service-account key: an RS256 assertion signed with the key's
//! `private_key`, posted to the key's `token_uri` — only when that is Google's endpoint or the configured
//! `TOKENKEEPER_<P>_TOKEN_URL`, never anywhere else a key file may point to (no SSRF).

use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::oauth::parse_token_response;
use super::{GrantContext, GrantError, Refreshed, check_endpoint, send, updated};
use crate::providers::ProviderSpec;

/// Google's OAuth2 token endpoint, the `token_uri` of every real service-account key.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The token data field holding the key (JSON text, or an object).
const KEY_FIELD: &str = "service_account_json";

/// Lifetime of an assertion (Google's maximum).
const ASSERTION_LIFETIME_SECS: i64 = 3600;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub(super) async fn jwt_bearer_grant(
    spec: &ProviderSpec,
    scope: &str,
    token_data: &Map<String, Value>,
    ctx: &GrantContext<'_>,
) -> Result<Refreshed, GrantError> {
    let key = service_account_key(token_data)?;
    let field = |name: &str| -> Result<&str, GrantError> {
        match key.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            _ => Err(GrantError::reauth(format!("service account key has no {name}"))),
        }
    };
    let client_email = field("client_email")?;
    let private_key = field("private_key")?;
    let token_uri = match key.get("token_uri") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        _ => GOOGLE_TOKEN_URI,
    };
    let override_url = ctx
        .settings
        .var(&spec.token_url_env_var())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if token_uri != GOOGLE_TOKEN_URI && Some(token_uri) != override_url {
        return Err(GrantError::reauth("token_uri not allowed"));
    }
    check_endpoint(token_uri)?;

    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(Value::String(kid)) = key.get("private_key_id") {
        header["kid"] = Value::from(kid.as_str());
    }
    let claims = json!({
        "iss": client_email,
        "scope": scope,
        "aud": token_uri,
        "iat": ctx.now,
        "exp": ctx.now + ASSERTION_LIFETIME_SECS,
    });
    let assertion = sign_rs256(&header, &claims, private_key)?;

    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("assertion", &assertion)
        .finish();
    let req = ctx
        .http
        .post(token_uri)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    let (status, body) = send(req).await?;
    let resp = parse_token_response(status, &body, ctx.now)?;
    Ok(updated(
        token_data,
        [("access_token", Value::from(resp.access_token))],
        resp.expires_at,
    ))
}

/// The key, stored as JSON text (Aurora's shape) or as an object.
fn service_account_key(token_data: &Map<String, Value>) -> Result<Map<String, Value>, GrantError> {
    let parsed = match token_data.get(KEY_FIELD) {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
        Some(v @ Value::Object(_)) => Some(v.clone()),
        _ => return Err(GrantError::reauth("no service_account_json stored")),
    };
    match parsed {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(GrantError::reauth("service_account_json is not a JSON object")),
    }
}

/// A compact JWS (`header.claims.signature`, base64url without padding) signed with RS256 by a PEM key
/// (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`).
pub(crate) fn sign_rs256(header: &Value, claims: &Value, pem: &str) -> Result<String, GrantError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| GrantError::reauth("service account private_key is not an RSA PEM key"))?;
    let signing_input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
    let signature = SigningKey::<Sha256>::new(key).sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64.encode(signature.to_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
    use rsa::signature::Verifier as _;

    #[test]
    fn signs_a_verifiable_rs256_jwt() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let jwt = sign_rs256(&json!({"alg":"RS256"}), &json!({"iss":"a"}), &pem).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let sig = Signature::try_from(b64.decode(parts[2]).unwrap().as_slice()).unwrap();
        VerifyingKey::<Sha256>::new(key.to_public_key())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert_eq!(b64.decode(parts[1]).unwrap(), br#"{"iss":"a"}"#);
    }

    #[test]
    fn refuses_a_bad_key() {
        assert_eq!(
            sign_rs256(
                &json!({}),
                &json!({}),
                // Armour around garbage (built so that no real-looking key sits in the source).
                &format!("-----BEGIN {0} KEY-----\nAAAA\n-----END {0} KEY-----\n", "PRIVATE")
            )
            .unwrap_err(),
            GrantError::reauth("service account private_key is not an RSA PEM key")
        );
    }
}
