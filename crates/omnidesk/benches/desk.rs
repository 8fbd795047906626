//! The help desk under load: API-channel ingest end to end, and the conversation list.
//!
//! `cargo bench -p omnidesk --bench desk` (optionally `-- MESSAGES POSTERS PACED_RATE TOPOLOGY`, default 20000,
//! 32, half the saturated rate, and both topologies). For
//! each topology (the monolith on SQLite, then microservices with events through the local RabbitMQ) it
//! starts the release binary, registers an owner on the business plan, creates an API inbox and connects an
//! agent's WebSocket. Then:
//! - **ingest**: POSTERS concurrent clients post MESSAGES signed server-to-server messages from 1,000
//!   customers. Latency is from sending the post to the agent's socket receiving its `message.created`
//!   (accepted → stored → pushed); throughput is messages pushed per second over the whole run, and the
//!   server's CPU time (all its processes) per message. Then five seconds' worth more (at least 5,000) are
//!   posted paced at PACED_RATE (default: half that rate), each at its scheduled instant, by as many
//!   posters as 50 ms of posts need: the path's latency at a given offered rate.
//! - **conversation list**: `wrk` (Debian package `wrk`) requests `GET /api/conversations?status=all&limit=50`
//!   with 2 threads and 32 connections for 10 s against the 1,000 conversations the ingest created. Nothing
//!   changes in the account meanwhile, so after the first request the list is served from its cache. Then
//!   the same again while messages arrive at 1,000 a second (paced, as above), so that the list is
//!   rendered again after every commit that changes the account: what agents see on a busy desk.
//!
//! The load generators share the machine's cores with the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod common;

use common::{Server, percentile};

const CUSTOMERS: usize = 1_000;

/// The rate messages arrive at while the list is measured under changes (messages per second).
const BUSY_RATE: f64 = 1_000.0;

