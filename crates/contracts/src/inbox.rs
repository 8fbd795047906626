//! The inbox service's events about conversations and messages (its ids are the crate root's, named here
//! too).

use kernel::events::Event;
use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;
use crate::{AccountId, UserId};
pub use crate::{ContactId, ConversationId, InboxId, MessageId};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// From the contact.
    Incoming,
    /// From an agent, sent to the contact.
    Outgoing,
    /// A private note between agents; never sent.
    Note,
    /// A record of something that happened (status changed, assigned, labelled).
    Activity,
}

impl MessageKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Incoming => "incoming",
            MessageKind::Outgoing => "outgoing",
            MessageKind::Note => "note",
            MessageKind::Activity => "activity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "incoming" => Some(MessageKind::Incoming),
            "outgoing" => Some(MessageKind::Outgoing),
            "note" => Some(MessageKind::Note),
            "activity" => Some(MessageKind::Activity),
            _ => None,
        }
    }
}

kernel::stored_as_text!(MessageKind: |kind: &MessageKind| kind.as_str(), MessageKind::parse);

impl TryFrom<String> for MessageKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MessageKind::parse(&s).ok_or_else(|| format!("unknown message kind `{s}`"))
    }
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Waiting for an agent.
    Open,
    /// Waiting for the customer.
    Pending,
    Resolved,
    /// Out of the way until `snoozed_until`, then open again.
    Snoozed,
}

impl ConversationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Resolved => "resolved",
            ConversationStatus::Snoozed => "snoozed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ConversationStatus::Open),
            "pending" => Some(ConversationStatus::Pending),
            "resolved" => Some(ConversationStatus::Resolved),
            "snoozed" => Some(ConversationStatus::Snoozed),
            _ => None,
        }
    }
}

kernel::stored_as_text!(ConversationStatus: |status: &ConversationStatus| status.as_str(), ConversationStatus::parse);

/// A message was added to a conversation. Published by inbox; input delivers outgoing messages of its
/// channels to the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageCreated {
    pub account: AccountId,
    pub inbox: InboxId,
    pub channel: ChannelKind,
    pub conversation: ConversationId,
    pub message: MessageId,
    pub kind: MessageKind,
    pub content: String,
    /// The agent who wrote it (outgoing messages and notes).
    pub sender: Option<UserId>,
    /// The contact's identity on the channel, for delivery.
    pub contact_source_id: Option<String>,
    pub created_at: i64,
}

/// A conversation started. Published by inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationCreated {
    pub account: AccountId,
    pub inbox: InboxId,
    pub conversation: ConversationId,
    /// The per-account number agents see (#1, #2, …).
    pub display_id: i64,
    pub contact: ContactId,
}

/// A conversation's status changed (open, pending, resolved, snoozed). Published by inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationStatusChanged {
    pub account: AccountId,
    pub conversation: ConversationId,
    pub from: ConversationStatus,
    pub to: ConversationStatus,
    /// The agent who changed it; `None` when the system did (a customer's reply reopening it, a snooze
    /// ending).
    pub by: Option<UserId>,
}

impl Event for MessageCreated {
    const KIND: &'static str = "message.created";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.conversation.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
    /// The message's kind (`message.created.outgoing`): channels want replies only, and most messages are
    /// incoming.
    fn topic(&self) -> Option<&'static str> {
        Some(self.kind.as_str())
    }
}

impl Event for ConversationCreated {
    const KIND: &'static str = "conversation.created";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.conversation.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

impl Event for ConversationStatusChanged {
    const KIND: &'static str = "conversation.status_changed";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.conversation.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}
