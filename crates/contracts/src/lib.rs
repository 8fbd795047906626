//! Contracts: the only things services know of each other.
//!
//! Every port trait (a service's synchronous face), the DTOs they exchange, the ids and the event types
//! services publish live here. Service crates depend on this crate and on the kernel, never on each other
//! (an architecture invariant, tested by `crates/omnidesk/tests/architecture.rs`).

pub mod account;
pub mod channel;
pub mod inbox;
pub mod plan;
pub mod user;

pub use kernel::auth::{AccountId, Role, UserId};

kernel::uuid_id! {
    /// An inbox: one channel endpoint and the agents who answer it.
    InboxId;
    /// A conversation with one contact in one inbox.
    ConversationId;
    /// One message (incoming, outgoing, private note or activity entry).
    MessageId;
    /// A customer.
    ContactId;
}

/// The names of the services, as used in configuration, namespaces and metrics.
pub mod services {
    pub const USER: &str = "user";
    pub const PLAN: &str = "plan";
    pub const PAYMENT: &str = "payment";
    pub const INBOX: &str = "inbox";
    pub const INPUT: &str = "input";
    pub const INTEGRATION: &str = "integration";
    pub const BATCH: &str = "batch";
}
