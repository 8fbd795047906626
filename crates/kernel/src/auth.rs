//! Authentication that needs no hop (DESIGN §4): the user service signs short-lived access tokens with an
//! Ed25519 private key ([`TokenSigner`]); every process verifies them locally with the public key
//! ([`TokenVerifier`]). The account (tenancy) travels in the token, so every handler knows whose data it
//! may touch without asking anyone: the [`Caller`] extractor. [`KeyFiles`] are where the key pair lives.
//!
//! A verifier remembers up to 10,000 tokens that verified, each until its `exp`, so a client's repeated
//! requests pay for the signature check once. Tokens taken back before they expire ([`revocation`]) are
//! refused even from that memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::{Problem, bearer_token};

pub mod revocation;

pub use revocation::{Revocation, RevocationLog, Revoker};

const ISSUER: &str = "omnidesk";

/// Declares UUID newtype ids: `Display`, `FromStr`, `TryFrom<String>`, serde (and OpenAPI) as a plain string, a text
/// column (bound and read as rows' fields: [`stored_as_text!`](crate::stored_as_text)), and `new()` for a
/// fresh time-ordered (v7) id. Used here and by the contracts crate.
#[macro_export]
macro_rules! uuid_id {
    ($($(#[$meta:meta])* $id:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct $id(pub ::uuid::Uuid);

        impl ::std::fmt::Display for $id {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }
        impl ::std::str::FromStr for $id {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }
        impl ::std::convert::TryFrom<String> for $id {
            type Error = ::uuid::Error;
            fn try_from(s: String) -> ::std::result::Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl $id {
            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }
        }
        impl ::std::default::Default for $id {
            fn default() -> Self {
                Self::new()
            }
        }
        impl $crate::__utoipa::PartialSchema for $id {
            fn schema() -> $crate::__utoipa::openapi::RefOr<$crate::__utoipa::openapi::schema::Schema> {
                $crate::openapi::uuid_schema()
            }
        }
        impl $crate::__utoipa::ToSchema for $id {}
        $crate::stored_as_text!($id: |id: &$id| id.0, |text: &str| text.parse::<$id>().ok());
    )*};
}

uuid_id! {
    /// A user's id.
    UserId;
    /// An account's (workspace's) id: the tenant every query is scoped by.
    AccountId;
}

/// A member's role in an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    /// Whether this role may manage other members of the account.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Role::parse(&s).ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// The claims inside an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessClaims {
    sub: UserId,
    acc: AccountId,
    role: Role,
    iss: String,
    iat: u64,
    /// When it was issued, in Unix milliseconds: a revocation refuses the tokens issued before it, and
    /// seconds cannot tell a token issued just before it from one issued just after. Tokens from before
    /// this claim existed count from the start of their `iat` second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat_ms: Option<i64>,
    exp: u64,
    jti: Uuid,
}

impl AccessClaims {
    fn issued_ms(&self) -> i64 {
        self.iat_ms.unwrap_or_else(|| i64::try_from(self.iat.saturating_mul(1000)).unwrap_or(i64::MAX))
    }
}

/// Who is calling: the verified content of the request's bearer token. Extracting it is authentication;
/// a missing, malformed, forged or expired token is a 401 problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub account: AccountId,
    pub role: Role,
}

/// Verifies access tokens with the public key. Present in every process.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    verified: Verified,
    revoked: revocation::Revoked,
}

/// How many verified tokens a [`TokenVerifier`] remembers.
const VERIFIED_CAPACITY: usize = 10_000;

/// Tokens that verified, with what they said and when they expire. Checking an Ed25519 signature costs
/// tens of microseconds, a large part of a cached request; an agent's client sends the same token with
/// every request until it expires, so each token's signature is checked once. A remembered token is
/// taken only before its `exp`: from then on it goes through full verification again (which allows the
/// clock leeway, or answers `token_expired`). Only what verified is remembered, so a token that does not
/// is checked in full every time; the map is keyed by the whole token, so a token differing from a
/// remembered one in any byte is not it.
#[derive(Default)]
struct Verified(std::sync::Mutex<std::collections::HashMap<String, Checked>>);

/// What a token that verified says: who, until when (Unix seconds), issued when (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked {
    caller: Caller,
    exp: u64,
    issued_ms: i64,
}

