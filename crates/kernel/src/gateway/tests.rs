//! The gateway against real upstream processes' stand-ins: small axum servers on loopback ports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::http::{EdgeSettings, PROBLEM_JSON};
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::service::ServiceSpec;

/// Two services: `alpha` owns `/api/x`, `beta` owns `/api/y`.
static SERVICES: [ServiceSpec; 2] = [
    ServiceSpec::without_features("alpha", "test service alpha", &["/api/x"]),
    ServiceSpec::without_features("beta", "test service beta", &["/api/y"]),
];

fn settings() -> EdgeSettings {
    EdgeSettings {
        body_limit_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(10),
        trusted_proxies: Arc::from(Vec::<IpAddr>::new()),
        metrics_token: Some(Arc::from(SCRAPE_TOKEN)),
    }
}

/// The scrape credential of the test gateways.
const SCRAPE_TOKEN: &str = "scrape-me";

/// Serves `router` on a fresh loopback port and returns its address.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve");
    });
    addr
}

/// A loopback address with nothing listening on it.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    listener.local_addr().expect("local address")
}

/// An upstream standing in for a service process; `internal_hits` counts calls to its internal endpoint.
fn upstream(internal_hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/readyz", get(|| async { axum::Json(json!({ "status": "ready" })) }))
        // What a service would expose; the gateway must never hand it out.
        .route("/metrics", get(|| async { "a service's metrics" }))
        .route(
            "/api/x/hello",
            get(|RawQuery(query): RawQuery| async move { format!("hello {}", query.unwrap_or_default()) }),
        )
        // Echoes the body as it arrives, so the gateway must stream in both directions.
        .route("/api/x/echo", post(|request: Request| async move { Response::new(request.into_body()) }))
        // Reads the whole body before answering with its length.
        .route(
            "/api/x/count",
            post(|request: Request| async move {
                let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.expect("the whole body");
                body.len().to_string()
            }),
        )
        .route("/api/x/headers", get(|headers: HeaderMap| async move { axum::Json(headers_as_json(&headers)) }))
        .route("/api/x/ws", any(|upgrade: WebSocketUpgrade| async move { upgrade.on_upgrade(echo_socket) }))
        .route(
            "/internal/x/y",
            any(move || {
                let hits = internal_hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "internal"
                }
            }),
        )
}

fn headers_as_json(headers: &HeaderMap) -> Value {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.to_str().unwrap_or("<binary>"))))
        .collect();
    Value::Object(map)
}

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            WsMessage::Text(text) => WsMessage::Text(text),
            WsMessage::Binary(bytes) => WsMessage::Binary(bytes),
            WsMessage::Close(_) => return,
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

/// A gateway for [`SERVICES`] with the given upstream addresses.
async fn gateway(upstreams: &[(&'static str, SocketAddr)]) -> (SocketAddr, Metrics) {
    let table = RouteTable::build(&SERVICES).expect("the test services do not overlap");
    let map: HashMap<&'static str, String> =
        upstreams.iter().map(|(service, addr)| (*service, format!("http://{addr}"))).collect();
    let metrics = Metrics::new();
    let addr = serve(router(table, Default::default(), None, Upstreams::new(map), metrics.clone(), &settings())).await;
    (addr, metrics)
}

/// A gateway whose `alpha` is a live upstream and whose `beta` is the given address.
async fn gateway_with_alpha(beta: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let alpha = serve(upstream(hits.clone())).await;
    let (addr, _) = gateway(&[("alpha", alpha), ("beta", beta)]).await;
    (addr, hits)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("build a client")
}

async fn problem_of(response: reqwest::Response) -> Problem {
    assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    response.json().await.expect("a problem+json body")
}

#[tokio::test]
async fn a_get_is_forwarded_with_its_path_and_query() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let response = client().get(format!("http://{gateway}/api/x/hello?name=ann&x=1")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "hello name=ann&x=1");
}

#[tokio::test]
async fn a_streamed_post_body_comes_back_byte_for_byte() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;
    let chunks: Vec<Vec<u8>> = (0..8u8).map(|n| (0..64 * 1024).map(|i| (i % 251) as u8 ^ n).collect()).collect();
    let expected: Vec<u8> = chunks.concat();
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));

    let response = client()
        .post(format!("http://{gateway}/api/x/echo"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len(), expected.len());
    assert!(body == expected, "the echoed bytes differ from those sent");
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_without_reaching_the_upstream() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;
    let body = vec![b'x'; settings().body_limit_bytes + 1];

    let response = client().post(format!("http://{gateway}/api/x/count")).body(body).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem_of(response).await.code, "payload_too_large");
}

#[tokio::test]
async fn a_streamed_body_is_cut_off_at_the_limit() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = settings().body_limit_bytes / chunk.len() + 2;
    let stream = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));

    let response = client()
        .post(format!("http://{gateway}/api/x/count"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem_of(response).await.code, "payload_too_large");
}

