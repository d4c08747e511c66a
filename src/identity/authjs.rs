//! Auth.js (NextAuth v5) session tokens (`docs/IDENTITY.md`).
//!
//! Auth.js stores its session as a JWE in compact serialization, `alg: "dir"`,
//! `enc: "A256CBC-HS512"` (RFC 7516, RFC 7518 §5.2.2.1 and §5.2.5), encrypted with a key derived
//! from `AUTH_SECRET`:
//!
//! ```text
//! key = HKDF-SHA256(ikm = secret, salt = cookie name,
//!                   info = "Auth.js Generated Encryption Key (<cookie name>)", 64 bytes)
//! MAC_KEY = key[..32], ENC_KEY = key[32..]
//! tag = HMAC-SHA512(MAC_KEY, AAD || IV || ciphertext || AL)[..32]
//! ```
//!
//! where AAD is the ASCII of the base64url protected header and AL the AAD length in bits
//! (u64 big-endian). This mirrors `@auth/core/jwt` `decode` (which uses `jose`'s `jwtDecrypt`):
//! recent `@auth/core` sets a `kid` header, the RFC 7638 JWK thumbprint (SHA-512) of the derived
//! key, which picks the secret; without a `kid` every secret is tried. Only
//! `A256CBC-HS512` is accepted (Auth.js's `encode` never produces anything else), and neither
//! `zip` nor `crit` headers.
//!
//! Differences from `@auth/core` decode, all stricter: no 15 s clock tolerance (expired when
//! `exp <= now`), `exp` is required, and `A256GCM` (accepted by `@auth/core` decode, never
//! produced by its encode) is refused.
//!
//! Nothing here logs, and neither errors nor `Debug` output contain the token or a secret.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Session cookie names Auth.js uses (plain HTTP, and HTTPS with the `__Secure-` prefix).
/// The cookie name is also the HKDF salt.
pub const COOKIE_NAMES: [&str; 2] = ["authjs.session-token", "__Secure-authjs.session-token"];

/// Largest token accepted (a chunked session cookie can be several chunks of 3936 chars).
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Largest chunk index accepted in `<name>.<index>` cookies.
const MAX_CHUNKS: usize = 32;

const IV_LEN: usize = 16;
const TAG_LEN: usize = 32;
const KEY_LEN: usize = 64;

/// The claims Tokenkeeper uses from a verified Auth.js session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthJsClaims {
    /// `sub`, or `id` when there is no `sub`.
    pub user_id: String,
    /// `iat`: when Auth.js last (re-)encoded the token; it changes on every session refresh.
    pub issued_at: Option<i64>,
    /// `auth_time`: the sign-in time, when the app's `jwt` callback sets it.
    pub auth_time: Option<i64>,
    /// `exp` (always present in a token that decodes successfully).
    pub expires_at: Option<i64>,
}

impl AuthJsClaims {
    /// The sign-in time to compare with the user's last password change:
    /// `auth_time` when present, else `iat`.
    pub fn signed_in_at(&self) -> Option<i64> {
        self.auth_time.or(self.issued_at)
    }
}

/// Why a token was refused. Carries no token or secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthJsError {
    /// Not a well-formed compact JWE / JWT claims set.
    #[error("malformed Auth.js session token")]
    Malformed,
    /// The header asks for an algorithm, compression or extension this decoder does not accept.
    #[error("unsupported Auth.js session token algorithm or header")]
    Unsupported,
    /// No configured secret authenticates the token (wrong secret, wrong salt, or tampered).
    #[error("Auth.js session token not authenticated by any configured secret")]
    BadSignature,
    /// No secret is configured.
    #[error("no Auth.js secret configured")]
    NoSecret,
    /// `exp <= now`.
    #[error("Auth.js session token expired")]
    Expired,
    /// `nbf > now`.
    #[error("Auth.js session token not yet valid")]
    NotYetValid,
    /// The token has no `exp` claim (Auth.js always sets one).
    #[error("Auth.js session token has no expiry")]
    MissingExpiry,
    /// Neither a `sub` nor an `id` claim holds a non-empty string.
    #[error("Auth.js session token has no subject")]
    MissingSubject,
}

/// True when `token` has the shape of a compact JWE: five dot-separated parts.
/// (A JWS/JWT has three.) Cheap: no decoding.
pub fn looks_like_jwe(token: &str) -> bool {
    token.split('.').count() == 5
}

