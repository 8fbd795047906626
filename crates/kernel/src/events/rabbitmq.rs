//! The RabbitMQ transport, for services in separate processes (DESIGN §4).
//!
//! Topology: one durable topic exchange (`omnidesk.events`), the event type (followed by its topic, if it
//! has one: `message.created.outgoing`) as routing key, and one durable queue per consuming service
//! (`omnidesk.events.<consumer>`) bound to the types it handles, with all their topics or only those its
//! handler wants ([`Delivery::bindings`]). Replicas of a service share its queue, so each event is applied
//! once per consuming service, whichever replica takes it.
//!
//! - Publishing waits for the broker's confirm of a persistent message, so the relay stamps an outbox row
//!   only once the event is on the broker's disk. While the connection is down, publishing fails at once
//!   and the row stays in the outbox for the relay's next attempt.
//! - Consuming acknowledges a message only after [`Delivery::deliver`] recorded its outcome in the
//!   consumer's namespace. A message whose outcome could not be recorded (the database is down) goes back
//!   to the queue after a pause; a message still unacknowledged when the connection drops is redelivered by
//!   the broker, and `Delivery` recognises it by its event id.
//! - Each consumer applies its messages in queue order, what has arrived together in one transaction, and
//!   settles them with one acknowledgement: events with one ordering key then apply in the order they were
//!   published. An event that could not be recorded and was requeued (with the rest of its batch) may be
//!   overtaken by those already prefetched behind it.
//! - A supervisor task notices a lost connection (a consumer stopped, a publish failed, or its periodic
//!   check), reconnects with backoff, declares the topology again and resubscribes every [`Delivery`].
//! - A process starts whether or not the broker is there: it serves, its outbox keeps what it publishes,
//!   and the supervisor makes the first connection when the broker comes (`/readyz` says `degraded`
//!   meanwhile).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString, ShortStringError};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{Delivery, Envelope, Transport, TransportError};

/// The exchange every service publishes its events to.
pub const EXCHANGE: &str = "omnidesk.events";

/// How many unacknowledged messages the broker hands each consumer ahead of time; also the most one
/// consumer transaction applies. At 32 the inbox, applying incoming messages, was the stage a backlog built
/// up in front of (about 1,600 messages/s in the desk benchmark); at 128, 2,100–2,200.
const PREFETCH: u16 = 128;

/// How long [`RabbitMq::connect`] waits for the broker before returning a transport that connects in the
/// background: long enough for a broker on the same host to answer, short enough that a process started
/// during an outage serves at once (its clients would otherwise queue in the listen backlog meanwhile).
const FIRST_CONNECT: Duration = Duration::from_secs(3);

/// The first pause between connection attempts; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long one attempt to connect and declare the topology may take before it counts as failed.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a publish waits for the broker's confirm. A lost connection fails the publish at once; this
/// only bounds a broker that stopped answering without closing the socket.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a message whose outcome could not be recorded is held before it goes back to the queue, so a
/// database outage does not turn into a tight redelivery loop.
const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// How often the supervisor checks the connection when nothing told it something went wrong.
const HEALTH_POLL: Duration = Duration::from_secs(1);

/// The heartbeat asked of the broker unless the URL sets one: a broker that vanished without closing the
/// socket (a network partition, a killed pod) is noticed within two intervals instead of the default 60 s.
const HEARTBEAT_SECS: u16 = 10;

