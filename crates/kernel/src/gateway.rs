//! The gateway: the public entry of the split topologies (DESIGN §3).
//!
//! In microservices and groups every service process listens on loopback, and the gateway owns the public
//! port. It forwards each request to the process hosting the service that claims the request's path in the
//! [`RouteTable`], so the public API looks exactly as it does in the monolith. It owns:
//! - forwarding: streamed request and response bodies over pooled keep-alive HTTP/1.1 connections, with
//!   hop-by-hop headers dropped and `X-Forwarded-For`/`-Proto`/`-Host` set;
//! - WebSocket and other HTTP upgrades, tunnelled byte for byte once the upstream answers 101;
//! - the refusals: paths nobody claims and every `/internal` path are 404, bodies over the deployment's
//!   `http.body_limit_bytes` are 413 (declared ones by the edge stack, before forwarding; streamed ones cut
//!   off at the limit), unreachable upstreams are 503 with `Retry-After`, broken upstream answers are 502 — all as
//!   problem+json;
//! - its own `/healthz`, `/readyz` (ready when every upstream is) and `/metrics` (RED per owning service and
//!   claimed prefix).
//!
//! *Architecture Invariant:* the gateway never forwards a path under `/internal`, and strips the
//! service-to-service credential header from every client request, so internal endpoints stay reachable
//! only from inside the deployment.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::LengthLimitError;
use http_body_util::Limited;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tower::ServiceExt;

use crate::http::{self, EdgeSettings, Problem};
use crate::metrics::Metrics;
use crate::ports::INTERNAL_AUTH_HEADER;
use crate::routes::RouteTable;

/// How long the gateway waits for a TCP connection to an upstream; upstreams are on loopback or in the same
/// cluster, so anything slower means the process is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one upstream `/readyz` check may take before the upstream counts as not ready.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The headers that describe one connection rather than the message (RFC 9110 §7.6.1); they are never
/// forwarded, except `connection` and `upgrade` while negotiating an upgrade. Every `proxy-*` header is
/// dropped as well.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Where each service's process is reachable: service name → base URL (`http://127.0.0.1:4001`).
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    origins: HashMap<&'static str, Result<Origin, String>>,
}

/// The scheme and authority of an upstream, parsed once so that forwarding a request cannot fail on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Origin {
    /// Parses a base URL; it must be plain `http://host:port` (an optional trailing `/`), because the
    /// gateway's client speaks cleartext HTTP/1.1 to processes inside the deployment.
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(format!("`{url}` needs a scheme and a host, like http://127.0.0.1:4001"));
        };
        if scheme != Scheme::HTTP {
            return Err(format!("`{url}`: the gateway reaches upstreams over http:// only"));
        }
        if parts.path_and_query.is_some_and(|pq| pq.as_str() != "/") {
            return Err(format!("`{url}`: an upstream base URL has no path"));
        }
        Ok(Self { scheme, authority })
    }

    /// The upstream URI for a request's path and query.
    fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, axum::http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query.map_or("/", PathAndQuery::as_str))
            .build()
    }
}

impl Upstreams {
    /// Maps each service to its process's base URL. A URL that does not parse is kept as an error, so the
    /// service answers 503 naming the problem instead of the gateway refusing to start.
    pub fn new(map: HashMap<&'static str, String>) -> Self {
        let origins = map
            .into_iter()
            .map(|(service, url)| {
                let origin = Origin::parse(&url);
                if let Err(reason) = &origin {
                    tracing::error!(service, reason = %reason, "upstream address is unusable");
                }
                (service, origin)
            })
            .collect();
        Self { origins }
    }

    fn origin(&self, service: &str) -> Result<&Origin, String> {
        match self.origins.get(service) {
            Some(Ok(origin)) => Ok(origin),
            Some(Err(reason)) => Err(reason.clone()),
            None => Err("no address is configured for it".to_owned()),
        }
    }
}

/// The pooled HTTP/1.1 client the gateway forwards with.
type UpstreamClient = Client<HttpConnector, Body>;

