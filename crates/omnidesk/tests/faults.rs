//! Fault tests: processes and the broker failing under a running microservices topology. A test binary of
//! its own, because stopping the broker must not disturb the API suite running in parallel.

// The shared harness has helpers these tests do not use.
#![allow(dead_code)]

#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Duration;

use helpers::{TestApp, Topology};

/// Stops the machine's RabbitMQ for the life of the value; starts it again when dropped, even on failure.
struct BrokerOutage;

impl BrokerOutage {
    fn begin() -> Self {
        rabbitmqctl("stop_app");
        BrokerOutage
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl").arg(command).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {command} failed");
}

fn kill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
}

#[tokio::test]
async fn events_committed_while_the_broker_is_down_and_the_producer_is_killed_are_delivered_once_both_return() {
    let topology = Topology::spawn("microservices", &[]);
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);
    let outage = BrokerOutage::begin();

    // Registration commits the user, the account and the `account.created` event in one transaction; the
    // relay cannot publish it while the broker is down.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.signed_in().await.1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for session in &sessions {
        let plan = app.get("/api/plan", &session.access_token).await;
        assert!(plan.body["since"].is_null(), "nothing can have been delivered yet: {plan:?}");
    }
    // The producer dies between commit and publish; its supervisor restarts it.
    kill(topology.pid_of("user"));
    drop(outage);

    for session in &sessions {
        let plan = app.eventually_for("/api/plan", &session.access_token, Duration::from_secs(60), |body| {
            !body["since"].is_null()
        });
        assert_eq!(plan.await.body["plan"]["code"], "free");
    }
}
