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
//! applied or dead-lettered the event) and RabbitMQ (between processes). Service code never sees which.

#[cfg(test)]
mod fixture;
pub mod inprocess;
pub mod rabbitmq;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::args;
use crate::auth::AccountId;
use crate::clock::now_ms;
use crate::store::{Namespace, StoreError, Tx};

/// The kernel's own tables in every namespace.
pub(crate) static KERNEL_MIGRATIONS: Migrator = sqlx::migrate!("src/events/migrations/sqlite");

/// Where the kernel keeps the history of [`KERNEL_MIGRATIONS`] in each namespace.
pub(crate) const KERNEL_MIGRATIONS_TABLE: &str = "_kernel_migrations";

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

/// Applies one type of event to a consumer's state, inside the consumer's transaction.
#[async_trait]
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Whether `event` concerns this consumer at all. An event it does not want is acknowledged without a
    /// transaction and without being recorded as processed: applying it would change nothing, so neither
    /// can applying it again. The default wants every event.
    fn wants(&self, event: &E) -> bool {
        let _ = event;
        true
    }

    /// The topics of `E` ([`Event::topic`]) this consumer wants, if only some: a broker then does not
    /// send it the others (it still sends events published without a topic). An optimisation of
    /// [`Handler::wants`], which must refuse every event of the other topics. None (the default): all.
    fn topics(&self) -> Option<&'static [&'static str]> {
        None
    }

    async fn handle(&self, event: E, envelope: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()>;

    /// Applies a run of consecutive events of this type, in order, in one transaction (a consumer batch).
    /// The default applies them one by one; a handler overrides it when a set of events costs fewer
    /// statements applied together than each on its own.
    async fn handle_all(&self, events: Vec<(E, &Envelope)>, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        for (event, envelope) in events {
            self.handle(event, envelope, tx).await?;
        }
        Ok(())
    }
}

/// An event decoded for its handler, before the consumer's transaction begins: decoding under the
/// namespace's one writer would keep every other writer waiting for it.
type Decoded = Box<dyn std::any::Any + Send>;

#[async_trait]
trait ErasedHandler: Send + Sync {
    /// Decodes `envelope` for the handler; `None` if the handler does not want it.
    fn decode(&self, envelope: &Envelope) -> anyhow::Result<Option<Decoded>>;
    async fn handle(&self, event: Decoded, envelope: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()>;
    async fn handle_all(&self, events: Vec<(Decoded, &Envelope)>, tx: &mut Tx<'_>) -> anyhow::Result<()>;
    fn topics(&self) -> Option<&'static [&'static str]>;
}

struct Typed<E, H> {
    handler: Arc<H>,
    _event: std::marker::PhantomData<fn() -> E>,
}

#[async_trait]
impl<E: Event, H: Handler<E>> ErasedHandler for Typed<E, H> {
    fn decode(&self, envelope: &Envelope) -> anyhow::Result<Option<Decoded>> {
        if envelope.version > E::VERSION {
            anyhow::bail!(
                "{} version {} is newer than this build understands ({})",
                E::KIND,
                envelope.version,
                E::VERSION
            );
        }
        let event: E = serde_json::from_str(envelope.payload.get())?;
        Ok(self.handler.wants(&event).then(|| Box::new(event) as Decoded))
    }

    async fn handle(&self, event: Decoded, envelope: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        self.handler.handle(Self::typed(event)?, envelope, tx).await
    }

    async fn handle_all(&self, events: Vec<(Decoded, &Envelope)>, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        let events = events
            .into_iter()
            .map(|(event, envelope)| Ok((Self::typed(event)?, envelope)))
            .collect::<anyhow::Result<_>>()?;
        self.handler.handle_all(events, tx).await
    }

    fn topics(&self) -> Option<&'static [&'static str]> {
        self.handler.topics()
    }
}

impl<E: Event, H> Typed<E, H> {
    fn typed(event: Decoded) -> anyhow::Result<E> {
        event.downcast::<E>().map(|event| *event).map_err(|_| anyhow::anyhow!("{} decoded as another type", E::KIND))
    }
}

/// A consumer's bindings to a topic exchange ([`Delivery::routes`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub bind: Vec<String>,
    pub unbind: Vec<String>,
}