/// Everything the gateway's handlers share.
struct Gateway {
    /// (prefix, owner) from the route table, longest prefix first, so the first covering claim wins.
    claims: Vec<(&'static str, &'static str)>,
    upstreams: Upstreams,
    client: UpstreamClient,
    metrics: Metrics,
    /// Peers whose `X-Forwarded-Proto`/`-Host` are believed (a load balancer in front of the gateway).
    trusted_proxies: Arc<[IpAddr]>,
    /// The largest request body forwarded; every service applies the same limit.
    body_limit_bytes: usize,
    /// What answers the paths no service claims (the agent console), if anything.
    site: Option<Router>,
}

/// Builds the gateway router: forwards each request to the process owning its path per the RouteTable, and
/// serves the OpenAPI `document` of every service it routes to (`/api/openapi.json`, `/api/docs`) and the
/// `site` (the agent console: pages no service claims) itself.
pub fn router(
    table: RouteTable,
    document: utoipa::openapi::OpenApi,
    site: Option<Router>,
    upstreams: Upstreams,
    metrics: Metrics,
    settings: &EdgeSettings,
) -> Router {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector);

    let mut claims = table.claims();
    claims.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let gateway = Arc::new(Gateway {
        claims,
        upstreams,
        client,
        metrics: metrics.clone(),
        trusted_proxies: settings.trusted_proxies.clone(),
        body_limit_bytes: settings.body_limit_bytes,
        site,
    });

    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(gateway.clone()))
        .route("/metrics", get(http::render_metrics_for_scraper).with_state(http::ScrapeAccess::new(metrics, settings)))
        .fallback(forward)
        .with_state(gateway)
        .merge(crate::openapi::router(document));
    http::edge(router, settings)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when every upstream process answers its own `/readyz` with 200. Each process is asked once, however
/// many services it hosts, and all of them concurrently, so one slow process costs one timeout.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut failures: Vec<String> = Vec::new();
    let mut by_origin: BTreeMap<String, (Origin, Vec<&'static str>)> = BTreeMap::new();
    let mut services: Vec<&'static str> = gateway.claims.iter().map(|(_, owner)| *owner).collect();
    services.extend(gateway.upstreams.origins.keys().copied());
    services.sort_unstable();
    services.dedup();
    for service in &services {
        match gateway.upstreams.origin(service) {
            Ok(origin) => {
                by_origin
                    .entry(origin.authority.to_string())
                    .or_insert_with(|| (origin.clone(), Vec::new()))
                    .1
                    .push(service);
            }
            Err(reason) => failures.push(format!("{service} ({reason})")),
        }
    }

    let checks = by_origin.into_values().map(|(origin, hosted)| {
        let client = gateway.client.clone();
        async move { (hosted, check_ready(&client, &origin).await) }
    });
    for (hosted, outcome) in futures_util::future::join_all(checks).await {
        if let Err(reason) = outcome {
            failures.push(format!("{} ({reason})", hosted.join(", ")));
        }
    }

    if failures.is_empty() {
        axum::Json(json!({ "status": "ready", "services": services })).into_response()
    } else {
        failures.sort();
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("Not ready: {}.", failures.join("; ")))
            .into_response()
    }
}

/// Asks one upstream process whether it is ready.
async fn check_ready(client: &UpstreamClient, origin: &Origin) -> Result<(), String> {
    let uri =
        origin.uri_for(Some(&PathAndQuery::from_static("/readyz"))).map_err(|e| format!("cannot address it: {e}"))?;
    let mut request = axum::http::Request::new(Body::empty());
    *request.uri_mut() = uri;
    match tokio::time::timeout(READY_CHECK_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) if response.status() == StatusCode::OK => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status().as_u16())),
        Ok(Err(error)) if error.is_connect() => Err("not reachable".to_owned()),
        Ok(Err(error)) => Err(format!("failed: {}", error_chain(&error))),
        Err(_) => Err(format!("no answer within {} ms", READY_CHECK_TIMEOUT.as_millis())),
    }
}