fn sign(body: &[u8], secret: &str) -> String {
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[derive(Clone)]
struct Desk {
    token: String,
    identifier: String,
    secret: String,
}

async fn json_ok(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("sent");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// An owner on the business plan (no monthly conversation limit) with an API inbox.
async fn set_up(server: &Server, http: &reqwest::Client) -> Desk {
    let base = &server.base_url;
    let email = format!("bench-{}@example.jp", uuid::Uuid::new_v4().simple());
    let register = json!({ "email": email, "password": "correct horse battery", "name": "Bench" });
    let registered = json_ok(http.post(format!("{base}/api/users/register")).json(&register)).await;
    let account = registered["account"]["id"].as_str().expect("account").to_owned();
    let login = json!({ "email": email, "password": "correct horse battery" });
    let session = json_ok(http.post(format!("{base}/api/users/login")).json(&login)).await;
    let token = session["access_token"].as_str().expect("token").to_owned();
    // The plan service puts new accounts on the free plan when it sees `account.created`.
    loop {
        let plan = http.get(format!("{base}/api/plan")).bearer_auth(&token).send().await.expect("sent");
        let body: Value = plan.json().await.unwrap_or(Value::Null);
        if body["since"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plan_token = server.omnidesk(&["plan-token", "--account", &account, "--plan", "business"]);
    json_ok(http.post(format!("{base}/api/plan/register/{plan_token}")).bearer_auth(&token)).await;
    let inbox = json!({ "name": "Bench API", "channel": "api" });
    let inbox = json_ok(http.post(format!("{base}/api/inboxes")).bearer_auth(&token).json(&inbox)).await;
    Desk {
        token,
        identifier: inbox["identifier"].as_str().expect("identifier").to_owned(),
        secret: inbox["secret"].as_str().expect("secret").to_owned(),
    }
}

struct Ingest {
    pushed_per_second: f64,
    end_to_end: Vec<Duration>,
    accepted: Vec<Duration>,
}

/// Posts `messages`; as fast as `posters` clients go, or, with `rate`, each at its scheduled instant
/// (messages per second over all posters), to see the path's latency below saturation.
async fn ingest(
    base: &str,
    http: &reqwest::Client,
    desk: &Desk,
    messages: usize,
    posters: usize,
    tag: &str,
    rate: Option<f64>,
) -> Ingest {
    let url = format!("{}/api/realtime", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {}", desk.token).parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket");
    let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..messages).map(|_| std::sync::OnceLock::new()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..posters)
        .map(|_| {
            let (http, sent, next) = (http.clone(), sent.clone(), next.clone());
            let endpoint = format!("{base}/public/api/v1/inboxes/{}/messages", desk.identifier);
            let secret = desk.secret.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sent.len() {
                        return accepted;
                    }
                    if let Some(rate) = rate {
                        tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                    }
                    let body = serde_json::to_vec(&json!({
                        "contact": { "source_id": format!("customer-{}", i % CUSTOMERS), "name": "お客様" },
                        "content": format!("{tag}:{i} 注文した商品の配送状況を教えてください。"),
                    }))
                    .expect("json");
                    let signature = sign(&body, &secret);
                    let at = Instant::now();
                    let _ = sent[i].set(at);
                    let response = http
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("{tag}-{i}"))
                        .header("x-omnidesk-signature", signature)
                        .body(body)
                        .send()
                        .await
                        .expect("sent");
                    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
                    accepted.push(at.elapsed());
                }
            })
        })
        .collect();
    let mut end_to_end = Vec::with_capacity(messages);
    let mut last_push = started;
    while end_to_end.len() < messages {
        let frame = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("pushes keep coming")
            .expect("socket open")
            .expect("frame");
        let Message::Text(text) = frame else { continue };
        let event: Value = serde_json::from_str(text.as_str()).expect("json");
        if event["kind"] != "message.created" || event["data"]["message"]["kind"] != "incoming" {
            continue;
        }
        let content = event["data"]["message"]["content"].as_str().unwrap_or_default();
        let Some(i) = content.strip_prefix(&format!("{tag}:")).and_then(|rest| rest.split(' ').next()) else {
            continue;
        };
        let i: usize = i.parse().expect("index");
        let now = Instant::now();
        end_to_end.push(now - *sent[i].get().expect("sent before pushed"));
        last_push = now;
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.expect("poster"));
    }
    Ingest { pushed_per_second: messages as f64 / (last_push - started).as_secs_f64(), end_to_end, accepted }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn list_with_wrk(base: &str, token: &str, while_: &str) {
    let url = format!("{base}/api/conversations?status=all&limit=50");
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H", &format!("Authorization: Bearer {token}"), &url])
        .output();
    match output {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout);
            let rate = text.lines().find(|l| l.starts_with("Requests/sec")).unwrap_or("Requests/sec: ?");
            let p50 = text.lines().find(|l| l.trim_start().starts_with("50%")).unwrap_or("").trim();
            let p99 = text.lines().find(|l| l.trim_start().starts_with("99%")).unwrap_or("").trim();
            let errors = text.lines().find(|l| l.contains("Non-2xx")).unwrap_or("no errors").trim();
            println!("  conversation list (50 rows){while_}: {rate}; latency {p50}, {p99}; {errors}");
        }
        Err(error) => println!("  conversation list: wrk not available ({error}); `apt-get install wrk`"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let messages = args.first().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let posters = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let paced: Option<f64> = args.get(2).and_then(|s| s.parse().ok());
    let only = args.get(3).map(String::as_str);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    println!(
        "ingest: {messages} messages from {CUSTOMERS} customers, {posters} concurrent posters; list: wrk -t2 -c32 -d10s"
    );
    for (topology, args) in [("monolith", vec!["serve"]), ("microservices", vec!["up", "--topology", "microservices"])]
    {
        if only.is_some_and(|only| only != topology) {
            continue;
        }
        let server = Server::start(&args);
        let http = reqwest::Client::new();
        let desk = runtime.block_on(set_up(&server, &http));
        // A warm-up creates the customers' conversations and fills caches.
        runtime.block_on(ingest(&server.base_url, &http, &desk, CUSTOMERS, posters, "warm", None));
        let cpu_before = server.cpu_time();
        let mut run = runtime.block_on(ingest(&server.base_url, &http, &desk, messages, posters, "run", None));
        let cpu_per_message = (server.cpu_time() - cpu_before).as_secs_f64() * 1e6 / messages as f64;
        println!(
            "{topology:<14} ingest: {:>6.0} messages/s pushed; end to end p50 {:.1} ms p99 {:.1} ms; accepted (202) p50 {:.1} ms p99 {:.1} ms; server CPU {cpu_per_message:.0} µs/message",
            run.pushed_per_second,
            ms(percentile(&mut run.end_to_end, 0.50)),
            ms(percentile(&mut run.end_to_end, 0.99)),
            ms(percentile(&mut run.accepted, 0.50)),
            ms(percentile(&mut run.accepted, 0.99)),
        );
        let paced_rate = paced.unwrap_or((run.pushed_per_second * 0.5).floor().max(50.0));
        // Five seconds of posts, however fast: periodic work (checkpoints every 500 ms) shows in the tail.
        let paced_messages = ((paced_rate * 5.0) as usize).max(5_000);
        // Enough posters that 50 ms of posts can be in flight at once: a post waits for its turn only when
        // the server has fallen that far behind.
        let paced_posters = posters.max((paced_rate * 0.05).ceil() as usize);
        let mut paced = runtime.block_on(ingest(
            &server.base_url,
            &http,
            &desk,
            paced_messages,
            paced_posters,
            "paced",
            Some(paced_rate),
        ));
        println!(
            "{topology:<14} ingest paced at {paced_rate:.0} messages/s ({paced_posters} posters): {:.0} messages/s pushed; end to end p50 {:.1} ms p99 {:.1} ms; accepted (202) p99 {:.1} ms",
            paced.pushed_per_second,
            ms(percentile(&mut paced.end_to_end, 0.50)),
            ms(percentile(&mut paced.end_to_end, 0.99)),
            ms(percentile(&mut paced.accepted, 0.99)),
        );
        list_with_wrk(&server.base_url, &desk.token, "");
        // The same list while messages arrive: each commit that changes the account drops its rendered
        // lists, so the first request after one renders the page again.
        let busy = runtime.spawn({
            let (base, http, desk) = (server.base_url.clone(), http.clone(), desk.clone());
            let posters = posters.max((BUSY_RATE * 0.05).ceil() as usize);
            let messages = (BUSY_RATE * 11.0) as usize; // wrk's ten seconds, and a second to spare
            async move { ingest(&base, &http, &desk, messages, posters, "busy", Some(BUSY_RATE)).await }
        });
        list_with_wrk(&server.base_url, &desk.token, &format!(" while {BUSY_RATE} messages/s arrive"));
        let mut busy = runtime.block_on(busy).expect("ingest while listing");
        println!(
            "  ingest meanwhile: {:.0} messages/s pushed; end to end p50 {:.1} ms p99 {:.1} ms",
            busy.pushed_per_second,
            ms(percentile(&mut busy.end_to_end, 0.50)),
            ms(percentile(&mut busy.end_to_end, 0.99)),
        );
    }
}
