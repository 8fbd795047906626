//! The part of Stripe's API the payment service calls, spoken in Stripe's wire format: form-encoded
//! bodies with bracketed keys, bearer authentication with the secret key, an `Idempotency-Key` on every
//! POST, and errors as `{"error":{"type","message","code","param"}}`.
//!
//! Retries follow Stripe's own SDKs: up to two, with exponential backoff and jitter, after a connection
//! failure, a timeout, a 409 or a 5xx, unless Stripe answers `Stripe-Should-Retry: false` (and always when
//! it answers `true`). Every attempt of one call carries the same idempotency key, so a request that did
//! reach Stripe before the connection broke is not executed twice.

use std::fmt;
use std::time::Duration;

use contracts::AccountId;
use reqwest::StatusCode;
use serde::Deserialize;

/// Stripe's production API.
pub const API_BASE_URL: &str = "https://api.stripe.com";

/// What a call to Stripe can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Stripe answered with an error in its documented shape.
    #[error("Stripe answered {status} ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// Stripe's `error.type`: `invalid_request_error`, `api_error`, `card_error`, `idempotency_error`, …
        kind: String,
        /// Stripe's `error.code`, e.g. `resource_missing`, when it gives one.
        code: Option<String>,
        /// The request parameter at fault, when Stripe names one.
        param: Option<String>,
        /// Stripe's human-readable message. It never contains the whole secret key.
        message: String,
    },
    /// Stripe could not be reached, or the connection failed before an answer arrived.
    #[error("could not reach Stripe: {0}")]
    Transport(#[source] reqwest::Error),
    /// Stripe answered, but not in a shape we understand.
    #[error("unexpected answer from Stripe ({status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
}

/// A Checkout Session just created: where to send the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// The session's id (`cs_…`); `checkout.session.completed` will carry it.
    pub id: String,
    /// The Stripe-hosted payment page.
    pub url: String,
}

/// How often and how patiently failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; Stripe's SDKs default to 2.
    pub max_retries: u32,
    /// The wait before the first retry, doubled for each one after.
    pub initial_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, initial_delay: Duration::from_millis(500), max_delay: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): exponential, capped, with jitter in its upper half so
    /// that many clients failing together do not retry together, but never below the initial delay.
    fn delay(&self, retry: u32) -> Duration {
        let exponential =
            self.initial_delay.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1))).min(self.max_delay);
        let jittered = exponential.mul_f64(0.5 * (1.0 + rand::random::<f64>()));
        jittered.max(self.initial_delay)
    }
}

/// A client for Stripe's API, or for anything at `base_url` that speaks it (the fake provider in tests).
#[derive(Clone)]
pub struct StripeClient {
    base_url: String,
    secret_key: String,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for StripeClient {
    // The secret key grants full access to the Stripe account, so it must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.base_url)
            .field("secret_key", &"[redacted]")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// Total time allowed for one attempt. Stripe answers in well under a second; creating a session
    /// is on a user's click, so waiting much longer than this helps nobody.
    const TIMEOUT: Duration = Duration::from_secs(30);
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A client for the API at `base_url` (normally [`API_BASE_URL`]) authenticating with `secret_key`
    /// (`sk_live_…`, `sk_test_…` or a restricted `rk_…` key).
    pub fn new(base_url: impl Into<String>, secret_key: impl Into<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Self::TIMEOUT)
            .connect_timeout(Self::CONNECT_TIMEOUT)
            .user_agent(concat!("omnidesk-payment/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self::with_http(base_url, secret_key, http))
    }

    /// A client using an HTTP client configured by the caller.
    pub fn with_http(base_url: impl Into<String>, secret_key: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            secret_key: secret_key.into(),
            http,
            retry: RetryPolicy::default(),
        }
    }

    /// The same client with another retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Creates a Checkout Session in subscription mode for one unit of `price_id`, tagged so that the
    /// webhooks it leads to name the account and the plan: the session by `client_reference_id` and
    /// metadata, the subscription (and so its invoices) by `subscription_data[metadata]`.
    pub async fn create_checkout_session(
        &self,
        account_id: AccountId,
        plan_code: &str,
        price_id: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<CheckoutSession, ClientError> {
        let account = account_id.to_string();
        let form = [
            ("mode", "subscription"),
            ("line_items[0][price]", price_id),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", &account),
            ("metadata[plan]", plan_code),
            ("metadata[account_id]", &account),
            ("subscription_data[metadata][plan]", plan_code),
            ("subscription_data[metadata][account_id]", &account),
            ("success_url", success_url),
            ("cancel_url", cancel_url),
        ];
        let (status, body) = self.post_form("/v1/checkout/sessions", &form).await?;
        let session: SessionBody = parse_success(status, &body)?;
        let url = session.url.ok_or_else(|| ClientError::UnexpectedResponse {
            status: status.as_u16(),
            detail: format!("checkout session {} has no url", session.id),
        })?;
        Ok(CheckoutSession { id: session.id, url })
    }

    /// POSTs a form to `path`, retrying per the policy, and returns Stripe's final status and body.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = format!("{}{path}", self.base_url);
        let idempotency_key = uuid::Uuid::new_v4().to_string();
        let mut retries = 0;
        loop {
            let attempt = self
                .http
                .post(&url)
                .bearer_auth(&self.secret_key)
                .header("Idempotency-Key", &idempotency_key)
                .form(form)
                .send()
                .await;
            let may_retry = retries < self.retry.max_retries;
            match attempt {
                Ok(response) if may_retry && should_retry(&response) => {}
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.map_err(ClientError::Transport)?;
                    return Ok((status, body.to_vec()));
                }
                Err(error) if may_retry && (error.is_connect() || error.is_timeout()) => {}
                Err(error) => return Err(ClientError::Transport(error)),
            }
            retries += 1;
            tokio::time::sleep(self.retry.delay(retries)).await;
        }
    }
}

/// Stripe's retry advice, then the status: conflicts (a concurrent request with the same key) and
/// server errors are worth another attempt; anything else would fail the same way again.
fn should_retry(response: &reqwest::Response) -> bool {
    match response.headers().get("stripe-should-retry").and_then(|value| value.to_str().ok()) {
        Some("true") => true,
        Some("false") => false,
        _ => response.status() == StatusCode::CONFLICT || response.status().is_server_error(),
    }
}

/// Parses a successful answer as `T`, or turns an error answer into [`ClientError::Api`].
fn parse_success<T: for<'de> Deserialize<'de>>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|error| ClientError::UnexpectedResponse {
            status: status.as_u16(),
            detail: format!("unreadable body: {error}"),
        });
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => Err(ClientError::Api {
            status: status.as_u16(),
            kind: error.kind,
            code: error.code,
            param: error.param,
            message: error.message.unwrap_or_default(),
        }),
        // A proxy or load balancer in front of Stripe may answer with HTML; a little of it helps diagnose
        // which, without filling the log.
        Err(_) => Err(ClientError::UnexpectedResponse {
            status: status.as_u16(),
            detail: String::from_utf8_lossy(body).chars().take(200).collect(),
        }),
    }
}

/// The fields of a created session we read.
#[derive(Deserialize)]
struct SessionBody {
    id: String,
    /// `null` for embedded sessions; ours are hosted, so it is always set.
    url: Option<String>,
}

/// Stripe's error envelope.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    param: Option<String>,
}

#[cfg(test)]
mod tests;
