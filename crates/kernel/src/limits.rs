//! Rate limits for what anyone on the internet can call: keyed token buckets that refill over a minute.
//!
//! The state is in the process that checks it. Several replicas of one service each keep their own, so a
//! limit holds per replica until a shared store (Redis) backs it; that comes with the cache issue.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// At most `n` a minute per key (a client IP, an e-mail address), refilled steadily.
pub struct PerMinute<K: Hash + Eq + Clone + Send + Sync + 'static> {
    buckets: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> PerMinute<K> {
    /// A limit of `n` a minute (at least 1). Keys whose buckets are full again are forgotten every minute,
    /// so the map does not grow without bound; the task doing it ends with the limit.
    pub fn new(n: u32) -> Arc<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let limit = Arc::new(Self { buckets: RateLimiter::keyed(quota) });
        let weak = Arc::downgrade(&limit);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limit) = weak.upgrade() else { break };
                limit.buckets.retain_recent();
            }
        });
        limit
    }

    /// Spends one for `key`; `Err(seconds)` says how long to wait before the next is allowed.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        self.buckets
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[tokio::test]
    async fn a_key_over_its_limit_waits_and_another_key_does_not() {
        let limit = PerMinute::new(3);
        let (one, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            limit.check(&one).expect("within the limit");
        }
        let wait = limit.check(&one).expect_err("over the limit");
        assert!((1..=61).contains(&wait), "{wait}");
        limit.check(&other).expect("another key has its own bucket");
    }
}
