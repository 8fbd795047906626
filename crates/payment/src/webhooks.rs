//! The payment provider's webhook, `POST /hooks/stripe`: verify, deduplicate, apply — in that order, and
//! the last two in one transaction, so a redelivered or concurrent duplicate changes nothing and a
//! rejected delivery stores nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::AccountId;
use contracts::account::{PaymentFailed, PaymentSucceeded, SubscriptionEnded};
use kernel::http::Problem;
use kernel::store::{StoreError, Tx};
use serde_json::{Value, json};

use crate::Billing;
use crate::store::{NewPayment, ProfileUpdate, Store};
use crate::stripe::{self, Invoice, SignatureError, TypedEvent, WebhookEvent};

pub async fn receive_stripe_webhook(
    State(billing): State<std::sync::Arc<Billing>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, Problem> {
    let secret = billing.settings.webhook_secret.as_deref().ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "webhook_not_configured", "The webhook secret is not configured.")
    })?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem::bad_request("missing_signature", "The Stripe-Signature header is missing."))?;
    stripe::verify(header, &body, secret, now_secs(), stripe::DEFAULT_TOLERANCE_SECS).map_err(|error| match error {
        SignatureError::StaleTimestamp => {
            Problem::bad_request("stale_signature", "The signature's timestamp is outside the tolerance.")
        }
        SignatureError::NoMatchingSignature => {
            Problem::bad_request("invalid_signature", "No signature matches the payload.")
        }
        other => Problem::bad_request("malformed_signature", other.to_string()),
    })?;
    let event = WebhookEvent::parse(&body).map_err(|e| Problem::bad_request("malformed_event", e.to_string()))?;
    let typed = event.typed().map_err(|e| Problem::bad_request("malformed_event", e.to_string()))?;

    let mut tx = billing.store.begin().await.map_err(internal)?;
    if !Store::record_provider_event(&mut tx, &event.id, &event.kind, now_ms()).await.map_err(internal)? {
        return Ok(axum::Json(json!({ "received": true, "duplicate": true })));
    }
    apply(&mut tx, typed).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    tracing::info!(provider.event = %event.id, provider.kind = %event.kind, "payment provider event applied");
    Ok(axum::Json(json!({ "received": true })))
}

async fn apply(tx: &mut Tx<'_>, event: TypedEvent) -> Result<(), StoreError> {
    let now = now_ms();
    let ended = matches!(event, TypedEvent::SubscriptionDeleted(_));
    match event {
        TypedEvent::CheckoutSessionCompleted(session) => {
            if let Some(account) = session.account {
                Store::upsert_profile(
                    tx,
                    ProfileUpdate {
                        account,
                        customer: session.customer.as_deref(),
                        subscription: session.subscription.as_deref(),
                        plan_code: session.plan.as_deref(),
                        status: "active",
                        current_period_end: None,
                        now_ms: now,
                    },
                )
                .await?;
            }
        }
        TypedEvent::InvoicePaid(invoice) => apply_invoice(tx, &invoice, true).await?,
        TypedEvent::InvoicePaymentFailed(invoice) => apply_invoice(tx, &invoice, false).await?,
        TypedEvent::SubscriptionUpdated(subscription) | TypedEvent::SubscriptionDeleted(subscription) => {
            let Some(account) = account_of(tx, subscription.account, Some(&subscription.customer)).await? else {
                return Ok(());
            };
            // A deleted subscription is over whatever its last status said; so is one the provider gave up
            // collecting. Either way the account goes back to the free plan.
            if ended || matches!(subscription.status.as_str(), "canceled" | "unpaid" | "incomplete_expired") {
                tx.publish(&SubscriptionEnded { account, provider_subscription: subscription.id.clone() }).await?;
            }
            Store::upsert_profile(
                tx,
                ProfileUpdate {
                    account,
                    customer: Some(&subscription.customer),
                    subscription: Some(&subscription.id),
                    plan_code: subscription.plan.as_deref(),
                    status: &subscription.status,
                    current_period_end: subscription.current_period_end.map(|s| s * 1000),
                    now_ms: now,
                },
            )
            .await?;
        }
        TypedEvent::Unhandled(_) => {}
    }
    Ok(())
}

/// Records a paid or failed invoice once, publishes what it means for the account, and updates its
/// billing status.
async fn apply_invoice(tx: &mut Tx<'_>, invoice: &Invoice, paid: bool) -> Result<(), StoreError> {
    let Some(account) = account_of(tx, invoice.account, invoice.customer.as_deref()).await? else {
        tracing::warn!(invoice = %invoice.id, paid, "invoice for no known account; ignored");
        return Ok(());
    };
    let payment_id = uuid::Uuid::now_v7().to_string();
    let (status, amount) = if paid { ("paid", invoice.amount_paid) } else { ("failed", invoice.amount_due) };
    if !record(tx, invoice, account, &payment_id, status, amount).await? {
        return Ok(());
    }
    match (&invoice.plan, paid) {
        (Some(plan), true) => {
            let amount_jpy = if invoice.currency == "jpy" { invoice.amount_paid } else { 0 };
            tx.publish(&PaymentSucceeded { account, payment_id, plan: plan.clone(), amount_jpy }).await?;
        }
        (None, true) => tracing::warn!(invoice = %invoice.id, "paid invoice names no plan; the plan is unchanged"),
        (_, false) => {
            tx.publish(&PaymentFailed { account, payment_id, reason: "invoice.payment_failed".to_owned() }).await?;
        }
    }
    Store::upsert_profile(
        tx,
        ProfileUpdate {
            account,
            customer: invoice.customer.as_deref(),
            subscription: invoice.subscription.as_deref(),
            plan_code: if paid { invoice.plan.as_deref() } else { None },
            status: if paid { "active" } else { "past_due" },
            current_period_end: if paid { invoice.period_end.map(|s| s * 1000) } else { None },
            now_ms: now_ms(),
        },
    )
    .await
}

async fn record(
    tx: &mut Tx<'_>,
    invoice: &Invoice,
    account: AccountId,
    payment_id: &str,
    status: &str,
    amount: i64,
) -> Result<bool, StoreError> {
    Store::insert_payment(
        tx,
        NewPayment {
            id: payment_id,
            account,
            invoice_id: &invoice.id,
            status,
            amount,
            currency: &invoice.currency,
            plan_code: invoice.plan.as_deref(),
            period_end: invoice.period_end.map(|s| s * 1000),
            now_ms: now_ms(),
        },
    )
    .await
}

/// The account an event concerns: named in its metadata, or known from an earlier event by customer.
async fn account_of(
    tx: &mut Tx<'_>,
    named: Option<AccountId>,
    customer: Option<&str>,
) -> Result<Option<AccountId>, StoreError> {
    if named.is_some() {
        return Ok(named);
    }
    let Some(customer) = customer else { return Ok(None) };
    Ok(Store::account_of_customer(tx, customer).await?.and_then(|id| id.parse().ok()))
}

fn internal(error: StoreError) -> Problem {
    Problem::internal(&error)
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
