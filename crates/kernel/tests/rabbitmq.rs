//! The RabbitMQ transport against a real broker, from the outside: what it puts on the wire and how it
//! connects. Consuming (which needs the kernel's `Delivery`) is tested next to the transport, in
//! `src/events/rabbitmq/tests.rs`; the broker restart in `rabbitmq_faults.rs`.

mod common;

use common::{ThingNamed, test_broker};
use kernel::events::rabbitmq::RabbitMq;
use kernel::events::{Envelope, Event, Transport, TransportError};
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

fn unique_exchange() -> String {
    format!("test.events.{}", uuid::Uuid::now_v7().simple())
}

/// A plain client on the test broker, to look at what the transport did.
async fn observer() -> (Connection, Channel) {
    let connection = Connection::connect(&test_broker::url(), ConnectionProperties::default()).await.expect("connects");
    let channel = connection.create_channel().await.expect("opens a channel");
    (connection, channel)
}

/// A queue that only this test reads, bound to `exchange` for `kind`.
async fn tap(channel: &Channel, exchange: &str, kind: &str) -> String {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .expect("declares a queue");
    let name = queue.name().as_str().to_owned();
    channel
        .queue_bind(
            name.as_str().into(),
            exchange.into(),
            kind.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binds the queue");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_is_a_persistent_json_message_keyed_by_its_type() {
    let _broker = test_broker::shared().await;
    let exchange = unique_exchange();
    let transport = RabbitMq::connect_with(&test_broker::url(), "test", &exchange).await.expect("connects");
    let (connection, channel) = observer().await;
    let queue = tap(&channel, &exchange, ThingNamed::KIND).await;
    let envelope = Envelope::wrap(&ThingNamed { id: "a".into() }, "producer", None).expect("wraps");

    transport.publish(&envelope).await.expect("publishes");

    let message = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("gets")
        .expect("a message");
    assert_eq!(message.routing_key.as_str(), "thing.named");
    assert_eq!(*message.properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(message.properties.content_type().as_ref().map(|t| t.as_str()), Some("application/json"));
    assert_eq!(message.properties.message_id().as_ref().map(|id| id.to_string()), Some(envelope.id.to_string()));
    let body: Envelope = serde_json::from_slice(&message.data).expect("the body is an envelope");
    assert_eq!(body, envelope);
    transport.close().await;
    channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.expect("deletes the exchange");
    connection.close(200, "done".into()).await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_nobody_subscribes_to_yet_is_still_published() {
    let _broker = test_broker::shared().await;
    let exchange = unique_exchange();
    let transport = RabbitMq::connect_with(&test_broker::url(), "test", &exchange).await.expect("connects");

    let published =
        transport.publish(&Envelope::wrap(&ThingNamed { id: "b".into() }, "producer", None).expect("wraps")).await;

    assert!(published.is_ok(), "{published:?}");
    transport.close().await;
    let (connection, channel) = observer().await;
    channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.expect("deletes the exchange");
    connection.close(200, "done".into()).await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_url_format_with_a_trailing_slash_reaches_the_default_vhost() {
    let _broker = test_broker::shared().await;
    let uri: lapin::uri::AMQPUri = test_broker::url().parse().expect("an AMQP URL");
    let auth = &uri.authority;
    // `RabbitMqConfig::amqp_url` builds this shape, after the seed's `amqp://%s:%s@%s:%s/`.
    let seed_url = format!("amqp://{}:{}@{}:{}/", auth.userinfo.username, auth.userinfo.password, auth.host, auth.port);

    let exchange = unique_exchange();

    let transport = RabbitMq::connect_with(&seed_url, "test", &exchange).await;

    let transport = transport.expect("connects to the default vhost");
    assert!(transport.is_connected());
    transport.close().await;
    let (connection, channel) = observer().await;
    channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.expect("deletes the exchange");
    connection.close(200, "done".into()).await.expect("closes");
}

#[tokio::test]
async fn a_transport_to_a_broker_that_never_answers_starts_disconnected_and_refuses_to_publish() {
    let transport = RabbitMq::connect("amqp://guest:secret-password@127.0.0.1:1/%2f", "test")
        .await
        .expect("a process starts without its broker");

    let refused =
        transport.publish(&Envelope::wrap(&ThingNamed { id: "c".into() }, "producer", None).expect("wraps")).await;

    assert!(!transport.is_connected());
    let error = refused.expect_err("nothing listens on port 1");
    assert!(matches!(error, TransportError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains("secret-password"), "{error}");
    transport.close().await;
}
