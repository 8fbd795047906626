//! Events of the account domain (user, plan, payment services).

use kernel::events::Event;
use serde::{Deserialize, Serialize};

use crate::{AccountId, UserId};

/// Implements [`Event`] for an event about one account, keyed (and so ordered) by that account.
macro_rules! account_event {
    ($($event:ty => $kind:literal, version $version:literal);* $(;)?) => {$(
        impl Event for $event {
            const KIND: &'static str = $kind;
            const VERSION: u32 = $version;
            fn key(&self) -> String {
                self.account.to_string()
            }
            fn account(&self) -> Option<AccountId> {
                Some(self.account)
            }
        }
    )*};
}

account_event! {
    UserRegistered => "user.registered", version 1;
    AccountCreated => "account.created", version 1;
    PlanChanged => "plan.changed", version 1;
    PaymentSucceeded => "payment.succeeded", version 1;
    PaymentFailed => "payment.failed", version 1;
    SubscriptionEnded => "subscription.ended", version 1;
}

/// A person signed up. Published by the user service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user: UserId,
    pub account: AccountId,
    pub language: String,
}

/// A new account (workspace) exists, with its owner. Published by the user service; the plan service
/// puts the account on the free plan when it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub account: AccountId,
    pub owner: UserId,
    pub name: String,
}

/// An account moved to another plan. Published by the plan service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChanged {
    pub account: AccountId,
    pub from: Option<String>,
    pub to: String,
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

/// A payment failed. Published by the payment service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub account: AccountId,
    pub payment_id: String,
    pub reason: String,
}

/// An account's paid subscription ended (cancelled, or unpaid until the provider gave up). Published by the
/// payment service; the plan service moves the account back to the free plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionEnded {
    pub account: AccountId,
    pub provider_subscription: String,
}
