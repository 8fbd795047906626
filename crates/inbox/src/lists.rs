//! Rendered conversation lists, kept until the account changes.
//!
//! Agents' browsers ask for the same list over and over (every tab, every refresh, every reconnect), and
//! most of the time nothing in the account has changed since the last answer. Every change of an account's
//! conversations already goes through the realtime feed's wake-up (`Feed::notify`, in feed.rs),
//! which also drops the account's cached lists here, so a list is rendered once per change rather than once
//! per request. A list computed while a change committed is not kept (each account has a generation,
//! checked before storing). Entries also expire after [`TTL`]: writes made by another replica of the inbox
//! service do not reach this process's wake-ups, and that bounds how stale its lists can be.
//!
//! On a busy desk the account changes many times a second, and right after each change every agent's
//! browser asks again. A request for a list that is being rendered from the account's current state
//! waits for that rendering instead of rendering it too ([`ListCache::get_or_render`]); it gets the same
//! answer, which is as fresh as one of its own would be, since no change committed after it arrived. So
//! a list is rendered at most once per change however many ask for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use contracts::AccountId;
use tokio::sync::watch;

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
    entries: HashMap<String, Entry>,
}

enum Entry {
    Ready {
        stored: Instant,
        body: Bytes,
    },
    /// Being rendered from the account's current state (a change clears the account's entries); the
    /// body arrives here when it is done. Closed without one, the rendering failed or was abandoned.
    Rendering(watch::Receiver<Option<Bytes>>),
}

/// What a request finds for its list.
enum Found {
    Ready(Bytes),
    Rendering(watch::Receiver<Option<Bytes>>),
    /// Nobody has it: the request renders it, at `generation`, and hands it to those who wait.
    Absent {
        generation: u64,
        done: watch::Sender<Option<Bytes>>,
    },
}

impl ListCache {
    /// The list `key` of `account`: kept, being rendered by another request (then its answer), or
    /// rendered now by `render`. A failed rendering is not kept; whoever waited for it renders their own.
    pub async fn get_or_render<E>(
        &self,
        account: AccountId,
        key: String,
        render: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<Bytes, E> {
        match self.find(account, &key) {
            Found::Ready(body) => Ok(body),
            Found::Rendering(mut rendering) => {
                let rendered = rendering.wait_for(Option::is_some).await.ok().and_then(|body| body.clone());
                match rendered {
                    Some(body) => Ok(body),
                    None => render.await,
                }
            }
            Found::Absent { generation, done } => {
                let body = render.await?;
                self.put(account, generation, key, body.clone());
                done.send_replace(Some(body.clone()));
                Ok(body)
            }
        }
    }

    fn find(&self, account: AccountId, key: &str) -> Found {
        let Ok(mut accounts) = self.accounts.lock() else {
            // A poisoned cache caches nothing; the list is rendered for each request.
            return Found::Absent { generation: 0, done: watch::channel(None).0 };
        };
        if accounts.len() >= ACCOUNTS && !accounts.contains_key(&account) {
            accounts.clear();
        }
        let lists = accounts.entry(account).or_default();
        match lists.entries.get(key) {
            Some(Entry::Ready { stored, body }) if stored.elapsed() < TTL => return Found::Ready(body.clone()),
            Some(Entry::Rendering(rendering)) if rendering.has_changed().is_ok() => {
                return Found::Rendering(rendering.clone());
            }
            _ => {}
        }
        if lists.entries.len() >= PER_ACCOUNT {
            lists.entries.clear();
        }
        let (done, rendering) = watch::channel(None);
        lists.entries.insert(key.to_owned(), Entry::Rendering(rendering));
        Found::Absent { generation: lists.generation, done }
    }

    /// Keeps `body` unless the account changed since `generation`.
    fn put(&self, account: AccountId, generation: u64, key: String, body: Bytes) {
        let Ok(mut accounts) = self.accounts.lock() else { return };
        if let Some(lists) = accounts.get_mut(&account)
            && lists.generation == generation
        {
            lists.entries.insert(key, Entry::Ready { stored: Instant::now(), body });
        }
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Renders `body`, counting renderings, once `go` is notified.
    async fn rendering(
        renders: &AtomicUsize,
        go: &tokio::sync::Notify,
        body: &'static [u8],
    ) -> Result<Bytes, &'static str> {
        renders.fetch_add(1, Ordering::SeqCst);
        go.notified().await;
        Ok(Bytes::from_static(body))
    }

    async fn cached(cache: &ListCache, account: AccountId, key: &str) -> Result<Bytes, &'static str> {
        cache.get_or_render(account, key.to_owned(), async { Err("rendered, not kept") }).await
    }