/// The fallback: every path the gateway does not serve itself is forwarded to its owner, or refused.
async fn forward(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path();
    // Internal endpoints are for service-to-service calls inside the deployment only. No service can claim
    // them, but the check stands on its own so that no future change to the route table can expose them.
    if is_internal(path) || has_dot_segment(path) {
        return Problem::from_status(StatusCode::NOT_FOUND).into_response();
    }
    let Some((prefix, service)) = gateway.claim_for(path) else {
        return match gateway.site.clone() {
            Some(site) => site.oneshot(request).await.into_response(),
            None => Problem::from_status(StatusCode::NOT_FOUND).into_response(),
        };
    };

    let started = Instant::now();
    let method = method_label(request.method());
    let response = gateway.proxy(service, request).await;
    // The duration is the time to the upstream's response head; a streamed body continues after this.
    gateway.metrics.observe_http(service, method, prefix, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

impl Gateway {
    /// The claimed prefix covering `path` and its owner, by longest prefix.
    fn claim_for(&self, path: &str) -> Option<(&'static str, &'static str)> {
        self.claims.iter().copied().find(|(prefix, _)| covers(prefix, path))
    }

    /// Sends `request` to the process hosting `service` and relays its answer.
    async fn proxy(&self, service: &'static str, request: Request) -> Response {
        let origin = match self.upstreams.origin(service) {
            Ok(origin) => origin,
            Err(reason) => {
                tracing::warn!(service, reason = %reason, "upstream not configured");
                return unavailable(service);
            }
        };

        // A body declared larger than the limit never gets here: the edge refuses it (having read it, so
        // that the client gets the answer), rather than a service answering 413 without reading it while the
        // gateway is still writing it, which can lose the answer to a reset.
        let (mut parts, body) = request.into_parts();
        // A body without a length (chunked) is cut off at the limit as it streams.
        let body = Body::new(Limited::new(body, self.body_limit_bytes));
        let upgrade = wants_upgrade(&parts.headers);
        // The client's side of an upgrade must be claimed before the request is taken apart; hyper completes
        // it once our 101 response has been written.
        let client_upgrade = if upgrade { parts.extensions.remove::<OnUpgrade>() } else { None };
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let peer_trusted = peer.is_some_and(|ip| self.trusted_proxies.contains(&ip));

        let uri = match origin.uri_for(parts.uri.path_and_query()) {
            Ok(uri) => uri,
            Err(error) => {
                tracing::warn!(service, error = %error, "cannot build the upstream URI");
                return bad_gateway(service);
            }
        };
        let mut upstream_request = axum::http::Request::new(body);
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = uri;
        // The upstream connection is HTTP/1.1 whatever the client spoke to us.
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = upstream_headers(&parts.headers, upgrade, peer, peer_trusted);
        // HTTP/2 clients name the host in the URI's authority instead of a `Host` header.
        if let Some(authority) = parts.uri.authority()
            && !upstream_request.headers().contains_key(&X_FORWARDED_HOST)
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            upstream_request.headers_mut().insert(X_FORWARDED_HOST, host);
        }

        match self.client.request(upstream_request).await {
            Ok(response) => pass_back(service, response, client_upgrade),
            Err(error) if error.is_connect() => {
                tracing::warn!(service, error = %error_chain(&error), "upstream unreachable");
                unavailable(service)
            }
            Err(error) if exceeded_limit(&error) => Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE).into_response(),
            Err(error) => {
                tracing::warn!(service, error = %error_chain(&error), "upstream failed");
                bad_gateway(service)
            }
        }
    }
}

/// Whether forwarding failed because the client's streamed body passed the limit.
fn exceeded_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Turns the upstream's response into ours. A 101 starts a tunnel between the two upgraded connections.
fn pass_back(
    service: &'static str,
    mut response: axum::http::Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
) -> Response {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(response.headers_mut(), false);
        return response.map(Body::new);
    }
    let Some(client_upgrade) = client_upgrade else {
        tracing::warn!(service, "upstream switched protocols without being asked to");
        return bad_gateway(service);
    };
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(tunnel(service, client_upgrade, upstream_upgrade));
    let (mut parts, _) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, true);
    Response::from_parts(parts, Body::empty())
}

