//! All of the inbox service's SQL, one file per part of the domain (the row types are here). Every
//! statement is scoped by `account_id`; a row of another account is indistinguishable from a missing one.

use contracts::AccountId;
use kernel::args;
use kernel::store::{StoreError, Tx, json_rows};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub identifier: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub inbox_id: String,
    pub display_id: i64,
    pub status: String,
    pub snoozed_until: Option<i64>,
    pub priority: String,
    pub assignee_id: Option<String>,
    pub unread_count: i64,
    pub last_message_at: i64,
    pub last_message_preview: Option<String>,
    pub last_message_kind: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub labels: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub kind: String,
    pub content: String,
    pub sender_id: Option<String>,
    pub attributes: Option<String>,
    pub delivery_status: Option<String>,
    pub delivery_error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelRow {
    pub id: String,
    pub name: String,
    pub colour: String,
    pub description: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CannedRow {
    pub id: String,
    pub short_code: String,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub seq: i64,
    pub kind: String,
    /// `None`: not for the reader to see (another inbox's, for an agent).
    pub payload: Option<String>,
}

/// The per-tab counts of the conversation list.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TabCounts {
    pub mine: i64,
    pub unassigned: i64,
    pub all_count: i64,
}

/// What a conversation list asks for. `None` filters match everything.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub account: AccountId,
    /// `None` for every status.
    pub status: Option<String>,
    pub inbox: Option<String>,
    /// A specific assignee (the caller for "mine").
    pub assignee: Option<String>,
    pub unassigned: bool,
    pub label: Option<String>,
    /// Set for agents: only conversations of inboxes this user is a member of.
    pub member: Option<String>,
    pub caller: String,
    /// Rows strictly older than (last_message_at, id).
    pub before: (i64, String),
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

/// A customer's conversation found by their channel identity ([`Store::known_conversations`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownConversation {
    pub account_id: String,
    pub inbox_id: String,
    pub source_id: String,
    pub channel: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub conversation_id: String,
    pub status: String,
}

/// An incoming message of a run ([`Store::insert_incoming`]).
#[derive(Debug, serde::Serialize)]
pub struct NewIncoming<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub conversation: &'a str,
    pub content: &'a str,
    pub created_at: i64,
}

/// A conversation's new last message ([`Store::touch_conversations`]).
#[derive(Debug, serde::Serialize)]
pub struct Touch<'a> {
    pub account: &'a str,
    pub conversation: &'a str,
    pub at: i64,
    pub preview: &'a str,
    /// Messages to add to its unread count.
    pub unread: i64,
}

/// A search document ([`Store::index_all`]).
#[derive(Debug, serde::Serialize)]
pub struct Document<'a> {
    pub scope: &'a str,
    /// The indexed text.
    pub body: &'a str,
    pub kind: &'static str,
    pub id: &'a str,
    pub conversation: Option<&'a str>,
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
