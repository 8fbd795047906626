//! The plan domain: which plan an account is on, what it may do, and plan tokens — the only way an
//! account changes plan.

use std::time::Duration;

use contracts::AccountId;
use contracts::account::PlanChanged;
use contracts::plan::{Allowance, Feature, FeatureAccess, Limited, PlanLimits, PlanPort, PlanSummary};
use kernel::auth::{opaque_token, token_digest};
use kernel::ports::PortError;
use kernel::store::{StoreError, Tx};
use time::OffsetDateTime;

use crate::PlanError;
use crate::catalogue::{self, FREE, Plan};
use crate::store::{NewPlanToken, Store};
use kernel::clock::now_ms;

/// How long a plan token can be redeemed.
pub const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The plan service's state and rules.
#[derive(Clone)]
pub struct Plans {
    pub store: Store,
}

impl Plans {
    /// The plan `account` is on (free until a subscription says otherwise).
    pub async fn current(&self, account: AccountId) -> Result<&'static Plan, StoreError> {
        Ok(match self.store.subscription(account).await? {
            Some(subscription) => catalogue::plan_or_free(&subscription.plan_code),
            None => catalogue::plan_or_free(FREE),
        })
    }

    /// Mints a token that moves `account` to `plan_code`, inside the caller's transaction.
    pub async fn mint_token(
        tx: &mut Tx<'_>,
        account: AccountId,
        plan_code: &str,
        source: &str,
    ) -> Result<String, StoreError> {
        Self::mint_token_for(tx, account, plan_code, source, TOKEN_TTL).await
    }

    /// Mints a token valid for `ttl`.
    pub async fn mint_token_for(
        tx: &mut Tx<'_>,
        account: AccountId,
        plan_code: &str,
        source: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let token = opaque_token("pt_");
        let now = now_ms();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Store::insert_plan_token(
            tx,
            NewPlanToken {
                token_hash: &token_digest(&token),
                account,
                plan_code,
                source,
                now_ms: now,
                expires_at_ms: now.saturating_add(ttl),
            },
        )
        .await?;
        Ok(token)
    }

    /// Redeems `token` for `account` inside the caller's transaction: single use, unexpired, and bound to
    /// the account (another account's token is reported as not found).
    pub async fn redeem(tx: &mut Tx<'_>, account: AccountId, token: &str) -> Result<&'static Plan, PlanError> {
        let hash = token_digest(token);
        let row = Store::plan_token(tx, &hash).await?.ok_or(PlanError::TokenNotFound)?;
        if row.account_id != account.to_string() {
            return Err(PlanError::TokenNotFound);
        }
        if row.redeemed_at.is_some() {
            return Err(PlanError::TokenUsed);
        }
        if row.expires_at <= now_ms() {
            return Err(PlanError::TokenExpired);
        }
        let plan = catalogue::find(&row.plan_code).ok_or(PlanError::TokenNotFound)?;
        let Some(previous) = Store::redeem_plan_token(tx, &hash, account, plan.code, now_ms()).await? else {
            return Err(PlanError::TokenUsed);
        };
        tx.publish(&PlanChanged { account, from: previous, to: plan.code.to_owned() }).await?;
        Ok(plan)
    }
}

#[async_trait::async_trait]
impl PlanPort for Plans {
    async fn plan_of(&self, account: AccountId) -> Result<PlanSummary, PortError> {
        Ok(self.current(account).await.map_err(unavailable)?.summary())
    }

    async fn limits_of(&self, account: AccountId) -> Result<PlanLimits, PortError> {
        Ok(self.current(account).await.map_err(unavailable)?.limits())
    }

    async fn allowance(&self, account: AccountId, limited: Limited, current: u64) -> Result<Allowance, PortError> {
        let plan = self.current(account).await.map_err(unavailable)?;
        let used = match catalogue::counter(limited) {
            Some(counter) => {
                let usage = self.store.usage(account, &period(OffsetDateTime::now_utc())).await.map_err(unavailable)?;
                usage.iter().find(|(name, _)| name == counter).map_or(0, |(_, v)| u64::try_from(*v).unwrap_or(0))
            }
            None => current,
        };
        let limit = plan.limit(limited);
        Ok(Allowance { allowed: limit.is_none_or(|l| used < l), limited, used, limit, plan: plan.code.to_owned() })
    }

    async fn feature(&self, account: AccountId, feature: Feature) -> Result<FeatureAccess, PortError> {
        let plan = self.current(account).await.map_err(unavailable)?;
        Ok(FeatureAccess {
            feature,
            allowed: plan.features.contains(&feature),
            plan: plan.code.to_owned(),
            available_on: catalogue::lowest_with(feature).map(|plan| plan.code.to_owned()),
        })
    }

    async fn record_usage(&self, account: AccountId, limited: Limited, amount: u64) -> Result<u64, PortError> {
        let Some(counter) = catalogue::counter(limited) else {
            return Err(PortError::Failed {
                callee: "plan".to_owned(),
                status: 422,
                reason: format!("{limited:?} is not counted monthly"),
            });
        };
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let total = self
            .store
            .add_usage(account, counter, &period(OffsetDateTime::now_utc()), amount)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

fn unavailable(error: StoreError) -> PortError {
    tracing::error!(error = %error, "plan store failed");
    PortError::Failed { callee: "plan".to_owned(), status: 500, reason: "the plan store failed".to_owned() }
}

/// The usage period an instant falls in: its calendar month in UTC.
pub fn period(at: OffsetDateTime) -> String {
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_the_utc_calendar_month() {
        let at = OffsetDateTime::from_unix_timestamp(1_795_814_579).expect("instant");
        assert_eq!(period(at), "2026-11");
    }
}
