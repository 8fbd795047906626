//! The RabbitMQ transport across a broker restart, from the outside. It stops the shared test broker, so
//! it takes the broker exclusively (other broker tests wait) and always starts it again. The restart with
//! consumers and the outbox relay is tested next to the transport, in `src/events/rabbitmq/tests.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{ThingNamed, test_broker};
use kernel::events::rabbitmq::RabbitMq;
use kernel::events::{Envelope, Event, Transport, TransportError};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

fn event(id: &str) -> Envelope {
    Envelope::wrap(&ThingNamed { id: id.to_owned() }, "producer", None).expect("wraps")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_fails_publishing_fast_then_recovers_without_losing_confirmed_events() {
    let _broker = test_broker::exclusive().await;
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let (exchange, queue) = (format!("test.events.{unique}"), format!("test.restart.{unique}"));
    let observer = Connection::connect(&test_broker::url(), ConnectionProperties::default()).await.expect("connects");
    let channel = observer.create_channel().await.expect("opens a channel");
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("declares");
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await.expect("declares the queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            ThingNamed::KIND.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binds");
    observer.close(200, "restarting".into()).await.expect("closes");
    let transport = RabbitMq::connect_with(&test_broker::url(), "test", &exchange).await.expect("connects");
    let (before, during, after) = (event("before"), event("during"), event("after"));

    transport.publish(&before).await.expect("publishes before the restart");
    let mut broker = test_broker::StoppedBroker::stop().await;
    let refused_at = Instant::now();
    let refused = transport.publish(&during).await;
    let refused_in = refused_at.elapsed();
    broker.start().await;
    let back_at = Instant::now();
    while !transport.is_connected() {
        assert!(back_at.elapsed() < Duration::from_secs(30), "not reconnected within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reconnected_in = back_at.elapsed();
    transport.publish(&after).await.expect("publishes after the restart");
    eprintln!(
        "publish refused in {} ms; reconnected {} ms after the broker was back",
        refused_in.as_millis(),
        reconnected_in.as_millis()
    );

    assert!(matches!(refused, Err(TransportError::Unavailable(_))), "{refused:?}");
    assert!(refused_in < Duration::from_secs(1), "publishing while down took {refused_in:?}");
    let observer = Connection::connect(&test_broker::url(), ConnectionProperties::default()).await.expect("connects");
    let channel = observer.create_channel().await.expect("opens a channel");
    let mut received = Vec::new();
    while let Some(message) =
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("gets")
    {
        received.push(serde_json::from_slice::<Envelope>(&message.data).expect("an envelope").id);
    }
    assert_eq!(
        received,
        [before.id, after.id],
        "the confirmed event survived the restart; the refused one was never sent"
    );
    transport.close().await;
    channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.expect("deletes the queue");
    channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.expect("deletes the exchange");
    observer.close(200, "done".into()).await.expect("closes");
}