/// Copies bytes both ways between the client's and the upstream's upgraded connections until either closes.
async fn tunnel(service: &'static str, client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(service, error = %error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((to_upstream_bytes, to_client_bytes)) => {
            tracing::debug!(service, to_upstream_bytes, to_client_bytes, "upgraded connection closed");
        }
        // A peer vanishing mid-tunnel is how WebSocket connections usually end; it is not an error of ours.
        Err(error) => {
            tracing::debug!(service, error = %error, "upgraded connection ended abruptly")
        }
    }
}

/// 503 for an upstream that is not there: the client should retry shortly (a restart is usually under way).
fn unavailable(service: &str) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        format!("The `{service}` service is unavailable right now; retry shortly."),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    .into_response()
}

/// 502 for an upstream that was reached but did not answer properly.
fn bad_gateway(service: &str) -> Response {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "bad_gateway",
        format!("The `{service}` service did not answer properly; the failure has been logged."),
    )
    .into_response()
}

/// The method as a metrics label. Clients can send any token as a method; folding the unusual ones into one
/// label keeps them from creating a time series each.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[Method] =
        &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];
    KNOWN.iter().find(|known| *known == method).map_or("OTHER", Method::as_str)
}

/// Whether `prefix` covers `path` on a segment boundary (the route table's rule).
fn covers(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_internal(path: &str) -> bool {
    covers("/internal", path)
}

/// Whether the path contains `.` or `..` segments. Upstreams do not normalise them, but a path that walks
/// out of the prefix it was routed by has no business being forwarded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| segment == "." || segment == "..")
}

/// Whether the request asks to switch protocols (`Connection: upgrade` plus an `Upgrade` header).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|token| token == "upgrade")
}

/// The lowercased tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
}

/// Whether `name` describes the connection rather than the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers (and those the `Connection` header names) from a response; a 101 keeps
/// `Connection` and `Upgrade`, which are its whole point.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    let named: Vec<String> = connection_tokens(headers).collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name) || named.iter().any(|n| n == name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    if upgrading && let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// The headers sent upstream for a client request: the client's, minus hop-by-hop headers and the internal
/// credential, plus the `X-Forwarded-*` set. `peer` is the client's address; `peer_trusted` says whether it
/// is a proxy whose own `X-Forwarded-Proto`/`-Host` may be passed on.
fn upstream_headers(incoming: &HeaderMap, upgrade: bool, peer: Option<IpAddr>, peer_trusted: bool) -> HeaderMap {
    let named: Vec<String> = connection_tokens(incoming).filter(|token| token != "upgrade").collect();
    let mut headers = HeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        let dropped = is_hop_by_hop(name)
            || named.iter().any(|n| n == name.as_str())
            // Defence in depth: a client must never present the service-to-service credential, even though
            // the paths that accept it are never forwarded.
            || name.as_str() == INTERNAL_AUTH_HEADER
            || *name == X_FORWARDED_FOR
            || (!peer_trusted && (*name == X_FORWARDED_PROTO || *name == X_FORWARDED_HOST));
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    if upgrade && let Some(protocol) = incoming.get(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }

    // The chain so far, with our peer appended: the owning process believes only the last entry, and only
    // because it trusts the gateway's address.
    let mut chain: Vec<String> = incoming
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect();
    if let Some(peer) = peer {
        chain.push(peer.to_string());
    }
    if let Some(value) = (!chain.is_empty()).then(|| chain.join(", ")).and_then(|v| HeaderValue::try_from(v).ok()) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        // The gateway itself only speaks cleartext; TLS ends in front of it, at a trusted proxy.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = incoming.get(header::HOST)
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    headers
}

/// An error and its sources on one line; hyper's own message ("client error (Connect)") hides the cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
