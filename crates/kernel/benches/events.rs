//! Events per second through the outbox, and commit → applied latency, in process and over RabbitMQ
//! (issue #3).
//!
//! `cargo bench -p kernel --bench events` (optionally `-- EVENTS RATE SECONDS PRODUCERS`, default 5000, 200,
//! 5 and 4).
//! For each transport it wires what a process wires: a producer namespace and a consumer namespace (SQLite
//! files in a temporary directory, the kernel's tables plus the `things` fixture), a [`Delivery`] for the
//! consumer, and a [`relay`] task publishing the producer's outbox. Each event is produced the way a
//! service produces one: a transaction that inserts a row and publishes the event, so the event lands in the
//! outbox. The consumer's handler inserts the row on its side. Two measurements per transport:
//! - throughput: EVENTS transactions from PRODUCERS concurrent tasks, as fast as they go; timed from the
//!   first commit until the consumer has applied the last event;
//! - latency: one producer committing RATE events a second for SECONDS; for each event, the time from its
//!   producer's commit returning to its handler running in the consumer's transaction (the consumer's own
//!   commit, a WAL append, comes after and is not counted).
//!
//! The RabbitMQ transport runs against the broker the kernel's tests use (`OMNIDESK_TEST_AMQP_URL`, default
//! the local one), on an exchange and a queue of its own that it deletes at the end. It holds the tests'
//! shared broker lease, so a test that stops the broker waits for it.

#[allow(dead_code)]
#[path = "../src/events/rabbitmq/test_broker.rs"]
mod test_broker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernel::args;
use kernel::events::inprocess::InProcess;
use kernel::events::rabbitmq::RabbitMq;
use kernel::events::{Delivery, Envelope, Event, Handler, Transport, TransportError, relay};
use kernel::store::{Location, Migrations, Namespace, Tx};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

static FIXTURE: Migrations = kernel::migrations!(
    sqlite: "src/store/test_migrations/sqlite",
    postgres: "src/store/test_migrations/postgres",
    mysql: "src/store/test_migrations/mysql"
);

/// Events produced and awaited before measuring, so connections, caches and the queue are warm.
const WARM_UP: usize = 200;

/// How often the relay looks at the outbox without being woken; commits wake it at once, so this only
/// matters for rows left behind, which a benchmark does not leave.
const RELAY_POLL: Duration = Duration::from_millis(100);

/// How long the consumer may take to catch up before the run is declared stuck.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize, Deserialize)]
struct ThingNamed {
    id: usize,
}

impl Event for ThingNamed {
    const KIND: &'static str = "bench.thing.named";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// When each event committed and when it was applied, in nanoseconds since `start` plus one (zero: not
/// yet), indexed by event id.
struct Probe {
    start: Instant,
    committed: Vec<AtomicU64>,
    applied: Vec<AtomicU64>,
    applied_count: AtomicUsize,
    progress: Notify,
}

impl Probe {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            committed: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            applied: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            applied_count: AtomicUsize::new(0),
            progress: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn mark_committed(&self, id: usize) {
        self.committed[id].store(self.now(), Ordering::Release);
    }

    /// Records the first application of `id`; a retried attempt keeps the first stamp and is not counted.
    fn mark_applied(&self, id: usize) {
        if self.applied[id].compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.applied_count.fetch_add(1, Ordering::AcqRel);
            self.progress.notify_one();
        }
    }

    /// Waits until `total` events in all have been applied.
    async fn wait_applied(&self, total: usize) {
        let deadline = Instant::now() + CATCH_UP_DEADLINE;
        while self.applied_count.load(Ordering::Acquire) < total {
            assert!(
                Instant::now() < deadline,
                "the consumer applied {} of {total} events within {} s",
                self.applied_count.load(Ordering::Acquire),
                CATCH_UP_DEADLINE.as_secs()
            );
            // The timeout only guards against a missed wake-up; `notify_one` keeps a permit for the next wait.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.progress.notified()).await;
        }
    }

