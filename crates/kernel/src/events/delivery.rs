//! The consuming side of the bus: a [`Handler`] per event type, and [`Delivery`], which applies an event
//! inside a transaction of the consumer's namespace that also records the event id, retries failures and
//! dead-letters what keeps failing.
//!
//! Events are decoded before the consumer's transaction, and one its handler does not want
//! ([`Handler::wants`]) is acknowledged without a transaction or a processed-id row. What has arrived
//! together is applied in one transaction ([`Delivery::deliver_batch`]): one statement claims them all,
//! and each run of consecutive events of one type goes to its handler's [`Handler::handle_all`], which a
//! handler overrides to apply a set at once. If any of them fails, the batch rolls back and its events are
//! delivered one at a time, with retries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Envelope, Event, MAX_ATTEMPTS};
use crate::args;
use crate::clock::now_ms;
use crate::store::{Namespace, StoreError, Tx};

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

/// A consumer's bindings to a topic exchange ([`Delivery::bindings`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Bindings {
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
    pub(super) consumer: &'static str,
    pub(super) namespace: Namespace,
    handlers: HashMap<&'static str, Arc<dyn ErasedHandler>>,
    pub(super) retry_base: Duration,
    pub(super) metrics: Option<crate::metrics::Metrics>,
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
    pub fn bindings(&self) -> Bindings {
        let mut routes = Bindings::default();
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
                // The namespace is being moved: the event waits (in its queue, or the producer's outbox)
                // and is applied once the move is done, never dead-lettered for it.
                Err(error) if error.downcast_ref::<StoreError>().is_some_and(StoreError::is_moving) => {
                    return Err(StoreError::Moving);
                }
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
                    tracing::warn!(consumer = self.consumer, error = %error, "a batch failed; delivering its events one by one");
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
        let ids: Vec<(Uuid,)> = envelopes.iter().map(|e| (e.id,)).collect();
        let claimed: Vec<(String,)> = tx
            .kernel_fetch_all(
                "insert into _processed_events (event_id, consumer, processed_at) \
                 select value ->> 0, ?, ? from jsonb_each(?) where true \
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
