//! All of the inbox service's SQL, one file per part of the domain (the row types are here). Every
//! statement is scoped by `account_id`; a row of another account is indistinguishable from a missing one.

use contracts::channel::{ChannelKind, DeliveryStatus};
use contracts::inbox::{ContactId, ConversationId, ConversationStatus, InboxId, MessageId, MessageKind};
use contracts::{AccountId, UserId};
use kernel::args;
use kernel::store::{StoreError, Tx, json_rows};

use crate::domain::{CannedResponseId, DocKind, FeedKind, LabelId, Priority};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: InboxId,
    pub name: String,
    pub channel: ChannelKind,
    pub identifier: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub inbox_id: InboxId,
    pub display_id: i64,
    pub status: ConversationStatus,
    pub snoozed_until: Option<i64>,
    pub priority: Priority,
    pub assignee_id: Option<UserId>,
    pub unread_count: i64,
    pub last_message_at: i64,
    pub last_message_preview: Option<String>,
    pub last_message_kind: Option<MessageKind>,
    pub created_at: i64,
    pub updated_at: i64,
    pub contact_id: ContactId,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    /// The names of its labels, joined by U+001F.
    pub labels: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub kind: MessageKind,
    pub content: String,
    pub sender_id: Option<UserId>,
    /// What an activity entry records, as JSON.
    pub attributes: Option<String>,
    pub delivery_status: Option<DeliveryStatus>,
    pub delivery_error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelRow {
    pub id: LabelId,
    pub name: String,
    pub colour: String,
    pub description: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CannedRow {
    pub id: CannedResponseId,
    pub short_code: String,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub seq: i64,
    pub kind: FeedKind,
    /// `None`: not for the reader to see (another inbox's, for an agent).
    pub payload: Option<String>,
}

/// A row for the realtime feed ([`Store::append_feed`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedEntry {
    pub kind: FeedKind,
    /// The inbox of the conversation it is about; `None` for what every agent may see (contacts).
    pub inbox: Option<InboxId>,
    /// The change's data, as JSON.
    pub payload: String,
}

/// The per-tab counts of the conversation list.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TabCounts {
    pub mine: i64,
    pub unassigned: i64,
    pub all_count: i64,
}

/// Where a keyset page starts: rows strictly before (sort instant, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    pub at: i64,
    pub id: uuid::Uuid,
}

impl Before {
    /// Before everything: the first page.
    pub const START: Before = Before { at: i64::MAX, id: uuid::Uuid::max() };
}

/// What a conversation list asks for. `None` filters match everything.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub account: AccountId,
    /// `None` for every status.
    pub status: Option<ConversationStatus>,
    pub inbox: Option<InboxId>,
    /// A specific assignee (the caller for "mine").
    pub assignee: Option<UserId>,
    pub unassigned: bool,
    pub label: Option<String>,
    /// Set for agents: only conversations of inboxes this user is a member of.
    pub member: Option<UserId>,
    pub caller: UserId,
    pub before: Before,
    pub limit: i64,
}

/// The start of every read of conversations as the list shows them (`conversation_cards`: the conversation
/// with its contact and labels), for `concat!` with the statement's own conditions.
macro_rules! conversation_card {
    () => {
        "select c.id, c.inbox_id, c.display_id, c.status, c.snoozed_until, c.priority, c.assignee_id, \
         c.unread_count, c.last_message_at, c.last_message_preview, c.last_message_kind, c.created_at, \
         c.updated_at, c.contact_id, c.contact_name, c.contact_email, c.contact_phone, c.labels from \
         conversation_cards c "
    };
}

/// A customer's channel identity: who wrote, on which inbox, of which account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Identity<'a> {
    pub account: AccountId,
    pub inbox: InboxId,
    pub source_id: &'a str,
}

/// A customer's conversation found by their channel identity ([`Store::known_conversations`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownConversation {
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub source_id: String,
    pub channel: ChannelKind,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub conversation_id: ConversationId,
    pub status: ConversationStatus,
}

/// An incoming message of a run ([`Store::insert_incoming`]).
#[derive(Debug, serde::Serialize)]
pub struct NewIncoming<'a> {
    pub id: MessageId,
    pub account: AccountId,
    pub conversation: ConversationId,
    pub content: &'a str,
    pub created_at: i64,
}

/// A conversation's new last message ([`Store::touch_conversations`]).
#[derive(Debug, serde::Serialize)]
pub struct Touch<'a> {
    pub account: AccountId,
    pub conversation: ConversationId,
    pub at: i64,
    pub preview: &'a str,
    /// Messages to add to its unread count.
    pub unread: i64,
}

/// A search document ([`Store::index`], [`Store::index_all`]).
#[derive(Debug)]
pub struct Document<'a> {
    pub account: AccountId,
    /// The indexed text.
    pub body: &'a str,
    pub kind: DocKind,
    /// The contact's, conversation's or message's id.
    pub id: uuid::Uuid,
    pub conversation: Option<ConversationId>,
}

kernel::service_store!(Store);

mod canned;
mod contacts;
mod conversations;
mod feed;
mod inboxes;
mod labels;
mod messages;
mod search;
