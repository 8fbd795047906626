//! The real RabbitMQ that broker tests use: where it is, a lease that keeps a test from stopping it under
//! another one, and a guard that always starts it again.
//!
//! Tests that only use the broker take a [`shared`] lease and may run side by side (each uses its own
//! exchange and queues); a test that stops the broker takes an [`exclusive`] one. The lease is a lock on a
//! file in the temporary directory, so it also holds across test binaries and concurrent `cargo test` runs.
//!
//! The integration tests in `tests/` include this very file (with `#[path]`), so it uses nothing but public
//! APIs.

use std::fs::{File, OpenOptions};
use std::time::{Duration, Instant};

/// The broker tests connect to: `OMNIDESK_TEST_AMQP_URL`, or the local default.
pub(crate) fn url() -> String {
    std::env::var("OMNIDESK_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Permission to use the broker; released on drop.
#[must_use = "the broker may be stopped by another test once the lease is dropped"]
pub(crate) struct Lease {
    _lock: File,
}

/// A lease for a test that uses the broker without stopping it.
pub(crate) async fn shared() -> Lease {
    lease(false).await
}

/// A lease for a test that stops the broker; it waits for every other broker test to finish.
pub(crate) async fn exclusive() -> Lease {
    lease(true).await
}

async fn lease(exclusive: bool) -> Lease {
    let path = std::env::temp_dir().join("omnidesk-rabbitmq-tests.lock");
    let lock = tokio::task::spawn_blocking(move || {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("opens the lock file");
        if exclusive { file.lock() } else { file.lock_shared() }.expect("locks the broker");
        file
    })
    .await
    .expect("the lock task finishes");
    require_running().await;
    Lease { _lock: lock }
}

/// Fails the test, saying what to do, when nothing listens where the broker should be.
async fn require_running() {
    let uri: lapin::uri::AMQPUri = url().parse().expect("OMNIDESK_TEST_AMQP_URL is an AMQP URL");
    let address = format!("{}:{}", uri.authority.host, uri.authority.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(_) => return,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => panic!(
                "RabbitMQ is not reachable at {address} ({error}). These tests need a real broker: start it with \
                 `rabbitmq-server -detached` (or `rabbitmqctl start_app` if the node runs with the app stopped), \
                 or point OMNIDESK_TEST_AMQP_URL at one."
            ),
        }
    }
}

/// The broker's application stopped (the node keeps running); started again when dropped, even if the test
/// failed, so later tests find a broker.
pub(crate) struct StoppedBroker {
    started: bool,
}

impl StoppedBroker {
    /// Stops the broker (`rabbitmqctl stop_app`); every client connection is closed.
    pub(crate) async fn stop() -> Self {
        tokio::task::spawn_blocking(|| rabbitmqctl("stop_app")).await.expect("rabbitmqctl runs").expect("stop_app");
        Self { started: false }
    }

    /// Starts the broker again (`rabbitmqctl start_app`); returns once it accepts connections.
    pub(crate) async fn start(&mut self) {
        tokio::task::spawn_blocking(|| rabbitmqctl("start_app")).await.expect("rabbitmqctl runs").expect("start_app");
        self.started = true;
        require_running().await;
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if !self.started
            && let Err(error) = rabbitmqctl("start_app")
        {
            eprintln!("could not start RabbitMQ again ({error}); run `rabbitmqctl start_app`");
        }
    }
}

fn rabbitmqctl(command: &str) -> Result<(), String> {
    let output = std::process::Command::new("rabbitmqctl").arg(command).output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("rabbitmqctl {command}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}
