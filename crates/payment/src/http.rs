//! The payment service's public routes: the seed's `GET /api/billing`, the payment history, starting a
//! checkout, and the provider's webhook.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::{FieldError, Json, Problem};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};

use crate::Billing;
use crate::store::PaymentRow;
use crate::webhooks::receive_stripe_webhook;

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
async fn get_billing(State(billing): State<AppState>, caller: Caller) -> Result<axum::Json<BillingView>, Problem> {
    let profile = billing.store.profile(caller.account).await.map_err(|e| Problem::internal(&e))?;
    let last_payments = billing.store.payments(caller.account, 5).await.map_err(|e| Problem::internal(&e))?;
    Ok(axum::Json(match profile {
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
async fn list_payments(
    State(billing): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<PaymentRow>>, Problem> {
    Ok(axum::Json(billing.store.payments(caller.account, 100).await.map_err(|e| Problem::internal(&e))?))
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
) -> Result<impl IntoResponse, Problem> {
    if caller.role == Role::Agent {
        return Err(Problem::forbidden("forbidden", "Only owners and admins may change the plan."));
    }
    let Some(client) = &billing.client else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payment_provider_not_configured",
            "The payment provider is not configured.",
        ));
    };
    let price = billing.settings.price_of(&body.plan).ok_or_else(|| {
        Problem::validation(vec![FieldError::new("plan", "unsupported", "No paid plan with this code can be bought.")])
    })?;
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
            Problem::new(StatusCode::BAD_GATEWAY, "payment_provider_error", "The payment provider refused or failed.")
        })?;
    Ok((StatusCode::CREATED, axum::Json(CheckoutStarted { session_id: session.id, checkout_url: session.url })))
}
