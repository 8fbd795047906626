//! A fake of the payment provider for tests, which cannot reach Stripe: a local server speaking Stripe's
//! wire format for the calls we make, and builders for the signed webhook deliveries Stripe would send.
//!
//! The server checks what Stripe checks for our calls (the bearer key, the form fields, idempotency-key
//! reuse), answers in Stripe's shapes (including its error envelope), and records every request so tests
//! can assert on what was sent. Failures can be injected to exercise retries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use contracts::AccountId;
use serde_json::{Value, json};

use super::sign;

/// The API version the fake's objects are shaped after.
pub const API_VERSION: &str = "2025-03-31.basil";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    /// The decoded form fields, in the order sent.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of form field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A fake Stripe API on `127.0.0.1`, on a port of its own. It stops when dropped.
#[derive(Debug)]
pub struct FakeStripe {
    base_url: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct FakeState {
    secret_key: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    /// Created sessions by id.
    sessions: HashMap<String, Value>,
    /// What each idempotency key was first used with, and the answer then, for replays.
    idempotent: HashMap<String, StoredAnswer>,
    /// Failures to answer with before handling the next requests.
    failures: Vec<InjectedFailure>,
}

/// The first request made with an idempotency key, and Stripe's answer to it.
#[derive(Debug)]
struct StoredAnswer {
    form: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
}

#[derive(Debug, Clone, Copy)]
struct InjectedFailure {
    status: StatusCode,
    should_retry: Option<bool>,
}

impl FakeState {
    // A test that panicked while holding the lock has failed already; the data is still usable for
    // the others, so a poisoned lock is not a reason to fail them too.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FakeStripe {
    /// Starts the fake, accepting `secret_key` as the only valid API key.
    pub async fn start(secret_key: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(FakeState { secret_key: secret_key.to_owned(), inner: Mutex::new(Inner::default()) });
        let app =
            Router::new().route("/v1/checkout/sessions", post(create_checkout_session)).with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            // The server runs until the fake is dropped; an accept error ends the test's server, and the
            // test then fails on the connection error it sees.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, state, server })
    }

    /// Where the fake listens, to be used as the client's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// A session the fake created, as the API returned it.
    pub fn session(&self, id: &str) -> Option<Value> {
        self.state.lock().sessions.get(id).cloned()
    }