    /// Commit → applied latency of each event in `ids`.
    fn latencies(&self, ids: std::ops::Range<usize>) -> Vec<Duration> {
        ids.map(|id| {
            let committed = self.committed[id].load(Ordering::Acquire);
            let applied = self.applied[id].load(Ordering::Acquire);
            assert!(committed > 0 && applied > 0, "event {id} was not both committed and applied");
            // The relay can pick an event up before its producer's `commit` has returned; that is zero.
            Duration::from_nanos(applied.saturating_sub(committed))
        })
        .collect()
    }
}

/// The consumer's handler: applies the event as a service would (a row in its namespace) and stamps it.
struct StoreThing {
    probe: Arc<Probe>,
}

#[async_trait]
impl Handler<ThingNamed> for StoreThing {
    async fn handle(&self, event: ThingNamed, _: &Envelope, tx: &mut Tx<'_>) -> anyhow::Result<()> {
        tx.execute(
            "insert into things (id, name) values (?, ?)",
            args![event.id.to_string(), format!("thing {}", event.id)],
        )
        .await?;
        self.probe.mark_applied(event.id);
        Ok(())
    }
}

async fn namespace(dir: &std::path::Path, service: &'static str) -> Namespace {
    let location = Location::default_for(dir, service);
    let namespace = Namespace::open(service, &location, Some(FIXTURE)).await.expect("opens");
    namespace.migrate().await.expect("migrates");
    namespace
}

/// One event, produced the way a service produces it: its row and its outbox entry in one transaction.
async fn produce(producer: &Namespace, probe: &Probe, id: usize) {
    let mut tx = producer.begin().await.expect("begins");
    tx.execute("insert into things (id, name) values (?, ?)", args![id.to_string(), format!("thing {id}")])
        .await
        .expect("inserts");
    tx.publish(&ThingNamed { id }).await.expect("publishes");
    tx.commit().await.expect("commits");
    probe.mark_committed(id);
}

/// A transport that times each publish: how long the relay waits for the transport to accept one event
/// (RabbitMQ: the broker's confirm; in process: the consumer applying it). The relay publishes one event
/// at a time, so this is a floor under its time per event; stamping the outbox row comes on top.
struct Timed {
    inner: Arc<dyn Transport>,
    publishes: Mutex<Vec<Duration>>,
}

impl Timed {
    /// The publish times recorded since the last call, sorted.
    fn take(&self) -> Vec<Duration> {
        let mut samples = std::mem::take(&mut *self.publishes.lock().expect("lock"));
        samples.sort_unstable();
        samples
    }
}

#[async_trait]
impl Transport for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), TransportError> {
        let started = Instant::now();
        let published = self.inner.publish(envelope).await;
        self.publishes.lock().expect("lock").push(started.elapsed());
        published
    }

    async fn subscribe(&self, delivery: Arc<Delivery>) -> Result<(), TransportError> {
        self.inner.subscribe(delivery).await
    }
}

/// A producer and a consumer joined by one transport, with the producer's relay running.
struct Rig {
    producer: Namespace,
    consumer: Namespace,
    probe: Arc<Probe>,
    transport: Arc<Timed>,
    stop: watch::Sender<bool>,
    relay: tokio::task::JoinHandle<()>,
    /// Event ids handed out so far.
    next_id: usize,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(transport: Arc<dyn Transport>, consumer_name: &'static str, probe: Arc<Probe>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let producer = namespace(dir.path(), "producer").await;
        let consumer = namespace(dir.path(), "consumer").await;
        let mut delivery = Delivery::new(consumer_name, consumer.clone());
        delivery.add::<ThingNamed, _>(Arc::new(StoreThing { probe: probe.clone() }));
        let transport = Arc::new(Timed { inner: transport, publishes: Mutex::default() });
        transport.subscribe(Arc::new(delivery)).await.expect("subscribes");
        let (stop, stopped) = watch::channel(false);
        let relay = tokio::spawn(relay(producer.clone(), transport.clone(), RELAY_POLL, stopped));
        Self { producer, consumer, probe, transport, stop, relay, next_id: 0, _dir: dir }
    }

