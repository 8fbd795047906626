//! Rendered conversation lists, kept until the account changes.
//!
//! Agents' browsers ask for the same list over and over (every tab, every refresh, every reconnect), and
//! most of the time nothing in the account has changed since the last answer. Every change of an account's
//! conversations already goes through the realtime feed's wake-up ([`Feed::notify`](crate::realtime::Feed)),
//! which also drops the account's cached lists here, so a list is rendered once per change rather than once
//! per request. A list computed while a change committed is not kept (each account has a generation,
//! checked before storing). Entries also expire after [`TTL`]: writes made by another replica of the inbox
//! service do not reach this process's wake-ups, and that bounds how stale its lists can be.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use contracts::AccountId;

/// How long a rendered list may be served without a wake-up from this process.
pub const TTL: Duration = Duration::from_secs(2);
/// Lists kept per account (each user's tabs and filters are separate entries).
const PER_ACCOUNT: usize = 64;
/// Accounts with cached lists before the cache starts over.
const ACCOUNTS: usize = 10_000;

#[derive(Default)]
pub struct ListCache {
    accounts: Mutex<HashMap<AccountId, Lists>>,
}

#[derive(Default)]
struct Lists {
    generation: u64,
    entries: HashMap<String, (Instant, Bytes)>,
}

impl ListCache {
    /// The account's current generation, to pass to [`ListCache::put`] with what is computed now.
    pub fn generation(&self, account: AccountId) -> u64 {
        self.accounts.lock().map_or(0, |accounts| accounts.get(&account).map_or(0, |lists| lists.generation))
    }

    pub fn get(&self, account: AccountId, key: &str) -> Option<Bytes> {
        let accounts = self.accounts.lock().ok()?;
        let (stored, body) = accounts.get(&account)?.entries.get(key)?;
        (stored.elapsed() < TTL).then(|| body.clone())
    }

    /// Keeps `body` unless the account changed since `generation` was read.
    pub fn put(&self, account: AccountId, generation: u64, key: String, body: Bytes) {
        let Ok(mut accounts) = self.accounts.lock() else { return };
        if accounts.len() >= ACCOUNTS && !accounts.contains_key(&account) {
            accounts.clear();
        }
        let lists = accounts.entry(account).or_default();
        if lists.generation != generation {
            return;
        }
        if lists.entries.len() >= PER_ACCOUNT {
            lists.entries.clear();
        }
        lists.entries.insert(key, (Instant::now(), body));
    }

    /// The account changed: its lists are rendered again on the next request.
    pub fn invalidate(&self, account: AccountId) {
        if let Ok(mut accounts) = self.accounts.lock()
            && let Some(lists) = accounts.get_mut(&account)
        {
            lists.generation += 1;
            lists.entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_drops_the_accounts_lists_and_a_list_computed_across_it_is_not_kept() {
        let cache = ListCache::default();
        let (account, other) = (AccountId::new(), AccountId::new());
        cache.put(account, cache.generation(account), "open".to_owned(), Bytes::from_static(b"[1]"));
        cache.put(other, cache.generation(other), "open".to_owned(), Bytes::from_static(b"[2]"));
        assert_eq!(cache.get(account, "open").as_deref(), Some(&b"[1]"[..]));

        let before = cache.generation(account);
        cache.invalidate(account);
        assert_eq!(cache.get(account, "open"), None);
        assert_eq!(cache.get(other, "open").as_deref(), Some(&b"[2]"[..]), "other accounts keep theirs");

        cache.put(account, before, "open".to_owned(), Bytes::from_static(b"[stale]"));
        assert_eq!(cache.get(account, "open"), None, "computed before the change, so not kept");
    }
}
