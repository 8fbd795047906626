use std::sync::Mutex;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use tempfile::TempDir;
use uuid::Uuid;

use super::test_broker::{self, StoppedBroker};
use super::*;
use crate::args;
use crate::events::fixture::{ThingNamed, namespace};
use crate::events::{Envelope, Event, Handler, dead_letters, flush, outbox_backlog, relay};
use crate::store::{Namespace, Tx};

/// Stores each named thing in the consumer's namespace and remembers the order it applied them in. Applying
/// one twice would break the primary key of `things`, so a duplicate cannot go unnoticed.
#[derive(Default)]
struct RecordThing {
    applied: Mutex<Vec<String>>,
    /// The topics it asks the broker for ([`Handler::topics`]); it applies whatever it is sent.
    topics: Option<&'static [&'static str]>,
}

impl RecordThing {
    fn applied(&self) -> Vec<String> {
        self.applied.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Handler<ThingNamed> for RecordThing {
    fn topics(&self) -> Option<&'static [&'static str]> {
        self.topics
    }

    async fn handle(&self, event: ThingNamed, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        tx.execute("insert into things (id, name) values (?, ?)", args![event.id.clone(), event.name]).await?;
        self.applied.lock().expect("lock").push(event.id);
        Ok(())
    }
}

/// A producer namespace, a consumer with its own namespace, and names no other test uses.
struct World {
    _dir: TempDir,
    exchange: String,
    consumer: &'static str,
    producer: Namespace,
    handler: Arc<RecordThing>,
    delivery: Arc<Delivery>,
}

impl World {
    async fn new() -> Self {
        Self::with_handler(RecordThing::default()).await
    }

    async fn with_handler(handler: RecordThing) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let unique = Uuid::now_v7().simple().to_string();
        // Queue names come from consumer names, which the kernel takes as `&'static str`.
        let consumer: &'static str = Box::leak(format!("test-consumer-{unique}").into_boxed_str());
        let producer = namespace(dir.path(), "producer").await;
        let handler = Arc::new(handler);
        let delivery = delivery(&dir, consumer, handler.clone()).await;
        Self { exchange: format!("test.events.{unique}"), consumer, producer, handler, delivery, _dir: dir }
    }

    async fn transport(&self) -> Arc<RabbitMq> {
        RabbitMq::connect_with(&test_broker::url(), "test", &self.exchange).await.expect("connects to RabbitMQ")
    }

    /// Deletes the exchange and queue the test declared; they are durable and would outlive it.
    async fn clean_up(self) {
        let connection =
            Connection::connect(&test_broker::url(), ConnectionProperties::default()).await.expect("connects");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_delete(format!("{}.{}", self.exchange, self.consumer).into(), QueueDeleteOptions::default())
            .await
            .expect("deletes the queue");
        channel
            .exchange_delete(self.exchange.into(), ExchangeDeleteOptions::default())
            .await
            .expect("deletes the exchange");
        connection.close(200, "done".into()).await.expect("closes");
    }
}

async fn delivery(dir: &TempDir, consumer: &'static str, handler: Arc<RecordThing>) -> Arc<Delivery> {
    let mut delivery = Delivery::new(consumer, namespace(dir.path(), "consumer").await);
    delivery.retry_base = Duration::from_millis(1);
    delivery.add::<ThingNamed, _>(handler);
    Arc::new(delivery)
}

async fn produce(producer: &Namespace, id: &str) {
    let mut tx = producer.begin().await.expect("begin");
    tx.publish(&ThingNamed::new(id)).await.expect("publish");
    tx.commit().await.expect("commit");
}

async fn things(namespace: &Namespace) -> Vec<String> {
    let rows: Vec<(String,)> = namespace.fetch_all("select id from things order by id", args![]).await.expect("select");
    rows.into_iter().map(|(id,)| id).collect()
}

