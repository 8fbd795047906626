//! Request rates through the public API, monolith versus microservices, each as real processes.
//!
//! `cargo bench -p omnidesk --bench http` (optionally `-- SECONDS CONCURRENCY TOPOLOGY`, default 10, 16 and both).
//! For each topology it starts the release binary (`omnidesk serve`, then `omnidesk up --topology
//! microservices`, events through the local RabbitMQ), registers one user per client, and measures for
//! SECONDS each:
//! - `login + get-user`: each client logs in, then reads itself (which asks the plan service for the plan);
//! - `get-user`: each client reads itself with a token it already has.
//!
//! The load generator shares the machine's cores with the server, so absolute numbers are lower than a
//! remote client would see; the comparison between topologies is what this is for.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Server, percentile};

#[derive(Default)]
struct Samples {
    login: Vec<Duration>,
    get_user: Vec<Duration>,
}

async fn timed(request: reqwest::RequestBuilder) -> (Value, Duration) {
    let started = Instant::now();
    let response = request.send().await.expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("json");
    (body, started.elapsed())
}

async fn run(base_url: &str, seconds: u64, concurrency: usize, with_login: bool) -> (f64, Samples) {
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for n in 0..concurrency {
        let email = format!("bench-{n}-{}@example.jp", uuid::Uuid::new_v4().simple());
        let register = json!({ "email": email, "password": "correct horse battery", "name": "Bench" });
        let (body, _) = timed(http.post(format!("{base_url}/api/users/register")).json(&register)).await;
        let id = body["user"]["id"].as_str().expect("id").to_owned();
        clients.push((email, id));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(email, id)| {
            let http = http.clone();
            let base_url = base_url.to_owned();
            tokio::spawn(async move {
                let mut samples = Samples::default();
                let login = json!({ "email": email, "password": "correct horse battery" });
                let (session, _) = timed(http.post(format!("{base_url}/api/users/login")).json(&login)).await;
                let mut token = session["access_token"].as_str().expect("token").to_owned();
                while Instant::now() < deadline {
                    if with_login {
                        let (session, elapsed) =
                            timed(http.post(format!("{base_url}/api/users/login")).json(&login)).await;
                        token = session["access_token"].as_str().expect("token").to_owned();
                        samples.login.push(elapsed);
                    }
                    let (_, elapsed) = timed(http.get(format!("{base_url}/api/users/{id}")).bearer_auth(&token)).await;
                    samples.get_user.push(elapsed);
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        let samples = task.await.expect("client task");
        all.login.extend(samples.login);
        all.get_user.extend(samples.get_user);
    }
    (started.elapsed().as_secs_f64(), all)
}

fn report(topology: &str, scenario: &str, elapsed: f64, mut samples: Samples) {
    let requests = samples.login.len() + samples.get_user.len();
    let iterations = samples.get_user.len();
    let line = |name: &str, s: &mut Vec<Duration>| {
        if s.is_empty() {
            return String::new();
        }
        format!(
            " {name} p50 {:.2} ms p99 {:.2} ms;",
            percentile(s, 0.50).as_secs_f64() * 1e3,
            percentile(s, 0.99).as_secs_f64() * 1e3
        )
    };
    println!(
        "{topology:<14} {scenario:<18} {:>8.0} iterations/s {:>8.0} requests/s;{}{}",
        iterations as f64 / elapsed,
        requests as f64 / elapsed,
        line("login", &mut samples.login),
        line("get-user", &mut samples.get_user),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let only = args.get(2).map(String::as_str);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    println!("{seconds} s per scenario, {concurrency} concurrent clients, keep-alive HTTP/1.1 on loopback");
    for (topology, args) in [("monolith", vec!["serve"]), ("microservices", vec!["up", "--topology", "microservices"])]
    {
        if only.is_some_and(|only| only != topology) {
            continue;
        }
        let server = Server::start(&args);
        for (scenario, with_login) in [("login + get-user", true), ("get-user", false)] {
            let (elapsed, samples) = runtime.block_on(run(&server.base_url, seconds, concurrency, with_login));
            report(topology, scenario, elapsed, samples);
        }
    }
}
