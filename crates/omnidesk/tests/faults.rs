//! Fault tests: processes and the broker failing under a running microservices topology. A test binary of
//! its own, because stopping the broker must not disturb the API suite running in parallel.

// The shared harness has helpers these tests do not use.
#![allow(dead_code)]

#[path = "api/desk.rs"]
mod desk;
#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Duration;

use desk::Feed;
use helpers::{TestApp, Topology};

/// Stops the machine's RabbitMQ for the life of the value; starts it again when dropped, even on failure.
/// Outages of the tests in this binary never overlap: one test's broker coming back in the middle of
/// another's outage would make both meaningless.
struct BrokerOutage(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

static ONE_OUTAGE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl BrokerOutage {
    fn begin() -> Self {
        let guard = ONE_OUTAGE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rabbitmqctl("stop_app");
        BrokerOutage(guard)
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

#[tokio::test]
async fn an_agents_feed_catches_up_after_the_inbox_process_and_the_broker_restart() {
    // Arrange: an agent's socket has seen the first message.
    let topology = Topology::spawn("microservices", &[]);
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let mut feed = Feed::connect(&app, token, None).await;
    app.post_signed(&inbox, "before", "cust-f", "F", "before the outage").await;
    feed.expect("message.created", |d| d["message"]["content"] == "before the outage").await;
    let cursor = feed.cursor;

    // Act: the inbox process dies (taking the socket with it) and the broker goes down while customers
    // keep writing; input accepts their posts into its outbox.
    kill(topology.pid_of("inbox"));
    drop(feed);
    let outage = BrokerOutage::begin();
    for i in 0..3 {
        let reply = app.post_signed(&inbox, &format!("during-{i}"), "cust-f", "F", &format!("during {i}")).await;
        assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED, "{reply:?}");
    }
    drop(outage);
    // The client reconnects with its cursor once the restarted inbox answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut feed = loop {
        match Feed::try_connect(&app, token, Some(cursor)).await {
            Ok(feed) => break feed,
            Err(error) if std::time::Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the feed never came back: {error}"),
        }
    };

    // Assert: everything written meanwhile arrives, in order.
    for i in 0..3 {
        let content = format!("during {i}");
        feed.expect("message.created", |d| d["message"]["content"] == content.as_str()).await;
    }
}

#[tokio::test]
async fn a_service_killed_during_a_broker_outage_comes_back_serving_and_its_events_arrive_when_the_broker_does() {
    // Arrange: an API inbox, then the broker goes down.
    let topology = Topology::spawn("microservices", &[]);
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let outage = BrokerOutage::begin();

    // Act: input dies during the outage; its supervisor restarts it while the broker is still down.
    let killed = topology.pid_of("input");
    kill(killed);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = app.post_signed(&inbox, "outage-0", "cust-o", "O", "during the outage 0").await;
        if reply.status == reqwest::StatusCode::ACCEPTED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the restarted input never served: {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(topology.pid_of("input"), killed, "served by the restarted process");
    for i in 1..3 {
        let reply =
            app.post_signed(&inbox, &format!("outage-{i}"), "cust-o", "O", &format!("during the outage {i}")).await;
        assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED, "{reply:?}");
    }
    let state = topology.state();
    let input_url = state["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|group| group["services"][0] == "input"))
        .and_then(|group| group["url"].as_str())
        .expect("input's process in up.json");
    let readiness = reqwest::get(format!("{input_url}/readyz")).await.expect("readyz answers");
    assert_eq!(readiness.status(), reqwest::StatusCode::OK, "serving, degraded");
    let readiness: serde_json::Value = readiness.json().await.expect("json");
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    drop(outage);

    // Assert: once the broker is back, every message reaches the inbox, each once.
    // The broker may take a few seconds to be reconnected to, and the relay's backoff a few more.
    let listed = app
        .eventually_for("/api/conversations?status=all&limit=100", token, Duration::from_secs(60), |body| {
            body["data"][0]["last_message"]["preview"] == "during the outage 2"
        })
        .await;
    let rows = listed.body["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let conversation = rows[0]["id"].as_str().expect("id");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let messages = loop {
        let messages = app.messages_of(token, conversation).await;
        if messages.len() >= 3 || std::time::Instant::now() > deadline {
            break messages;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let incoming: Vec<&str> =
        messages.iter().filter(|m| m["kind"] == "incoming").filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(incoming, ["during the outage 0", "during the outage 1", "during the outage 2"], "{messages:?}");
}

/// The monolith as its own OS process (`omnidesk serve`), so that it can be killed.
struct Monolith {
    child: std::process::Child,
    base_url: String,
}

impl Monolith {
    fn start(data: &std::path::Path, port: u16) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnidesk"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data)
            .env("OMNIDESK_PARENT_PID", std::process::id().to_string())
            .env("OMNIDESK_LOG", "warn")
            .env_remove("OMNIDESK_CONFIG")
            .env_remove("RABBIT_MQ_HOST")
            .current_dir(data)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("omnidesk serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let base_url = loop {
            let line = lines.next().expect("a ready line").expect("utf-8");
            if let Some(rest) = line.strip_prefix("OmniDesk is ready at ") {
                break rest.split_whitespace().next().expect("url").to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, base_url }
    }

    /// Kills the process (SIGKILL), if it still runs, and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Monolith {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed post that reports a failed send instead of panicking: `None` when no answer came.
async fn try_post(http: &reqwest::Client, base_url: &str, inbox: &desk::ApiInbox, n: usize) -> Option<u16> {
    let body = serde_json::to_vec(&serde_json::json!({
        "contact": { "source_id": "paced", "name": "P" },
        "content": format!("paced {n}"),
    }))
    .expect("json");
    let sent = http
        .post(format!("{base_url}/public/api/v1/inboxes/{}/messages", inbox.identifier))
        .header("content-type", "application/json")
        .header("idempotency-key", format!("paced-{n}"))
        .header("x-omnidesk-signature", desk::sign(&body, &inbox.secret, desk::unix_now()))
        .body(body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    sent.ok().map(|response| response.status().as_u16())
}

const PACED_POSTS: usize = 200;

/// Posts `paced 0..PACED_POSTS` a few milliseconds apart; another thread kills `pid` (SIGKILL) a third of
/// the way through, whatever is in flight then. Returns the posts that got no 202.
async fn paced_ingest_killing(app: &TestApp, inbox: &desk::ApiInbox, pid: i32) -> Vec<usize> {
    let posted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let posted = posted.clone();
        std::thread::spawn(move || {
            while posted.load(std::sync::atomic::Ordering::SeqCst) < PACED_POSTS / 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            kill(pid);
        })
    };
    let mut unanswered = Vec::new();
    for n in 0..PACED_POSTS {
        posted.store(n, std::sync::atomic::Ordering::SeqCst);
        if try_post(&app.http, &app.base_url, inbox, n).await != Some(202) {
            unanswered.push(n);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    killer.join().expect("killed");
    unanswered
}

/// Resends every unanswered post with its key until it is accepted (the killed process may still be
/// coming back), then every answered one once more, which must change nothing.
async fn resend_with_the_same_keys(app: &TestApp, inbox: &desk::ApiInbox, unanswered: &[usize]) {
    for &n in unanswered {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while try_post(&app.http, &app.base_url, inbox, n).await != Some(202) {
            assert!(std::time::Instant::now() < deadline, "resent post {n} never accepted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for n in (0..PACED_POSTS).filter(|n| !unanswered.contains(n)) {
        assert_eq!(try_post(&app.http, &app.base_url, inbox, n).await, Some(202), "post {n} again");
    }
}

/// Waits for one conversation holding every paced post, and asserts it holds each exactly once.
async fn assert_every_paced_post_stored_once(app: &TestApp, token: &str, unanswered: usize) {
    // Resent posts arrive last, so what tells that all have is the count, not the last message.
    let listed = app
        .eventually_for("/api/conversations?status=all&limit=100", token, Duration::from_secs(90), |body| {
            body["data"][0]["unread_count"].as_u64() >= Some(PACED_POSTS as u64)
        })
        .await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1), "{listed:?}");
    let conversation = listed.body["data"][0]["id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let contents = loop {
        let contents = incoming_contents(app, token, &conversation).await;
        if contents.len() >= PACED_POSTS || std::time::Instant::now() > deadline {
            break contents;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let distinct: std::collections::BTreeSet<&String> = contents.iter().collect();
    assert_eq!(
        contents.len(),
        PACED_POSTS,
        "{} stored for {PACED_POSTS} posts ({unanswered} unanswered at the kill)",
        contents.len()
    );
    assert_eq!(distinct.len(), PACED_POSTS, "each once");
}

#[tokio::test]
async fn a_monolith_killed_during_a_paced_ingest_stores_every_message_once_after_resending_with_the_same_keys() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut monolith = Monolith::start(data.path(), port);
    let app = TestApp::new(monolith.base_url.clone(), data.path().to_owned(), None);
    let (_, session) = app.signed_in().await;
    let inbox = app.create_api_inbox(&session.access_token, None).await;

    let unanswered = paced_ingest_killing(&app, &inbox, i32::try_from(monolith.child.id()).expect("pid")).await;
    monolith.kill();
    let _restarted = Monolith::start(data.path(), port);
    resend_with_the_same_keys(&app, &inbox, &unanswered).await;

    assert_every_paced_post_stored_once(&app, &session.access_token, unanswered.len()).await;
}

#[tokio::test]
async fn the_input_process_killed_during_a_paced_ingest_in_a_broker_outage_stores_every_message_once_after_resending() {
    let topology = Topology::spawn("microservices", &[]);
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);
    let (_, session) = app.signed_in().await;
    let inbox = app.create_api_inbox(&session.access_token, None).await;
    let outage = BrokerOutage::begin();

    // Act: the ingest and the kill happen with the broker down; its supervisor restarts input meanwhile.
    let unanswered = paced_ingest_killing(&app, &inbox, topology.pid_of("input")).await;
    resend_with_the_same_keys(&app, &inbox, &unanswered).await;
    drop(outage);

    assert_every_paced_post_stored_once(&app, &session.access_token, unanswered.len()).await;
}

/// Every incoming message's content in a conversation, through all its pages.
async fn incoming_contents(app: &TestApp, token: &str, conversation: &str) -> Vec<String> {
    let mut contents = Vec::new();
    let mut path = format!("/api/conversations/{conversation}/messages?limit=100");
    loop {
        let page = app.get(&path, token).await;
        let rows = page.body["data"].as_array().expect("messages").clone();
        let incoming = rows.iter().filter(|m| m["kind"] == "incoming");
        contents.extend(incoming.filter_map(|m| m["content"].as_str().map(str::to_owned)));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/conversations/{conversation}/messages?limit=100&cursor={cursor}"),
            None => return contents,
        }
    }
}
