//! The plan service's port: what other services may ask about an account's plan and usage.

use serde::{Deserialize, Serialize};

use crate::AccountId;

/// The plan an account is on, as other services need to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Stable code: `free`, `starter`, `pro`, `business`.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// The limits of a plan; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLimits {
    pub agents: Option<u64>,
    pub inboxes: Option<u64>,
    pub conversations_per_month: Option<u64>,
    pub line_pushes_per_month: Option<u64>,
    /// Feature flags the plan includes (`api_channel`, `line`, `email`, `webhooks`, …).
    pub features: Vec<String>,
}

/// Something a plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limited {
    /// Agents in the account (the caller says how many there are now).
    Agents,
    /// Inboxes in the account (the caller says how many there are now).
    Inboxes,
    /// Conversations started this calendar month (counted by the plan service).
    ConversationsPerMonth,
    /// LINE push messages sent this calendar month (counted by the plan service).
    LinePushesPerMonth,
}

/// Whether one more of something is allowed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub allowed: bool,
    pub limited: Limited,
    pub used: u64,
    pub limit: Option<u64>,
    pub plan: String,
}

impl Limited {
    /// The name clients see in a `plan_limit_reached` problem.
    pub fn as_str(self) -> &'static str {
        match self {
            Limited::Agents => "agents",
            Limited::Inboxes => "inboxes",
            Limited::ConversationsPerMonth => "conversations_per_month",
            Limited::LinePushesPerMonth => "line_pushes_per_month",
        }
    }
}

impl Allowance {
    /// The answer to a request refused by this allowance: 403 `plan_limit_reached`, naming the limit, the
    /// plan, how many are used and how many the plan allows.
    pub fn refusal(&self) -> kernel::http::Problem {
        let limit = self.limited.as_str();
        kernel::http::Problem::forbidden(
            "plan_limit_reached",
            format!(
                "The {} plan allows {} {limit}; upgrade the plan for more.",
                self.plan,
                self.limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
            ),
        )
        .with_extension("limit", limit)
        .with_extension("plan", self.plan.clone())
        .with_extension("used", self.used)
        .with_extension("max", self.limit)
    }
}

kernel::port! {
    /// Questions other services ask the plan service.
    pub trait PlanPort for "plan" {
        /// The plan `account` is on now. Accounts without a subscription are on the free plan.
        idempotent async fn plan_of(&self, account: AccountId) -> PlanSummary;
        /// The limits and features of `account`'s plan.
        idempotent async fn limits_of(&self, account: AccountId) -> PlanLimits;
        /// Whether `account` may add one more of `limited`. For seat-style limits the caller passes how
        /// many it has now (`current`); monthly limits are counted here.
        idempotent async fn allowance(&self, account: AccountId, limited: Limited, current: u64) -> Allowance;
        /// Counts `amount` more of a monthly-limited thing for `account`; returns the month's total.
        once async fn record_usage(&self, account: AccountId, limited: Limited, amount: u64) -> u64;
    }
}
