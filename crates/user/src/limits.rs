//! Login rate limits: brute force stays bounded, and a stranger cannot lock a user out.
//!
//! Three bounds, each a token bucket refilled over a minute (`kernel::limits::PerMinute`):
//! - **per client** (`auth.login_attempts_per_ip_per_minute`, 60): every attempt from one client IP,
//!   whatever the address — spraying many accounts;
//! - **per address from one client** (`auth.login_attempts_per_email_per_client_per_minute`, 5): guessing
//!   one account's password from one place. A stranger spends only their own bucket: the user, from their
//!   own client, still logs in;
//! - **per address from every client it is not known on** (`auth.login_failures_per_email_per_minute`,
//!   20): failed attempts only, against an address from clients it has never signed in from — guessing
//!   from many places at once (a botnet). While this bound is spent, such clients are refused, but a client
//!   the user has signed in from before (remembered per process, up to [`KNOWN_CLIENTS_PER_ADDRESS`]) is
//!   not: the attack slows to the bound's pace without denying the user. A user on a client they have
//!   not signed in from (a new device, a new network, or any after this process restarted) does wait
//!   during such an attack: the bound limits the damage, it cannot tell them from the attacker.
//!
//! A client is its IPv4 address, or the /64 of its IPv6 address (a host may use any address in it).
//!
//! The state is in the process hosting the user service (see `kernel::limits`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kernel::limits::PerMinute;

/// How many clients each address remembers having signed in from.
pub const KNOWN_CLIENTS_PER_ADDRESS: usize = 8;

/// How many addresses the known clients and the refusals are kept for; past it, the oldest half of what
/// is remembered is forgotten (a user is then one failed bound away from being unknown, nothing worse).
const REMEMBERED_ADDRESSES: usize = 100_000;

/// The bounds, in attempts a minute.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimitSettings {
    pub per_client: u32,
    pub per_address_and_client: u32,
    pub failures_per_address: u32,
}

/// The login limiters (see the module documentation).
pub struct LoginLimits {
    per_client: Arc<PerMinute<IpAddr>>,
    per_address_and_client: Arc<PerMinute<(String, IpAddr)>>,
    failures_per_address: Arc<PerMinute<String>>,
    memory: Mutex<Memory>,
}

/// What the limits remember of addresses: where each has signed in from, and until when unknown clients
/// are refused for it.
#[derive(Default)]
struct Memory {
    known: HashMap<String, Vec<IpAddr>>,
    refused_until: HashMap<String, Instant>,
}

impl LoginLimits {
    pub fn new(settings: LoginLimitSettings) -> Arc<Self> {
        Arc::new(Self {
            per_client: PerMinute::new(settings.per_client),
            per_address_and_client: PerMinute::new(settings.per_address_and_client),
            failures_per_address: PerMinute::new(settings.failures_per_address),
            memory: Mutex::default(),
        })
    }