impl Verified {
    fn get(&self, token: &str, now: u64) -> Option<Checked> {
        let entries = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(token).copied().filter(|checked| now < checked.exp)
    }

    /// Remembers a verified token; when full, forgets the expired ones, or all if none has expired.
    fn remember(&self, token: &str, checked: Checked, now: u64) {
        let mut entries = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= VERIFIED_CAPACITY {
            entries.retain(|_, remembered| now < remembered.exp);
            if entries.len() >= VERIFIED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), checked);
    }
}

impl TokenVerifier {
    pub fn from_public_pem(pem: &[u8]) -> Result<Self, String> {
        let key = DecodingKey::from_ed_pem(pem).map_err(|e| format!("invalid Ed25519 public key: {e}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(Self { key, validation, verified: Verified::default(), revoked: revocation::Revoked::new() })
    }

    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        self.verify_until(token).map(|(caller, _)| caller)
    }

    /// [`TokenVerifier::verify`], with when the token expires (Unix seconds): for a connection that
    /// outlives a request, such as the realtime WebSocket, and must end when its token does.
    /// A revoked token is refused (`token_revoked`) whether or not its signature was checked before.
    pub fn verify_until(&self, token: &str) -> Result<(Caller, u64), Problem> {
        let now = u64::try_from(crate::clock::now_secs()).unwrap_or(0);
        let checked = match self.verified.get(token, now) {
            Some(checked) => checked,
            None => {
                let checked = self.check(token)?;
                self.verified.remember(token, checked, now);
                checked
            }
        };
        if self.revoked.refuses(&checked.caller, checked.issued_ms) {
            return Err(Problem::unauthorized(
                "token_revoked",
                "This access token was revoked (the membership changed or the sessions were signed out); sign in again.",
            ));
        }
        Ok((checked.caller, checked.exp))
    }

    /// Checks the token's signature and claims.
    fn check(&self, token: &str) -> Result<Checked, Problem> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Problem::unauthorized("token_expired", "The access token has expired; refresh it.")
                }
                _ => Problem::unauthorized("invalid_token", "The access token is not valid."),
            })?;
        let claims = data.claims;
        Ok(Checked {
            caller: Caller { user: claims.sub, account: claims.acc, role: claims.role },
            exp: claims.exp,
            issued_ms: claims.issued_ms(),
        })
    }
}

/// Signs access tokens. Only in the process hosting the user service.
pub struct TokenSigner {
    key: EncodingKey,
    ttl: Duration,
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct SignedToken {
    pub token: String,
    pub expires_in: Duration,
}

impl TokenSigner {
    pub fn from_private_pem(pem: &[u8], ttl: Duration) -> Result<Self, String> {
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| format!("invalid Ed25519 private key: {e}"))?;
        Ok(Self { key, ttl })
    }

    pub fn sign(&self, caller: Caller) -> Result<SignedToken, jsonwebtoken::errors::Error> {
        self.sign_issued_at(caller, revocation::unix_ms())
    }

    /// [`TokenSigner::sign`] for a token that counts as issued at `issued_ms` (Unix milliseconds, not
    /// after now): the start of the request it is issued by, so that a revocation committed while that
    /// request ran refuses it. It expires a lifetime after that.
    pub fn sign_issued_at(&self, caller: Caller, issued_ms: i64) -> Result<SignedToken, jsonwebtoken::errors::Error> {
        let now_ms = issued_ms.min(revocation::unix_ms());
        let now = u64::try_from(now_ms / 1000).unwrap_or_default();
        let claims = AccessClaims {
            sub: caller.user,
            acc: caller.account,
            role: caller.role,
            iss: ISSUER.to_owned(),
            iat: now,
            iat_ms: Some(now_ms),
            exp: now + self.ttl.as_secs(),
            jti: Uuid::new_v4(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)?;
        Ok(SignedToken { token, expires_in: self.ttl })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let verifier = parts
            .extensions
            .get::<Arc<TokenVerifier>>()
            .ok_or_else(|| Problem::internal(&"the token verifier layer is missing"))?;
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| Problem::unauthorized("missing_token", "Send `Authorization: Bearer <access token>`."))??;
        verifier.verify(token)
    }
}

