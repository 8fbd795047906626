//! Login rate limits, per e-mail address (guessing one account's password) and per client IP (spraying
//! many accounts). Both are token buckets that refill over a minute.
//!
//! The state is in the process hosting the user service. Running several replicas of it needs a shared
//! store (Redis) for the limits to hold across replicas; that comes with the cache issue.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The two login limiters.
pub struct LoginLimits {
    per_email: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimits {
    pub fn new(per_email_per_minute: u32, per_ip_per_minute: u32) -> Arc<Self> {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let limits = Arc::new(Self {
            per_email: RateLimiter::keyed(quota(per_email_per_minute)),
            per_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
        });
        // Forget keys whose buckets are full again, so the maps do not grow without bound.
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                limits.per_email.retain_recent();
                limits.per_ip.retain_recent();
            }
        });
        limits
    }

    /// Spends one attempt for this address and IP; `Err(seconds)` says how long to wait.
    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), u64> {
        let clock = DefaultClock::default();
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(clock.now()).as_secs() + 1;
        self.per_ip.check_key(&ip).map_err(wait)?;
        self.per_email.check_key(&email.to_owned()).map_err(wait)?;
        Ok(())
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