/// Finds the Auth.js session token in a `Cookie` header value (several `Cookie` headers may be
/// joined with `"; "`), reassembling chunked cookies `<name>.0`, `<name>.1`, ... in index
/// order. Returns `(salt, token)` where the salt is the cookie name without the chunk suffix.
///
/// The `__Secure-` cookie is preferred when both are present (a browser only accepts it over
/// HTTPS). For one name, an unchunked non-empty cookie is preferred over chunks; chunks must
/// run from `.0` without gaps. The first occurrence of a repeated cookie name wins.
pub fn session_token_from_cookies(cookie_header: &str) -> Option<(&'static str, String)> {
    let pairs: Vec<(&str, &str)> = cookie_header
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (!name.is_empty()).then_some((name, value))
        })
        .collect();

    for name in [COOKIE_NAMES[1], COOKIE_NAMES[0]] {
        if let Some(token) = find_cookie(&pairs, name) {
            return Some((name, token));
        }
    }
    None
}

fn find_cookie(pairs: &[(&str, &str)], name: &str) -> Option<String> {
    if let Some((_, value)) = pairs.iter().find(|(n, _)| *n == name)
        && !value.is_empty()
    {
        return Some((*value).to_owned());
    }

    let mut chunks: Vec<Option<&str>> = Vec::new();
    for (n, value) in pairs {
        let Some(index) = n
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(parse_chunk_index)
        else {
            continue;
        };
        if index >= MAX_CHUNKS {
            continue;
        }
        if chunks.len() <= index {
            chunks.resize(index + 1, None);
        }
        if chunks[index].is_none() {
            chunks[index] = Some(value);
        }
    }
    if chunks.is_empty() {
        return None;
    }
    let mut token = String::new();
    for chunk in &chunks {
        // A missing or empty chunk (a gap) means the set is incomplete: no token.
        match chunk {
            Some(v) if !v.is_empty() => token.push_str(v),
            _ => return None,
        }
    }
    Some(token)
}

