use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::fixture::{ThingNamed, namespace};
use super::inprocess::InProcess;
use super::outbox::relay_batch;
use super::*;
use crate::args;
use crate::clock::now_ms;
use crate::store::{Namespace, Tx};
use std::sync::Arc;
use std::time::Duration;

/// Stores each named thing in the consumer's namespace; fails the first `failures` attempts.
struct StoreThing {
    failures: AtomicU32,
    seen: Mutex<Vec<String>>,
}

impl StoreThing {
    fn failing(failures: u32) -> Arc<Self> {
        Arc::new(Self { failures: AtomicU32::new(failures), seen: Mutex::default() })
    }
}

#[async_trait]
impl Handler<ThingNamed> for StoreThing {
    async fn handle(&self, event: ThingNamed, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            anyhow::bail!("not today");
        }
        tx.execute("insert into things (id, name) values (?, ?)", args![event.id.clone(), event.name]).await?;
        self.seen.lock().expect("lock").push(event.id);
        Ok(())
    }
}

async fn consumer(dir: &std::path::Path, handler: Arc<StoreThing>) -> Arc<Delivery> {
    let mut delivery = Delivery::new("consumer", namespace(dir, "consumer").await);
    delivery.retry_base = Duration::from_millis(1);
    delivery.add::<ThingNamed, _>(handler);
    Arc::new(delivery)
}

async fn produce(producer: &Namespace, id: &str) {
    let mut tx = producer.begin().await.expect("begin");
    tx.execute("insert into things (id, name) values (?, ?)", args![id, format!("thing {id}")]).await.expect("insert");
    tx.publish(&ThingNamed::new(id)).await.expect("publish");
    tx.commit().await.expect("commit");
}

/// A producer, and a consumer storing things, subscribed to an in-process transport.
async fn wired(dir: &std::path::Path) -> (Namespace, Arc<StoreThing>, Arc<Delivery>, InProcess) {
    let producer = namespace(dir, "producer").await;
    let handler = StoreThing::failing(0);
    let delivery = consumer(dir, handler.clone()).await;
    let transport = InProcess::new();
    transport.subscribe(delivery.clone()).await.expect("subscribe");
    (producer, handler, delivery, transport)
}

async fn things(namespace: &Namespace) -> Vec<String> {
    let rows: Vec<(String,)> = namespace.fetch_all("select id from things order by id", args![]).await.expect("select");
    rows.into_iter().map(|(id,)| id).collect()
}

#[tokio::test]
async fn an_event_committed_with_its_change_is_applied_once_even_when_published_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;
    let handler = StoreThing::failing(0);
    let transport = InProcess::new();
    transport.subscribe(consumer(dir.path(), handler.clone()).await).await.expect("subscribe");
    produce(&producer, "a").await;

    assert_eq!(flush(&producer, &transport).await.expect("flush"), 1);
    // A redelivery (the broker's at-least-once) of the very same envelope.
    let (id,): (String,) = producer.kernel_fetch_one("select id from _outbox", args![]).await.expect("row");
    let envelope = Envelope {
        id: id.parse().expect("uuid"),
        ..Envelope::wrap(&ThingNamed::new("a"), "producer", None).expect("wrap")
    };
    transport.publish(&envelope).await.expect("republish");

    assert_eq!(*handler.seen.lock().expect("lock"), ["a"]);
    assert_eq!(outbox_backlog(&producer).await.expect("backlog"), 0);
}

#[tokio::test]
async fn a_rolled_back_change_publishes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;
    {
        let mut tx = producer.begin().await.expect("begin");
        tx.publish(&ThingNamed { id: "x".into(), name: "x".into(), topic: None }).await.expect("publish");
    }
    assert_eq!(outbox_backlog(&producer).await.expect("backlog"), 0);
}

#[tokio::test]
async fn an_event_committed_before_a_crash_is_delivered_by_the_next_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handler = StoreThing::failing(0);
    {
        // The first process commits and dies before its relay runs.
        let producer = namespace(dir.path(), "producer").await;
        produce(&producer, "b").await;
        producer.close().await;
    }
    let producer = namespace(dir.path(), "producer").await;
    let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
    transport.subscribe(consumer(dir.path(), handler.clone()).await).await.expect("subscribe");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let relay_task = tokio::spawn(relay(producer.clone(), transport, Duration::from_millis(20), stop));

    for _ in 0..200 {
        if !handler.seen.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true).expect("stop");
    relay_task.await.expect("relay stops");
    assert_eq!(*handler.seen.lock().expect("lock"), ["b"]);
}

