//! The inbox service's own ids and states, shared by its rows, rules and views (the ids and states other
//! services see too — inboxes, conversations, messages, contacts, a conversation's status — are in
//! `contracts`). Each is stored as text and read back as itself: text that is not one is an error.

use serde::{Deserialize, Serialize};

kernel::uuid_id! {
    /// A label of an account.
    LabelId;
    /// A canned response of an account.
    CannedResponseId;
}

/// How urgent a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    None,
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::None => "none",
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Priority::None),
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            "urgent" => Some(Priority::Urgent),
            _ => None,
        }
    }
}

kernel::stored_as_text!(Priority: |priority: &Priority| priority.as_str(), Priority::parse);

/// What a row of the realtime feed reports; agents' sockets receive it as the frame's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FeedKind {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.updated")]
    MessageUpdated,
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    #[serde(rename = "conversation.status_changed")]
    ConversationStatusChanged,
    #[serde(rename = "contact.created")]
    ContactCreated,
    #[serde(rename = "contact.updated")]
    ContactUpdated,
}

impl FeedKind {
    const ALL: [FeedKind; 8] = [
        FeedKind::MessageCreated,
        FeedKind::MessageUpdated,
        FeedKind::ConversationCreated,
        FeedKind::ConversationUpdated,
        FeedKind::ConversationAssigned,
        FeedKind::ConversationStatusChanged,
        FeedKind::ContactCreated,
        FeedKind::ContactUpdated,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FeedKind::MessageCreated => "message.created",
            FeedKind::MessageUpdated => "message.updated",
            FeedKind::ConversationCreated => "conversation.created",
            FeedKind::ConversationUpdated => "conversation.updated",
            FeedKind::ConversationAssigned => "conversation.assigned",
            FeedKind::ConversationStatusChanged => "conversation.status_changed",
            FeedKind::ContactCreated => "contact.created",
            FeedKind::ContactUpdated => "contact.updated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        FeedKind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

kernel::stored_as_text!(FeedKind: |kind: &FeedKind| kind.as_str(), FeedKind::parse);

/// What a search document is; stored beside it in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Contact,
    Conversation,
    Message,
}

impl DocKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DocKind::Contact => "contact",
            DocKind::Conversation => "conversation",
            DocKind::Message => "message",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for kind in FeedKind::ALL {
            assert_eq!(FeedKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
        for priority in [Priority::None, Priority::Low, Priority::Medium, Priority::High, Priority::Urgent] {
            assert_eq!(Priority::parse(priority.as_str()), Some(priority));
            assert_eq!(serde_json::to_value(priority).expect("json"), priority.as_str());
        }
        assert_eq!(Priority::parse("critical"), None);
        assert_eq!(FeedKind::parse("message"), None);
    }
}
