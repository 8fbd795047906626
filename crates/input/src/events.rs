//! What the input service consumes: `message.created`. An agent's reply on one of its API channels is
//! added to the contact's transcript and, when the channel has a callback URL, queued for delivery — in the
//! consumer's transaction, so a reply is queued exactly once however often the event arrives. What it
//! publishes (`input.message_received`, `input.contact_identified`, `input.delivery_updated`) is written by
//! `inbound.rs` and `replies.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::channel::{ChannelKind, DeliveryStatus, DeliveryUpdated};
use contracts::inbox::{MessageCreated, MessageKind};
use kernel::events::{Envelope, Handler};
use kernel::store::Tx;
use serde_json::json;
use tokio::sync::Notify;

use crate::domain::{DeliveryId, Direction};
use crate::store::{NewDelivery, NewEntry, Store};
use kernel::clock::now_ms;

/// `message.created` (outgoing, on an API channel) → a transcript line, and a delivery when there is a
/// callback URL. Without one, the transcript is how the client gets the reply, so it counts as sent.
pub struct RecordReplies {
    /// Wakes the delivery worker.
    pub wake: Arc<Notify>,
}

#[async_trait]
impl Handler<MessageCreated> for RecordReplies {
    /// Only replies: incoming messages are in the transcript since we accepted them, and notes and activity
    /// are for agents.
    fn wants(&self, event: &MessageCreated) -> bool {
        event.kind == MessageKind::Outgoing
    }

    /// So that, between processes, the broker does not send us the others at all.
    fn topics(&self) -> Option<&'static [&'static str]> {
        const REPLIES: &[&str] = &[MessageKind::Outgoing.as_str()];
        Some(REPLIES)
    }

    async fn handle(&self, event: MessageCreated, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        let Some(channel) = Store::channel_of_inbox_in(tx, event.inbox).await? else { return Ok(()) };
        // LINE and e-mail replies will be delivered by their own channels; removed endpoints by nobody.
        let handled = matches!(channel.kind, ChannelKind::Api | ChannelKind::WebWidget);
        if !handled || channel.removed_at.is_some() || channel.account_id != event.account {
            return Ok(());
        }
        let Some(source_id) = event.contact_source_id.as_deref() else {
            tracing::warn!(inbox.id = %event.inbox, message.id = %event.message, "reply names no contact; not delivered");
            return Ok(());
        };
        let status = if channel.callback_url.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Sent };
        let appended = Store::append_transcript(
            tx,
            NewEntry {
                message_id: event.message,
                inbox: event.inbox,
                source_id,
                direction: Direction::Outgoing,
                content: &event.content,
                conversation_id: Some(event.conversation),
                created_at: event.created_at,
                delivery_status: Some(status),
            },
        )
        .await?;
        if !appended {
            return Ok(());
        }
        if status == DeliveryStatus::Pending {
            let payload = json!({
                "event": "message.created",
                "inbox": channel.identifier,
                "message": {
                    "id": event.message,
                    "conversation": event.conversation,
                    "content": event.content,
                    "created_at": event.created_at,
                },
                "contact": { "source_id": source_id },
            })
            .to_string();
            Store::enqueue_delivery(
                tx,
                NewDelivery {
                    id: DeliveryId::new(),
                    message_id: event.message,
                    inbox: event.inbox,
                    account: event.account,
                    payload: &payload,
                    now_ms: now_ms(),
                },
            )
            .await?;
            // Woken after the commit, the worker finds the row at once.
            let wake = self.wake.clone();
            tx.after_commit(move || wake.notify_one());
        } else {
            tx.publish(&DeliveryUpdated {
                account: event.account,
                inbox: event.inbox,
                message: event.message,
                status,
                reason: None,
                attempts: 0,
            })
            .await?;
        }
        Ok(())
    }
}