    #[tokio::test]
    async fn a_change_drops_the_accounts_lists_and_a_list_computed_across_it_is_not_kept() {
        let cache = ListCache::default();
        let (account, other) = (AccountId::new(), AccountId::new());
        let ok = |body: &'static [u8]| async move { Ok::<_, &str>(Bytes::from_static(body)) };
        cache.get_or_render(account, "open".to_owned(), ok(b"[1]")).await.expect("rendered");
        cache.get_or_render(other, "open".to_owned(), ok(b"[2]")).await.expect("rendered");
        assert_eq!(cached(&cache, account, "open").await.as_deref(), Ok(&b"[1]"[..]));

        cache.invalidate(account);
        assert_eq!(cached(&cache, account, "open").await, Err("rendered, not kept"));
        assert_eq!(cached(&cache, other, "open").await.as_deref(), Ok(&b"[2]"[..]), "other accounts keep theirs");

        let across = cache.get_or_render(account, "open".to_owned(), async {
            cache.invalidate(account);
            Ok::<_, &str>(Bytes::from_static(b"[stale]"))
        });
        assert_eq!(across.await.as_deref(), Ok(&b"[stale]"[..]), "its own request gets it");
        assert_eq!(cached(&cache, account, "open").await, Err("rendered, not kept"), "computed across a change");
    }

    #[tokio::test]
    async fn requests_for_a_list_being_rendered_wait_for_it_unless_the_account_changed_since() {
        let cache = Arc::new(ListCache::default());
        let account = AccountId::new();
        let (renders, go) = (Arc::new(AtomicUsize::new(0)), Arc::new(tokio::sync::Notify::new()));
        let ask = |body: &'static [u8]| {
            let (cache, renders, go) = (cache.clone(), renders.clone(), go.clone());
            tokio::spawn(async move {
                cache.get_or_render(account, "open".to_owned(), rendering(&renders, &go, body)).await
            })
        };
        let first = ask(b"[before]");
        tokio::task::yield_now().await;
        let joined: Vec<_> = (0..5).map(|_| ask(b"[again]")).collect();
        tokio::task::yield_now().await;
        assert_eq!(renders.load(Ordering::SeqCst), 1, "the others wait for the first");

        // After a change, a request renders the list from the new state rather than wait.
        cache.invalidate(account);
        let after = ask(b"[after]");
        while renders.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        go.notify_waiters();

        assert_eq!(first.await.expect("task").as_deref(), Ok(&b"[before]"[..]));
        for request in joined {
            assert_eq!(request.await.expect("task").as_deref(), Ok(&b"[before]"[..]), "asked before the change");
        }
        assert_eq!(after.await.expect("task").as_deref(), Ok(&b"[after]"[..]));
        assert_eq!(renders.load(Ordering::SeqCst), 2);
        assert_eq!(cached(&cache, account, "open").await.as_deref(), Ok(&b"[after]"[..]), "the fresh one is kept");
    }

    #[tokio::test]
    async fn when_the_rendering_request_goes_away_those_waiting_render_their_own() {
        let cache = Arc::new(ListCache::default());
        let account = AccountId::new();
        let (renders, go) = (Arc::new(AtomicUsize::new(0)), Arc::new(tokio::sync::Notify::new()));
        let abandoned = tokio::spawn({
            let (cache, renders, go) = (cache.clone(), renders.clone(), go.clone());
            async move { cache.get_or_render(account, "open".to_owned(), rendering(&renders, &go, b"[never]")).await }
        });
        tokio::task::yield_now().await;
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move {
                let own = async { Ok::<_, &str>(Bytes::from_static(b"[own]")) };
                cache.get_or_render(account, "open".to_owned(), own).await
            }
        });
        tokio::task::yield_now().await;

        abandoned.abort();

        assert_eq!(waiting.await.expect("task").as_deref(), Ok(&b"[own]"[..]));
        let next = async { Ok::<_, &str>(Bytes::from_static(b"[next]")) };
        let rendered = cache.get_or_render(account, "open".to_owned(), next).await;
        assert_eq!(rendered.as_deref(), Ok(&b"[next]"[..]), "an abandoned rendering is not waited for again");
    }
}
