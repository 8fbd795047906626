use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::metrics::Metrics;

crate::port! {
    /// A port used only to test the mechanism.
    pub trait EchoPort for "echo" {
        /// Repeats `text`.
        idempotent async fn echo(&self, text: String, times: u32) -> String;
        /// Counts calls; never retried.
        once async fn bump(&self) -> u32;
    }
}

#[derive(Default)]
struct Echo {
    bumps: AtomicU32,
}

#[async_trait::async_trait]
impl EchoPort for Echo {
    async fn echo(&self, text: String, times: u32) -> Result<String, PortError> {
        Ok(text.repeat(times as usize))
    }

    async fn bump(&self) -> Result<u32, PortError> {
        Ok(self.bumps.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

const SECRET: &str = "test-secret";

/// Serves `implementation`'s internal endpoints behind the credential check on a loopback port.
async fn serve(implementation: Arc<dyn EchoPort>) -> String {
    let router = <dyn EchoPort as Port>::serve(implementation).layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            if credential_matches(request.headers(), SECRET) {
                next.run(request).await
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn remote(url: &str, secret: &str) -> Arc<dyn EchoPort> {
    let client =
        RemoteClient::new(reqwest::Client::new(), "echo", url, secret, Duration::from_secs(2)).expect("client");
    <dyn EchoPort as Port>::remote(client)
}

#[tokio::test]
async fn a_remote_call_returns_what_the_local_call_returns() {
    let implementation: Arc<dyn EchoPort> = Arc::new(Echo::default());
    let url = serve(implementation.clone()).await;

    let local = implementation.echo("ab".into(), 3).await;
    let over_http = remote(&url, SECRET).echo("ab".into(), 3).await;

    assert_eq!(local, Ok("ababab".to_owned()));
    assert_eq!(over_http, local);
}

#[tokio::test]
async fn a_call_without_the_service_credential_is_refused() {
    let url = serve(Arc::new(Echo::default())).await;

    let error = remote(&url, "wrong").echo("a".into(), 1).await.expect_err("refused");

    assert!(matches!(error, PortError::Failed { status: 401, .. }), "{error:?}");
}

#[tokio::test]
async fn a_callee_that_is_not_running_is_reported_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);

    let error = remote(&url, SECRET).bump().await.expect_err("nothing listens");

    assert!(matches!(error, PortError::Unavailable { ref callee, .. } if callee == "echo"), "{error:?}");
}

#[tokio::test]
async fn a_call_that_is_not_idempotent_runs_once() {
    let implementation = Arc::new(Echo::default());
    let url = serve(implementation.clone()).await;

    assert_eq!(remote(&url, SECRET).bump().await, Ok(1));
    assert_eq!(implementation.bumps.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn metered_calls_are_counted_by_mode_and_outcome() {
    let metrics = Metrics::new();
    let meters = |mode| {
        PortMeters::new(
            <dyn EchoPort as Port>::METHODS.iter().map(|m| metrics.port_method("caller", "echo", m, mode)).collect(),
        )
    };
    let local = <dyn EchoPort as Port>::metered(Arc::new(Echo::default()), meters("local"));

    local.echo("x".into(), 2).await.expect("echo");
    local.bump().await.expect("bump");

    let text = metrics.render();
    assert!(
        text.contains(r#"port_calls_total{callee="echo",caller="caller",method="echo",mode="local",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"method="bump",mode="local",outcome="ok"} 1"#), "{text}");
}

#[tokio::test]
async fn a_remote_call_carries_the_request_id_of_the_request_being_handled() {
    // A stand-in callee that answers with the request id it was sent.
    let router = axum::Router::new().route(
        "/internal/echo/echo",
        axum::routing::post(|headers: HeaderMap| async move {
            axum::Json(headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let id = HeaderValue::from_static("req-1234");
    let seen = crate::http::CURRENT_REQUEST_ID.scope(id, remote(&url, SECRET).echo("x".into(), 1)).await;

    assert_eq!(seen, Ok("req-1234".to_owned()));
}
