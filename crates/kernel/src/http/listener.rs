//! The accept loop of every OmniDesk listener (the monolith, each process of a split topology, the
//! gateway), with the defences a listener needs against clients that hold connections without using them:
//!
//! - **A request head must arrive in time**: within `header_read_timeout` of the connection opening or of
//!   the previous response. hyper's header-read timer runs from the moment a connection waits for a
//!   request, so the one bound closes both a client that sends half a header and stops and a keep-alive
//!   connection left idle: the idle keep-alive timeout and the header-read timeout are the same setting.
//!   (A slow body is bounded by the request timeout of the edge stack, which covers the handler reading it.)
//! - **Connections are capped**: at most `max_connections` at once in the process (never more than the
//!   open-file limit leaves room for, after what the databases and outgoing calls need), and at most
//!   `max_connections_per_ip` from one client address (for IPv6, from one /64). Peers in `trusted_proxies` speak for many clients
//!   and are not capped per address. A connection over a cap is answered `503` problem+json with
//!   `Retry-After` and closed, so a flood costs its sender and not the clients already being served.
//! - **Running out of descriptors is survived**: an accept that fails for lack of resources (EMFILE,
//!   ENFILE, ENOBUFS, ENOMEM) is retried after a pause that grows to a second, instead of in a tight loop;
//!   connections already open are served meanwhile and free descriptors as they close.
//!
//! Not bounded here: an upgraded WebSocket leaves hyper and this loop's caps (its lifetime is the realtime
//! service's business: it closes when its token expires or is revoked), and a client that stops reading
//! a response holds its connection until the kernel's TCP timeouts end it, since hyper has no write
//! timeout; both count against the process's open files, which the caps leave room for.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::Problem;
use crate::config::HttpConfig;

/// How a listener treats its connections (see the module documentation).
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// How long a connection may take to deliver a complete request head, counted from its opening or its
    /// previous response; also how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// Connections served at once by this listener; further ones are refused with 503.
    pub max_connections: usize,
    /// Connections served at once for one client address; 0 for no per-address cap.
    pub max_connections_per_ip: usize,
    /// Peers that speak for many clients (the gateway, a reverse proxy): not capped per address.
    pub trusted_proxies: Arc<[IpAddr]>,
}

impl From<&HttpConfig> for ListenerSettings {
    fn from(http: &HttpConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            max_connections: http.max_connections,
            max_connections_per_ip: http.max_connections_per_ip,
            trusted_proxies: http.trusted_proxies.clone().into(),
        }
    }
}

/// Descriptors kept free of connections for what the process itself opens: database files and their
/// WAL and shared-memory files, outgoing HTTP and broker connections, key files.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How long a refused connection is given to take its 503 and close, and how many are refused at once
/// (beyond that a connection over the cap is closed without an answer).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSALS_AT_ONCE: usize = 64;

/// The longest pause between accepts that fail for lack of resources.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and lets open connections
/// finish their requests; resolves when they have (the caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ListenerSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let max_connections = connection_cap(settings.max_connections);
    let occupancy = Arc::new(Occupancy::new(max_connections, settings.max_connections_per_ip));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let refusal = Arc::new(refusal_bytes());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let (stopping, _) = tokio::sync::watch::channel(false);
    let mut backoff = Duration::ZERO;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
                tracing::error!(error = %error, backoff_ms = backoff.as_millis() as u64, "accept failed; pausing");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let capped_ip = (!settings.trusted_proxies.contains(&peer.ip())).then(|| client_network(peer.ip()));
        let Some(slot) = Occupancy::enter(&occupancy, capped_ip) else {
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                let refusal = refusal.clone();
                tokio::spawn(async move {
                    refuse(stream, &refusal).await;
                    drop(permit);
                });
            }
            continue;
        };
        super::set_nodelay(&stream);
        let service = router.clone().map_request(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(Body::new)
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
        let mut stop = stopping.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            // Stopping: the request in flight is finished (an idle connection closes at once).
            let result = match finished {
                Some(result) => result,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection closed with an error");
            }
            drop(slot);
            drop(stop);
        });
    }
    drop(listener);
    // Every connection holds a receiver; once all have finished, `closed` resolves.
    stopping.send_replace(true);
    stopping.closed().await;
}

/// What the per-client cap counts connections by: the IPv4 address, or the /64 an IPv6 address is in
/// (one host holds a whole /64 and may use any address in it).
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

/// Accept errors that concern one connection (it was gone before it was accepted), not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// `configured`, lowered (with a warning) to what the open-file limit leaves after
/// [`RESERVED_DESCRIPTORS`]. The soft limit is first raised to the hard one, as servers commonly do: the
/// soft default (often 1,024) is a guard for programs that leak descriptors, not a budget for a server.
fn connection_cap(configured: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return configured };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let room = usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(limit / 2)).unwrap_or(usize::MAX);
    if configured > room {
        tracing::warn!(
            configured,
            open_file_limit = limit,
            max_connections = room,
            "http.max_connections lowered to what the open-file limit allows"
        );
        return room;
    }
    configured
}

/// Connections open now, in all and per client address.
struct Occupancy {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One connection's place in [`Occupancy`], given back when it closes.
struct Slot {
    occupancy: Arc<Occupancy>,
    ip: Option<IpAddr>,
}

impl Occupancy {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self { max_total, max_per_ip, open: Mutex::new((0, HashMap::new())) }
    }

    /// A place for a connection from `ip` (`None`: not capped per address), if both caps allow one.
    fn enter(occupancy: &Arc<Self>, ip: Option<IpAddr>) -> Option<Slot> {
        let mut open = occupancy.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_ip) = &mut *open;
        if *total >= occupancy.max_total {
            return None;
        }
        if let Some(ip) = ip
            && occupancy.max_per_ip > 0
        {
            let from_ip = per_ip.entry(ip).or_default();
            if *from_ip >= occupancy.max_per_ip {
                return None;
            }
            *from_ip += 1;
        }
        *total += 1;
        Some(Slot { occupancy: occupancy.clone(), ip: ip.filter(|_| occupancy.max_per_ip > 0) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.occupancy.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(ip) = self.ip
            && let Some(from_ip) = per_ip.get_mut(&ip)
        {
            *from_ip -= 1;
            if *from_ip == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// The whole HTTP response a connection over a cap gets.
fn refusal_bytes() -> Vec<u8> {
    let problem = Problem::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "The server has as many connections as it serves at once; retry shortly.",
    );
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n",
        super::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    bytes.extend(body);
    bytes
}

/// Answers a connection over a cap and closes it. Whatever the client sent is read (briefly) after the
/// answer and before closing: closing with unread data makes the kernel reset the connection, and the
/// client would lose the answer.
async fn refuse(mut stream: TcpStream, refusal: &[u8]) {
    let answer = async {
        stream.write_all(refusal).await?;
        stream.shutdown().await?;
        let mut sink = [0_u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
}

#[cfg(test)]
mod tests;