/// Waits until `done` holds, for at most `limit`; returns how long it took.
async fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {} s", limit.as_secs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Publishes `body` as a `thing.named` message, past the transport, and waits for the broker's confirm.
async fn publish_raw(link: &Link, exchange: &str, body: &[u8]) {
    link.publisher
        .basic_publish(
            exchange.into(),
            ThingNamed::KIND.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publishes")
        .await
        .expect("confirmed");
}

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("kernel=debug").try_init();
}

#[test]
fn a_url_without_a_vhost_means_the_default_vhost() {
    let uri = parse_url("amqp://guest:guest@rabbit:5672/").expect("parses");

    assert_eq!(uri.vhost, "/");
    assert_eq!(uri.query.heartbeat, Some(HEARTBEAT_SECS));
}

#[test]
fn the_logged_address_never_contains_the_credentials() {
    let uri = parse_url("amqp://omnidesk:s3cret@rabbit.internal:5673/tenants%2fa?heartbeat=30").expect("parses");

    let shown = endpoint(&uri);

    assert_eq!(shown, "amqp://rabbit.internal:5673/tenants%2fa");
    assert!(!shown.contains("s3cret") && !shown.contains("omnidesk"), "{shown}");
    assert_eq!(uri.query.heartbeat, Some(30), "a heartbeat in the URL wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_through_rabbitmq_is_applied_once_even_when_published_twice() {
    let _broker = test_broker::shared().await;
    let world = World::new().await;
    let transport = world.transport().await;
    transport.subscribe(world.delivery.clone()).await.expect("subscribes");
    let event = Envelope::wrap(&ThingNamed::new("a"), "producer", None).expect("wraps");

    transport.publish(&event).await.expect("publishes");
    // The broker's at-least-once: the very same envelope a second time.
    transport.publish(&event).await.expect("publishes again");
    // The consumer applies its queue in order, so once this one is applied the duplicate has been handled.
    transport
        .publish(&Envelope::wrap(&ThingNamed::new("b"), "producer", None).expect("wraps"))
        .await
        .expect("publishes");
    wait_until(Duration::from_secs(10), "events applied", || world.handler.applied().len() >= 2).await;

    assert_eq!(world.handler.applied(), ["a", "b"]);
    let consumer_ns = world.delivery.namespace.clone();
    assert_eq!(things(&consumer_ns).await, ["a", "b"]);
    assert!(dead_letters(&consumer_ns).await.expect("dead letters").is_empty());
    transport.close().await;
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_the_outbox_through_rabbitmq_and_the_consumer_applies_it_in_order() {
    let _broker = test_broker::shared().await;
    let world = World::new().await;
    let transport = world.transport().await;
    transport.subscribe(world.delivery.clone()).await.expect("subscribes");
    let ids: Vec<String> = (0..10).map(|i| format!("e{i:02}")).collect();
    for id in &ids {
        produce(&world.producer, id).await;
    }

    assert_eq!(flush(&world.producer, transport.as_ref()).await.expect("flushes"), ids.len());
    wait_until(Duration::from_secs(10), "events applied", || world.handler.applied().len() >= ids.len()).await;

    assert_eq!(world.handler.applied(), ids);
    assert_eq!(outbox_backlog(&world.producer).await.expect("backlog"), 0);
    transport.close().await;
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_wants_some_topics_of_a_type_is_sent_only_those_and_events_without_a_topic() {
    let _broker = test_broker::shared().await;
    let world = World::with_handler(RecordThing { topics: Some(&["wanted"]), ..RecordThing::default() }).await;
    // The queue as an earlier version of the consumer left it, wanting every topic: that binding goes.
    let earlier = world.transport().await;
    let mut wanting_all = Delivery::new(world.consumer, world.delivery.namespace.clone());
    wanting_all.add::<ThingNamed, _>(Arc::new(RecordThing::default()));
    earlier.subscribe(Arc::new(wanting_all)).await.expect("subscribes");
    earlier.close().await;
    let transport = world.transport().await;
    transport.subscribe(world.delivery.clone()).await.expect("subscribes");
    let mut tx = world.producer.begin().await.expect("begin");
    tx.publish(&ThingNamed::with_topic("1-wanted", "wanted")).await.expect("publish");
    tx.publish(&ThingNamed::with_topic("2-other", "other")).await.expect("publish");
    tx.publish(&ThingNamed::new("3-no-topic")).await.expect("publish");
    tx.publish(&ThingNamed::with_topic("4-wanted", "wanted")).await.expect("publish");
    tx.commit().await.expect("commit");

    assert_eq!(flush(&world.producer, transport.as_ref()).await.expect("flushes"), 4);
    wait_until(Duration::from_secs(10), "events applied", || world.handler.applied().len() >= 3).await;

    // The queue keeps the order events were published in: had the other topic been sent, it would have
    // been applied before the third.
    assert_eq!(world.handler.applied(), ["1-wanted", "3-no-topic", "4-wanted"]);
    transport.close().await;
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_message_is_dropped_without_blocking_the_events_behind_it() {
    let _broker = test_broker::shared().await;
    let world = World::new().await;
    let transport = world.transport().await;
    transport.subscribe(world.delivery.clone()).await.expect("subscribes");
    let link = transport.current().expect("connected");

    publish_raw(&link, &world.exchange, b"not an envelope").await;
    transport
        .publish(&Envelope::wrap(&ThingNamed::new("after"), "producer", None).expect("wraps"))
        .await
        .expect("publishes");
    wait_until(Duration::from_secs(10), "event applied", || !world.handler.applied().is_empty()).await;

    assert_eq!(world.handler.applied(), ["after"]);
    transport.close().await;
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_acknowledged_whole_so_nothing_applied_goes_back_to_the_queue_when_the_consumer_leaves() {
    let _broker = test_broker::shared().await;
    let world = World::new().await;
    let producer_process = world.transport().await;
    let consumer_process = world.transport().await;
    consumer_process.subscribe(world.delivery.clone()).await.expect("subscribes");
    let link = producer_process.current().expect("connected");
    // More than the prefetch, published at once so that they arrive in batches, with unparsable messages
    // (rejected one by one) among them.
    let ids: Vec<String> = (0..usize::from(PREFETCH) * 3).map(|i| format!("e{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        if i % 50 == 7 {
            publish_raw(&link, &world.exchange, b"not an envelope").await;
        }
        let envelope = Envelope::wrap(&ThingNamed::new(id), "producer", None).expect("wraps");
        publish_raw(&link, &world.exchange, &serde_json::to_vec(&envelope).expect("json")).await;
    }
    wait_until(Duration::from_secs(20), "events applied", || world.handler.applied().len() >= ids.len()).await;
    assert_eq!(world.handler.applied(), ids);

    // Unacknowledged messages would go back to the queue once the consumer's connection is gone.
    consumer_process.close().await;
    let queue = format!("{}.{}", world.exchange, world.consumer);
    let declared = link
        .publisher
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .expect("the queue is there");
    assert_eq!(declared.message_count(), 0, "every message was settled");
    producer_process.close().await;
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_a_consumer_is_down_are_applied_when_it_comes_back() {
    let _broker = test_broker::shared().await;
    let world = World::new().await;
    let consumer_process = world.transport().await;
    // Subscribing once declares the consumer's durable queue; then the consumer's process goes away.
    consumer_process.subscribe(world.delivery.clone()).await.expect("subscribes");
    consumer_process.close().await;
    let producer_process = world.transport().await;

    producer_process
        .publish(&Envelope::wrap(&ThingNamed::new("queued"), "producer", None).expect("wraps"))
        .await
        .expect("publishes");
    let restarted = world.transport().await;
    restarted.subscribe(world.delivery.clone()).await.expect("subscribes again");
    wait_until(Duration::from_secs(10), "event applied", || !world.handler.applied().is_empty()).await;

    assert_eq!(world.handler.applied(), ["queued"]);
    producer_process.close().await;
    restarted.close().await;
    world.clean_up().await;
}

/// The acceptance test of the RabbitMQ transport: "RabbitMQ stopped while events are produced, then
/// started → every event is delivered and applied exactly once".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_while_events_are_produced_then_started_applies_every_event_exactly_once() {
    init_logs();
    let _broker = test_broker::exclusive().await;
    let world = World::new().await;
    let transport = world.transport().await;
    transport.subscribe(world.delivery.clone()).await.expect("subscribes");
    let (stop_relay, stop) = watch::channel(false);
    let relay_task = tokio::spawn(relay(world.producer.clone(), transport.clone(), Duration::from_millis(50), stop));
    produce(&world.producer, "before").await;
    wait_until(Duration::from_secs(10), "first event applied", || world.handler.applied().len() == 1).await;

    let mut broker = StoppedBroker::stop().await;
    let refused_at = Instant::now();
    let refused =
        transport.publish(&Envelope::wrap(&ThingNamed::new("refused"), "producer", None).expect("wraps")).await;
    let refused_in = refused_at.elapsed();
    let during: Vec<String> = (0..20).map(|i| format!("during-{i:02}")).collect();
    for id in &during {
        produce(&world.producer, id).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backlog_while_down = outbox_backlog(&world.producer).await.expect("backlog");
    broker.start().await;
    let reconnected_in = wait_until(Duration::from_secs(60), "reconnected", || transport.is_connected()).await;
    let expected = 1 + during.len();
    let caught_up_in =
        wait_until(Duration::from_secs(60), "all events applied", || world.handler.applied().len() >= expected).await;
    // Anything applied twice would show up after the backlog is through, so give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_relay.send(true).expect("stops the relay");
    relay_task.await.expect("the relay stops");
    eprintln!(
        "publish refused in {} ms; reconnected {} ms and all applied {} ms after the broker was back",
        refused_in.as_millis(),
        reconnected_in.as_millis(),
        (reconnected_in + caught_up_in).as_millis()
    );

    assert!(matches!(refused, Err(TransportError::Unavailable(_))), "{refused:?}");
    assert!(refused_in < Duration::from_secs(1), "publishing while down took {refused_in:?}");
    assert_eq!(backlog_while_down, 20, "events produced while RabbitMQ is down stay in the outbox");
    let mut all = vec!["before".to_owned()];
    all.extend(during);
    assert_eq!(world.handler.applied(), all, "each event applied once, in order");
    let consumer_ns = world.delivery.namespace.clone();
    assert_eq!(things(&consumer_ns).await.len(), expected);
    assert!(dead_letters(&consumer_ns).await.expect("dead letters").is_empty());
    assert_eq!(outbox_backlog(&world.producer).await.expect("backlog"), 0);
    transport.close().await;
    world.clean_up().await;
}

/// A process started during a broker outage: it must get a transport (so it can serve), keep what it
/// produces in the outbox, and once the broker is back, connect, attach its consumer and deliver it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_started_while_rabbitmq_is_down_connects_when_it_returns_and_delivers_the_outbox() {
    let _broker = test_broker::exclusive().await;
    let world = World::new().await;
    let mut broker = StoppedBroker::stop().await;

    let transport = world.transport().await;
    assert!(!transport.is_connected(), "nothing to connect to yet");
    transport.subscribe(world.delivery.clone()).await.expect("a subscription waits for the broker");
    let (stop_relay, stop) = watch::channel(false);
    let relay_task = tokio::spawn(relay(world.producer.clone(), transport.clone(), Duration::from_millis(50), stop));
    for id in ["one", "two", "three"] {
        produce(&world.producer, id).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbox_backlog(&world.producer).await.expect("backlog"), 3, "held in the outbox meanwhile");
    broker.start().await;

    wait_until(Duration::from_secs(60), "connected", || transport.is_connected()).await;
    wait_until(Duration::from_secs(60), "all applied", || world.handler.applied().len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(world.handler.applied(), ["one", "two", "three"], "each once, in order");
    stop_relay.send(true).expect("stops the relay");
    relay_task.await.expect("the relay stops");
    transport.close().await;
    world.clean_up().await;
}
