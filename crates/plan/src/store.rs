//! All of the plan service's SQL.

use contracts::AccountId;
use kernel::args;
use kernel::store::{StoreError, Tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub plan_code: String,
    pub changed_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanTokenRow {
    pub account_id: String,
    pub plan_code: String,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
}

/// A new plan token to store (by hash).
pub struct NewPlanToken<'a> {
    pub token_hash: &'a str,
    pub account: AccountId,
    pub plan_code: &'a str,
    pub source: &'a str,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

kernel::service_store!(Store);

impl Store {
    pub async fn subscription(&self, account: AccountId) -> Result<Option<SubscriptionRow>, StoreError> {
        self.db
            .fetch_optional(
                "select plan_code, changed_at from subscriptions where account_id = ?",
                args![account.to_string()],
            )
            .await
    }

    /// Starts `account` on `plan_code` unless it has a subscription already.
    pub async fn start_subscription(
        tx: &mut Tx<'_>,
        account: AccountId,
        plan_code: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into subscriptions (account_id, plan_code, started_at, changed_at) values (?, ?, ?, ?) \
             on conflict (account_id) do nothing",
            args![account.to_string(), plan_code, now_ms, now_ms],
        )
        .await
        .map(drop)
    }

    pub async fn insert_plan_token(tx: &mut Tx<'_>, token: NewPlanToken<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into plan_tokens (token_hash, account_id, plan_code, source, created_at, expires_at) \
             values (?, ?, ?, ?, ?, ?)",
            args![
                token.token_hash,
                token.account.to_string(),
                token.plan_code,
                token.source,
                token.now_ms,
                token.expires_at_ms
            ],
        )
        .await
        .map(drop)
    }

    pub async fn plan_token(tx: &mut Tx<'_>, token_hash: &str) -> Result<Option<PlanTokenRow>, StoreError> {
        tx.fetch_optional(
            "select account_id, plan_code, expires_at, redeemed_at from plan_tokens where token_hash = ?",
            args![token_hash],
        )
        .await
    }

    /// Marks the token redeemed and moves its account to its plan; `None` when the token was redeemed
    /// concurrently, else the plan the account was on before (`None` inside when it had no subscription).
    pub async fn redeem_plan_token(
        tx: &mut Tx<'_>,
        token_hash: &str,
        account: AccountId,
        plan_code: &str,
        now_ms: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let claimed = tx
            .execute(
                "update plan_tokens set redeemed_at = ? where token_hash = ? and redeemed_at is null",
                args![now_ms, token_hash],
            )
            .await?;
        if claimed != 1 {
            return Ok(None);
        }
        let previous: Option<(String,)> = tx
            .fetch_optional("select plan_code from subscriptions where account_id = ?", args![account.to_string()])
            .await?;
        tx.execute(
            "insert into subscriptions (account_id, plan_code, started_at, changed_at, changed_by_token) \
             values (?, ?, ?, ?, ?) \
             on conflict (account_id) do update set plan_code = excluded.plan_code, \
             changed_at = excluded.changed_at, changed_by_token = excluded.changed_by_token",
            args![account.to_string(), plan_code, now_ms, now_ms, token_hash],
        )
        .await?;
        Ok(Some(previous.map(|(code,)| code)))
    }

    pub async fn usage(&self, account: AccountId, period: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.db
            .fetch_all(
                "select counter, value from usage_counters where account_id = ? and period = ?",
                args![account.to_string(), period],
            )
            .await
    }

    pub async fn add_usage(
        &self,
        account: AccountId,
        counter: &str,
        period: &str,
        amount: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "insert into usage_counters (account_id, counter, period, value) values (?, ?, ?, ?) \
             on conflict (account_id, counter, period) do update set value = usage_counters.value + excluded.value",
            args![account.to_string(), counter, period, amount],
        )
        .await?;
        let total: Option<(i64,)> = tx
            .fetch_optional(
                "select value from usage_counters where account_id = ? and counter = ? and period = ?",
                args![account.to_string(), counter, period],
            )
            .await?;
        tx.commit().await?;
        Ok(total.map_or(0, |(value,)| value))
    }
}
