//! Events of the account domain (user, plan, payment services).

use kernel::events::Event;
use serde::{Deserialize, Serialize};

use crate::{AccountId, UserId};

/// A person signed up. Published by the user service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user: UserId,
    pub account: AccountId,
    pub language: String,
}

impl Event for UserRegistered {
    const KIND: &'static str = "user.registered";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.user.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

/// A new account (workspace) exists, with its owner. Published by the user service; the plan service
/// puts the account on the free plan when it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub account: AccountId,
    pub owner: UserId,
    pub name: String,
}

impl Event for AccountCreated {
    const KIND: &'static str = "account.created";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.account.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

/// An account moved to another plan. Published by the plan service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChanged {
    pub account: AccountId,
    pub from: Option<String>,
    pub to: String,
}

impl Event for PlanChanged {
    const KIND: &'static str = "plan.changed";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.account.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

/// An invoice was paid. Published by the payment service; the plan service mints a plan token for the
/// account and redeems it, moving the account to `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub account: AccountId,
    pub payment_id: String,
    pub plan: String,
    pub amount_jpy: i64,
}

impl Event for PaymentSucceeded {
    const KIND: &'static str = "payment.succeeded";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.account.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

/// A payment failed. Published by the payment service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub account: AccountId,
    pub payment_id: String,
    pub reason: String,
}

impl Event for PaymentFailed {
    const KIND: &'static str = "payment.failed";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.account.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

/// An account's paid subscription ended (cancelled, or unpaid until the provider gave up). Published by the
/// payment service; the plan service moves the account back to the free plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEnded {
    pub account: AccountId,
    pub provider_subscription: String,
}

impl Event for SubscriptionEnded {
    const KIND: &'static str = "subscription.ended";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.account.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}