#[tokio::test]
async fn a_failing_event_is_retried_then_dead_lettered_and_can_be_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;
    let handler = StoreThing::failing(MAX_ATTEMPTS);
    let delivery = consumer(dir.path(), handler.clone()).await;
    let transport = InProcess::new();
    transport.subscribe(delivery.clone()).await.expect("subscribe");
    produce(&producer, "c").await;

    flush(&producer, &transport).await.expect("flush");
    let consumer_ns = delivery.namespace.clone();
    let failed = dead_letters(&consumer_ns).await.expect("dead letters");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, i64::from(MAX_ATTEMPTS));
    assert!(failed[0].error.contains("not today"), "{}", failed[0].error);
    assert!(things(&consumer_ns).await.is_empty(), "a failed attempt leaves no effect");

    assert_eq!(request_replay(&consumer_ns, None).await.expect("request"), 1);
    assert_eq!(delivery.replay_requested().await.expect("replay"), 1);

    assert_eq!(things(&consumer_ns).await, ["c"]);
    assert!(dead_letters(&consumer_ns).await.expect("dead letters").is_empty());
}

#[tokio::test]
async fn service_sql_cannot_touch_the_kernels_event_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;

    let error = producer.execute("delete from _outbox", args![]).await.expect_err("refused");

    assert!(matches!(error, StoreError::ForeignTable { .. }), "{error}");
}

#[tokio::test]
async fn a_batch_is_applied_in_one_go_and_a_failure_in_it_falls_back_to_one_event_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handler = StoreThing::failing(0);
    let delivery = consumer(dir.path(), handler.clone()).await;
    let envelope = |id: &str| Envelope::wrap(&ThingNamed::new(id), "producer", None).expect("wraps");
    let (a, b) = (envelope("a"), envelope("b"));

    // A batch with a repeated event applies it once.
    delivery.deliver_batch(&[a.clone(), b.clone(), a.clone()]).await.expect("delivered");
    assert_eq!(things(&delivery.namespace).await, ["a", "b"]);

    // One failing attempt rolls the batch back; each event is then delivered on its own (and retried).
    handler.failures.store(1, Ordering::SeqCst);
    delivery.deliver_batch(&[envelope("c"), envelope("d"), b]).await.expect("delivered");
    assert_eq!(things(&delivery.namespace).await, ["a", "b", "c", "d"]);
    assert_eq!(*handler.seen.lock().expect("lock"), ["a", "b", "c", "d"], "nothing applied twice");
}

/// A transport whose broker is always down.
struct Down;

#[async_trait]
impl Transport for Down {
    fn name(&self) -> &'static str {
        "down"
    }
    async fn publish(&self, _: &Envelope) -> Result<(), TransportError> {
        Err(TransportError::Unavailable("down".to_owned()))
    }
    async fn publish_batch(&self, _: &[Envelope]) -> (usize, Option<TransportError>) {
        (0, Some(TransportError::Unavailable("down".to_owned())))
    }
    async fn subscribe(&self, _: Arc<Delivery>) -> Result<(), TransportError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_relay_facing_a_broker_that_is_down_records_the_failure_and_keeps_the_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;
    assert_eq!(relay_batch(&producer, &Down).await.expect("nothing to publish is not a failure"), 0);

    produce(&producer, "a").await;
    produce(&producer, "b").await;
    relay_batch(&producer, &Down).await.expect_err("the broker is down");

    assert_eq!(outbox_backlog(&producer).await.expect("backlog"), 2);
    let (attempts,): (i64,) = producer
        .kernel_fetch_one("select attempts from _outbox order by seq limit 1", args![])
        .await
        .expect("first row");
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn events_published_together_keep_their_order_and_are_each_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (producer, handler, _, transport) = wired(dir.path()).await;
    let names = ["m", "k", "z", "a"];

    let mut tx = producer.begin().await.expect("begin");
    tx.publish_all(&names.map(ThingNamed::new)).await.expect("publish");
    tx.commit().await.expect("commit");
    flush(&producer, &transport).await.expect("flush");

    let keys: Vec<(String,)> =
        producer.kernel_fetch_all("select event_key from _outbox order by seq", args![]).await.expect("outbox");
    assert_eq!(keys.into_iter().map(|(k,)| k).collect::<Vec<_>>(), names);
    assert_eq!(*handler.seen.lock().expect("lock"), names, "delivered once each, in order");
}

/// Stores only the things whose id starts with `wanted`.
struct StoreSome {
    wanted: &'static str,
}

#[async_trait]
impl Handler<ThingNamed> for StoreSome {
    fn wants(&self, event: &ThingNamed) -> bool {
        event.id.starts_with(self.wanted)
    }

