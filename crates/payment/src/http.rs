//! The payment service's public routes: the seed's `GET /api/billing`, the payment history, starting a
//! checkout, and the provider's webhook.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::{Json, Problem};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::store::PaymentRow;
use crate::{Billing, PaymentError, webhooks};

type AppState = Arc<Billing>;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(routes!(get_billing))
        .route(routes!(list_payments))
        .route(routes!(start_checkout))
        .route(routes!(receive_stripe_webhook))
}

/// An account's billing status.
#[derive(Serialize, ToSchema)]
struct BillingView {
    /// `none` until the account first pays; then the provider's subscription status (`active`,
    /// `past_due`, `canceled`, …).
    status: String,
    /// The plan paid for, when known.
    #[schema(required)]
    plan: Option<String>,
    /// When the paid period ends and the next charge is due, in Unix milliseconds.
    #[schema(required)]
    next_renewal_at: Option<i64>,
    /// The five most recent payments and failed attempts, newest first.
    last_payments: Vec<PaymentRow>,
}

/// The caller's account's billing.
///
/// The account's billing status, next renewal and last payments.
#[utoipa::path(get, path = "/api/billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's billing status", body = BillingView),
    ),
)]
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

/// The account's payments.
///
/// The account's payments and failed attempts, newest first (the last 100).
#[utoipa::path(get, path = "/api/billing/payments", security(("bearer" = [])),
    responses(
        (status = 200, description = "The payments, newest first", body = [PaymentRow]),
    ),
)]
async fn list_payments(State(billing): State<AppState>, caller: Caller) -> Result<Json<Vec<PaymentRow>>, PaymentError> {
    Ok(Json(billing.store.payments(caller.account, 100).await?))
}

#[derive(Deserialize, ToSchema)]
struct CheckoutRequest {
    /// The code of the paid plan to buy (`starter`, `pro`, `business`).
    #[schema(example = "pro")]
    plan: String,
}

/// A started checkout.
#[derive(Serialize, ToSchema)]
struct CheckoutStarted {
    /// The provider's checkout session id.
    session_id: String,
    /// Where to send the customer to pay.
    checkout_url: String,
}

/// Starts a checkout.
///
/// Starts the provider's checkout for a paid plan; the client sends the customer to `checkout_url`. The
/// plan changes once the provider reports the payment. Owners and admins only.
#[utoipa::path(post, path = "/api/billing/checkout", security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "The checkout session", body = CheckoutStarted),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 422, description = "`validation_failed`: `plan` is missing, or no paid plan with this code can be bought", body = Problem),
        (status = 502, description = "`payment_provider_error`: the payment provider refused or failed", body = Problem),
    ),
)]
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

/// What the webhook answers a verified delivery.
#[derive(Serialize, ToSchema)]
struct WebhookReceived {
    /// Always `true`.
    received: bool,
    /// `true` when the provider delivered this event before and nothing changed; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    duplicate: Option<bool>,
}

/// The payment provider's webhook.
///
/// Stripe's signed event deliveries (see `webhooks.rs`): verified against the `Stripe-Signature` header over
/// the raw body, then recorded and applied once. Public; the signature authenticates it.
#[utoipa::path(post, path = "/hooks/stripe",
    params(("stripe-signature" = String, Header, description = "Stripe's signature over the raw body: `t=<timestamp>,v1=<signature>`")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it"),
    responses(
        (status = 200, description = "The event was applied, or had been already", body = WebhookReceived),
        (status = 400, description = "`missing_signature`, `malformed_signature`, `stale_signature`, `invalid_signature`: the delivery is not verified; `malformed_event`: a verified body that is not a Stripe event", body = Problem),
    ),
)]
async fn receive_stripe_webhook(
    State(billing): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReceived>, PaymentError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    Ok(Json(match webhooks::receive(&billing, signature, &body).await? {
        webhooks::Received::Applied => WebhookReceived { received: true, duplicate: None },
        webhooks::Received::Duplicate => WebhookReceived { received: true, duplicate: Some(true) },
    }))
}
