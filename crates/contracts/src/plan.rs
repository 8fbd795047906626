//! The plan service's port: what other services may ask about an account's plan.

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

kernel::port! {
    /// Questions other services ask the plan service.
    pub trait PlanPort for "plan" {
        /// The plan `account` is on now. Accounts without a subscription are on the free plan.
        idempotent async fn plan_of(&self, account: AccountId) -> PlanSummary;
    }
}