/// What happened to one delivered event at one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now.
    Applied,
    /// Applied before; nothing changed.
    Duplicate,
    /// Failed every attempt; recorded in `_dead_letters`.
    DeadLettered,
    /// This consumer does not handle the event type, or its handler does not want this event.
    Ignored,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Ignored => "ignored",
        }
    }
}

/// One consuming service: its namespace and its handlers, by event type.
pub struct Delivery {
    consumer: &'static str,
    namespace: Namespace,
    handlers: HashMap<&'static str, Arc<dyn ErasedHandler>>,
    retry_base: Duration,
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("consumer", &self.consumer).field("kinds", &self.kinds()).finish()
    }
}

impl Delivery {
    /// A consumer with no handlers yet; services get theirs through `ServiceContext::subscribe`.
    pub fn new(consumer: &'static str, namespace: Namespace) -> Self {
        Self { consumer, namespace, handlers: HashMap::new(), retry_base: Duration::from_millis(50), metrics: None }
    }

    /// Counts outcomes in `metrics` (`events_consumed_total{consumer, outcome}`).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Handles events of type `E` with `handler`.
    pub fn add<E: Event, H: Handler<E>>(&mut self, handler: Arc<H>) {
        self.handlers.insert(E::KIND, Arc::new(Typed::<E, H> { handler, _event: std::marker::PhantomData }));
    }

