//! The log of revoked access tokens this service keeps as the token issuer: every process reads it
//! ([`kernel::auth::revocation`]) to refuse the tokens of a removed member or of signed-out sessions
//! before they expire.

use std::time::Duration;

use kernel::auth::{Revocation, RevocationLog};
use kernel::ports::PortError;

use crate::store::Store;

/// How often revocations whose tokens have all expired are deleted.
pub const TRIM_EVERY: Duration = Duration::from_secs(3600);

/// The log, as the kernel reads it.
pub struct Log {
    pub store: Store,
}

#[async_trait::async_trait]
impl RevocationLog for Log {
    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, PortError> {
        self.store.revocations_since(since_ms).await.map_err(crate::members::unavailable)
    }
}
