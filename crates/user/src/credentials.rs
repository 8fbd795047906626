//! Secrets the user service handles: password hashes (argon2id) and refresh tokens (random, stored as
//! SHA-256).
//!
//! Hashing is CPU- and memory-heavy by design (19 MiB a hash), so it runs off the request threads, on a
//! small pool of its own ([`Hashers`]): one thread per core, and a bounded queue in front of them. The
//! memory of a hash stays with the thread that computed it (the allocator keeps it for that thread's next
//! one), so what hashing holds is at most a hash per pool thread however many clients log in at once —
//! on tokio's blocking pool, which grows to hundreds of threads, it grew with every concurrent login.
//! When the queue is full the caller is told to come back ([`Busy`]: 503 with `Retry-After`) instead of
//! waiting behind a backlog it cannot see.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

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

/// Hashes waiting for a pool thread, per thread, beyond which callers are refused.
const QUEUED_PER_THREAD: usize = 8;

/// The process's password-hashing pool, started on first use.
static HASHERS: LazyLock<Hashers> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    Hashers::new(threads, threads * QUEUED_PER_THREAD)
});

/// Every pool thread is busy and the queue is full: the caller should retry shortly.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is busy; retry shortly")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that compute password hashes, fed by a bounded queue.
pub struct Hashers {
    jobs: SyncSender<Job>,
}

impl Hashers {
    /// `threads` threads, and room for `queued` jobs waiting for one.
    pub fn new(threads: usize, queued: usize) -> Self {
        let (jobs, waiting) = sync_channel::<Job>(queued);
        let waiting: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(waiting));
        for index in 0..threads.max(1) {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new().name(format!("password-hash-{index}")).spawn(move || {
                loop {
                    // The lock is held only to take the next job, not while running it.
                    let next = waiting.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(error = %error, "a password-hashing thread did not start");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on a pool thread and returns what it returned; [`Busy`] when the queue is full.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(result.await?),
            Err(TrySendError::Full(_)) => Err(Busy.into()),
            Err(TrySendError::Disconnected(_)) => Err(anyhow::anyhow!("the password-hashing pool has stopped")),
        }
    }
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's minimum).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    Ok(HASHERS.run(move || hash_now(&password)).await??)
}

/// Verifies `password` against `hash`, or against a decoy when there is no user.
pub async fn verify_password(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    let known = hash.is_some();
    let ok = HASHERS
        .run(move || {
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
    async fn hashing_runs_on_the_pools_threads_only_and_a_full_queue_is_refused_not_grown() {
        use std::collections::HashSet;
        let pool = Arc::new(Hashers::new(2, 3));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        // Two jobs hold both threads until released; three wait in the queue; the sixth is refused.
        let mut held = Vec::new();
        for index in 0..5 {
            let (pool, gate) = (pool.clone(), gate.clone());
            held.push(tokio::spawn(async move {
                pool.run(move || {
                    let _ = gate.lock().expect("gate").recv();
                    std::thread::current().id()
                })
                .await
            }));
            if index == 1 {
                // Let both threads take theirs before the queue fills behind them.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let refused = pool.run(|| std::thread::current().id()).await;

        assert!(refused.expect_err("the queue is full").downcast_ref::<Busy>().is_some());
        for _ in 0..5 {
            release.send(()).expect("released");
        }
        let mut threads = HashSet::new();
        for job in held {
            threads.insert(job.await.expect("joined").expect("ran"));
        }
        assert!(threads.len() <= 2, "every hash ran on one of the pool's two threads: {threads:?}");
        assert!(pool.run(|| 1).await.is_ok(), "room again once the queue drains");
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
