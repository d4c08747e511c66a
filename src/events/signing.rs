//! Standard Webhooks signatures: `webhook-signature: v1,<base64 of HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
//! The secret is given either as `whsec_<base64>` (the key is the decoded bytes, as Standard Webhooks
//! libraries take it) or as plain text (the key is its bytes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// The key that signs webhook requests. Debug shows nothing of it.
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFormatError {
    #[error("the part after whsec_ is not valid base64")]
    NotBase64,
    #[error("the secret is empty")]
    Empty,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let key = match text.strip_prefix(PREFIX) {
            Some(encoded) => STANDARD.decode(encoded).map_err(|_| SecretFormatError::NotBase64)?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        Ok(Self(key.into()))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header's value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }

    /// Whether any `v1,` signature of a `webhook-signature` header (space-separated, as sent during a
    /// secret rotation) is this secret's over the message. Compared in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split_whitespace().any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b64| STANDARD.decode(b64).ok())
                .is_some_and(|given| self.mac(id, timestamp, body).verify_slice(&given).is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_like_the_reference_libraries() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY.as_bytes()), SIG);
        assert!(s.verify(ID, TS, BODY.as_bytes(), &format!("v1,bm9wZQ== {SIG}")));
        assert!(!s.verify(ID, TS + 1, BODY.as_bytes(), SIG));
        assert!(!s.verify(ID, TS, b"{}", SIG));
        assert!(!s.verify(ID, TS, BODY.as_bytes(), "v2,abc"));
    }

    #[test]
    fn a_bad_whsec_secret_is_refused_and_debug_shows_nothing() {
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            SecretFormatError::NotBase64
        );
        assert_eq!(WebhookSecret::parse("whsec_").unwrap_err(), SecretFormatError::Empty);
        let plain = WebhookSecret::parse("plain-text-key").unwrap();
        assert!(!format!("{plain:?}").contains("plain"));
    }
}