    /// The consuming service.
    pub fn consumer(&self) -> &'static str {
        self.consumer
    }

    /// The event types it handles.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// The routing keys a broker's topic exchange should send it events by, and those that must not stay
    /// bound. For each type it handles: the type itself (events published without a topic) and either
    /// every topic of it (`type.#`) or, when its handler wants only some, each of those (`type.<topic>`),
    /// with `type.#` to unbind (a binding left from when it wanted all would defeat the choice).
    pub fn routes(&self) -> Routes {
        let mut routes = Routes::default();
        for kind in self.kinds() {
            let all = format!("{kind}.#");
            match self.handlers[kind].topics() {
                None => routes.bind.push(all),
                Some(topics) => {
                    routes.bind.push(kind.to_owned());
                    routes.bind.extend(topics.iter().map(|topic| format!("{kind}.{topic}")));
                    routes.unbind.push(all);
                }
            }
        }
        routes
    }

    /// Whether it handles events of type `kind`.
    pub fn handles(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// Applies `envelope` effectively once: retried with backoff, dead-lettered after [`MAX_ATTEMPTS`].
    /// An error means the outcome could not even be recorded (the database is down): redeliver later.
    pub async fn deliver(&self, envelope: &Envelope) -> Result<Outcome, StoreError> {
        let outcome = self.deliver_unmetered(envelope).await?;
        if let Some(metrics) = &self.metrics {
            metrics.observe_event_consumed(self.consumer, outcome.label());
        }
        Ok(outcome)
    }

    async fn deliver_unmetered(&self, envelope: &Envelope) -> Result<Outcome, StoreError> {
        let Some(handler) = self.handlers.get(envelope.kind.as_str()) else { return Ok(Outcome::Ignored) };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.apply(handler.as_ref(), envelope).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(consumer = self.consumer, event.id = %envelope.id, event.kind = %envelope.kind, attempt, error = %error, "event handling failed; retrying");
                    tokio::time::sleep(self.retry_base * 2u32.pow(attempt - 1)).await;
                }
                Err(error) => {
                    tracing::error!(consumer = self.consumer, event.id = %envelope.id, event.kind = %envelope.kind, error = %error, "event dead-lettered");
                    self.dead_letter(envelope, &error, attempt).await?;
                    return Ok(Outcome::DeadLettered);
                }
            }
        }
    }

    async fn apply(&self, handler: &dyn ErasedHandler, envelope: &Envelope) -> anyhow::Result<Outcome> {
        let Some(event) = handler.decode(envelope)? else { return Ok(Outcome::Ignored) };
        let mut tx = self.namespace.begin().await?;
        if !self.claim(&mut tx, envelope).await? {
            return Ok(Outcome::Duplicate);
        }
        handler.handle(event, envelope, &mut tx).await?;
        tx.commit().await?;
        Ok(Outcome::Applied)
    }

    /// Records `envelope` as processed by this consumer inside `tx`; false if it already was. Recording
    /// first, and the effect after, in one transaction: if the effect fails, the record rolls back too.
    async fn claim(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> Result<bool, StoreError> {
        let claimed = tx
            .kernel_execute(
                "insert into _processed_events (event_id, consumer, processed_at) values (?, ?, ?) \
                 on conflict (event_id, consumer) do nothing",
                args![envelope.id.to_string(), self.consumer, now_ms()],
            )
            .await?;
        Ok(claimed == 1)
    }

    /// Applies a run of events in one transaction — far cheaper than one transaction each when events
    /// arrive in bursts. If any of them fails, the whole run rolls back and each event is delivered on its
    /// own, with its retries and dead-lettering, so one bad event cannot hold back the others.
    pub async fn deliver_batch(&self, envelopes: &[Envelope]) -> Result<(), StoreError> {
        let mine: Vec<&Envelope> = envelopes.iter().filter(|e| self.handles(&e.kind)).collect();
        if mine.len() > 1 {
            match self.apply_all(&mine).await {
                Ok(outcomes) => {
                    if let Some(metrics) = &self.metrics {
                        for outcome in outcomes {
                            metrics.observe_event_consumed(self.consumer, outcome.label());
                        }
                    }
                    return Ok(());
                }
                Err(error) => {
                    tracing::debug!(consumer = self.consumer, error = %error, "a batch failed; delivering its events one by one");
                }
            }
        }
        for envelope in mine {
            self.deliver(envelope).await?;
        }
        Ok(())
    }

    async fn apply_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<Vec<Outcome>> {
        let decoded = envelopes
            .iter()
            .map(|envelope| match self.handlers.get(envelope.kind.as_str()) {
                Some(handler) => handler.decode(envelope),
                None => Ok(None),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let wanted: Vec<&Envelope> =
            envelopes.iter().zip(&decoded).filter(|(_, event)| event.is_some()).map(|(e, _)| *e).collect();
        if wanted.is_empty() {
            return Ok(vec![Outcome::Ignored; envelopes.len()]);
        }
        let mut tx = self.namespace.begin().await?;
        let mut claimed = self.claim_all(&mut tx, &wanted).await?;
        // An event in the batch twice is claimed once: its first copy applies it.
        let mut outcomes = Vec::with_capacity(envelopes.len());
        let mut fresh = Vec::with_capacity(wanted.len());
        for (envelope, event) in envelopes.iter().zip(decoded) {
            outcomes.push(match event {
                None => Outcome::Ignored,
                Some(event) if claimed.remove(&envelope.id) => {
                    fresh.push((event, *envelope));
                    Outcome::Applied
                }
                Some(_) => Outcome::Duplicate,
            });
        }
        // Consecutive events of one type go to their handler together; the order of all of them is kept.
        let mut fresh = fresh.into_iter().peekable();
        while let Some((event, first)) = fresh.next() {
            let mut run = vec![(event, first)];
            while let Some(next) = fresh.next_if(|(_, next)| next.kind == first.kind) {
                run.push(next);
            }
            if let Some(handler) = self.handlers.get(first.kind.as_str()) {
                handler.handle_all(run, &mut tx).await?;
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// [`Delivery::claim`] for a batch, with one statement: the ids of the events not processed before.
    async fn claim_all(&self, tx: &mut Tx<'_>, envelopes: &[&Envelope]) -> Result<HashSet<Uuid>, StoreError> {
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.id).collect();
        let claimed: Vec<(String,)> = tx
            .kernel_fetch_all(
                "insert into _processed_events (event_id, consumer, processed_at) \
                 select value, ?, ? from jsonb_each(?) where true \
                 on conflict (event_id, consumer) do nothing returning event_id",
                args![self.consumer, now_ms(), crate::store::json_rows(&ids)?],
            )
            .await?;
        Ok(claimed.into_iter().filter_map(|(id,)| id.parse().ok()).collect())
    }

    async fn dead_letter(&self, envelope: &Envelope, error: &anyhow::Error, attempts: u32) -> Result<(), StoreError> {
        let body = serde_json::to_string(envelope)?;
        self.namespace
            .kernel_execute(
                "insert into _dead_letters (event_id, consumer, envelope, error, attempts, failed_at) \
                 values (?, ?, ?, ?, ?, ?) \
                 on conflict (event_id, consumer) do update set error = excluded.error, \
                 attempts = _dead_letters.attempts + excluded.attempts, failed_at = excluded.failed_at, \
                 replay_requested_at = null",
                args![
                    envelope.id.to_string(),
                    self.consumer,
                    body,
                    format!("{error:#}"),
                    i64::from(attempts),
                    now_ms()
                ],
            )
            .await
            .map(drop)
    }

    /// Re-delivers the dead letters whose replay was requested; a success removes the dead letter.
    pub async fn replay_requested(&self) -> Result<usize, StoreError> {
        let rows: Vec<(String, String)> = self
            .namespace
            .kernel_fetch_all(
                "select event_id, envelope from _dead_letters where consumer = ? and replay_requested_at is not null",
                args![self.consumer],
            )
            .await?;
        let mut replayed = 0;
        for (event_id, body) in rows {
            let envelope: Envelope = serde_json::from_str(&body)?;
            self.namespace
                .kernel_execute(
                    "update _dead_letters set replay_requested_at = null where event_id = ? and consumer = ?",
                    args![event_id.clone(), self.consumer],
                )
                .await?;
            if matches!(self.deliver(&envelope).await?, Outcome::Applied | Outcome::Duplicate) {
                self.namespace
                    .kernel_execute(
                        "delete from _dead_letters where event_id = ? and consumer = ?",
                        args![event_id, self.consumer],
                    )
                    .await?;
                replayed += 1;
            }
        }
        Ok(replayed)
    }
}

/// One dead letter, as `omnidesk events failed` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub event_id: String,
    pub consumer: String,
    pub error: String,
    pub attempts: i64,
    pub failed_at: i64,
    pub replay_requested_at: Option<i64>,
}

/// The dead letters in `namespace`.
pub async fn dead_letters(namespace: &Namespace) -> Result<Vec<DeadLetter>, StoreError> {
    namespace
        .kernel_fetch_all(
            "select event_id, consumer, error, attempts, failed_at, replay_requested_at from _dead_letters \
             order by failed_at",
            args![],
        )
        .await
}

/// Marks dead letters in `namespace` for replay (all, or one event); the running consumer re-delivers them.
pub async fn request_replay(namespace: &Namespace, event_id: Option<&str>) -> Result<u64, StoreError> {
    match event_id {
        Some(id) => {
            namespace
                .kernel_execute(
                    "update _dead_letters set replay_requested_at = ? where event_id = ?",
                    args![now_ms(), id],
                )
                .await
        }
        None => namespace.kernel_execute("update _dead_letters set replay_requested_at = ?", args![now_ms()]).await,
    }
}

/// Publishes `namespace`'s outbox through `transport`, in order, until `stop` fires. Wakes when a
/// transaction that published commits, and at least every `poll` (for rows left by a crash or a failure).
pub async fn relay(
    namespace: Namespace,
    transport: Arc<dyn Transport>,
    poll: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    relay_metered(namespace, transport, poll, stop, None).await;
}

/// [`relay`], keeping `events_published_total` and the `events_outbox_backlog` gauge in `metrics`.
pub async fn relay_metered(
    namespace: Namespace,
    transport: Arc<dyn Transport>,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    metrics: Option<crate::metrics::Metrics>,
) {
    let wake = namespace.outbox_signal();
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_batch(&namespace, transport.as_ref()).await {
            Ok(0) => {
                backoff = Duration::from_millis(100);
                if let Some(metrics) = &metrics {
                    metrics.set_outbox_backlog(namespace.service(), 0);
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                }
            }
            Ok(published) => {
                if let Some(metrics) = &metrics {
                    metrics.observe_events_published(namespace.service(), transport.name(), published);
                }
            }
            Err(error) => {
                if let (Some(metrics), Ok(backlog)) = (&metrics, outbox_backlog(&namespace).await) {
                    metrics.set_outbox_backlog(namespace.service(), backlog);
                }
                tracing::warn!(producer = namespace.service(), transport = transport.name(), error = %error, retry_ms = backoff.as_millis(), "publishing the outbox failed; retrying");
                // New commits do not cut the backoff short: the transport is what is failing.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes what is left in `namespace`'s outbox now (at shutdown); returns how many were published.
pub async fn flush(namespace: &Namespace, transport: &dyn Transport) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        match relay_batch(namespace, transport).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    id: String,
    kind: String,
    topic: Option<String>,
    version: i64,
    occurred_at: i64,
    producer: String,
    account_id: Option<String>,
    event_key: String,
    payload: String,
    trace: Option<String>,
}

/// Publishes up to one batch of unpublished events; returns how many were published.
async fn relay_batch(namespace: &Namespace, transport: &dyn Transport) -> anyhow::Result<usize> {
    let rows: Vec<OutboxRow> = namespace
        .kernel_fetch_all(
            "select seq, id, kind, topic, version, occurred_at, producer, account_id, event_key, payload, trace \
             from _outbox where published_at is null order by seq limit 100",
            args![],
        )
        .await?;
    // Rows are stamped once per batch, not once per event: each stamp is a write to a namespace whose
    // producers are writing too. An event published but not yet stamped when the process dies is published
    // again after restart, and consumers ignore it (they deduplicate by id).
    let mut seqs = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        seqs.push(row.seq);
        envelopes.push(Envelope {
            id: row.id.parse()?,
            kind: row.kind,
            topic: row.topic,
            version: u32::try_from(row.version)?,
            occurred_at: row.occurred_at,
            producer: row.producer,
            account: row.account_id.as_deref().map(str::parse).transpose()?,
            key: row.event_key,
            payload: serde_json::value::RawValue::from_string(row.payload)?,
            trace: row.trace,
        });
    }
    if envelopes.is_empty() {
        return Ok(0);
    }
    let (sent, error) = transport.publish_batch(&envelopes).await;
    let published = match (seqs.first(), sent.checked_sub(1).and_then(|last| seqs.get(last))) {
        (Some(&first), Some(&last)) => Some((first, last)),
        _ => None,
    };
    // The first event not published is the one whose failure is recorded.
    let failure = error.map(|error| (seqs.get(sent).or(seqs.last()).copied().unwrap_or_default(), error));
    let count = match published {
        Some((first, last)) => {
            let stamped = namespace
                .kernel_execute(
                    "update _outbox set published_at = ? where seq between ? and ? and published_at is null",
                    args![now_ms(), first, last],
                )
                .await?;
            usize::try_from(stamped).unwrap_or(0)
        }
        None => 0,
    };
    if let Some((seq, error)) = failure {
        namespace
            .kernel_execute(
                "update _outbox set attempts = attempts + 1, last_error = ? where seq = ?",
                args![error.to_string(), seq],
            )
            .await?;
        return Err(error.into());
    }
    Ok(count)
}

/// Deletes what the event bus no longer needs from `namespace`: outbox rows published before `before`
/// (Unix milliseconds) and the ids of events processed before it. An unpublished event is never deleted.
/// Dropping a processed id ends its deduplication, so `before` must be older than any redelivery can be
/// (the configured retention is days; redeliveries come within minutes). Returns how many rows went; in
/// slices, so that producers and consumers of the namespace never wait long behind it.
pub async fn trim(namespace: &Namespace, before: i64) -> Result<u64, StoreError> {
    let mut deleted = namespace
        .kernel_delete_in_slices(
            "delete from _outbox where seq in (select seq from _outbox \
             where published_at is not null and published_at < ? order by published_at limit ?)",
            args![before],
        )
        .await?;
    // Ids are recorded in time order, so the old ones are those before the first recent one; finding it
    // walks only the old rows, without an index on the time that every claim would have to maintain.
    let first_kept: Vec<(i64,)> = namespace
        .kernel_fetch_all(
            "select rowid from _processed_events where processed_at >= ? order by rowid limit 1",
            args![before],
        )
        .await?;
    let first_kept = first_kept.first().map_or(i64::MAX, |(rowid,)| *rowid);
    deleted += namespace
        .kernel_delete_in_slices(
            "delete from _processed_events where rowid in (select rowid from _processed_events \
             where rowid < ? and processed_at < ? order by rowid limit ?)",
            args![first_kept, before],
        )
        .await?;
    Ok(deleted)
}

/// How many events wait in `namespace`'s outbox.
pub async fn outbox_backlog(namespace: &Namespace) -> Result<i64, StoreError> {
    let (count,): (i64,) =
        namespace.kernel_fetch_one("select count(*) from _outbox where published_at is null", args![]).await?;
    Ok(count)
}

#[cfg(test)]
mod tests;
