//! Channels: how the input service (the public channel endpoints) and the inbox service (where agents work)
//! meet. Inbox registers an inbox's channel endpoint through [`InputPort`]; input reports what customers
//! send as events ([`MessageReceived`], [`ContactIdentified`]) and what became of agents' replies
//! ([`DeliveryUpdated`]); inbox reports replies through [`MessageCreated`](crate::inbox::MessageCreated).

use kernel::events::Event;
use serde::{Deserialize, Serialize};

use crate::{AccountId, InboxId, MessageId};

/// The kind of channel an inbox receives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Any system that calls the public API (server-to-server, signed) or a widget-style client.
    Api,
    /// The website chat widget.
    WebWidget,
    Line,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Api => "api",
            ChannelKind::WebWidget => "web_widget",
            ChannelKind::Line => "line",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(ChannelKind::Api),
            "web_widget" => Some(ChannelKind::WebWidget),
            "line" => Some(ChannelKind::Line),
            "email" => Some(ChannelKind::Email),
            _ => None,
        }
    }
}

kernel::stored_as_text!(ChannelKind: |kind: &ChannelKind| kind.as_str(), ChannelKind::parse);

impl TryFrom<String> for ChannelKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ChannelKind::parse(&s).ok_or_else(|| format!("unknown channel `{s}`"))
    }
}

/// What inbox tells input when an inbox is created or its channel settings change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelRegistration {
    pub account: AccountId,
    pub inbox: InboxId,
    pub kind: ChannelKind,
    /// Where agents' replies are delivered (API channel); `None` keeps them for the client to list.
    pub callback_url: Option<String>,
}

/// An inbox's public endpoint: the identifier in its public URLs and the secret that signs
/// server-to-server posts and reply callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelCredentials {
    pub identifier: String,
    pub secret: String,
}

/// Why a channel could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RegistrationError {
    /// The callback URL is not an absolute http(s) URL.
    InvalidCallbackUrl(String),
    /// The callback URL names a loopback, private or link-local address, which this deployment does not
    /// let callbacks reach.
    PrivateCallbackUrl(String),
}

kernel::port! {
    /// What the inbox service asks of the input service.
    pub trait InputPort for "input" {
        /// Creates the public endpoint of `registration.inbox`, or updates its settings; the same inbox
        /// always keeps its identifier and secret.
        idempotent async fn register_channel(&self, registration: ChannelRegistration)
            -> Result<ChannelCredentials, RegistrationError>;
        /// The endpoint of `inbox` in `account`, if it has one.
        idempotent async fn channel(&self, account: AccountId, inbox: InboxId) -> Option<ChannelCredentials>;
        /// Closes the endpoint of `inbox`: its identifier stops accepting posts. True if it existed.
        idempotent async fn remove_channel(&self, account: AccountId, inbox: InboxId) -> bool;
    }
}

/// A customer as a channel identifies them: `source_id` is unique within the inbox (the same identity on
/// one channel is the same contact); the rest is what the channel knows of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelContact {
    pub source_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A customer's message arrived on a channel and was recorded (deduplicated) by the input service.
/// Published by input; inbox turns it into contact, conversation and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageReceived {
    pub account: AccountId,
    pub inbox: InboxId,
    /// The message's id, chosen by input when it accepted the post; inbox stores the message under it, so a
    /// redelivered event cannot create a second message.
    pub message: MessageId,
    pub contact: ChannelContact,
    pub content: String,
    /// When input accepted it (Unix ms).
    pub received_at: i64,
}

/// A customer identified themselves on a channel (a widget-style client created its contact) before or
/// without writing. Published by input; inbox creates or updates the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactIdentified {
    pub account: AccountId,
    pub inbox: InboxId,
    pub contact: ChannelContact,
}

/// The outcome of delivering an agent's reply to the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sent,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "sent" => Some(DeliveryStatus::Sent),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

kernel::stored_as_text!(DeliveryStatus: |status: &DeliveryStatus| status.as_str(), DeliveryStatus::parse);

/// Input delivered (or gave up delivering, or is still retrying) an agent's reply. Published by input;
/// inbox shows it on the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryUpdated {
    pub account: AccountId,
    pub inbox: InboxId,
    pub message: MessageId,
    pub status: DeliveryStatus,
    /// Why the last attempt failed, when it did.
    pub reason: Option<String>,
    pub attempts: u32,
}

impl Event for MessageReceived {
    const KIND: &'static str = "input.message_received";
    const VERSION: u32 = 1;
    /// One contact's messages stay in order.
    fn key(&self) -> String {
        format!("{}:{}", self.inbox, self.contact.source_id)
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

impl Event for ContactIdentified {
    const KIND: &'static str = "input.contact_identified";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        format!("{}:{}", self.inbox, self.contact.source_id)
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}

impl Event for DeliveryUpdated {
    const KIND: &'static str = "input.delivery_updated";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.message.to_string()
    }
    fn account(&self) -> Option<AccountId> {
        Some(self.account)
    }
}
