//! bcrypt hashing and verification, always on the blocking pool.

use actix_web::web;

use crate::error::ApiError;

/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A well-formed bcrypt salt and digest that matches no password. Verifying against it
/// with the configured cost makes a login for an unknown user cost what a wrong password
/// costs (OWASP Authentication Cheat Sheet: authentication responses).
const DUMMY_SALT_AND_DIGEST: &str = "Kq8Zf1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nT9cO1mB7yQwE3sV5nS";

/// Hashes and verifies passwords with the configured work factor.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    cost: u32,
    dummy_hash: String,
}

impl PasswordHasher {
    /// A hasher with bcrypt cost `cost`.
    pub fn new(cost: u32) -> Self {
        PasswordHasher {
            cost,
            dummy_hash: format!("$2b${cost:02}${DUMMY_SALT_AND_DIGEST}"),
        }
    }

    /// Hashes `password` (already validated to be at most 72 bytes).
    pub fn hash_blocking(&self, password: &str) -> Result<String, ApiError> {
        bcrypt::hash(password, self.cost)
            .map_err(|e| ApiError::Internal(format!("bcrypt hash failed: {e}")))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no
    /// user, so that both paths take the same time. Over-long passwords never match.
    pub fn verify_blocking(&self, password: &str, hash: Option<&str>) -> bool {
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let target = match hash {
            Some(hash) if !too_long => hash,
            _ => &self.dummy_hash,
        };
        let matched = bcrypt::verify(password.as_bytes(), target).unwrap_or(false);
        matched && hash.is_some() && !too_long
    }

    /// Hashes off the async workers.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let hasher = self.clone();
        web::block(move || hasher.hash_blocking(&password)).await?
    }

    /// Verifies off the async workers.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let hasher = self.clone();
        Ok(web::block(move || hasher.verify_blocking(&password, hash.as_deref())).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash_blocking("correct horse").unwrap();
        assert!(hasher.verify_blocking("correct horse", Some(&hash)));
        assert!(!hasher.verify_blocking("wrong horse", Some(&hash)));
    }

    #[test]
    fn a_72_byte_password_works_and_a_longer_one_never_matches() {
        let hasher = PasswordHasher::new(4);
        let exact = "x".repeat(72);
        let hash = hasher.hash_blocking(&exact).unwrap();
        assert!(hasher.verify_blocking(&exact, Some(&hash)));
        // bcrypt would truncate this to the stored password; we must not.
        assert!(!hasher.verify_blocking(&"x".repeat(73), Some(&hash)));
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt_and_matches_nothing() {
        let hasher = PasswordHasher::new(4);
        assert!(bcrypt::verify("anything", &hasher.dummy_hash).is_ok());
        assert!(!hasher.verify_blocking("anything", None));
    }
}
