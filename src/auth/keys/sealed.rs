//! Private keys at rest: XChaCha20-Poly1305 under `JWT_KEY_ENCRYPTION_KEY`, the key id
//! as associated data, so that a sealed key cannot be moved to another row unnoticed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::{key_bytes, Secret};

/// The 24-byte nonce XChaCha20 takes: random nonces of this size never repeat in practice.
const NONCE_BYTES: usize = 24;

/// Why a sealed key could not be opened (or a key sealed).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The encryption key is not 32 bytes as hex or base64.
    #[error("JWT_KEY_ENCRYPTION_KEY is not 32 bytes as 64 hex characters or base64")]
    BadKey,
    /// Wrong key, or a row that was changed or moved.
    #[error(
        "the private key of {0} cannot be decrypted: JWT_KEY_ENCRYPTION_KEY is not the key it \
         was encrypted with, or the row was altered"
    )]
    Open(String),
    /// The cipher refused to encrypt (never expected).
    #[error("the private key of {0} cannot be encrypted")]
    Seal(String),
}

fn cipher(key: &Secret) -> Result<XChaCha20Poly1305, SealError> {
    let bytes = key_bytes(key.expose()).ok_or(SealError::BadKey)?;
    Ok(XChaCha20Poly1305::new(&bytes.into()))
}

/// `plain` encrypted for the row `kid`: base64 of the nonce and the ciphertext.
pub fn seal(key: &Secret, kid: &str, plain: &[u8]) -> Result<String, SealError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher(key)?
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal(kid.to_owned()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

/// What [`seal`] sealed for `kid`.
pub fn open(key: &Secret, kid: &str, sealed: &str) -> Result<Secret, SealError> {
    let bytes = STANDARD
        .decode(sealed)
        .map_err(|_| SealError::Open(kid.to_owned()))?;
    if bytes.len() <= NONCE_BYTES {
        return Err(SealError::Open(kid.to_owned()));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce
        .try_into()
        .map_err(|_| SealError::Open(kid.to_owned()))?;
    let plain = cipher(key)?
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: kid.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open(kid.to_owned()))?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| SealError::Open(kid.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_its_kid() {
        let key = Secret::new(KEY);
        let sealed = seal(&key, "kid-1", b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!sealed.contains("BEGIN"));
        let opened = open(&key, "kid-1", &sealed).unwrap();
        assert_eq!(opened.expose(), "-----BEGIN PRIVATE KEY-----");
        assert!(matches!(
            open(&key, "kid-2", &sealed),
            Err(SealError::Open(_))
        ));
        let other = Secret::new(KEY.replace('0', "f"));
        assert!(matches!(
            open(&other, "kid-1", &sealed),
            Err(SealError::Open(_))
        ));
        assert!(matches!(
            open(&key, "kid-1", "garbage"),
            Err(SealError::Open(_))
        ));
        assert_ne!(
            sealed,
            seal(&key, "kid-1", b"-----BEGIN PRIVATE KEY-----").unwrap()
        );
    }
}
