//! What the plan service publishes and consumes.
//!
//! It publishes `plan.changed` whenever an account changes plan (`Plans::redeem`, in the transaction of
//! the change). It consumes: new accounts start on
//! free; a paid invoice moves the account to the paid plan (through a plan token minted and redeemed in
//! the same transaction, so every plan change has a token behind it); an ended subscription moves it back
//! to free.

use async_trait::async_trait;
use contracts::account::{AccountCreated, PaymentSucceeded, SubscriptionEnded};
use kernel::events::{Envelope, Handler};
use kernel::store::Tx;

use crate::catalogue::FREE;
use crate::plans::Plans;
use crate::store::Store;
use kernel::clock::now_ms;

/// `account.created` → the account is on the free plan.
pub struct StartOnFree;

#[async_trait]
impl Handler<AccountCreated> for StartOnFree {
    async fn handle(&self, event: AccountCreated, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        Store::start_subscription(tx, event.account, FREE, now_ms()).await?;
        Ok(())
    }
}

/// `payment.succeeded` → the account moves to the plan it paid for.
pub struct UpgradeOnPayment;

#[async_trait]
impl Handler<PaymentSucceeded> for UpgradeOnPayment {
    async fn handle(&self, event: PaymentSucceeded, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        let source = format!("payment:{}", event.payment_id);
        let token = Plans::mint_token(tx, event.account, &event.plan, &source).await?;
        Plans::redeem(tx, event.account, &token).await?;
        tracing::info!(account.id = %event.account, plan = %event.plan, "plan changed after payment");
        Ok(())
    }
}

/// `subscription.ended` → the account goes back to the free plan (through a token, like every change).
pub struct DowngradeOnEnd;

#[async_trait]
impl Handler<SubscriptionEnded> for DowngradeOnEnd {
    async fn handle(&self, event: SubscriptionEnded, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        let source = format!("subscription-ended:{}", event.provider_subscription);
        let token = Plans::mint_token(tx, event.account, FREE, &source).await?;
        Plans::redeem(tx, event.account, &token).await?;
        tracing::info!(account.id = %event.account, "plan back to free after the subscription ended");
        Ok(())
    }
}