    /// Makes the next `times` requests fail with `status` and Stripe's `api_error` body, before they are
    /// handled (so their idempotency keys are not used up), with `Stripe-Should-Retry` set if given.
    pub fn fail_next(&self, times: usize, status: StatusCode, should_retry: Option<bool>) {
        let failure = InjectedFailure { status, should_retry };
        self.state.lock().failures.extend(std::iter::repeat_n(failure, times));
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Stripe's error envelope.
fn stripe_error(status: StatusCode, error: Value) -> (StatusCode, Value) {
    (status, json!({ "error": error }))
}

fn missing_param(param: &str) -> (StatusCode, Value) {
    stripe_error(
        StatusCode::BAD_REQUEST,
        json!({
            "code": "parameter_missing",
            "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
            "message": format!("Missing required param: {param}."),
            "param": param,
            "type": "invalid_request_error",
        }),
    )
}

fn respond((status, body): (StatusCode, Value)) -> Response {
    (status, Json(body)).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

async fn create_checkout_session(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let request = RecordedRequest {
        method: "POST".to_owned(),
        path: "/v1/checkout/sessions".to_owned(),
        authorization: header(&headers, "authorization"),
        idempotency_key: header(&headers, "idempotency-key"),
        content_type: header(&headers, "content-type"),
        form: form.as_ref().map(|Form(fields)| fields.clone()).unwrap_or_default(),
    };
    let mut inner = state.lock();
    inner.requests.push(request.clone());

    if !inner.failures.is_empty() {
        let failure = inner.failures.remove(0);
        let mut response = respond(stripe_error(
            failure.status,
            json!({ "message": "An unknown error occurred", "type": "api_error" }),
        ));
        if let Some(retry) = failure.should_retry {
            response
                .headers_mut()
                .insert("stripe-should-retry", HeaderValue::from_static(if retry { "true" } else { "false" }));
        }
        return response;
    }

    if let Some(rejection) = authenticate(&state.secret_key, request.authorization.as_deref()) {
        return respond(rejection);
    }
    if form.is_err() {
        return respond(stripe_error(
            StatusCode::BAD_REQUEST,
            json!({
                "message": "Invalid request: the body must be application/x-www-form-urlencoded.",
                "type": "invalid_request_error",
            }),
        ));
    }

    // Stripe stores the first answer for a key and replays it; reusing the key for other parameters is
    // an error. Validation failures are not stored, so a corrected request may reuse the key.
    if let Some(key) = &request.idempotency_key
        && let Some(stored) = inner.idempotent.get(key)
    {
        if stored.form != request.form {
            return respond(stripe_error(
                StatusCode::BAD_REQUEST,
                json!({
                    "message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
                    "type": "idempotency_error",
                }),
            ));
        }
        let mut response = respond((stored.status, stored.body.clone()));
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return response;
    }

    let session = match new_session(&request) {
        Ok(session) => session,
        Err(rejection) => return respond(rejection),
    };
    if let Some(id) = session.get("id").and_then(Value::as_str) {
        inner.sessions.insert(id.to_owned(), session.clone());
    }
    if let Some(key) = request.idempotency_key {
        inner
            .idempotent
            .insert(key, StoredAnswer { form: request.form, status: StatusCode::OK, body: session.clone() });
    }
    respond((StatusCode::OK, session))
}

/// Stripe's answers to a missing or wrong key.
fn authenticate(secret_key: &str, authorization: Option<&str>) -> Option<(StatusCode, Value)> {
    let Some(key) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
        return Some(stripe_error(
            StatusCode::UNAUTHORIZED,
            json!({
                "message": "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
                "type": "invalid_request_error",
            }),
        ));
    };
    if key == secret_key {
        return None;
    }
    Some(stripe_error(
        StatusCode::UNAUTHORIZED,
        json!({
            "message": format!("Invalid API Key provided: {}", redact_key(key)),
            "type": "invalid_request_error",
        }),
    ))
}

/// A key as Stripe echoes a wrong one: its `sk_test_`-style prefix and last four characters.
fn redact_key(key: &str) -> String {
    let (prefix, rest) = match key.match_indices('_').nth(1) {
        Some((at, _)) => key.split_at(at + 1),
        None => ("", key),
    };
    let hidden = rest.chars().count().saturating_sub(4);
    let visible: String = rest.chars().skip(hidden).collect();
    format!("{prefix}{}{visible}", "*".repeat(hidden))
}

/// Validates the fields our calls send, as Stripe would, and builds the session Stripe would return.
fn new_session(request: &RecordedRequest) -> Result<Value, (StatusCode, Value)> {
    let mode = request.field("mode").ok_or_else(|| missing_param("mode"))?;
    if !["payment", "setup", "subscription"].contains(&mode) {
        return Err(stripe_error(
            StatusCode::BAD_REQUEST,
            json!({
                "message": format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})"),
                "param": "mode",
                "type": "invalid_request_error",
            }),
        ));
    }
    let price = request.field("line_items[0][price]").ok_or_else(|| missing_param("line_items[0][price]"))?;
    if !price.starts_with("price_") {
        return Err(stripe_error(
            StatusCode::BAD_REQUEST,
            json!({
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": format!("No such price: '{price}'"),
                "param": "line_items[0][price]",
                "type": "invalid_request_error",
            }),
        ));
    }
    let quantity = request.field("line_items[0][quantity]").ok_or_else(|| missing_param("line_items[0][quantity]"))?;
    if quantity.parse::<u32>().map_or(true, |q| q == 0) {
        return Err(stripe_error(
            StatusCode::BAD_REQUEST,
            json!({
                "message": format!("Invalid positive integer: {quantity}"),
                "param": "line_items[0][quantity]",
                "type": "invalid_request_error",
            }),
        ));
    }
    let success_url = request.field("success_url").ok_or_else(|| missing_param("success_url"))?;
    let id = format!("cs_test_{}", random_suffix());
    let created = now_unix();
    Ok(json!({
        "id": id,
        "object": "checkout.session",
        "cancel_url": request.field("cancel_url"),
        "client_reference_id": request.field("client_reference_id"),
        "created": created,
        "currency": null,
        "customer": null,
        "expires_at": created + 24 * 60 * 60,
        "livemode": false,
        "metadata": bracketed_map(&request.form, "metadata"),
        "mode": mode,
        "payment_status": "unpaid",
        "status": "open",
        "subscription": null,
        "success_url": success_url,
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    }))
}

/// The map sent as `name[key]=value` fields.
fn bracketed_map(form: &[(String, String)], name: &str) -> BTreeMap<String, String> {
    let prefix = format!("{name}[");
    form.iter()
        .filter_map(|(key, value)| {
            let inner = key.strip_prefix(&prefix)?.strip_suffix(']')?;
            (!inner.contains('[')).then(|| (inner.to_owned(), value.clone()))
        })
        .collect()
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// A webhook delivery as Stripe makes it: the raw body and its `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub body: Vec<u8>,
    pub signature: String,
}

impl WebhookDelivery {
    /// Serialises `event` and signs it with the endpoint `secret` at `timestamp`.
    pub fn signed(event: &Value, secret: &str, timestamp: i64) -> Self {
        let body = event.to_string().into_bytes();
        let signature = sign(&body, secret, timestamp);
        Self { body, signature }
    }
}

/// A Stripe event envelope around `object`.
pub fn event(kind: &str, object: Value, created: i64) -> Value {
    json!({
        "id": format!("evt_{}", random_suffix()),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

/// One account's subscription as Stripe would report it, to build the events of its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFixture {
    pub account: AccountId,
    pub plan: String,
    pub customer: String,
    pub subscription: String,
    pub price: String,
    /// The price per period, in the currency's smallest unit.
    pub amount: i64,
    pub currency: String,
    pub period_start: i64,
    pub period_end: i64,
}

impl SubscriptionFixture {
    /// A monthly subscription to `plan` for `account`, in its first period from `period_start`.
    pub fn new(account: AccountId, plan: &str, period_start: i64) -> Self {
        Self {
            account,
            plan: plan.to_owned(),
            customer: format!("cus_{}", &random_suffix()[..14]),
            subscription: format!("sub_{}", &random_suffix()[..24]),
            price: format!("price_{}", &random_suffix()[..24]),
            amount: 2900,
            currency: "usd".to_owned(),
            period_start,
            period_end: period_start + 30 * 24 * 60 * 60,
        }
    }

    fn metadata(&self) -> Value {
        json!({ "account_id": self.account.to_string(), "plan": self.plan })
    }

    /// `checkout.session.completed` for the session that started this subscription.
    pub fn checkout_session_completed(&self, session_id: &str) -> Value {
        let object = json!({
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": self.amount,
            "amount_total": self.amount,
            "cancel_url": "https://omnidesk.example/billing",
            "client_reference_id": self.account.to_string(),
            "created": self.period_start - 60,
            "currency": self.currency,
            "customer": self.customer,
            "customer_details": { "email": "owner@example.com", "name": null },
            "expires_at": self.period_start - 60 + 24 * 60 * 60,
            "invoice": format!("in_{}", &random_suffix()[..24]),
            "livemode": false,
            "metadata": self.metadata(),
            "mode": "subscription",
            "payment_intent": null,
            "payment_status": "paid",
            "status": "complete",
            "subscription": self.subscription,
            "success_url": "https://omnidesk.example/billing?session_id={CHECKOUT_SESSION_ID}",
            "ui_mode": "hosted",
            "url": null,
        });
        event("checkout.session.completed", object, self.period_start)
    }

    /// The invoice for the current period, paid or not.
    pub fn invoice(&self, paid: bool) -> Value {
        let id = format!("in_{}", &random_suffix()[..24]);
        json!({
            "id": id,
            "object": "invoice",
            "amount_due": self.amount,
            "amount_paid": if paid { self.amount } else { 0 },
            "amount_remaining": if paid { 0 } else { self.amount },
            "attempt_count": 1,
            "attempted": true,
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": self.period_start,
            "currency": self.currency,
            "customer": self.customer,
            "customer_email": "owner@example.com",
            "hosted_invoice_url": format!("https://invoice.stripe.com/i/acct_test/{id}"),
            "lines": {
                "object": "list",
                "data": [{
                    "id": format!("il_{}", &random_suffix()[..24]),
                    "object": "line_item",
                    "amount": self.amount,
                    "currency": self.currency,
                    "description": format!("1 × {} (at ${}.{:02} / month)", self.plan, self.amount / 100, self.amount % 100),
                    "invoice": id,
                    "livemode": false,
                    "metadata": self.metadata(),
                    "parent": {
                        "invoice_item_details": null,
                        "subscription_item_details": {
                            "invoice_item": null,
                            "proration": false,
                            "proration_details": { "credited_items": null },
                            "subscription": self.subscription,
                            "subscription_item": format!("si_{}", &random_suffix()[..14]),
                        },
                        "type": "subscription_item_details",
                    },
                    "period": { "end": self.period_end, "start": self.period_start },
                    "pricing": {
                        "price_details": { "price": self.price, "product": "prod_omnidesk" },
                        "type": "price_details",
                        "unit_amount_decimal": self.amount.to_string(),
                    },
                    "quantity": 1,
                }],
                "has_more": false,
                "total_count": 1,
                "url": format!("/v1/invoices/{id}/lines"),
            },
            "livemode": false,
            "metadata": {},
            "parent": {
                "quote_details": null,
                "subscription_details": {
                    "metadata": self.metadata(),
                    "subscription": self.subscription,
                },
                "type": "subscription_details",
            },
            // For a subscription invoice these are the *previous* period's bounds, as on Stripe.
            "period_end": self.period_start,
            "period_start": self.period_start,
            "status": if paid { "paid" } else { "open" },
            "total": self.amount,
        })
    }

    /// `invoice.paid` for the current period.
    pub fn invoice_paid(&self) -> Value {
        event("invoice.paid", self.invoice(true), self.period_start)
    }

    /// `invoice.payment_failed` for the current period.
    pub fn invoice_payment_failed(&self) -> Value {
        event("invoice.payment_failed", self.invoice(false), self.period_start)
    }

    /// The subscription object with `status`.
    pub fn subscription_object(&self, status: &str) -> Value {
        json!({
            "id": self.subscription,
            "object": "subscription",
            "cancel_at_period_end": false,
            "canceled_at": if status == "canceled" { json!(self.period_end) } else { Value::Null },
            "collection_method": "charge_automatically",
            "created": self.period_start,
            "currency": self.currency,
            "customer": self.customer,
            "items": {
                "object": "list",
                "data": [{
                    "id": format!("si_{}", &random_suffix()[..14]),
                    "object": "subscription_item",
                    "current_period_end": self.period_end,
                    "current_period_start": self.period_start,
                    "metadata": {},
                    "price": { "id": self.price, "object": "price", "unit_amount": self.amount },
                    "quantity": 1,
                    "subscription": self.subscription,
                }],
                "has_more": false,
                "total_count": 1,
                "url": format!("/v1/subscription_items?subscription={}", self.subscription),
            },
            "latest_invoice": format!("in_{}", &random_suffix()[..24]),
            "livemode": false,
            "metadata": self.metadata(),
            "start_date": self.period_start,
            "status": status,
        })
    }

    /// `customer.subscription.updated` with the subscription now in `status`.
    pub fn subscription_updated(&self, status: &str) -> Value {
        event("customer.subscription.updated", self.subscription_object(status), self.period_start)
    }

    /// `customer.subscription.deleted`: the subscription ended.
    pub fn subscription_deleted(&self) -> Value {
        event("customer.subscription.deleted", self.subscription_object("canceled"), self.period_end)
    }
}