    fn take_ids(&mut self, count: usize) -> std::ops::Range<usize> {
        let ids = self.next_id..self.next_id + count;
        self.next_id = ids.end;
        ids
    }

    async fn warm_up(&mut self) {
        for id in self.take_ids(WARM_UP) {
            produce(&self.producer, &self.probe, id).await;
        }
        self.probe.wait_applied(self.next_id).await;
        self.transport.take();
    }

    /// `events` events from `producers` concurrent tasks, as fast as they commit.
    async fn throughput(&mut self, events: usize, producers: usize) -> Throughput {
        let ids = self.take_ids(events);
        let started = Instant::now();
        let tasks: Vec<_> = (0..producers)
            .map(|task| {
                let (producer, probe) = (self.producer.clone(), self.probe.clone());
                let mine = ids.clone().skip(task).step_by(producers);
                tokio::spawn(async move {
                    for id in mine {
                        produce(&producer, &probe, id).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the producer finishes");
        }
        let committed = started.elapsed();
        let applied_meanwhile = self.probe.applied_count.load(Ordering::Acquire) - ids.start;
        self.probe.wait_applied(self.next_id).await;
        Throughput {
            events,
            committed,
            applied_meanwhile,
            applied: started.elapsed(),
            publishes: self.transport.take(),
        }
    }

    /// `rate` events a second for `seconds` from one producer; commit → applied latency of each.
    async fn latency(&mut self, rate: u32, seconds: u32) -> Latency {
        let ids = self.take_ids(usize::try_from(rate * seconds).expect("fits"));
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
        // A late tick does not bunch the following events up: that would measure a burst, not a steady rate.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        for id in ids.clone() {
            ticks.tick().await;
            produce(&self.producer, &self.probe, id).await;
        }
        let produced_for = started.elapsed();
        self.probe.wait_applied(self.next_id).await;
        let mut samples = self.probe.latencies(ids.clone());
        samples.sort_unstable();
        Latency { events: ids.len(), produced_for, samples }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.relay.await.expect("the relay stops");
        self.producer.close().await;
        self.consumer.close().await;
    }
}

struct Throughput {
    events: usize,
    /// Until the producers' last commit.
    committed: Duration,
    /// Until the consumer applied the last event.
    applied: Duration,
    /// How many were applied by the time the producers were done; the rest the relay drained alone.
    applied_meanwhile: usize,
    /// How long the transport took to accept each event, sorted.
    publishes: Vec<Duration>,
}

struct Latency {
    events: usize,
    produced_for: Duration,
    /// Sorted.
    samples: Vec<Duration>,
}

/// The `p` quantile of `sorted`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

/// What one transport measured.
struct Report {
    transport: &'static str,
    throughput: Throughput,
    latency: Latency,
}

/// What to run, from the command line.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Events in the throughput run.
    events: usize,
    /// Concurrent producer tasks in the throughput run.
    producers: usize,
    /// Events a second in the latency run.
    rate: u32,
    /// How long the latency run produces.
    seconds: u32,
}

impl Settings {
    /// `EVENTS RATE SECONDS PRODUCERS`, each optional; `cargo bench` adds `--bench`, which is skipped.
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
        let number = |index: usize, name: &str, default: usize| {
            args.get(index).map_or(default, |a| a.parse().unwrap_or_else(|_| panic!("{name} is a number, not {a:?}")))
        };
        let settings = Self {
            events: number(0, "EVENTS", 5000),
            rate: u32::try_from(number(1, "RATE", 200)).expect("RATE fits"),
            seconds: u32::try_from(number(2, "SECONDS", 5)).expect("SECONDS fits"),
            producers: number(3, "PRODUCERS", 4),
        };
        assert!(
            settings.events > 0 && settings.rate > 0 && settings.seconds > 0 && settings.producers > 0,
            "EVENTS, RATE, SECONDS and PRODUCERS must be positive"
        );
        settings
    }

    fn latency_events(self) -> usize {
        usize::try_from(self.rate * self.seconds).expect("fits")
    }
}

async fn measure(transport: Arc<dyn Transport>, consumer_name: &'static str, settings: Settings) -> Report {
    let Settings { events, producers, rate, seconds } = settings;
    let name = transport.name();
    let probe = Probe::new(WARM_UP + events + settings.latency_events());
    let mut rig = Rig::start(transport, consumer_name, probe).await;
    rig.warm_up().await;
    eprintln!("{name}: throughput, {events} events from {producers} producers…");
    let throughput = rig.throughput(events, producers).await;
    eprintln!("{name}: latency, {rate} events/s for {seconds} s…");
    let latency = rig.latency(rate, seconds).await;
    rig.stop().await;
    Report { transport: name, throughput, latency }
}

/// The RabbitMQ run on an exchange and a queue of its own, deleted afterwards even if the run failed.
async fn measure_rabbitmq(settings: Settings) -> Report {
    let _broker = test_broker::shared().await;
    let url = test_broker::url();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let exchange = format!("bench.events.{run}");
    // The transport names a consumer's queue `omnidesk.<consumer>`; a consumer name of its own keeps this
    // run's queue apart from any service's. `Delivery` wants a `'static` name: one small leak per run.
    let consumer_name: &'static str = Box::leak(format!("bench-{run}").into_boxed_str());
    let queue = format!("{exchange}.{consumer_name}");

    let run = tokio::spawn({
        let (url, exchange) = (url.clone(), exchange.clone());
        async move {
            let transport = RabbitMq::connect_with(&url, "bench", &exchange).await.expect("connects to RabbitMQ");
            let report = measure(transport.clone(), consumer_name, settings).await;
            transport.close().await;
            report
        }
    })
    .await;

    let connection = Connection::connect(&url, ConnectionProperties::default()).await.expect("connects");
    let channel = connection.create_channel().await.expect("opens a channel");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.expect("deletes the queue");
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("deletes the exchange");
    connection.close(200, "done".into()).await.expect("closes");

    run.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn per_second(count: usize, elapsed: Duration) -> String {
    thousands((count as f64 / elapsed.as_secs_f64()).round() as u64)
}

fn print(reports: &[Report]) {
    println!();
    println!("{:<11} {:<11} result", "transport", "measure");
    for Report { transport, throughput: t, latency: l } in reports {
        println!(
            "{transport:<11} {:<11} {} events/s   ({} events applied in {:.2} s; the producers committed them in {:.2} s ({} commits/s), when {} were applied; the rest drained at {} events/s)",
            "throughput",
            per_second(t.events, t.applied),
            thousands(t.events as u64),
            t.applied.as_secs_f64(),
            t.committed.as_secs_f64(),
            per_second(t.events, t.committed),
            thousands(t.applied_meanwhile as u64),
            per_second(t.events - t.applied_meanwhile, t.applied.saturating_sub(t.committed)),
        );
        println!(
            "{transport:<11} {:<11} mean {}   p50 {}   p99 {}   (how long the transport took to accept one event from the relay, during the throughput run)",
            "publish",
            ms(t.publishes.iter().sum::<Duration>() / u32::try_from(t.publishes.len()).expect("fits")),
            ms(percentile(&t.publishes, 0.50)),
            ms(percentile(&t.publishes, 0.99)),
        );
        println!(
            "{transport:<11} {:<11} p50 {}   p99 {}   max {}   (commit → applied, {} events at {} events/s)",
            "latency",
            ms(percentile(&l.samples, 0.50)),
            ms(percentile(&l.samples, 0.99)),
            ms(percentile(&l.samples, 1.0)),
            thousands(l.events as u64),
            per_second(l.events, l.produced_for),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let settings = Settings::from_args();
    let in_process = measure(Arc::new(InProcess::new()), "bench", settings).await;
    let rabbitmq = measure_rabbitmq(settings).await;
    print(&[in_process, rabbitmq]);
}