    /// Spends one attempt at `email` from `ip`, before the password is checked; `Err(seconds)` says how
    /// long to wait.
    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), u64> {
        let ip = kernel::http::client_network(ip);
        self.per_client.check(&ip)?;
        self.per_address_and_client.check(&(email.to_owned(), ip))?;
        let mut memory = self.memory();
        if memory.is_known(email, ip) {
            return Ok(());
        }
        match memory.refused_until.get(email).copied() {
            Some(until) if until > Instant::now() => Err(until.duration_since(Instant::now()).as_secs() + 1),
            Some(_) => {
                memory.refused_until.remove(email);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a wrong password for `email` from `ip` against the address's bound, unless the client is one
    /// the address has signed in from.
    pub fn failed(&self, email: &str, ip: IpAddr) {
        let ip = kernel::http::client_network(ip);
        let mut memory = self.memory();
        if memory.is_known(email, ip) {
            return;
        }
        if let Err(wait_secs) = self.failures_per_address.check(&email.to_owned()) {
            memory.forget_if_full();
            memory.refused_until.insert(email.to_owned(), Instant::now() + Duration::from_secs(wait_secs));
        }
    }

    /// Remembers that `email` signed in from `ip`.
    pub fn succeeded(&self, email: &str, ip: IpAddr) {
        let ip = kernel::http::client_network(ip);
        let mut memory = self.memory();
        memory.forget_if_full();
        let known = memory.known.entry(email.to_owned()).or_default();
        known.retain(|&client| client != ip);
        if known.len() >= KNOWN_CLIENTS_PER_ADDRESS {
            known.remove(0);
        }
        known.push(ip);
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Memory {
    fn is_known(&self, email: &str, ip: IpAddr) -> bool {
        self.known.get(email).is_some_and(|clients| clients.contains(&ip))
    }

    fn forget_if_full(&mut self) {
        if self.known.len() >= REMEMBERED_ADDRESSES {
            let forget: Vec<String> = self.known.keys().take(REMEMBERED_ADDRESSES / 2).cloned().collect();
            for email in forget {
                self.known.remove(&email);
            }
        }
        if self.refused_until.len() >= REMEMBERED_ADDRESSES {
            let now = Instant::now();
            self.refused_until.retain(|_, until| *until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
    const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    fn limits(per_client: u32, per_address_and_client: u32, failures_per_address: u32) -> Arc<LoginLimits> {
        LoginLimits::new(LoginLimitSettings { per_client, per_address_and_client, failures_per_address })
    }

    /// A wrong password, as the handler reports it.
    fn fail(limits: &LoginLimits, email: &str, ip: IpAddr) -> Result<(), u64> {
        limits.check(email, ip)?;
        limits.failed(email, ip);
        Ok(())
    }

    #[tokio::test]
    async fn the_sixth_attempt_at_one_address_from_one_client_within_a_minute_is_refused() {
        let limits = limits(100, 5, 100);
        for _ in 0..5 {
            fail(&limits, "a@example.jp", STRANGER).expect("within the limit");
        }
        let wait = limits.check("a@example.jp", STRANGER).expect_err("over the limit");
        assert!((1..=61).contains(&wait), "{wait}");
        limits.check("b@example.jp", STRANGER).expect("another address is not affected");
    }

    #[tokio::test]
    async fn a_strangers_failures_do_not_lock_the_user_out() {
        let limits = limits(100, 5, 100);
        for _ in 0..5 {
            fail(&limits, "owner@example.jp", STRANGER).expect("within the limit");
        }
        assert!(limits.check("owner@example.jp", STRANGER).is_err(), "the stranger is refused");

        limits.check("owner@example.jp", OWNER).expect("the owner, from their own client, is not");
    }

    #[tokio::test]
    async fn failures_from_many_clients_are_bounded_per_address_but_a_known_client_still_signs_in() {
        let limits = limits(100, 100, 3);
        limits.check("owner@example.jp", OWNER).expect("first sign-in");
        limits.succeeded("owner@example.jp", OWNER);

        for n in 0..4u8 {
            let botnet = IpAddr::from([192, 0, 2, n]);
            let _ = fail(&limits, "owner@example.jp", botnet);
        }

        let newcomer = IpAddr::from([192, 0, 2, 200]);
        assert!(limits.check("owner@example.jp", newcomer).is_err(), "unknown clients wait while the bound is spent");
        limits.check("owner@example.jp", OWNER).expect("a client the owner signed in from is not refused");
        limits.check("someone@example.jp", newcomer).expect("other addresses are not concerned");
    }

    #[tokio::test]
    async fn one_client_is_limited_across_addresses() {
        let limits = limits(3, 100, 100);
        for n in 0..3 {
            limits.check(&format!("{n}@example.jp"), STRANGER).expect("within the limit");
        }
        assert!(limits.check("x@example.jp", STRANGER).is_err());
        assert!(limits.check("x@example.jp", OWNER).is_ok());
    }

    #[tokio::test]
    async fn an_address_remembers_its_latest_clients() {
        let limits = limits(100, 100, 100);
        for n in 0..=KNOWN_CLIENTS_PER_ADDRESS as u8 {
            limits.succeeded("owner@example.jp", IpAddr::from([10, 0, 0, n]));
        }
        let memory = limits.memory();
        assert!(!memory.is_known("owner@example.jp", IpAddr::from([10, 0, 0, 0])), "the oldest is forgotten");
        assert!(memory.is_known("owner@example.jp", IpAddr::from([10, 0, 0, KNOWN_CLIENTS_PER_ADDRESS as u8])));
    }
}
