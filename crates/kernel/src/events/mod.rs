//! The event bus (DESIGN §4): asynchronous facts between services, delivered at least once and applied
//! effectively once, the same way in every topology.
//!
//! - A producer writes an event with [`Tx::publish`](crate::store::Tx::publish) in the same transaction as
//!   the state change it reports: the event lands in the `_outbox` table of the producer's own namespace.
//! - A relay per namespace ([`relay`]) publishes the outbox in order through the process's
//!   [`Transport`] and stamps each row once the transport has accepted it; a crash between commit and
//!   publish only delays the event.
//! - A consumer registers a [`Handler`] per event type. [`Delivery`] applies an event inside a transaction
//!   of the consumer's namespace that also records the event id in `_processed_events`, so a redelivered
//!   event changes nothing. Failures are retried with backoff; an event still failing is dead-lettered in
//!   `_dead_letters`, visible with `omnidesk events failed` and replayable with `omnidesk events replay`.
//!
//! Transports: [`inprocess::InProcess`] (the monolith; publishing returns once every local consumer has
//! applied or dead-lettered the event) and [`rabbitmq`] (between processes). Service code never sees which.
//!
//! An [`Envelope`]'s payload is JSON text from the producer's serialisation to the consumer's, never a
//! JSON tree. Its routing key is the type followed by the event's topic if it has one ([`Event::topic`],
//! e.g. `message.created.incoming`), and a consumer is sent every topic of its types or only those its
//! handler wants ([`Handler::topics`]: input is sent replies, not the incoming messages). The bus's tables
//! are created in every namespace by the kernel's own migrations (history in `_kernel_migrations`);
//! [`trim`] deletes published outbox rows and processed ids older than `data.event_retention_days` (30;
//! hourly, in slices, never an unpublished event).

mod dead_letters;
mod delivery;
#[cfg(test)]
mod fixture;
pub mod inprocess;
mod outbox;
pub mod rabbitmq;

pub use dead_letters::{DeadLetter, dead_letters, request_replay};
pub use delivery::{Bindings, Delivery, Handler, Outcome};
pub use outbox::{flush, outbox_backlog, relay, relay_metered, trim};

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AccountId;
use crate::clock::now_ms;
use crate::store::StoreError;

/// How many times a consumer tries an event before dead-lettering it.
pub const MAX_ATTEMPTS: u32 = 5;

/// The versioned envelope every event travels in, whatever the transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; consumers deduplicate by it.
    pub id: Uuid,
    /// The event type, e.g. `account.created`; the routing key, followed by the topic if there is one.
    #[serde(rename = "type")]
    pub kind: String,
    /// A refinement of the type that a broker can route by ([`Event::topic`]), e.g. a message's direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The payload's schema version.
    pub version: u32,
    /// When the state change committed, in Unix milliseconds.
    pub occurred_at: i64,
    /// The producing service.
    pub producer: String,
    /// The tenant the event concerns, if any.
    pub account: Option<AccountId>,
    /// The ordering key (events with one key are published in order).
    pub key: String,
    /// The event itself, as JSON text: serialised once from the event where it is published and
    /// deserialised once into the event where it is handled, with no JSON tree in between (the outbox,
    /// the broker and the dead letters carry it as it is).
    pub payload: Box<serde_json::value::RawValue>,
    /// The request id of the request that caused it, for tracing across services.
    pub trace: Option<String>,
}

/// A typed event. Event types live in the contracts crate.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type name, e.g. `account.created`.
    const KIND: &'static str;
    /// The payload's schema version; bump it (and keep consumers tolerant) when the payload changes.
    const VERSION: u32;
    /// The ordering key.
    fn key(&self) -> String;
    /// The tenant the event concerns.
    fn account(&self) -> Option<AccountId> {
        None
    }
    /// A refinement of the type for routing (one word, e.g. a message's direction): a broker sends an
    /// event with a topic only to the consumers that want its type with that topic, or all its topics
    /// ([`Handler::topics`]). None by default.
    fn topic(&self) -> Option<&'static str> {
        None
    }
}

impl Envelope {
    /// Wraps `event` as produced by `producer` now.
    pub fn wrap<E: Event>(event: &E, producer: &str, trace: Option<String>) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            kind: E::KIND.to_owned(),
            topic: event.topic().map(str::to_owned),
            version: E::VERSION,
            occurred_at: now_ms(),
            producer: producer.to_owned(),
            account: event.account(),
            key: event.key(),
            payload: serde_json::value::to_raw_value(event)?,
            trace,
        })
    }

    /// The key a broker routes it by: its type, then its topic if it has one (`message.created.outgoing`).
    pub fn routing_key(&self) -> String {
        match &self.topic {
            Some(topic) => format!("{}.{topic}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// Envelopes are equal when their fields are, the payload compared as the text it travels as.
impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        (self.id, &self.kind, &self.topic, self.version, self.occurred_at, &self.producer, self.account)
            == (other.id, &other.kind, &other.topic, other.version, other.occurred_at, &other.producer, other.account)
            && (&self.key, &self.trace, self.payload.get()) == (&other.key, &other.trace, other.payload.get())
    }
}

/// Why a transport could not take or deliver an event; the relay retries later.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("a consumer could not record the event: {0}")]
    Consumer(#[from] StoreError),
}

/// How events move between producers and consumers.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs and metrics (`in-process`, `rabbitmq`).
    fn name(&self) -> &'static str;
    /// Publishes one event. Returns only once the event is safe: confirmed by the broker, or applied (or
    /// dead-lettered) by every local consumer.
    async fn publish(&self, envelope: &Envelope) -> Result<(), TransportError>;
    /// Publishes `envelopes` in order; returns how many were published before an error, if one happened.
    /// The default publishes one at a time; a transport that can apply a batch at once (in-process)
    /// overrides it.
    async fn publish_batch(&self, envelopes: &[Envelope]) -> (usize, Option<TransportError>) {
        for (published, envelope) in envelopes.iter().enumerate() {
            if let Err(error) = self.publish(envelope).await {
                return (published, Some(error));
            }
        }
        (envelopes.len(), None)
    }
    /// Starts delivering the events `delivery` handles to it. Called once per consuming service.
    async fn subscribe(&self, delivery: Arc<Delivery>) -> Result<(), TransportError>;
    /// Whether events can flow now (for `/readyz`).
    fn is_connected(&self) -> bool {
        true
    }
    /// Stops delivering (at shutdown); events in flight go back to the broker.
    async fn close(&self) {}
}

#[cfg(test)]
mod tests;
