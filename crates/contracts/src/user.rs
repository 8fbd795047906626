//! The user service's port: who belongs to an account, for services that assign work to people.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Role, UserId};

/// A member of an account, as other services need to show and check them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    pub user: UserId,
    pub name: String,
    pub email: String,
    pub role: Role,
}

kernel::port! {
    /// Questions other services ask the user service about an account's members.
    pub trait UserPort for "user" {
        /// `user` as a member of `account`; `None` when they are not one (unknown users included).
        idempotent async fn member(&self, account: AccountId, user: UserId) -> Option<Member>;
        /// Every member of `account`, oldest first.
        idempotent async fn members(&self, account: AccountId) -> Vec<Member>;
    }
}
