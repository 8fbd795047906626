//! Login rate limits, per e-mail address (guessing one account's password) and per client IP (spraying
//! many accounts). Both are token buckets that refill over a minute.
//!
//! The state is in the process hosting the user service (see `kernel::limits`).

use std::net::IpAddr;
use std::sync::Arc;

use kernel::limits::PerMinute;

/// The two login limiters.
pub struct LoginLimits {
    per_email: Arc<PerMinute<String>>,
    per_ip: Arc<PerMinute<IpAddr>>,
}

impl LoginLimits {
    pub fn new(per_email_per_minute: u32, per_ip_per_minute: u32) -> Arc<Self> {
        Arc::new(Self { per_email: PerMinute::new(per_email_per_minute), per_ip: PerMinute::new(per_ip_per_minute) })
    }

    /// Spends one attempt for this address and IP; `Err(seconds)` says how long to wait.
    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check(&ip)?;
        self.per_email.check(&email.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sixth_attempt_for_one_address_within_a_minute_is_refused() {
        let limits = LoginLimits::new(5, 100);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..5 {
            limits.check("a@example.jp", ip).expect("within the limit");
        }
        let wait = limits.check("a@example.jp", ip).expect_err("over the limit");
        assert!((1..=61).contains(&wait), "{wait}");
        limits.check("b@example.jp", ip).expect("another address is not affected");
    }

    #[tokio::test]
    async fn one_ip_is_limited_across_addresses() {
        let limits = LoginLimits::new(100, 3);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for n in 0..3 {
            limits.check(&format!("{n}@example.jp"), ip).expect("within the limit");
        }
        assert!(limits.check("x@example.jp", ip).is_err());
        assert!(limits.check("x@example.jp", IpAddr::from([10, 0, 0, 2])).is_ok());
    }
}
