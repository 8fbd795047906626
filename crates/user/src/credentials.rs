//! Secrets the user service handles: password hashes (argon2id) and refresh tokens (random, stored as
//! SHA-256). Hashing is CPU-heavy by design, so it runs on the blocking pool, off the request threads.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A hash verified when the e-mail is unknown, so that "no such user" takes as long as "wrong password"
/// and response times do not reveal which addresses are registered.
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now("decoy password that matches nothing").unwrap_or_default());

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's minimum).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || hash_now(&password)).await??)
}

/// Verifies `password` against `hash`, or against a decoy when there is no user.
pub async fn verify_password(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    let known = hash.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DECOY_HASH.clone());
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await?;
    Ok(known && ok)
}

/// A new opaque refresh token.
pub fn new_refresh_token() -> String {
    kernel::auth::opaque_token("rt_")
}

/// What is stored for a refresh token.
pub fn refresh_token_hash(token: &str) -> String {
    kernel::auth::token_digest(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await.expect("verify"));
        assert!(!verify_password("wrong horse".into(), Some(hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify_password("decoy password that matches nothing".into(), None).await.expect("verify"));
    }

    #[test]
    fn refresh_tokens_are_unique_and_hashed_deterministically() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(refresh_token_hash(&a), refresh_token_hash(&a));
        assert_eq!(refresh_token_hash(&a).len(), 64);
    }
}