#[tokio::test]
async fn a_body_at_the_limit_is_forwarded_whole() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;
    let body = vec![b'x'; settings().body_limit_bytes];

    let response = client().post(format!("http://{gateway}/api/x/count")).body(body).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), settings().body_limit_bytes.to_string());
}

#[tokio::test]
async fn a_path_no_service_claims_is_a_404_problem() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let response = client().get(format!("http://{gateway}/api/nobody/home")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_of(response).await.code, "not_found");
}

#[tokio::test]
async fn internal_paths_are_never_forwarded() {
    let (gateway, hits) = gateway_with_alpha(dead_addr().await).await;

    let response = client()
        .post(format!("http://{gateway}/internal/x/y"))
        .header(INTERNAL_AUTH_HEADER, "guessed")
        .send()
        .await
        .expect("send");

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_of(response).await.code, "not_found");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the upstream's internal endpoint was reached");
}

#[tokio::test]
async fn a_path_walking_out_of_its_prefix_is_refused() {
    let (gateway, hits) = gateway_with_alpha(dead_addr().await).await;
    let mut stream = tokio::net::TcpStream::connect(gateway).await.expect("connect");

    // reqwest would normalise the path, so the request is written by hand.
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"GET /api/x/../../internal/x/y HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await.expect("read");

    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_upstream_with_nothing_listening_is_a_503_naming_the_service() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let response = client().get(format!("http://{gateway}/api/y/anything")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let problem = problem_of(response).await;
    assert_eq!(problem.code, "service_unavailable");
    assert!(problem.detail.unwrap_or_default().contains("`beta`"));
}

#[tokio::test]
async fn a_service_without_a_configured_upstream_is_a_503() {
    let hits = Arc::new(AtomicUsize::new(0));
    let alpha = serve(upstream(hits)).await;
    let (gateway, _) = gateway(&[("alpha", alpha)]).await;

    let response = client().get(format!("http://{gateway}/api/y")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem_of(response).await.code, "service_unavailable");
}

#[tokio::test]
async fn an_upstream_that_hangs_up_without_answering_is_a_502() {
    let rude = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rude_addr = rude.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((connection, _)) = rude.accept().await {
            drop(connection);
        }
    });
    let (gateway, _) = gateway_with_alpha(rude_addr).await;

    let response = client().get(format!("http://{gateway}/api/y/x")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let problem = problem_of(response).await;
    assert_eq!(problem.code, "bad_gateway");
    assert!(problem.detail.unwrap_or_default().contains("`beta`"));
}

#[tokio::test]
async fn the_client_ip_is_appended_to_x_forwarded_for_and_the_internal_credential_is_dropped() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let response = client()
        .get(format!("http://{gateway}/api/x/headers"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header(INTERNAL_AUTH_HEADER, "forged")
        .header("x-request-id", "req-123")
        .send()
        .await
        .expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.expect("json");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http", "an untrusted client cannot claim https");
    assert_eq!(seen["x-forwarded-host"], gateway.to_string());
    assert_eq!(seen["x-request-id"], "req-123");
    assert!(seen.get(INTERNAL_AUTH_HEADER).is_none(), "the credential header reached the upstream");
}

#[tokio::test]
async fn a_websocket_echo_works_through_the_gateway() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("ws://{gateway}/api/x/ws")).await.expect("websocket handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket.send(Message::text("こんにちは")).await.expect("send text");
    let text = socket.next().await.expect("a reply").expect("a frame");
    socket.send(Message::binary(vec![0u8, 1, 2, 255])).await.expect("send binary");
    let binary = socket.next().await.expect("a reply").expect("a frame");
    socket.close(None).await.expect("close");

    assert_eq!(text, Message::text("こんにちは"));
    assert_eq!(binary, Message::binary(vec![0u8, 1, 2, 255]));
}