/// `Option<Caller>`: `None` without an `Authorization` header (for endpoints that can authenticate another
/// way, such as a WebSocket's first frame); a header that is there must hold a valid token.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            <Caller as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A new opaque bearer secret (refresh tokens, plan tokens): 256 random bits, URL-safe, with a prefix
/// that tells a reader what it is (`rt_`, `pt_`).
pub fn opaque_token(prefix: &str) -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for an opaque token: its SHA-256, hex. The tokens are high-entropy, so a fast hash is
/// enough, and a copy of the table does not let anyone use them.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest as _;
    crate::signature::hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// Where the signing key pair lives on disk.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

impl KeyFiles {
    /// The default place under the data directory.
    pub fn under(data_dir: &Path) -> Self {
        let dir = data_dir.join("keys");
        Self { private_key: dir.join("access-token.ed25519.pem"), public_key: dir.join("access-token.ed25519.pub.pem") }
    }

    /// Creates a new key pair unless the private key exists already. The private key file is 0600.
    pub fn ensure(&self) -> std::io::Result<()> {
        if self.private_key.exists() {
            return Ok(());
        }
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| std::io::Error::other("key generation failed"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| std::io::Error::other("bad key"))?;
        // SubjectPublicKeyInfo for Ed25519 is a fixed 12-byte prefix followed by the 32-byte key (RFC 8410).
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(pair.public_key().as_ref());

        for path in [&self.private_key, &self.public_key] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        write_private(&self.private_key, private_pem.as_bytes())?;
        std::fs::write(&self.public_key, pem::encode(&pem::Pem::new("PUBLIC KEY", spki)))
    }

    pub fn verifier(&self) -> Result<TokenVerifier, String> {
        let pem = std::fs::read(&self.public_key)
            .map_err(|e| format!("reading the public key {}: {e}", self.public_key.display()))?;
        TokenVerifier::from_public_pem(&pem)
    }

    pub fn signer(&self, ttl: Duration) -> Result<TokenSigner, String> {
        let pem = std::fs::read(&self.private_key)
            .map_err(|e| format!("reading the private key {}: {e}", self.private_key.display()))?;
        TokenSigner::from_private_pem(&pem, ttl)
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, KeyFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = KeyFiles::under(dir.path());
        files.ensure().expect("keys");
        (dir, files)
    }

    fn caller() -> Caller {
        Caller { user: UserId::new(), account: AccountId::new(), role: Role::Owner }
    }

    #[test]
    fn a_signed_token_verifies_with_the_public_key_alone() {
        let (_dir, files) = keys();
        let caller = caller();
        let token = files.signer(Duration::from_secs(60)).expect("signer").sign(caller).expect("signs");

        assert_eq!(files.verifier().expect("verifier").verify(&token.token), Ok(caller));
    }

    #[test]
    fn a_token_signed_by_another_key_is_rejected() {
        let (_a, ours) = keys();
        let (_b, theirs) = keys();
        let token = theirs.signer(Duration::from_secs(60)).expect("signer").sign(caller()).expect("signs");

        let problem = ours.verifier().expect("verifier").verify(&token.token).expect_err("forged");
        assert_eq!(problem.code, "invalid_token");
    }

    #[test]
    fn an_expired_token_is_rejected_as_expired() {
        let (_dir, files) = keys();
        let signer = files.signer(Duration::from_secs(0)).expect("signer");
        let mut token = signer.sign(caller()).expect("signs");
        // Forge an already-expired token with the right key: iat/exp far in the past.
        let claims = AccessClaims {
            sub: UserId::new(),
            acc: AccountId::new(),
            role: Role::Agent,
            iss: ISSUER.to_owned(),
            iat: 1_000,
            iat_ms: None,
            exp: 1_060,
            jti: Uuid::new_v4(),
        };
        token.token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &signer.key).expect("encodes");

