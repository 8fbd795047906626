//! The payment service's public routes: the seed's `GET /api/billing`, the payment history, starting a
//! checkout, and the provider's webhook.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::Json;
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::PaymentRow;
use crate::{Billing, PaymentError, webhooks};

type AppState = Arc<Billing>;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/billing", get_billing)
        .get("/api/billing/payments", list_payments)
        .post("/api/billing/checkout", start_checkout)
        .post("/hooks/stripe", receive_stripe_webhook)
}

#[derive(Serialize)]
struct BillingView {
    /// `none` until the account first pays; then the provider's subscription status.
    status: String,
    plan: Option<String>,
    /// When the paid period ends and the next charge is due, in Unix milliseconds.
    next_renewal_at: Option<i64>,
    last_payments: Vec<PaymentRow>,
}

/// `GET /api/billing`: the caller's account's billing status, next renewal and last payments.
async fn get_billing(State(billing): State<AppState>, caller: Caller) -> Result<Json<BillingView>, PaymentError> {
    let profile = billing.store.profile(caller.account).await?;
    let last_payments = billing.store.payments(caller.account, 5).await?;
    Ok(Json(match profile {
        Some(profile) => BillingView {
            status: profile.status,
            plan: profile.plan_code,
            next_renewal_at: profile.current_period_end,
            last_payments,
        },
        None => BillingView { status: "none".to_owned(), plan: None, next_renewal_at: None, last_payments },
    }))
}

/// `GET /api/billing/payments`: the account's payments and failed attempts, newest first.
async fn list_payments(State(billing): State<AppState>, caller: Caller) -> Result<Json<Vec<PaymentRow>>, PaymentError> {
    Ok(Json(billing.store.payments(caller.account, 100).await?))
}

#[derive(Deserialize)]
struct CheckoutRequest {
    plan: String,
}

#[derive(Serialize)]
struct CheckoutStarted {
    session_id: String,
    checkout_url: String,
}

/// `POST /api/billing/checkout`: starts the provider's checkout for a paid plan; the client sends the
/// customer to `checkout_url`. Owners and admins only.
async fn start_checkout(
    State(billing): State<AppState>,
    caller: Caller,
    Json(body): Json<CheckoutRequest>,
) -> Result<(StatusCode, Json<CheckoutStarted>), PaymentError> {
    if caller.role == Role::Agent {
        return Err(PaymentError::NotAllowed);
    }
    let client = billing.client.as_ref().ok_or(PaymentError::ProviderNotConfigured)?;
    let price = billing.settings.price_of(&body.plan).ok_or_else(|| PaymentError::UnknownPlan(body.plan.clone()))?;
    let session = client
        .create_checkout_session(
            caller.account,
            &body.plan,
            price,
            &billing.settings.success_url,
            &billing.settings.cancel_url,
        )
        .await
        .map_err(|error| {
            tracing::warn!(error = %error, "starting a checkout failed");
            PaymentError::ProviderFailed
        })?;
    Ok((StatusCode::CREATED, Json(CheckoutStarted { session_id: session.id, checkout_url: session.url })))
}

/// `POST /hooks/stripe`: the provider's signed webhook (see `webhooks.rs`).
async fn receive_stripe_webhook(
    State(billing): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, PaymentError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    Ok(Json(match webhooks::receive(&billing, signature, &body).await? {
        webhooks::Received::Applied => json!({ "received": true }),
        webhooks::Received::Duplicate => json!({ "received": true, "duplicate": true }),
    }))
}