fn parse_chunk_index(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decrypts and validates an Auth.js session token.
///
/// `salt` is the cookie name the token came from (see [`COOKIE_NAMES`]); `secrets` are the
/// accepted `AUTH_SECRET` values (rotation: any may match); `now` is in epoch seconds and the
/// token is expired when `exp <= now`. The user id is `sub`, or `id` when `sub` is absent.
pub fn decode(token: &str, salt: &str, secrets: &[SecretString], now: i64) -> Result<AuthJsClaims, AuthJsError> {
    let jwe = ParsedJwe::parse(token)?;
    if secrets.is_empty() {
        return Err(AuthJsError::NoSecret);
    }
    let plaintext = jwe.decrypt(salt, secrets)?;
    claims_from_payload(&plaintext, now)
}

/// Decodes an Auth.js JWE presented as a Bearer token (no cookie name known): tries each of
/// [`COOKIE_NAMES`] as the salt.
pub fn decode_bearer(token: &str, secrets: &[SecretString], now: i64) -> Result<AuthJsClaims, AuthJsError> {
    let jwe = ParsedJwe::parse(token)?;
    if secrets.is_empty() {
        return Err(AuthJsError::NoSecret);
    }
    let mut last = AuthJsError::BadSignature;
    for salt in COOKIE_NAMES {
        match jwe.decrypt(salt, secrets) {
            Ok(plaintext) => return claims_from_payload(&plaintext, now),
            Err(AuthJsError::BadSignature) => continue,
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A structurally valid `dir` / `A256CBC-HS512` compact JWE, not yet authenticated.
struct ParsedJwe<'a> {
    /// The base64url protected header, which is the AAD.
    aad: &'a [u8],
    kid: Option<String>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

impl<'a> ParsedJwe<'a> {
    fn parse(token: &'a str) -> Result<Self, AuthJsError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Err(AuthJsError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(encrypted_key), Some(iv), Some(ciphertext), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthJsError::Malformed);
        };

        let header_bytes = b64(header_b64)?;
        let header: Map<String, Value> = serde_json::from_slice(&header_bytes).map_err(|_| AuthJsError::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some("dir")
            || header.get("enc").and_then(Value::as_str) != Some("A256CBC-HS512")
            || header.contains_key("zip")
            || header.contains_key("crit")
        {
            return Err(AuthJsError::Unsupported);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(AuthJsError::Malformed),
        };

        // `dir`: the content encryption key is the shared key; no encrypted key.
        if !encrypted_key.is_empty() {
            return Err(AuthJsError::Malformed);
        }
        let iv = b64(iv)?;
        let ciphertext = b64(ciphertext)?;
        let tag = b64(tag)?;
        if iv.len() != IV_LEN || tag.len() != TAG_LEN || ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
            return Err(AuthJsError::Malformed);
        }
        Ok(Self {
            aad: header_b64.as_bytes(),
            kid,
            iv,
            ciphertext,
            tag,
        })
    }

    /// Authenticates with the first secret whose derived key matches (by `kid` when present,
    /// else by trying each), then decrypts. `BadSignature` when none does.
    fn decrypt(&self, salt: &str, secrets: &[SecretString]) -> Result<Vec<u8>, AuthJsError> {
        for secret in secrets {
            let key = derive_key(secret.expose_secret().as_bytes(), salt);
            if let Some(kid) = &self.kid
                && !bool::from(jwk_thumbprint(key.as_ref()).as_bytes().ct_eq(kid.as_bytes()))
            {
                continue;
            }
            let (mac_key, enc_key) = key.split_at(KEY_LEN / 2);
            if !bool::from(self.compute_tag(mac_key)[..TAG_LEN].ct_eq(&self.tag)) {
                // With a matching kid only this secret could be the one; keep trying the
                // others anyway (two secrets may be identical), it costs nothing.
                continue;
            }
            let mut buf = Zeroizing::new(self.ciphertext.clone());
            let decryptor =
                cbc::Decryptor::<Aes256>::new_from_slices(enc_key, &self.iv).map_err(|_| AuthJsError::Malformed)?;
            let plaintext = decryptor
                .decrypt_padded_mut::<Pkcs7>(&mut buf)
                .map_err(|_| AuthJsError::Malformed)?;
            return Ok(plaintext.to_vec());
        }
        Err(AuthJsError::BadSignature)
    }

    fn compute_tag(&self, mac_key: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(mac_key).expect("HMAC accepts keys of any length");
        mac.update(self.aad);
        mac.update(&self.iv);
        mac.update(&self.ciphertext);
        mac.update(&((self.aad.len() as u64) * 8).to_be_bytes());
        Zeroizing::new(mac.finalize().into_bytes().to_vec())
    }
}

fn b64(part: &str) -> Result<Vec<u8>, AuthJsError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthJsError::Malformed)
}

/// HKDF-SHA256(ikm = secret, salt, info = "Auth.js Generated Encryption Key (<salt>)"), 64 bytes.
fn derive_key(secret: &[u8], salt: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), secret);
    let info = format!("Auth.js Generated Encryption Key ({salt})");
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(info.as_bytes(), okm.as_mut())
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// RFC 7638 JWK thumbprint of `{kty: "oct", k}` with SHA-512, base64url: the `kid` that
/// `@auth/core` `encode` puts in the header.
fn jwk_thumbprint(key: &[u8]) -> String {
    let k = Zeroizing::new(URL_SAFE_NO_PAD.encode(key));
    let mut hasher = Sha512::new();
    hasher.update(b"{\"k\":\"");
    hasher.update(k.as_bytes());
    hasher.update(b"\",\"kty\":\"oct\"}");
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn claims_from_payload(plaintext: &[u8], now: i64) -> Result<AuthJsClaims, AuthJsError> {
    let claims: Map<String, Value> = serde_json::from_slice(plaintext).map_err(|_| AuthJsError::Malformed)?;

    let issued_at = numeric_date(&claims, "iat")?;
    let auth_time = numeric_date(&claims, "auth_time")?;
    let not_before = numeric_date(&claims, "nbf")?;
    let expires_at = numeric_date(&claims, "exp")?;

    let exp = expires_at.ok_or(AuthJsError::MissingExpiry)?;
    if exp <= now {
        return Err(AuthJsError::Expired);
    }
    if not_before.is_some_and(|nbf| nbf > now) {
        return Err(AuthJsError::NotYetValid);
    }

    let user_id = match claims.get("sub") {
        None | Some(Value::Null) => match claims.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(AuthJsError::MissingSubject),
        },
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => return Err(AuthJsError::MissingSubject),
    };

    Ok(AuthJsClaims {
        user_id,
        issued_at,
        auth_time,
        expires_at,
    })
}

/// A JWT NumericDate claim: absent/null -> None; a number -> whole seconds (fractions
/// truncated toward negative infinity); anything else -> Malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthJsError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(secs) = n.as_f64().and_then(|f| crate::clock::whole_secs(f.floor())) {
                Ok(Some(secs))
            } else {
                Err(AuthJsError::Malformed)
            }
        }
        Some(_) => Err(AuthJsError::Malformed),
    }
}

#[cfg(test)]
#[path = "authjs_tests.rs"]
mod tests;