    async fn handle(&self, event: ThingNamed, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        tx.execute("insert into things (id, name) values (?, ?)", args![event.id, event.name]).await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_event_the_handler_does_not_want_is_acknowledged_without_a_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let consumer = namespace(dir.path(), "consumer").await;
    let mut delivery = Delivery::new("consumer", consumer.clone());
    delivery.add::<ThingNamed, _>(Arc::new(StoreSome { wanted: "keep" }));
    let wrap = |id: &str| Envelope::wrap(&ThingNamed::new(id), "producer", None).expect("wrap");

    let alone = delivery.deliver(&wrap("skip-0")).await.expect("delivered");
    delivery.deliver_batch(&[wrap("skip-1"), wrap("keep-1"), wrap("skip-2"), wrap("keep-2")]).await.expect("batch");
    delivery.deliver_batch(&[wrap("skip-3"), wrap("skip-4")]).await.expect("batch of unwanted");

    assert_eq!(alone, Outcome::Ignored);
    assert_eq!(things(&consumer).await, ["keep-1", "keep-2"]);
    let (processed,): (i64,) =
        consumer.kernel_fetch_one("select count(*) from _processed_events", args![]).await.expect("count");
    assert_eq!(processed, 2, "only the wanted events are recorded as processed");
}

#[tokio::test]
async fn trimming_deletes_old_published_events_and_processed_ids_but_never_an_unpublished_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (producer, _, delivery, transport) = wired(dir.path()).await;
    for id in ["old-1", "old-2", "recent"] {
        produce(&producer, id).await;
    }
    flush(&producer, &transport).await.expect("flush");
    produce(&producer, "unpublished").await;
    // The first two were published and processed a year ago.
    let year_ago = now_ms() - 365 * 24 * 3600 * 1000;
    let aged = "update _outbox set published_at = ? where event_key like 'old-%'";
    producer.kernel_execute(aged, args![year_ago]).await.expect("aged");
    producer
        .kernel_execute("update _outbox set occurred_at = ? where event_key = 'unpublished'", args![year_ago])
        .await
        .expect("aged");
    let consumer_ns = delivery.namespace.clone();
    consumer_ns
        .kernel_execute("update _processed_events set processed_at = ? where rowid <= 2", args![year_ago])
        .await
        .expect("aged");

    let month_ago = now_ms() - 30 * 24 * 3600 * 1000;
    assert_eq!(trim(&producer, month_ago).await.expect("trims"), 2);
    assert_eq!(trim(&consumer_ns, month_ago).await.expect("trims"), 2);

    let left: Vec<(String,)> =
        producer.kernel_fetch_all("select event_key from _outbox order by seq", args![]).await.expect("outbox");
    assert_eq!(left.into_iter().map(|(k,)| k).collect::<Vec<_>>(), ["recent", "unpublished"]);
    let (processed,): (i64,) =
        consumer_ns.kernel_fetch_one("select count(*) from _processed_events", args![]).await.expect("count");
    assert_eq!(processed, 1, "the recent event's id is kept");
    // What is kept still deduplicates: the recent event redelivered changes nothing.
    let (id,): (String,) =
        producer.kernel_fetch_one("select id from _outbox where event_key = 'recent'", args![]).await.expect("id");
    let recent = Envelope {
        id: id.parse().expect("uuid"),
        ..Envelope::wrap(&ThingNamed::new("recent"), "producer", None).expect("wrap")
    };
    assert_eq!(delivery.deliver(&recent).await.expect("delivered"), Outcome::Duplicate);
}

/// Wants two topics of `thing.named`, and records the routing key of each event it is given.
#[derive(Default)]
struct TwoTopics {
    routed: Mutex<Vec<String>>,
}

#[async_trait]
impl Handler<ThingNamed> for TwoTopics {
    fn topics(&self) -> Option<&'static [&'static str]> {
        Some(&["a", "b"])
    }

    async fn handle(&self, _: ThingNamed, envelope: &Envelope, _: &mut Tx<'_>) -> anyhow::Result<()> {
        self.routed.lock().expect("lock").push(envelope.routing_key());
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_is_routed_every_topic_of_its_types_or_only_those_its_handler_wants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let every = consumer(dir.path(), StoreThing::failing(0)).await;
    let mut some = Delivery::new("some", namespace(dir.path(), "some").await);
    some.add::<ThingNamed, _>(Arc::new(TwoTopics::default()));

    assert_eq!(every.bindings(), Bindings { bind: vec!["thing.named.#".to_owned()], unbind: vec![] });
    assert_eq!(
        some.bindings(),
        Bindings {
            bind: vec!["thing.named".to_owned(), "thing.named.a".to_owned(), "thing.named.b".to_owned()],
            unbind: vec!["thing.named.#".to_owned()],
        }
    );
}

#[tokio::test]
async fn an_events_topic_goes_through_the_outbox_into_its_routing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let producer = namespace(dir.path(), "producer").await;
    let handler = Arc::new(TwoTopics::default());
    let mut delivery = Delivery::new("consumer", namespace(dir.path(), "consumer").await);
    delivery.add::<ThingNamed, _>(handler.clone());
    let transport = InProcess::new();
    transport.subscribe(Arc::new(delivery)).await.expect("subscribe");
    let mut tx = producer.begin().await.expect("begin");
    tx.publish_all(&[ThingNamed::with_topic("x", "a"), ThingNamed::new("y")]).await.expect("publish");
    tx.commit().await.expect("commit");

    assert_eq!(flush(&producer, &transport).await.expect("flush"), 2);

    assert_eq!(*handler.routed.lock().expect("lock"), ["thing.named.a", "thing.named"]);
}
