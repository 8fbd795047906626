//! Ports: how one service calls another synchronously, the same way in every topology (DESIGN §4).
//!
//! A port is an object-safe async trait declared once with [`port!`](crate::port) in the contracts crate.
//! The macro generates everything else, so adding a method is one line:
//! - the trait itself, each method returning `Result<T, PortError>`;
//! - a remote implementation that POSTs the arguments as JSON to `/internal/{service}/{method}` on the
//!   callee's process, with the service-to-service credential, a timeout and, for methods declared
//!   `idempotent`, retries;
//! - the internal endpoints that serve those calls from the callee's implementation;
//! - a metered wrapper that counts and times every call, labelled `local` or `remote`.
//!
//! Which one a caller holds is decided by the topology when the process starts: the callee's own object when
//! it is hosted in the same process (a plain async call, no serialisation), the remote client otherwise.
//! Callers cannot tell the difference; arguments and results are owned, serialisable values either way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::http::Problem;
use crate::metrics::PortMethodMetrics;

/// The header carrying the service-to-service credential on internal calls.
pub const INTERNAL_AUTH_HEADER: &str = "x-omnidesk-internal";

/// Why a port call failed as a call (as opposed to a domain outcome, which is part of the method's result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PortError {
    /// The callee could not be reached (not running, refused the connection, or not configured).
    #[error("service `{callee}` is unavailable: {reason}")]
    Unavailable { callee: String, reason: String },
    /// The callee did not answer in time.
    #[error("service `{callee}` did not answer within {timeout_ms} ms")]
    Timeout { callee: String, timeout_ms: u64 },
    /// The callee answered with an error.
    #[error("service `{callee}` failed: {status} {reason}")]
    Failed { callee: String, status: u16, reason: String },
}

impl From<PortError> for Problem {
    fn from(error: PortError) -> Self {
        tracing::warn!(error = %error, "port call failed");
        let callee = match &error {
            PortError::Unavailable { callee, .. }
            | PortError::Timeout { callee, .. }
            | PortError::Failed { callee, .. } => callee.clone(),
        };
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            format!("A service this request needs ({callee}) is unavailable; retry shortly."),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}

/// What the kernel needs to know of a port trait; implemented for `dyn Trait` by [`port!`](crate::port).
pub trait Port: Send + Sync + 'static {
    /// The service that implements the port.
    const SERVICE: &'static str;
    /// The trait's name, for logs and metrics.
    const NAME: &'static str;
    /// Method names, in declaration order.
    const METHODS: &'static [&'static str];
    /// The HTTP client implementation.
    fn remote(client: RemoteClient) -> Arc<Self>;
    /// Wraps an implementation so that every call is counted and timed.
    fn metered(inner: Arc<Self>, meters: PortMeters) -> Arc<Self>;
    /// The internal endpoints serving calls from `inner`.
    fn serve(inner: Arc<Self>) -> axum::Router;
}

/// Pre-resolved metric handles, one per method, in declaration order.
#[derive(Clone)]
pub struct PortMeters(Arc<[PortMethodMetrics]>);

impl PortMeters {
    pub fn new(methods: Vec<PortMethodMetrics>) -> Self {
        Self(methods.into())
    }

    pub fn record(&self, method: usize, ok: bool, started: Instant) {
        if let Some(meter) = self.0.get(method) {
            meter.record(ok, started.elapsed().as_secs_f64());
        }
    }
}

/// The HTTP side of a remote port: one callee's base URL, credential, timeout and retry policy.
#[derive(Clone)]
pub struct RemoteClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    callee: &'static str,
    credential: HeaderValue,
    timeout: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient").field("callee", &self.callee).field("base_url", &self.base_url).finish()
    }
}

impl RemoteClient {
    /// `base_url` is the callee process's root (`http://127.0.0.1:4002`); `secret` the shared credential.
    pub fn new(
        http: reqwest::Client,
        callee: &'static str,
        base_url: &str,
        secret: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credential =
            HeaderValue::from_str(secret).map_err(|_| "the internal secret must be printable ASCII".to_owned())?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').into(), callee, credential, timeout, max_attempts: 3 })
    }

    /// Calls `method` with `args` (a tuple). A request that never reached the callee (connection refused)
    /// is retried whatever the method; one that may have reached it only when `idempotent`.
    pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &'static str,
        idempotent: bool,
        args: &A,
    ) -> Result<R, PortError> {
        let body = Bytes::from(serde_json::to_vec(args).map_err(|e| self.failed(0, e.to_string()))?);
        let url = format!("{}/internal/{}/{method}", self.base_url, self.callee);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.attempt(&url, body.clone()).await;
            let retry = match &result {
                Err((error, reached)) if attempt < self.max_attempts => {
                    !reached || (idempotent && !matches!(error, PortError::Failed { status, .. } if *status < 500))
                }
                _ => false,
            };
            match result {
                Ok(value) => return Ok(value),
                Err((error, _)) if !retry => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(25 << attempt)).await,
            }
        }
    }

    /// One attempt; the flag says whether the request may have reached the callee.
    async fn attempt<R: DeserializeOwned>(&self, url: &str, body: Bytes) -> Result<R, (PortError, bool)> {
        let mut request = self.http.post(url);
        if let Some(id) = crate::http::current_request_id() {
            request = request.header(crate::http::REQUEST_ID, id);
        }
        let response = request
            .header(INTERNAL_AUTH_HEADER, self.credential.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.classify(&e))?;
        if !status.is_success() {
            let reason = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err((self.failed(status.as_u16(), reason), true));
        }
        serde_json::from_slice(&bytes).map_err(|e| (self.failed(status.as_u16(), e.to_string()), true))
    }

    fn classify(&self, error: &reqwest::Error) -> (PortError, bool) {
        let callee = self.callee.to_owned();
        if error.is_timeout() {
            let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
            (PortError::Timeout { callee, timeout_ms }, true)
        } else {
            let reason = std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string);
            (PortError::Unavailable { callee, reason }, !error.is_connect())
        }
    }

    fn failed(&self, status: u16, reason: String) -> PortError {
        PortError::Failed { callee: self.callee.to_owned(), status, reason }
    }
}

