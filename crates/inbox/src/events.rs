//! What the inbox service consumes: customers' messages and identities from the input service, and what
//! became of replies it asked input to deliver. Each is applied in the consumer transaction, so a
//! redelivered event changes nothing. (What it publishes is written next to the changes, in `desk/`.)

use std::sync::Arc;

use async_trait::async_trait;
use contracts::channel::{ContactIdentified, DeliveryUpdated, MessageReceived};
use kernel::events::{Envelope, Handler};
use kernel::store::Tx;

use crate::desk;
use crate::feed::Feed;

/// Turns `input.message_received` into contact, conversation and message.
pub struct ReceiveMessage(pub Feed);

#[async_trait]
impl Handler<MessageReceived> for ReceiveMessage {
    async fn handle(&self, event: MessageReceived, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        desk::receive_message(tx, &self.0, &event).await?;
        Ok(())
    }

    async fn handle_all(&self, events: Vec<(MessageReceived, &Envelope)>, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        let events: Vec<MessageReceived> = events.into_iter().map(|(event, _)| event).collect();
        desk::receive_messages(tx, &self.0, &events).await?;
        Ok(())
    }
}

/// Records contacts that identified themselves on a channel before writing.
pub struct IdentifyContact(pub Feed);

#[async_trait]
impl Handler<ContactIdentified> for IdentifyContact {
    async fn handle(&self, event: ContactIdentified, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        desk::contact_identified(tx, &self.0, event.account, event.inbox, &event.contact).await?;
        Ok(())
    }
}

/// Shows the delivery status of replies.
pub struct ShowDelivery(pub Feed);

#[async_trait]
impl Handler<DeliveryUpdated> for ShowDelivery {
    async fn handle(&self, event: DeliveryUpdated, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        desk::delivery_updated(tx, &self.0, event.account, event.message, event.status, event.reason.as_deref())
            .await?;
        Ok(())
    }
}

pub fn handlers(feed: &Feed) -> (Arc<ReceiveMessage>, Arc<IdentifyContact>, Arc<ShowDelivery>) {
    (
        Arc::new(ReceiveMessage(feed.clone())),
        Arc::new(IdentifyContact(feed.clone())),
        Arc::new(ShowDelivery(feed.clone())),
    )
}