/// How long closing a connection may wait for the broker's answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why connecting or declaring the topology failed; it ends up in logs and [`TransportError::Unavailable`].
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("a name does not fit AMQP: {0}")]
    Name(#[from] ShortStringError),
    #[error("no answer within {} s", ESTABLISH_TIMEOUT.as_secs())]
    Timeout,
    #[error("subscribing {consumer}: {source}")]
    Subscribe { consumer: &'static str, source: Box<SetupError> },
}

/// Moves events between processes through RabbitMQ; see the module documentation.
pub struct RabbitMq {
    /// The parsed URL, credentials included; never logged.
    uri: AMQPUri,
    /// The broker's address without credentials, for logs and errors.
    endpoint: String,
    /// The services this process hosts, shown as the connection's name on the broker.
    process: String,
    exchange: ShortString,
    /// The live connection; `None` while the supervisor reconnects.
    link: Mutex<Option<Arc<Link>>>,
    /// Every subscribed consumer, attached again after each reconnection. Held across attaching so a
    /// subscription and a reconnection cannot miss each other.
    deliveries: tokio::sync::Mutex<Vec<Arc<Delivery>>>,
    /// Woken when a consumer stops or a publish fails, so the supervisor checks the connection now.
    trouble: Arc<Notify>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RabbitMq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMq")
            .field("endpoint", &self.endpoint)
            .field("process", &self.process)
            .field("exchange", &self.exchange)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// One connection with its publishing channel and its consumers.
struct Link {
    connection: Connection,
    /// In publisher-confirm mode.
    publisher: Channel,
    /// One task per attached [`Delivery`], each owning its channel.
    consumers: Mutex<Vec<JoinHandle<()>>>,
}

impl Link {
    /// Whether the connection, the publishing channel and `expected` consumers are all alive.
    fn is_healthy(&self, expected: Option<usize>) -> bool {
        let consumers = lock(&self.consumers);
        self.connection.status().connected()
            && self.publisher.status().connected()
            && expected.is_none_or(|expected| consumers.len() == expected)
            && consumers.iter().all(|task| !task.is_finished())
    }

    /// Stops the consumers and closes the connection if it is still open. Aborting a consumer mid-event is
    /// safe: its transaction rolls back, and the unacknowledged message is redelivered.
    async fn close(&self) {
        for task in lock(&self.consumers).drain(..) {
            task.abort();
        }
        if self.connection.status().connected() {
            let closing = self.connection.close(200, "closing".into());
            if let Ok(Err(error)) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
                tracing::debug!(error = %error, "closing the RabbitMQ connection failed");
            }
        }
    }
}

impl RabbitMq {
    /// Hands one event to the broker; the returned future resolves with the broker's confirm.
    async fn send(&self, link: &Link, envelope: &Envelope) -> Result<lapin::PublisherConfirm, TransportError> {
        let body = serde_json::to_vec(envelope)
            .map_err(|e| TransportError::Unavailable(format!("encoding event {}: {e}", envelope.id)))?;
        let routing_key = ShortString::try_new(envelope.routing_key())
            .map_err(|e| TransportError::Unavailable(format!("event type of {}: {e}", envelope.id)))?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(envelope.id.to_string().into())
            .with_timestamp(u64::try_from(envelope.occurred_at / 1000).unwrap_or_default());
        let sent = tokio::time::timeout(
            CONFIRM_TIMEOUT,
            link.publisher.basic_publish(
                self.exchange.clone(),
                routing_key,
                BasicPublishOptions::default(),
                &body,
                properties,
            ),
        )
        .await;
        match sent {
            Ok(Ok(confirm)) => Ok(confirm),
            Ok(Err(error)) => {
                self.trouble.notify_one();
                Err(TransportError::Unavailable(format!("publishing to RabbitMQ at {}: {error}", self.endpoint)))
            }
            Err(_) => {
                self.trouble.notify_one();
                Err(TransportError::Unavailable(format!(
                    "RabbitMQ at {} did not take event {}",
                    self.endpoint, envelope.id
                )))
            }
        }
    }

    /// Connects to the broker at `url` (`amqp://user:password@host:port/vhost`) and declares the
    /// [`EXCHANGE`]; `process` names the services this process hosts. A broker that does not answer within
    /// `FIRST_CONNECT` (3 s) does not stop the process from starting (the outbox keeps what it publishes
    /// meanwhile): the transport is returned disconnected, and its supervisor keeps trying, then attaches
    /// every subscribed consumer once the broker is there. Only a URL that cannot be parsed is an error.
    pub async fn connect(url: &str, process: &str) -> Result<Arc<Self>, TransportError> {
        Self::connect_with(url, process, EXCHANGE).await
    }

    /// [`connect`](Self::connect) with another exchange, so tests sharing a broker do not see each other's
    /// events.
    pub async fn connect_with(url: &str, process: &str, exchange: &str) -> Result<Arc<Self>, TransportError> {
        let uri = parse_url(url)?;
        let endpoint = endpoint(&uri);
        let exchange = ShortString::try_new(exchange)
            .map_err(|e| TransportError::Unavailable(format!("exchange name {exchange:?}: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let transport = Arc::new(Self {
            uri,
            endpoint,
            process: process.to_owned(),
            exchange,
            link: Mutex::new(None),
            deliveries: tokio::sync::Mutex::default(),
            trouble: Arc::new(Notify::new()),
            stop,
        });

        let deadline = Instant::now() + FIRST_CONNECT;
        let mut backoff = BACKOFF_START;
        let link = loop {
            let error = match tokio::time::timeout_at(deadline.into(), transport.establish(&[])).await {
                Ok(Ok(link)) => break Some(link),
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {} s", FIRST_CONNECT.as_secs()),
            };
            if Instant::now() + backoff >= deadline {
                tracing::warn!(
                    amqp.url = %transport.endpoint,
                    error,
                    "RabbitMQ is unreachable; serving without it (events wait in the outbox) and connecting in the background"
                );
                break None;
            }
            tracing::debug!(amqp.url = %transport.endpoint, error, "RabbitMQ not reachable yet; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        if let Some(link) = &link {
            *lock(&transport.link) = Some(link.clone());
            tracing::info!(amqp.url = %transport.endpoint, process, amqp.exchange = %transport.exchange, "connected to RabbitMQ");
        }
        tokio::spawn(supervise(Arc::downgrade(&transport), link, stopped));
        Ok(transport)
    }

    /// Whether a connection to the broker is up now (for readiness checks).
    pub fn is_connected(&self) -> bool {
        lock(&self.link).as_ref().is_some_and(|link| link.is_healthy(None))
    }

    /// Stops reconnecting and consuming, and closes the connection. Unacknowledged messages go back to their
    /// queues; publishing fails from now on.
    pub async fn close(&self) {
        self.stop.send_replace(true);
        let link = lock(&self.link).take();
        if let Some(link) = link {
            link.close().await;
            tracing::info!(amqp.url = %self.endpoint, "disconnected from RabbitMQ");
        }
    }

    fn current(&self) -> Option<Arc<Link>> {
        lock(&self.link).clone()
    }

    /// Opens a connection, declares the exchange and attaches `deliveries`, within [`ESTABLISH_TIMEOUT`].
    async fn establish(&self, deliveries: &[Arc<Delivery>]) -> Result<Arc<Link>, SetupError> {
        let properties =
            ConnectionProperties::default().with_connection_name(format!("omnidesk {}", self.process).into());
        let attempt = async {
            let connection = Connection::connect_uri(self.uri.clone(), properties).await?;
            let link = match self.open_publisher(&connection).await {
                Ok(publisher) => Arc::new(Link { connection, publisher, consumers: Mutex::default() }),
                Err(error) => {
                    if let Err(closing) = connection.close(200, "setup failed".into()).await {
                        tracing::debug!(error = %closing, "closing the RabbitMQ connection failed");
                    }
                    return Err(error);
                }
            };
            for delivery in deliveries {
                if let Err(error) = self.attach(&link, delivery.clone()).await {
                    link.close().await;
                    return Err(SetupError::Subscribe { consumer: delivery.consumer(), source: Box::new(error) });
                }
            }
            Ok(link)
        };
        tokio::time::timeout(ESTABLISH_TIMEOUT, attempt).await.unwrap_or(Err(SetupError::Timeout))
    }

    async fn open_publisher(&self, connection: &Connection) -> Result<Channel, SetupError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel
            .exchange_declare(
                self.exchange.clone(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        Ok(channel)
    }

    /// Declares `delivery`'s queue and bindings on `link` and starts consuming it.
    async fn attach(&self, link: &Link, delivery: Arc<Delivery>) -> Result<(), SetupError> {
        let queue = queue_name(self.exchange.as_str(), &delivery)?;
        let channel = link.connection.create_channel().await?;
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        let routes = delivery.bindings();
        for key in routes.bind {
            let key = ShortString::try_new(key)?;
            channel
                .queue_bind(
                    queue.clone(),
                    self.exchange.clone(),
                    key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for key in routes.unbind {
            let key = ShortString::try_new(key)?;
            channel.queue_unbind(queue.clone(), self.exchange.clone(), key, FieldTable::default()).await?;
        }
        let tag = ShortString::try_new(format!("{}/{}", self.process, delivery.consumer()))?;
        let consumer =
            channel.basic_consume(queue.clone(), tag, BasicConsumeOptions::default(), FieldTable::default()).await?;
        tracing::info!(consumer = delivery.consumer(), amqp.queue = %queue, "consuming events");
        let task = tokio::spawn(consume(channel, consumer, delivery, self.trouble.clone()));
        lock(&link.consumers).push(task);
        Ok(())
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        // The consumer tasks own channels, which keep the connection open; without them it closes itself.
        if let Some(link) = lock(&self.link).take() {
            for task in lock(&link.consumers).drain(..) {
                task.abort();
            }
        }
    }
}

#[async_trait]
impl Transport for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn is_connected(&self) -> bool {
        RabbitMq::is_connected(self)
    }

    async fn close(&self) {
        RabbitMq::close(self).await;
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), TransportError> {
        match self.publish_batch(std::slice::from_ref(envelope)).await {
            (_, Some(error)) => Err(error),
            (_, None) => Ok(()),
        }
    }

    /// Sends every event of the batch, then waits for the broker's confirms in order: a stream of
    /// publishes is confirmed far faster than one publish at a time. Returns how many events, from the
    /// first, the broker confirmed; the relay publishes the rest again (consumers deduplicate).
    async fn publish_batch(&self, envelopes: &[Envelope]) -> (usize, Option<TransportError>) {
        if envelopes.is_empty() {
            return (0, None);
        }
        let Some(link) = self.current() else {
            return (0, Some(TransportError::Unavailable(format!("not connected to RabbitMQ at {}", self.endpoint))));
        };
        let mut confirms = Vec::with_capacity(envelopes.len());
        let mut failure = None;
        for envelope in envelopes {
            match self.send(&link, envelope).await {
                Ok(confirm) => confirms.push(confirm),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let sent = confirms.len();
        for (confirmed, (envelope, confirm)) in envelopes.iter().zip(confirms).enumerate() {
            let error = match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(confirmation)) if confirmation.is_ack() => continue,
                Ok(Ok(_)) => TransportError::Unavailable(format!("RabbitMQ refused event {}", envelope.id)),
                Ok(Err(error)) => {
                    self.trouble.notify_one();
                    TransportError::Unavailable(format!("publishing to RabbitMQ at {}: {error}", self.endpoint))
                }
                Err(_) => {
                    self.trouble.notify_one();
                    TransportError::Unavailable(format!(
                        "RabbitMQ at {} did not confirm event {} within {} s",
                        self.endpoint,
                        envelope.id,
                        CONFIRM_TIMEOUT.as_secs()
                    ))
                }
            };
            return (confirmed, Some(error));
        }
        // Everything sent was confirmed; the first event that could not be sent is where to resume.
        (sent, failure)
    }

    /// Registers `delivery` for good and attaches it to the live connection. While the broker is
    /// unreachable it is attached by the supervisor once it is back, so this fails only if attaching to a
    /// connection that looked healthy failed.
    async fn subscribe(&self, delivery: Arc<Delivery>) -> Result<(), TransportError> {
        let mut deliveries = self.deliveries.lock().await;
        deliveries.push(delivery.clone());
        let Some(link) = self.current() else {
            tracing::debug!(consumer = delivery.consumer(), "subscribed; attached once RabbitMQ is back");
            return Ok(());
        };
        if let Err(error) = self.attach(&link, delivery.clone()).await {
            // The supervisor sees one consumer too few and starts over with all of them.
            self.trouble.notify_one();
            return Err(TransportError::Unavailable(format!(
                "subscribing {} at {}: {error}",
                delivery.consumer(),
                self.endpoint
            )));
        }
        Ok(())
    }
}

/// Applies the messages of one consumer's queue, in order, until the consumer stops. Messages the broker
/// has already sent (up to the prefetch) are applied together, in one consumer transaction.
async fn consume(_channel: Channel, mut consumer: Consumer, delivery: Arc<Delivery>, trouble: Arc<Notify>) {
    let mut stopped = false;
    while !stopped {
        let mut messages = Vec::new();
        match consumer.next().await {
            Some(Ok(message)) => messages.push(message),
            Some(Err(error)) => {
                tracing::debug!(consumer = delivery.consumer(), error = %error, "consumer stopped");
                break;
            }
            None => break,
        }
        while messages.len() < usize::from(PREFETCH) {
            match consumer.next().now_or_never() {
                Some(Some(Ok(message))) => messages.push(message),
                Some(Some(Err(error))) => {
                    tracing::debug!(consumer = delivery.consumer(), error = %error, "consumer stopped");
                    stopped = true;
                    break;
                }
                Some(None) => {
                    stopped = true;
                    break;
                }
                None => break,
            }
        }
        apply(&delivery, messages).await;
    }
    trouble.notify_one();
}

async fn apply(delivery: &Delivery, messages: Vec<lapin::message::Delivery>) {
    let mut parsed = Vec::with_capacity(messages.len());
    for message in messages {
        match serde_json::from_slice::<Envelope>(&message.data) {
            Ok(envelope) => parsed.push((envelope, message)),
            Err(error) => {
                // No later attempt can parse it either, and requeueing it would block the queue forever.
                tracing::error!(
                    consumer = delivery.consumer(),
                    amqp.routing_key = %message.routing_key,
                    amqp.message_id = ?message.properties.message_id(),
                    error = %error,
                    "unparsable message dropped"
                );
                settle(delivery, "reject", message.acker.reject(BasicRejectOptions { requeue: false }).await);
            }
        }
    }
    let (envelopes, messages): (Vec<Envelope>, Vec<lapin::message::Delivery>) = parsed.into_iter().unzip();
    // The channel is this consumer's alone and every earlier delivery on it is settled, so settling the
    // batch's last message with `multiple` settles exactly the batch, with one frame.
    let Some(last) = messages.last() else { return };
    match delivery.deliver_batch(&envelopes).await {
        Ok(()) => {
            settle(delivery, "ack", last.acker.ack(BasicAckOptions { multiple: true }).await);
        }
        Err(error) => {
            tracing::warn!(
                consumer = delivery.consumer(),
                events = envelopes.len(),
                error = %error,
                "event outcomes not recorded; requeueing"
            );
            tokio::time::sleep(REQUEUE_DELAY).await;
            let requeue = BasicNackOptions { requeue: true, multiple: true };
            settle(delivery, "nack", last.acker.nack(requeue).await);
        }
    }
}

/// Logs an acknowledgement the broker did not get. Nothing else is needed: the channel is gone, so the
/// broker redelivers the message, and `Delivery` recognises an event it already applied.
fn settle(delivery: &Delivery, what: &str, result: Result<bool, lapin::Error>) {
    match result {
        Ok(true) => {}
        Ok(false) => tracing::debug!(consumer = delivery.consumer(), what, "channel closed before settling"),
        Err(error) => tracing::debug!(consumer = delivery.consumer(), what, error = %error, "settling failed"),
    }
}

/// Watches the connection and replaces it when it breaks (or makes the first one, when the broker was not
/// there at start), until `stop` fires or the transport is dropped.
async fn supervise(transport: Weak<RabbitMq>, mut link: Option<Arc<Link>>, mut stop: watch::Receiver<bool>) {
    let mut lost_at = Instant::now();
    loop {
        if let Some(current) = link.take() {
            loop {
                let Some(this) = transport.upgrade() else { return };
                // A subscription in progress holds the registry; its consumer count is checked next time.
                let expected = this.deliveries.try_lock().ok().map(|deliveries| deliveries.len());
                if !current.is_healthy(expected) {
                    break;
                }
                let trouble = this.trouble.clone();
                drop(this);
                tokio::select! {
                    () = trouble.notified() => {}
                    () = tokio::time::sleep(HEALTH_POLL) => {}
                    _ = stop.changed() => return,
                }
            }
            let Some(this) = transport.upgrade() else { return };
            lost_at = Instant::now();
            *lock(&this.link) = None;
            tracing::warn!(amqp.url = %this.endpoint, "connection to RabbitMQ lost; reconnecting");
            current.close().await;
        }

        let mut backoff = BACKOFF_START;
        let mut attempts = 0u32;
        link = loop {
            if *stop.borrow() {
                return;
            }
            let Some(this) = transport.upgrade() else { return };
            attempts += 1;
            let deliveries = this.deliveries.lock().await;
            match this.establish(&deliveries).await {
                Ok(fresh) => {
                    *lock(&this.link) = Some(fresh.clone());
                    tracing::info!(
                        amqp.url = %this.endpoint,
                        consumers = deliveries.len(),
                        attempts,
                        downtime_ms = u64::try_from(lost_at.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "connected to RabbitMQ"
                    );
                    break Some(fresh);
                }
                // An outage fails every attempt the same way: say so at first and then about once a minute,
                // so a failure that will not pass by itself (a queue declared with other arguments, revoked
                // credentials) stays visible without flooding the log.
                Err(error) if attempts == 1 || attempts.is_multiple_of(12) => {
                    tracing::warn!(amqp.url = %this.endpoint, attempts, error = %error, "connecting to RabbitMQ failed");
                }
                Err(error) => {
                    tracing::debug!(amqp.url = %this.endpoint, attempts, error = %error, "connecting to RabbitMQ failed");
                }
            }
            drop(deliveries);
            drop(this);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
    }
}

/// Parses an AMQP URL. An empty virtual host (`amqp://host:5672/`, the seed's format) means the default
/// one: RabbitMQ has no vhost named "", and every client the seed's URLs were written for reads it so.
fn parse_url(url: &str) -> Result<AMQPUri, TransportError> {
    let mut uri: AMQPUri =
        url.parse().map_err(|e| TransportError::Unavailable(format!("invalid RabbitMQ URL: {e}")))?;
    if uri.vhost.is_empty() {
        uri.vhost = "/".to_owned();
    }
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(HEARTBEAT_SECS);
    }
    Ok(uri)
}

/// The broker's address for logs: scheme, host, port and vhost, never the credentials.
fn endpoint(uri: &AMQPUri) -> String {
    let vhost = if uri.vhost == "/" { String::new() } else { uri.vhost.replace('%', "%25").replace('/', "%2f") };
    format!("{}://{}:{}/{vhost}", uri.scheme, uri.authority.host, uri.authority.port)
}

/// The queue of one consuming service, shared by its replicas, named after the exchange it consumes
/// (`omnidesk.events.plan`), so deployments or test runs on one broker with their own exchanges never share
/// queues.
fn queue_name(exchange: &str, delivery: &Delivery) -> Result<ShortString, ShortStringError> {
    ShortString::try_new(format!("{exchange}.{}", delivery.consumer()))
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each update is one assignment).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod test_broker;
#[cfg(test)]
mod tests;
