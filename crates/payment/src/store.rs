//! All of the payment service's SQL.

use contracts::AccountId;
use kernel::args;
use kernel::store::{StoreError, Tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    pub plan_code: Option<String>,
    pub status: String,
    pub current_period_end: Option<i64>,
}

/// A payment or failed attempt, as stored and as `GET /api/billing/payments` answers it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Payment)]
pub struct PaymentRow {
    pub id: String,
    /// The provider's invoice id.
    pub provider_invoice_id: String,
    /// `paid` or `failed`.
    pub status: String,
    /// Paid (or due, when failed), in the currency's smallest unit.
    pub amount: i64,
    /// The ISO 4217 currency code, lowercase (`jpy`).
    pub currency: String,
    /// The plan the invoice was for, when it names one.
    #[schema(required)]
    pub plan_code: Option<String>,
    /// When the paid period ends, in Unix milliseconds.
    #[schema(required)]
    pub period_end: Option<i64>,
    /// When the payment was recorded, in Unix milliseconds.
    pub created_at: i64,
}

/// A payment or failed attempt to record.
pub struct NewPayment<'a> {
    pub id: &'a str,
    pub account: AccountId,
    pub invoice_id: &'a str,
    pub status: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub plan_code: Option<&'a str>,
    pub period_end: Option<i64>,
    pub now_ms: i64,
}

/// What a webhook says about an account's billing; `None` leaves a column unchanged.
pub struct ProfileUpdate<'a> {
    pub account: AccountId,
    pub customer: Option<&'a str>,
    pub subscription: Option<&'a str>,
    pub plan_code: Option<&'a str>,
    pub status: &'a str,
    pub current_period_end: Option<i64>,
    pub now_ms: i64,
}

kernel::service_store!(Store);

impl Store {
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        self.db.begin().await
    }

    /// Records a provider event id; false if it was recorded before (a redelivery).
    pub async fn record_provider_event(
        tx: &mut Tx<'_>,
        event_id: &str,
        kind: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = tx
            .execute(
                "insert into provider_events (event_id, kind, received_at) values (?, ?, ?) \
                 on conflict (event_id) do nothing",
                args![event_id, kind, now_ms],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub async fn upsert_profile(tx: &mut Tx<'_>, update: ProfileUpdate<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into billing_profiles (account_id, provider_customer_id, provider_subscription_id, plan_code, \
             status, current_period_end, updated_at) values (?, ?, ?, ?, ?, ?, ?) \
             on conflict (account_id) do update set \
             provider_customer_id = coalesce(excluded.provider_customer_id, billing_profiles.provider_customer_id), \
             provider_subscription_id = coalesce(excluded.provider_subscription_id, billing_profiles.provider_subscription_id), \
             plan_code = coalesce(excluded.plan_code, billing_profiles.plan_code), \
             status = excluded.status, \
             current_period_end = coalesce(excluded.current_period_end, billing_profiles.current_period_end), \
             updated_at = excluded.updated_at",
            args![
                update.account.to_string(),
                update.customer,
                update.subscription,
                update.plan_code,
                update.status,
                update.current_period_end,
                update.now_ms
            ],
        )
        .await
        .map(drop)
    }

    /// The account a provider customer belongs to, as an earlier webhook recorded it.
    pub async fn account_of_customer(tx: &mut Tx<'_>, customer: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = tx
            .fetch_optional("select account_id from billing_profiles where provider_customer_id = ?", args![customer])
            .await?;
        Ok(row.map(|(account,)| account))
    }

    /// Records a payment; false if this invoice outcome was recorded already.
    pub async fn insert_payment(tx: &mut Tx<'_>, payment: NewPayment<'_>) -> Result<bool, StoreError> {
        let inserted = tx
            .execute(
                "insert into payments (id, account_id, provider_invoice_id, status, amount, currency, plan_code, \
                 period_end, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 on conflict (provider_invoice_id, status) do nothing",
                args![
                    payment.id,
                    payment.account.to_string(),
                    payment.invoice_id,
                    payment.status,
                    payment.amount,
                    payment.currency,
                    payment.plan_code,
                    payment.period_end,
                    payment.now_ms
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub async fn profile(&self, account: AccountId) -> Result<Option<ProfileRow>, StoreError> {
        self.db
            .fetch_optional(
                "select plan_code, status, current_period_end from billing_profiles where account_id = ?",
                args![account.to_string()],
            )
            .await
    }

    pub async fn payments(&self, account: AccountId, limit: i64) -> Result<Vec<PaymentRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, provider_invoice_id, status, amount, currency, plan_code, period_end, created_at \
                 from payments where account_id = ? order by created_at desc, id desc limit ?",
                args![account.to_string(), limit],
            )
            .await
    }
}
