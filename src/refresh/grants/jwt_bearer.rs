//! The JWT-bearer grant (RFC 7523) with a service-account key: an RS256 assertion signed with the key's
//! `private_key`, posted to the key's `token_uri` — only when that is Google's endpoint or the configured
//! `TOKENKEEPER_<P>_TOKEN_URL`, never anywhere else a key file may point to (no SSRF).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use super::oauth::parse_token_response;
use super::{GrantContext, GrantError, Refreshed, check_endpoint, send, updated};
use crate::providers::rsa_key::{self, RsaKeyError};
use crate::providers::{ProviderSpec, TokenData};

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
    token_data: &TokenData,
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
    let override_url = ctx.settings.provider(spec).token_url.as_deref();
    if token_uri != GOOGLE_TOKEN_URI && Some(token_uri) != override_url {
        return Err(GrantError::reauth("token_uri not allowed"));
    }
    check_endpoint(token_uri)?;

    let key_error = |e: RsaKeyError| GrantError::reauth(format!("service account private_key {e}"));
    let signing_key = rsa_key::signing_key(private_key).map_err(key_error)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = key.get("private_key_id").and_then(Value::as_str).map(str::to_owned);
    let claims = Claims {
        iss: client_email.to_owned(),
        scope: scope.to_owned(),
        aud: token_uri.to_owned(),
        iat: ctx.now,
        exp: ctx.now + ASSERTION_LIFETIME_SECS,
    };
    let assertion = sign_off_worker(header, claims, signing_key).await?;

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
fn service_account_key(token_data: &TokenData) -> Result<Map<String, Value>, GrantError> {
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

/// The assertion's claims (RFC 7523 section 3, as Google reads them).
#[derive(Serialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// The signed JWT. An RSA signature is CPU work that grows with the cube of the key size: it runs on the
/// blocking pool, never on an async worker, where it would stall every request sharing that thread.
async fn sign_off_worker(header: Header, claims: Claims, key: EncodingKey) -> Result<String, GrantError> {
    tokio::task::spawn_blocking(move || jsonwebtoken::encode(&header, &claims, &key))
        .await
        .map_err(|_| GrantError::transient("signing_interrupted"))?
        // The key's structure was read already: what fails here is an inconsistent key (its numbers do
        // not make an RSA key).
        .map_err(|_| GrantError::reauth(format!("service account private_key {}", RsaKeyError::NotRsa)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};

    fn claims() -> Claims {
        Claims {
            iss: "sa@example.iam.gserviceaccount.com".into(),
            scope: "https://www.googleapis.com/auth/cloud-platform".into(),
            aud: GOOGLE_TOKEN_URI.into(),
            iat: 1_700_000_000,
            exp: 1_700_003_600,
        }
    }

    #[tokio::test]
    async fn signs_a_verifiable_rs256_jwt() {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("0123456789abcdef".into());
        let jwt = sign_off_worker(header, claims(), rsa_key::signing_key(&pem).unwrap())
            .await
            .unwrap();

        let public = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&key.to_public_key()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&[GOOGLE_TOKEN_URI]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_rsa_der(public.as_bytes()),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.header.kid.as_deref(), Some("0123456789abcdef"));
        assert_eq!(decoded.header.typ.as_deref(), Some("JWT"));
        assert_eq!(decoded.claims["iss"], "sa@example.iam.gserviceaccount.com");
        assert_eq!(decoded.claims["exp"], 1_700_003_600);
    }

    /// The signature is computed on the blocking pool: with its only thread busy, signing waits for it
    /// (signed on the async worker, the first poll would return the JWT).
    #[test]
    fn signs_on_the_blocking_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let pem = include_str!("../../../tests/fixtures/rsa-4096.pem");
        let key = rsa_key::signing_key(pem).unwrap();
        rt.block_on(async {
            let (release, held) = std::sync::mpsc::channel::<()>();
            let busy = tokio::task::spawn_blocking(move || held.recv());
            let mut signing = std::pin::pin!(sign_off_worker(Header::new(Algorithm::RS256), claims(), key));
            assert!(futures::poll!(signing.as_mut()).is_pending());
            release.send(()).unwrap();
            busy.await.unwrap().unwrap();
            let jwt = signing.await.unwrap();
            assert_eq!(jwt.split('.').count(), 3);
        });
    }

    #[tokio::test]
    async fn refuses_an_inconsistent_key() {
        // A well-formed key structure whose numbers are not an RSA key: the modulus of one key, the private
        // exponent of another.
        let der = |k: &rsa::RsaPrivateKey| rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(k).unwrap();
        let a = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let b = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let (a, b) = (der(&a), der(&b));
        let a_fields = rsa::pkcs1::RsaPrivateKey::try_from(a.as_bytes()).unwrap();
        let b_fields = rsa::pkcs1::RsaPrivateKey::try_from(b.as_bytes()).unwrap();
        let mixed = rsa::pkcs1::RsaPrivateKey {
            private_exponent: b_fields.private_exponent,
            ..a_fields
        };
        let mixed = rsa::pkcs1::der::Encode::to_der(&mixed).unwrap();
        let err = sign_off_worker(
            Header::new(Algorithm::RS256),
            claims(),
            EncodingKey::from_rsa_der(&mixed),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            GrantError::reauth("service account private_key is not an RSA PEM key")
        );
    }
}
