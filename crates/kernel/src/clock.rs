//! The wall clock as OmniDesk stores it: Unix time in milliseconds (every `*_at` column) or seconds
//! (signatures, token claims).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in whole seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
