//! The payment provider's webhook, `POST /hooks/stripe`: verify, deduplicate, apply — in that order, and
//! the last two in one transaction, so a redelivered or concurrent duplicate changes nothing and a
//! rejected delivery stores nothing.
//!
//! Applying an event publishes what it means for the account, in the same transaction:
//! `payment.succeeded` for a paid invoice (the plan service moves the account to the plan paid for),
//! `payment.failed` for a failed one, and `subscription.ended` when the provider ends a subscription (the
//! plan service moves the account back to free). The payment service consumes no events.

use contracts::AccountId;
use contracts::account::{PaymentFailed, PaymentSucceeded, SubscriptionEnded};
use kernel::clock::{now_ms, now_secs};
use kernel::store::{StoreError, Tx};

use crate::store::{NewPayment, ProfileUpdate, Store};
use crate::stripe::{self, Invoice, TypedEvent, WebhookEvent};
use crate::{Billing, PaymentError};

/// What became of a verified delivery.
pub enum Received {
    Applied,
    /// The provider delivered this event before; nothing changed.
    Duplicate,
}

/// Verifies a delivery's `signature` header over `body`, then records and applies its event once.
pub async fn receive(billing: &Billing, signature: Option<&str>, body: &[u8]) -> Result<Received, PaymentError> {
    let secret = billing.settings.webhook_secret.as_deref().ok_or(PaymentError::WebhookNotConfigured)?;
    let signature = signature.ok_or(PaymentError::MissingSignature)?;
    stripe::verify(signature, body, secret, now_secs(), stripe::DEFAULT_TOLERANCE_SECS)?;
    let event = WebhookEvent::parse(body).map_err(|e| PaymentError::MalformedEvent(e.to_string()))?;
    let typed = event.typed().map_err(|e| PaymentError::MalformedEvent(e.to_string()))?;

    let mut tx = billing.store.begin().await?;
    if !Store::record_provider_event(&mut tx, &event.id, &event.kind, now_ms()).await? {
        return Ok(Received::Duplicate);
    }
    apply(&mut tx, typed).await?;
    tx.commit().await?;
    tracing::info!(provider.event = %event.id, provider.kind = %event.kind, "payment provider event applied");
    Ok(Received::Applied)
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
