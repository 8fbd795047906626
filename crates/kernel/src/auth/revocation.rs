//! Taking access tokens back before they expire: a member removed from an account, every session of a
//! user signed out, a password changed.
//!
//! Access tokens are verified in every process without a hop, so the issuing service cannot recall one by
//! itself. It records a [`Revocation`] instead — "tokens of this user, in this account (or in all of them),
//! issued before this instant are refused" — in the same transaction as the change, and every process
//! learns it:
//! - the issuing process at once: the service hands what it committed to its [`Revoker`];
//! - every process (the issuing one too, as a safety net) by reading the issuer's [`RevocationLog`] every
//!   [`POLL`]: a direct call where the issuer is hosted, `/internal/<issuer>/token_revocations` otherwise.
//!
//! A revocation matters only while tokens issued before it can still be valid, so the log is read over
//! that window (the access-token lifetime plus the clock leeway) and not after a cursor: a change
//! committed late, or read twice, is never skipped and never counted twice, on any database engine.
//! [`TokenVerifier::verify`] refuses a revoked token whether or not its signature was remembered, and
//! [`TokenVerifier::revocation_changes`] wakes connections that outlive a request (the realtime socket)
//! so they check their token again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{AccountId, Caller, TokenVerifier, UserId};
use crate::ports::{PortError, RemoteClient};

/// Tokens of `user` issued before `before_ms` (Unix milliseconds) are refused: in `account`, or in every
/// account when it is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub user: UserId,
    pub account: Option<AccountId>,
    pub before_ms: i64,
}

/// Where the issuing service keeps the revocations it made; implemented by that service.
#[async_trait]
pub trait RevocationLog: Send + Sync + 'static {
    /// Every revocation whose `before_ms` is at or after `since_ms`.
    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, PortError>;
}

/// How often every process reads the issuer's log: a revocation takes effect everywhere within about this.
pub const POLL: Duration = Duration::from_millis(500);

/// A follower that has not read the log for this long says so in `/readyz`.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// The name of the internal method serving the log (`/internal/<issuer>/token_revocations`).
pub(crate) const METHOD: &str = "token_revocations";

/// What one verifier knows has been revoked: for each user and account (or `None`: all of them), the
/// latest instant before which their tokens are refused.
pub(super) struct Revoked {
    entries: Mutex<HashMap<(UserId, Option<AccountId>), i64>>,
    changes: watch::Sender<u64>,
}

impl Revoked {
    pub(super) fn new() -> Self {
        Self { entries: Mutex::default(), changes: watch::channel(0).0 }
    }

    /// Whether a token of `caller` issued at `issued_ms` is revoked.
    pub(super) fn refuses(&self, caller: &Caller, issued_ms: i64) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.is_empty() {
            return false;
        }
        [Some(caller.account), None]
            .into_iter()
            .filter_map(|account| entries.get(&(caller.user, account)))
            .any(|&before_ms| issued_ms < before_ms)
    }

    /// Adds `revocations`; wakes the watchers when one of them is new.
    fn apply(&self, revocations: &[Revocation]) {
        let mut changed = false;
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            for revocation in revocations {
                let before_ms = entries.entry((revocation.user, revocation.account)).or_insert(i64::MIN);
                if revocation.before_ms > *before_ms {
                    *before_ms = revocation.before_ms;
                    changed = true;
                }
            }
        }
        if changed {
            self.changes.send_modify(|generation| *generation += 1);
        }
    }

    /// Forgets revocations from before `since_ms`: every token they concern has expired.
    fn forget_before(&self, since_ms: i64) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, before_ms| *before_ms >= since_ms);
    }
}

impl TokenVerifier {
    /// Refuses from now on the tokens `revocations` name.
    pub fn revoke(&self, revocations: &[Revocation]) {
        self.revoked.apply(revocations);
    }

    /// Changes whenever a revocation is learnt: a connection that outlives its request checks its token
    /// again then.
    pub fn revocation_changes(&self) -> watch::Receiver<u64> {
        self.revoked.changes.subscribe()
    }
}

/// What the issuing service holds to make its own process refuse what it has just revoked, without
/// waiting for the next read of its log.
#[derive(Clone)]
pub struct Revoker(pub(crate) Arc<TokenVerifier>);

impl std::fmt::Debug for Revoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revoker")
    }
}

impl Revoker {
    /// Applies revocations the service has committed.
    pub fn revoked(&self, revocations: &[Revocation]) {
        self.0.revoke(revocations);
    }
}

/// The issuer's log as a process that does not host the issuer reads it.
pub(crate) struct RemoteLog(pub RemoteClient);

#[async_trait]
impl RevocationLog for RemoteLog {
    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, PortError> {
        self.0.call(METHOD, true, &(since_ms,)).await
    }
}

/// When the log was last read, for `/readyz`.
#[derive(Default)]
pub(crate) struct FollowStatus(Mutex<Option<Instant>>);

impl FollowStatus {
    /// Why the revocations this process knows may be out of date, if they may be.
    pub(crate) fn degraded(&self) -> Option<String> {
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Some("revocations: not yet read from the token issuer; revoked tokens may be taken".to_owned()),
            Some(at) if at.elapsed() > STALE_AFTER => Some(format!(
                "revocations: last read from the token issuer {} s ago; revoked tokens may be taken",
                at.elapsed().as_secs()
            )),
            Some(_) => None,
        }
    }
}

/// Reads `log` every [`POLL`] into `verifier` until `stop`, keeping the revocations that can still concern
/// a valid token (those of the last `window`).
pub(crate) async fn follow(
    verifier: Arc<TokenVerifier>,
    log: Arc<dyn RevocationLog>,
    window: Duration,
    status: Arc<FollowStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let since_ms = unix_ms().saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        match log.revocations_since(since_ms).await {
            Ok(revocations) => {
                verifier.revoked.forget_before(since_ms);
                verifier.revoke(&revocations);
                *status.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                failures = 0;
            }
            Err(error) => {
                failures += 1;
                // Said at first and then about once a minute, not twice a second.
                if failures == 1 || failures.is_multiple_of(120) {
                    tracing::warn!(error = %error, failures, "reading token revocations failed");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