/// Parses a call's argument tuple, answering 400 when it does not fit.
pub fn decode_args<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request("invalid_port_arguments", e.to_string()).into_response())
}

/// Turns a port method's result into the internal endpoint's response.
pub fn respond<T: Serialize>(result: Result<T, PortError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => Problem::from(error).into_response(),
    }
}

/// Whether `headers` carry the expected service credential, compared in constant time.
pub fn credential_matches(headers: &HeaderMap, secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    headers.get(INTERNAL_AUTH_HEADER).is_some_and(|given| given.as_bytes().ct_eq(secret.as_bytes()).into())
}

#[doc(hidden)]
pub mod __private {
    pub use super::{Port, PortError, PortMeters, RemoteClient, decode_args, respond};
    pub use async_trait::async_trait;
    pub use axum::Router;
    pub use axum::body::Bytes;
    pub use axum::routing::post;
    pub use std::sync::Arc;
    pub use std::time::Instant;
}

/// Whether a port method may be retried after it may have reached the callee.
#[doc(hidden)]
#[macro_export]
macro_rules! __port_retry_policy {
    (idempotent) => {
        true
    };
    (once) => {
        false
    };
    ($other:ident) => {
        compile_error!(concat!(
            "declare each port method `idempotent` (safe to retry) or `once` (never retried), not `",
            stringify!($other),
            "`"
        ))
    };
}

/// Declares a port: the trait, its remote client, its internal endpoints and its metered wrapper.
///
/// ```ignore
/// kernel::port! {
///     /// What the plan service answers synchronously.
///     pub trait PlanPort for "plan" {
///         /// The account's current plan.
///         idempotent async fn plan_of(&self, account: AccountId) -> PlanSummary;
///     }
/// }
/// ```
/// Every method is declared `idempotent` (retried on timeouts and 5xx) or `once` (retried only when the
/// request provably never reached the callee).
#[macro_export]
macro_rules! port {
    (
        $(#[$trait_meta:meta])*
        $vis:vis trait $port:ident for $service:literal {
            $(
                $(#[$meta:meta])*
                $policy:ident async fn $method:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$trait_meta])*
        #[$crate::ports::__private::async_trait]
        $vis trait $port: Send + Sync + 'static {
            $(
                $(#[$meta])*
                async fn $method(&self $(, $arg: $ty)*)
                    -> ::std::result::Result<$ret, $crate::ports::PortError>;
            )*
        }

        const _: () = {
            use $crate::ports::__private::*;

            #[allow(non_camel_case_types, clippy::enum_variant_names)]
            enum Method { $($method),* }

            struct Remote(RemoteClient);

            #[async_trait]
            impl $port for Remote {
                $(
                    async fn $method(&self $(, $arg: $ty)*) -> ::std::result::Result<$ret, PortError> {
                        self.0
                            .call(stringify!($method), $crate::__port_retry_policy!($policy), &($(&$arg,)*))
                            .await
                    }
                )*
            }

            struct Metered {
                inner: Arc<dyn $port>,
                meters: PortMeters,
            }

            #[async_trait]
            impl $port for Metered {
                $(
                    async fn $method(&self $(, $arg: $ty)*) -> ::std::result::Result<$ret, PortError> {
                        let started = Instant::now();
                        let result = self.inner.$method($($arg),*).await;
                        self.meters.record(Method::$method as usize, result.is_ok(), started);
                        result
                    }
                )*
            }

            impl Port for dyn $port {
                const SERVICE: &'static str = $service;
                const NAME: &'static str = stringify!($port);
                const METHODS: &'static [&'static str] = &[$(stringify!($method)),*];

                fn remote(client: RemoteClient) -> Arc<Self> {
                    Arc::new(Remote(client))
                }

                fn metered(inner: Arc<Self>, meters: PortMeters) -> Arc<Self> {
                    Arc::new(Metered { inner, meters })
                }

                fn serve(inner: Arc<Self>) -> Router {
                    let router = Router::new();
                    $(
                        let router = router.route(
                            concat!("/internal/", $service, "/", stringify!($method)),
                            post({
                                let inner = inner.clone();
                                move |body: Bytes| async move {
                                    #[allow(unused_parens)]
                                    let ($($arg,)*): ($($ty,)*) = match decode_args(&body) {
                                        Ok(args) => args,
                                        Err(rejection) => return rejection,
                                    };
                                    respond(inner.$method($($arg),*).await)
                                }
                            }),
                        );
                    )*
                    router
                }
            }
        };
    };
}

#[cfg(test)]
mod tests;