        let problem = files.verifier().expect("verifier").verify(&token.token).expect_err("expired");
        assert_eq!(problem.code, "token_expired");
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_and_no_altered_copy_is_taken_for_it() {
        let (_dir, files) = keys();
        let verifier = files.verifier().expect("verifier");
        let caller = caller();
        let token = files.signer(Duration::from_secs(60)).expect("signer").sign(caller).expect("signs").token;
        assert_eq!(verifier.verify(&token), Ok(caller));
        assert_eq!(verifier.verify(&token), Ok(caller), "again, from memory");

        let mut altered = token.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(verifier.verify(&altered).expect_err("altered").code, "invalid_token");

        let remembered = Verified::default();
        let checked = Checked { caller, exp: 100, issued_ms: 40_000 };
        remembered.remember(&token, checked, 50);
        assert_eq!(remembered.get(&token, 99), Some(checked));
        assert_eq!(remembered.get(&token, 100), None, "checked in full again from its exp on");
    }

    #[test]
    fn verified_tokens_are_bounded_forgetting_expired_ones_first() {
        let remembered = Verified::default();
        let until = |exp| Checked { caller: caller(), exp, issued_ms: 0 };
        for i in 0..VERIFIED_CAPACITY {
            remembered.remember(&format!("old-{i}"), until(10), 0);
        }
        remembered.remember("new", until(100), 20);
        assert_eq!(remembered.0.lock().expect("lock").len(), 1, "the expired ones went");

        for i in 1..VERIFIED_CAPACITY {
            remembered.remember(&format!("live-{i}"), until(100), 20);
        }
        assert_eq!(remembered.0.lock().expect("lock").len(), VERIFIED_CAPACITY);
        remembered.remember("last", until(100), 20);
        assert_eq!(remembered.0.lock().expect("lock").len(), 1, "none had expired: all went");
        assert!(remembered.get("last", 20).is_some());
    }

    #[test]
    fn a_revoked_token_is_refused_even_from_memory_and_a_later_one_is_taken() {
        let (_dir, files) = keys();
        let verifier = files.verifier().expect("verifier");
        let signer = files.signer(Duration::from_secs(60)).expect("signer");
        let caller = caller();
        let before = signer.sign(caller).expect("signs").token;
        let elsewhere = signer.sign(Caller { account: AccountId::new(), ..caller }).expect("signs").token;
        assert_eq!(verifier.verify(&before), Ok(caller), "remembered from here on");
        let mut changes = verifier.revocation_changes();
        std::thread::sleep(Duration::from_millis(2));

        verifier.revoke(&[Revocation {
            user: caller.user,
            account: Some(caller.account),
            before_ms: revocation::unix_ms(),
        }]);

        assert!(changes.has_changed().expect("open"), "watchers are woken");
        assert_eq!(verifier.verify(&before).expect_err("revoked").code, "token_revoked");
        assert!(verifier.verify(&elsewhere).is_ok(), "the same user's token in another account is not concerned");
        std::thread::sleep(Duration::from_millis(2));
        let after = signer.sign(caller).expect("signs").token;
        assert_eq!(verifier.verify(&after), Ok(caller), "a token issued after the revocation is taken");
        changes.mark_unchanged();
        verifier.revoke(&[Revocation { user: caller.user, account: Some(caller.account), before_ms: 0 }]);
        assert!(!changes.has_changed().expect("open"), "an older revocation changes nothing");
    }

    #[test]
    fn a_revocation_in_every_account_refuses_the_users_tokens_in_all_of_them() {
        let (_dir, files) = keys();
        let verifier = files.verifier().expect("verifier");
        let signer = files.signer(Duration::from_secs(60)).expect("signer");
        let caller = caller();
        let other_account = signer.sign(Caller { account: AccountId::new(), ..caller }).expect("signs").token;
        let someone_else = signer.sign(Caller { user: UserId::new(), ..caller }).expect("signs").token;
        std::thread::sleep(Duration::from_millis(2));

        verifier.revoke(&[Revocation { user: caller.user, account: None, before_ms: revocation::unix_ms() }]);

        assert_eq!(verifier.verify(&other_account).expect_err("revoked").code, "token_revoked");
        assert!(verifier.verify(&someone_else).is_ok());
    }

    #[test]
    fn existing_keys_are_kept_and_the_private_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, files) = keys();
        let before = std::fs::read(&files.private_key).expect("read");
        files.ensure().expect("idempotent");
        assert_eq!(std::fs::read(&files.private_key).expect("read"), before);
        let mode = std::fs::metadata(&files.private_key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
