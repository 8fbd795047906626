//! The listener out of file descriptors: accepts that fail with EMFILE are retried after a growing pause
//! (not in a tight loop), and clients that connected meanwhile are served once descriptors are free.
//!
//! A test binary of its own with one test, because it lowers the process's open-file limit for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use kernel::http::ListenerSettings;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing_subscriber::layer::SubscriberExt as _;

/// Counts the listener's "accept failed" errors.
struct AcceptFailures(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AcceptFailures {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}").starts_with("accept failed") {
                    self.0 = true;
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_out_of_descriptors_pauses_between_accepts_and_serves_the_waiting_clients_when_some_free_up() {
    let failures = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(AcceptFailures(failures.clone()));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    // A hard limit, so that the listener cannot raise the soft one past it.
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    let limit = soft.min(256);
    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).expect("lowered");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = listener.local_addr().expect("address");
    let router = Router::new().route("/", get(|| async { "hello" }));
    let settings = ListenerSettings {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 100,
        max_connections_per_ip: 0,
        trusted_proxies: [].into(),
    };
    // Clients connect before the listener serves (the kernel completes their handshakes into the
    // backlog) and send their requests; then every descriptor of the process is taken and the listener
    // starts: its accepts fail for lack of descriptors. (Freeing a descriptor per client while the
    // listener runs races: the listener may take it before the client does.)
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = tokio::net::TcpStream::connect(address).await.expect("connects");
        client.write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await.expect("sent");
        clients.push(client);
    }
    let mut filler = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        filler.push(file);
    }
    tokio::spawn(kernel::http::serve(listener, router, settings, std::future::pending()));

    // Act: two seconds out of descriptors, then some free up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed_while_out = failures.load(Ordering::SeqCst);
    drop(filler);

    // Assert: the failures were retried after pauses (a tight loop fails thousands of times in two
    // seconds; pauses doubling from 10 ms to a second, about eight), and every waiting client is served.
    assert!(failed_while_out >= 1, "the accepts did fail for lack of descriptors");
    assert!(failed_while_out <= 20, "{failed_while_out} failed accepts in two seconds: no pause between them");
    for mut client in clients {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut answer))
            .await
            .expect("answered once descriptors are free")
            .expect("read");
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{answer:?}");
    }
}
