//! The plan service's port: what other services may ask about an account's plan and usage.

use serde::{Deserialize, Serialize};

use crate::AccountId;

/// The plan an account is on, as other services need to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanSummary {
    /// Stable code: `free`, `starter`, `pro`, `business`.
    pub code: String,
    /// Display name.
    pub name: String,
}

/// The limits of a plan; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanLimits {
    pub agents: Option<u64>,
    pub inboxes: Option<u64>,
    pub conversations_per_month: Option<u64>,
    /// What the plan includes beyond its limits.
    pub features: Vec<Feature>,
}

/// Something a plan includes or not. Only what OmniDesk has is named here, and each one is checked where it
/// is used: a plan advertises nothing it does not enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Signed server-to-server posts to an API inbox, and replies delivered to its callback URL.
    ApiChannel,
    /// The public contact endpoints a website chat client writes through.
    WebWidget,
    /// Saved replies agents insert by short code.
    CannedResponses,
}

impl Feature {
    /// The name clients see (the serialised form).
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::ApiChannel => "api_channel",
            Feature::WebWidget => "web_widget",
            Feature::CannedResponses => "canned_responses",
        }
    }

    /// How a refusal names it to a person.
    fn described(self) -> &'static str {
        match self {
            Feature::ApiChannel => "the API channel",
            Feature::WebWidget => "the website widget",
            Feature::CannedResponses => "canned responses",
        }
    }
}

/// Whether an account's plan includes a feature, and which plan would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureAccess {
    pub feature: Feature,
    pub allowed: bool,
    /// The account's plan.
    pub plan: String,
    /// The least expensive plan that includes the feature.
    pub available_on: Option<String>,
}

impl FeatureAccess {
    /// The answer to a request refused for lack of the feature: 403 `plan_feature_unavailable`, naming the
    /// feature, the account's plan and the plan that includes it.
    pub fn refusal(&self) -> kernel::http::Problem {
        let upgrade = self
            .available_on
            .as_deref()
            .map_or_else(String::new, |plan| format!("; the {plan} plan and those above it do"));
        kernel::http::Problem::forbidden(
            "plan_feature_unavailable",
            format!("The {} plan does not include {}{upgrade}.", self.plan, self.feature.described()),
        )
        .with_extension("feature", self.feature.as_str())
        .with_extension("plan", self.plan.clone())
        .with_extension("available_on", self.available_on.clone())
    }
}

/// Something a plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Limited {
    /// Agents in the account (the caller says how many there are now).
    Agents,
    /// Inboxes in the account (the caller says how many there are now).
    Inboxes,
    /// Conversations started this calendar month (counted by the plan service).
    ConversationsPerMonth,
}

/// Whether one more of something is allowed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
        }
    }

    /// `n` of it, in words: "1 inbox", "3 inboxes", "100 conversations a month".
    fn counted(self, n: u64) -> String {
        let (one, many, per) = match self {
            Limited::Agents => ("agent", "agents", ""),
            Limited::Inboxes => ("inbox", "inboxes", ""),
            Limited::ConversationsPerMonth => ("conversation", "conversations", " a month"),
        };
        format!("{n} {}{per}", if n == 1 { one } else { many })
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
                "The {} plan allows {}; upgrade the plan for more.",
                self.plan,
                self.limit.map_or_else(|| format!("unlimited {limit}"), |n| self.limited.counted(n))
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
        /// Whether `account`'s plan includes `feature`, and which plan does.
        idempotent async fn feature(&self, account: AccountId, feature: Feature) -> FeatureAccess;
        /// Counts `amount` more of a monthly-limited thing for `account`; returns the month's total.
        once async fn record_usage(&self, account: AccountId, limited: Limited, amount: u64) -> u64;
    }
}
