//! The HTTP edge shared by every process: problem+json errors ([`Problem`]), extractors, the accept loop
//! ([`serve`]), and the middleware stack ([`edge`]: request ids, tracing, panic → 500 problem, bare error
//! statuses → problem, timeout, body limit).
//!
//! - [`Json`] and [`from_json_text`] parse the whole body as JSON text first, so fields a handler ignores
//!   are checked too; [`Path`] and [`Query`] answer what does not parse with a 400 problem.
//! - A body declared over the limit is read and dropped, up to 16 MiB, before the 413, so that the client
//!   gets the answer instead of a reset.
//! - Service processes read a body before the handler ([`read_body_first`]), so a body left unread never
//!   makes hyper reset the connection and the gateway answer 502.
//! - Every accepted connection has `TCP_NODELAY` (set by [`serve`]), or realtime pushes wait for the
//!   peer's delayed ACKs.
//! - `/metrics` on a public listener wants `http.metrics_token`; [`serve_metrics`] serves it without one
//!   on `http.metrics_listen`. [`ClientIp`] is the client's address, through trusted proxies only.

mod extract;
mod listener;
mod problem;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use extract::{Json, Path, Query, from_json_text};
pub use listener::{ListenerSettings, client_network, serve};
pub use problem::{FieldError, PROBLEM_JSON, Problem};

use crate::metrics::Metrics;

/// The request-id header, set when absent and echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Settings of the edge stack.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub trusted_proxies: Arc<[IpAddr]>,
    /// The scrape credential `/metrics` wants on this listener; without one it is not served here.
    pub metrics_token: Option<Arc<str>>,
}

impl From<&crate::config::HttpConfig> for EdgeSettings {
    fn from(http: &crate::config::HttpConfig) -> Self {
        Self {
            body_limit_bytes: http.body_limit_bytes,
            request_timeout: Duration::from_secs(http.request_timeout_secs),
            trusted_proxies: http.trusted_proxies.clone().into(),
            metrics_token: http.metrics_token.as_deref().map(Arc::from),
        }
    }
}

/// Wraps a process's router in the stack every OmniDesk listener has. Outermost first: request id, tracing,
/// panic → 500 problem, bare error statuses → problem+json, timeout, body limit.
pub fn edge(router: Router, settings: &EdgeSettings) -> Router {
    router.layer(axum::Extension(TrustedProxies(settings.trusted_proxies.clone()))).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request| {
                        let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                        tracing::info_span!(
                            "request",
                            request.id = request_id,
                            http.method = %request.method(),
                            http.path = request.uri().path(),
                        )
                    })
                    .on_request(())
                    .on_response(|response: &Response<_>, latency: Duration, _: &tracing::Span| {
                        tracing::info!(
                            http.status = response.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1000.0,
                            "request handled"
                        );
                    })
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(middleware::from_fn(scope_request_id))
            .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                Problem::internal(&"a handler panicked").into_response()
            }))
            .layer(middleware::map_response(problem_for_bare_errors))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
            .layer(middleware::from_fn_with_state(settings.body_limit_bytes, refuse_declared_oversize))
            .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
    )
}

/// The most of a refused body that is read, and for how long, before answering 413 (see
/// [`refuse_declared_oversize`]).
const LINGER_BYTES: u64 = 16 * 1024 * 1024;
const LINGER_FOR: Duration = Duration::from_secs(5);

/// Refuses a request whose `Content-Length` passes the body limit with 413, before any handler (or, in the
/// gateway, any upstream) sees it. The body is read and dropped first, as servers do with a lingering
/// close: closing the connection while the client is still sending makes the kernel answer its data with a
/// reset, and the client loses the 413 it was sent. Bodies declared larger than [`LINGER_BYTES`] are
/// refused at once.
async fn refuse_declared_oversize(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared: Option<u64> =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let Some(declared) = declared.filter(|&length| length > limit as u64) else { return next.run(request).await };
    if declared <= LINGER_BYTES {
        let mut body = request.into_body().into_data_stream();
        let drain = async { while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {} };
        let _ = tokio::time::timeout(LINGER_FOR, drain).await;
    }
    let mut refused = Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    refused.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    refused
}

/// Reads a request's whole body (within `limit`) before the handler runs, for the processes that host
/// services (not the gateway, which streams). A handler that answers without reading the body — a 401
/// before the JSON, a GET that ignores one — would otherwise leave it unread, and hyper then closes the
/// connection with data still arriving: the kernel resets it, and the client (the gateway, forwarding)
/// loses the answer and reports 502. Every body here is JSON or a webhook within the body limit anyway.
pub async fn read_body_first(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(error) => {
            let too_large =
                std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE).into_response()
            } else {
                Problem::bad_request("unreadable_body", "The request body could not be read.").into_response()
            }
        }
    }
}

/// Turns Nagle's algorithm off on an accepted connection ([`serve`] does it for every one). A WebSocket
/// push or a streamed response written while an earlier segment is unacknowledged would otherwise wait for
/// the peer's delayed ACK (up to 40 ms on Linux): measured as ~20 ms added to every realtime push.
fn set_nodelay(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(error = %error, "TCP_NODELAY not set");
    }
}

tokio::task_local! {
    /// The id of the request the current task is handling, for calls it makes to other services.
    pub(crate) static CURRENT_REQUEST_ID: HeaderValue;
}

/// The id of the request being handled by this task, if any (remote port calls forward it, so one id
/// follows a request through every process it touches).
pub fn current_request_id() -> Option<HeaderValue> {
    CURRENT_REQUEST_ID.try_with(HeaderValue::clone).ok()
}

