//! The RSA private key of a service-account key file, and the size limit on it.
//!
//! An RSA signature costs roughly the cube of the key size: a 16,384-bit key still fits the key file's
//! 16 KiB, and every refresh would then spend about a second of CPU signing. Google issues 2048-bit keys;
//! keys over [`MAX_RSA_KEY_BITS`] are refused when stored (the validator) and again before signing (a key
//! stored before the limit existed).

use jsonwebtoken::EncodingKey;
use rsa::pkcs1::der::Decode as _;

/// The largest RSA modulus accepted, in bits.
pub const MAX_RSA_KEY_BITS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RsaKeyError {
    #[error("is not an RSA PEM key")]
    NotRsa,
    #[error("is an RSA key of {bits} bits; at most {MAX_RSA_KEY_BITS} are accepted")]
    TooLarge { bits: usize },
}

/// The signing key of a PEM RSA private key (PKCS#8, or PKCS#1 with the RSA label), refused
/// over [`MAX_RSA_KEY_BITS`]. Cheap whatever the size: it reads the key's structure, no arithmetic.
pub fn signing_key(pem: &str) -> Result<EncodingKey, RsaKeyError> {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| RsaKeyError::NotRsa)?;
    // `EncodingKey` holds the PKCS#1 `RSAPrivateKey` structure, whichever PEM it came from.
    let fields = rsa::pkcs1::RsaPrivateKey::from_der(key.as_bytes()).map_err(|_| RsaKeyError::NotRsa)?;
    let bits = bit_length(fields.modulus.as_bytes());
    if bits > MAX_RSA_KEY_BITS {
        return Err(RsaKeyError::TooLarge { bits });
    }
    Ok(key)
}

/// Bits of a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> usize {
    let be = &be[be.iter().take_while(|b| **b == 0).count()..];
    be.first()
        .map_or(0, |first| be.len() * 8 - first.leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_bits_of_the_modulus() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01, 0xff]), 9);
    }

    #[test]
    fn keys_up_to_the_limit_pass_larger_ones_are_refused() {
        let at_limit = include_str!("../../tests/fixtures/rsa-4096.pem");
        let over = include_str!("../../tests/fixtures/rsa-4098.pem");
        assert!(signing_key(at_limit).is_ok());
        assert_eq!(signing_key(over).unwrap_err(), RsaKeyError::TooLarge { bits: 4098 });
        // The same keys as PKCS#1 (the RSA label).
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let pkcs1 = |pem: &str| {
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string()
        };
        assert!(signing_key(&pkcs1(at_limit)).is_ok());
        assert_eq!(
            signing_key(&pkcs1(over)).unwrap_err(),
            RsaKeyError::TooLarge { bits: 4098 }
        );
    }

    #[test]
    fn refuses_what_is_not_an_rsa_key() {
        // Armour around garbage (built so that no real-looking key sits in the source).
        let garbage = format!("-----BEGIN {0} KEY-----\nAAAA\n-----END {0} KEY-----\n", "PRIVATE");
        assert_eq!(signing_key(&garbage).unwrap_err(), RsaKeyError::NotRsa);
        assert_eq!(signing_key("not pem").unwrap_err(), RsaKeyError::NotRsa);
    }
}
