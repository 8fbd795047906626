//! What the inbox service's API and realtime feed show: rows turned into JSON views.

use contracts::UserId;
use contracts::channel::{ChannelKind, DeliveryStatus};
use contracts::inbox::{ContactId, ConversationId, ConversationStatus, InboxId, MessageId, MessageKind};
use serde::Serialize;

use crate::domain::{CannedResponseId, LabelId, Priority};
use crate::store::{Before, CannedRow, ContactRow, ConversationRow, InboxRow, LabelRow, MessageRow};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InboxView {
    pub id: InboxId,
    pub name: String,
    pub channel: ChannelKind,
    /// The public identifier of the channel endpoint (`/public/api/v1/inboxes/{identifier}/…`).
    pub identifier: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The channel secret; shown to owners and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<InboxRow> for InboxView {
    fn from(row: InboxRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            channel: row.channel,
            identifier: row.identifier,
            callback_url: row.callback_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ContactRow> for ContactView {
    fn from(row: ContactRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            email: row.email,
            phone: row.phone,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The contact as a conversation shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContactSummary {
    pub id: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastMessage {
    pub preview: String,
    pub kind: MessageKind,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    pub display_id: i64,
    pub inbox_id: InboxId,
    pub status: ConversationStatus,
    pub snoozed_until: Option<i64>,
    pub priority: Priority,
    pub assignee_id: Option<UserId>,
    pub unread_count: i64,
    pub labels: Vec<String>,
    pub contact: ContactSummary,
    pub last_message: Option<LastMessage>,
    pub last_message_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ConversationRow> for ConversationView {
    fn from(row: ConversationRow) -> Self {
        let mut labels: Vec<String> =
            row.labels.map(|joined| joined.split('\u{1f}').map(str::to_owned).collect()).unwrap_or_default();
        labels.sort();
        let last_message = match (row.last_message_preview, row.last_message_kind) {
            (Some(preview), Some(kind)) => Some(LastMessage { preview, kind }),
            _ => None,
        };
        Self {
            id: row.id,
            display_id: row.display_id,
            inbox_id: row.inbox_id,
            status: row.status,
            snoozed_until: row.snoozed_until,
            priority: row.priority,
            assignee_id: row.assignee_id,
            unread_count: row.unread_count,
            labels,
            contact: ContactSummary {
                id: row.contact_id,
                name: row.contact_name,
                email: row.contact_email,
                phone: row.contact_phone,
            },
            last_message,
            last_message_at: row.last_message_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub kind: MessageKind,
    pub content: String,
    pub sender_id: Option<UserId>,
    /// What an activity entry records (`action`, and its details).
    pub attributes: Option<serde_json::Value>,
    /// Outgoing messages on channels that deliver: pending, sent or failed.
    pub delivery_status: Option<DeliveryStatus>,
    pub delivery_error: Option<String>,
    pub created_at: i64,
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            conversation_id: row.conversation_id,
            kind: row.kind,
            content: row.content,
            sender_id: row.sender_id,
            attributes: row.attributes.and_then(|json| serde_json::from_str(&json).ok()),
            delivery_status: row.delivery_status,
            delivery_error: row.delivery_error,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelView {
    pub id: LabelId,
    pub name: String,
    pub colour: String,
    pub description: Option<String>,
    pub created_at: i64,
}

impl From<LabelRow> for LabelView {
    fn from(row: LabelRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            colour: row.colour,
            description: row.description,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CannedView {
    pub id: CannedResponseId,
    pub short_code: String,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<CannedRow> for CannedView {
    fn from(row: CannedRow) -> Self {
        Self {
            id: row.id,
            short_code: row.short_code,
            content: row.content,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A page of a list, with the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Encodes a keyset cursor: the sort instant and the id of the last row of a page.
pub fn cursor(at: i64, id: impl std::fmt::Display) -> String {
    format!("{at}_{id}")
}

/// Decodes a cursor; `None` for anything that is not one.
pub fn parse_cursor(cursor: &str) -> Option<Before> {
    let (at, id) = cursor.split_once('_')?;
    Some(Before { at: at.parse().ok()?, id: uuid::Uuid::parse_str(id).ok()? })
}