#[tokio::test]
async fn healthz_answers_without_asking_upstreams() {
    let (gateway, _) = gateway(&[("alpha", dead_addr().await), ("beta", dead_addr().await)]).await;

    let response = client().get(format!("http://{gateway}/healthz")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_is_ok_when_every_upstream_is_ready() {
    let hits = Arc::new(AtomicUsize::new(0));
    let shared = serve(upstream(hits)).await;
    let (gateway, _) = gateway(&[("alpha", shared), ("beta", shared)]).await;

    let response = client().get(format!("http://{gateway}/readyz")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("json")["services"], json!(["alpha", "beta"]));
}

#[tokio::test]
async fn readyz_is_a_503_naming_the_services_that_are_not_ready() {
    let (gateway, _) = gateway_with_alpha(dead_addr().await).await;

    let response = client().get(format!("http://{gateway}/readyz")).send().await.expect("send");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem = problem_of(response).await;
    assert_eq!(problem.code, "not_ready");
    let detail = problem.detail.unwrap_or_default();
    assert!(detail.contains("beta"), "{detail}");
    assert!(!detail.contains("alpha"), "{detail}");
}

#[tokio::test]
async fn forwarded_requests_are_counted_by_owning_service_and_claimed_prefix() {
    let hits = Arc::new(AtomicUsize::new(0));
    let alpha = serve(upstream(hits)).await;
    let (gateway, metrics) = gateway(&[("alpha", alpha)]).await;

    client().get(format!("http://{gateway}/api/x/hello")).send().await.expect("send");
    let exposition =
        client().get(format!("http://{gateway}/metrics")).bearer_auth(SCRAPE_TOKEN).send().await.expect("send");
    let anonymous = client().get(format!("http://{gateway}/metrics")).send().await.expect("send");

    assert_eq!(exposition.status(), StatusCode::OK);
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "not without the scrape credential");
    let text = exposition.text().await.expect("body");
    assert!(text.contains(r#"route="/api/x""#) && text.contains(r#"service="alpha""#), "{text}");
    assert!(metrics.render().contains(r#"service="alpha""#), "the endpoint renders the gateway's registry");
}

#[tokio::test]
async fn without_a_scrape_credential_the_gateway_serves_no_metrics_and_forwards_none() {
    let alpha = serve(upstream(Arc::new(AtomicUsize::new(0)))).await;
    let table = RouteTable::build(&SERVICES).expect("the test services do not overlap");
    let map = HashMap::from([("alpha", format!("http://{alpha}"))]);
    let settings = EdgeSettings { metrics_token: None, ..settings() };
    let gateway = serve(router(table, Default::default(), None, Upstreams::new(map), Metrics::new(), &settings)).await;

    let reply = client().get(format!("http://{gateway}/metrics")).bearer_auth(SCRAPE_TOKEN).send().await.expect("send");

    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    assert!(!reply.text().await.expect("body").contains("a service's metrics"), "nothing was forwarded");
}

#[test]
fn hop_by_hop_headers_and_those_named_by_connection_are_not_forwarded() {
    let mut incoming = HeaderMap::new();
    incoming.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-session-hint"));
    incoming.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    incoming.insert("x-session-hint", HeaderValue::from_static("1"));
    incoming.insert(header::TE, HeaderValue::from_static("trailers"));
    incoming.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
    incoming.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer token"));
    incoming.insert(header::HOST, HeaderValue::from_static("desk.example"));

    let headers = upstream_headers(&incoming, false, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), false);

    for gone in ["connection", "keep-alive", "x-session-hint", "te", "proxy-authorization"] {
        assert!(!headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(headers[header::AUTHORIZATION], "Bearer token");
    assert_eq!(headers[header::HOST], "desk.example");
    assert_eq!(headers["x-forwarded-host"], "desk.example");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
}

#[test]
fn an_upgrade_keeps_its_connection_and_upgrade_headers() {
    let mut incoming = HeaderMap::new();
    incoming.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
    incoming.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(wants_upgrade(&incoming));

    let headers = upstream_headers(&incoming, true, None, false);

    assert_eq!(headers[header::CONNECTION], "upgrade");
    assert_eq!(headers[header::UPGRADE], "websocket");
}

#[test]
fn a_trusted_proxys_forwarded_proto_and_host_are_kept() {
    let mut incoming = HeaderMap::new();
    incoming.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    incoming.insert("x-forwarded-host", HeaderValue::from_static("desk.example"));
    incoming.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));

    let headers = upstream_headers(&incoming, false, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))), true);

    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-host"], "desk.example");
    assert_eq!(headers["x-forwarded-for"], "198.51.100.7, 10.0.0.2");
}

#[test]
fn upstream_base_urls_must_be_plain_http_origins() {
    assert!(Origin::parse("http://127.0.0.1:4001").is_ok());
    assert!(Origin::parse("http://127.0.0.1:4001/").is_ok());
    assert!(Origin::parse("https://user.internal").is_err());
    assert!(Origin::parse("http://127.0.0.1:4001/base").is_err());
    assert!(Origin::parse("127.0.0.1:4001").is_err());
}

#[test]
fn a_response_loses_its_hop_by_hop_headers_unless_it_switches_protocols() {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    let mut switching = headers.clone();

    strip_hop_by_hop(&mut headers, false);
    strip_hop_by_hop(&mut switching, true);

    assert!(headers.is_empty(), "{headers:?}");
    assert_eq!(switching[header::UPGRADE], "websocket");
    assert!(!switching.contains_key(header::TRANSFER_ENCODING));
}

#[test]
fn unusual_methods_share_one_metrics_label() {
    let custom = Method::from_bytes(b"PROPFIND").expect("a valid method token");

    assert_eq!(method_label(&Method::POST), "POST");
    assert_eq!(method_label(&custom), "OTHER");
}