async fn scope_request_id(request: Request, next: Next) -> Response {
    match request.headers().get(REQUEST_ID).cloned() {
        Some(id) => CURRENT_REQUEST_ID.scope(id, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The stack of the internal (port) endpoints: the same safety — panics and bare errors become problems,
/// timeout, body limit — without what only public traffic needs (generated request ids, a span and a log
/// line per request), which would otherwise add measurably to every remote port call.
pub fn internal_edge(router: Router, settings: &EdgeSettings) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(panic_problem))
            .layer(middleware::map_response(problem_for_bare_errors))
            .layer(middleware::from_fn(scope_request_id))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
            .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
    )
}

fn panic_problem(_: Box<dyn std::any::Any + Send>) -> Response {
    Problem::internal(&"a handler panicked").into_response()
}

/// Gives every error response without a problem body one (405 from the router, 413 and 503 from layers).
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|content_type| content_type.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut problem = Problem::from_status(status);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            problem = problem.with_header(name, value.clone());
        }
    }
    problem.into_response()
}

/// The fallback for paths no route matches.
pub async fn not_found() -> Problem {
    Problem::from_status(StatusCode::NOT_FOUND)
}

/// Records RED metrics for the routes of one service; applied with `route_layer`, so the route is known.
pub fn with_service_metrics(router: Router, service: &'static str, metrics: Metrics) -> Router {
    // axum refuses a route layer on a router without routes (a service whose features are not built yet).
    if !router.has_routes() {
        return router;
    }
    router.route_layer(middleware::from_fn_with_state((service, metrics), record_metrics))
}

async fn record_metrics(
    State((service, metrics)): State<(&'static str, Metrics)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.observe_http(service, method.as_str(), &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[derive(Clone)]
struct TrustedProxies(Arc<[IpAddr]>);

/// The client's IP address: the peer's, or the one a trusted proxy (the gateway) put last in
/// `X-Forwarded-For`. Headers from untrusted peers are ignored, so a client cannot choose its own IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| Problem::internal(&"the listener does not record peer addresses"))?;
        let trusted = parts.extensions.get::<TrustedProxies>().is_some_and(|t| t.0.contains(&peer));
        if !trusted {
            return Ok(ClientIp(peer));
        }
        let forwarded = parts
            .headers
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .next_back();
        Ok(ClientIp(forwarded.unwrap_or(peer)))
    }
}

/// `/metrics`: the Prometheus text format.
pub async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], metrics.render())
        .into_response()
}

/// What `/metrics` on a public listener needs: the registry, and the scrape credential.
#[derive(Clone)]
pub struct ScrapeAccess {
    pub metrics: Metrics,
    pub token: Option<Arc<str>>,
}

impl ScrapeAccess {
    pub fn new(metrics: Metrics, settings: &EdgeSettings) -> Self {
        Self { metrics, token: settings.metrics_token.clone() }
    }
}

/// `/metrics` on a public listener: a process's internals (routes, callers, error rates) are not for
/// anyone on the internet. Without a configured credential it is not there (404, as an unknown path);
/// with one, it answers only a request bearing it (401 otherwise, compared in constant time).
pub async fn render_metrics_for_scraper(State(access): State<ScrapeAccess>, headers: header::HeaderMap) -> Response {
    use subtle::ConstantTimeEq as _;
    let Some(token) = access.token.as_deref() else { return not_found().await.into_response() };
    let presented = bearer_token(&headers).and_then(Result::ok).unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return Problem::unauthorized("metrics_credential_required", "Send the scrape credential as a bearer token.")
            .into_response();
    }
    render_metrics(State(access.metrics)).await
}

/// Serves `/metrics`, and nothing else, without a credential on `listen` (`http.metrics_listen`), until
/// `stop` resolves: for a scraper on a network the public cannot reach.
pub async fn serve_metrics(
    listen: SocketAddr,
    metrics: Metrics,
    settings: ListenerSettings,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(metrics.addr = %listen, "serving /metrics");
    let router =
        Router::new().route("/metrics", axum::routing::get(render_metrics).with_state(metrics)).fallback(not_found);
    serve(listener, router, settings, stop).await;
    Ok(())
}

/// The bearer token of a request's `Authorization` header: `None` without the header, an error if it is
/// not `Bearer <token>`.
pub fn bearer_token(headers: &header::HeaderMap) -> Option<Result<&str, Problem>> {
    let header = headers.get(header::AUTHORIZATION)?;
    Some(
        header.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")).map(str::trim).ok_or_else(|| {
            Problem::unauthorized("invalid_token", "The Authorization header must be `Bearer <token>`.")
        }),
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A body far larger than what the loopback's buffers take while nobody reads it: closing without reading
    /// it resets the connection under the client's writes.
    const SENT: usize = 12 * 1024 * 1024;

    #[tokio::test]
    async fn a_body_declared_too_large_is_read_through_so_that_the_client_gets_its_413() {
        let settings = EdgeSettings {
            body_limit_bytes: 1024,
            request_timeout: Duration::from_secs(10),
            trusted_proxies: [].into(),
            metrics_token: None,
        };
        let router = edge(Router::new().route("/", axum::routing::post(|| async { "read" })), &settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut client = tokio::net::TcpStream::connect(address).await.expect("connects");
        let head = format!("POST / HTTP/1.1\r\nhost: test\r\ncontent-length: {SENT}\r\n\r\n");
        client.write_all(head.as_bytes()).await.expect("head sent");
        client.write_all(&vec![b'x'; SENT]).await.expect("the whole body is taken, not reset");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.expect("answer read");

        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
}
