//! A port call in process versus the same call over loopback HTTP (the cost of splitting a service out).
//!
//! `cargo bench -p omnidesk --bench ports`. Both go through the real mechanism a service gets from its
//! context: the metered wrapper around the plan service's implementation (local), or around the generated
//! HTTP client talking to the plan service's internal endpoints in a real process (remote). A bare HTTP
//! round trip with the same client and runtime is measured alongside, as the yardstick for the remote call.

use std::sync::Arc;

use contracts::AccountId;
use contracts::plan::PlanPort;
use criterion::{Criterion, criterion_group, criterion_main};
use kernel::config::Config;

/// A process hosting only `plan`, with a service credential, on a loopback port.
fn plan_process(runtime: &tokio::runtime::Runtime, data: &std::path::Path) -> String {
    runtime.block_on(async {
        let mut config = Config::default();
        config.data.dir = data.to_owned();
        config.internal.secret = Some("bench-secret".to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let process = kernel::Process::build(Arc::new(config), omnidesk::CATALOGUE, &["plan"]).await.expect("plan");
        tokio::spawn(process.serve(listener, std::future::pending()));
        url
    })
}

/// The PlanPort the user service gets in a process hosting `user` (and `plan` too when `plan_url` is None).
fn user_side_port(
    runtime: &tokio::runtime::Runtime,
    data: &std::path::Path,
    plan_url: Option<&str>,
) -> Arc<dyn PlanPort> {
    runtime.block_on(async {
        let mut config = Config::default();
        config.data.dir = data.to_owned();
        config.internal.secret = Some("bench-secret".to_owned());
        let hosted: &[&str] = match plan_url {
            Some(url) => {
                config.services.entry("plan".to_owned()).or_default().url = Some(url.to_owned());
                &["user"]
            }
            None => &["user", "plan"],
        };
        let process = kernel::Process::build(Arc::new(config), omnidesk::CATALOGUE, hosted).await.expect("builds");
        process.port::<dyn PlanPort>("user").expect("port")
    })
}

/// The yardstick: a bare axum server answering a JSON POST, no middleware, same runtime and client library.
fn plain_http_server(runtime: &tokio::runtime::Runtime) -> String {
    runtime.block_on(async {
        let router = axum::Router::new().route(
            "/echo",
            axum::routing::post(
                |body: axum::body::Bytes| async move { ([("content-type", "application/json")], body) },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/echo", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    })
}

fn port_calls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let data = tempfile::tempdir().expect("tempdir");
    // One data directory: the first process (it hosts the token issuer) creates the key pair the others read.
    let local = user_side_port(&runtime, data.path(), None);
    let plan_url = plan_process(&runtime, data.path());
    let remote = user_side_port(&runtime, data.path(), Some(&plan_url));
    let account = AccountId::new();
    let plain_url = plain_http_server(&runtime);
    let http = reqwest::Client::new();

    let mut group = c.benchmark_group("PlanPort::plan_of");
    group.bench_function("local (in-process, metered)", |b| {
        b.to_async(&runtime).iter(|| async { local.plan_of(account).await.expect("local call") });
    });
    group.bench_function("remote (HTTP/1.1 keep-alive on loopback, metered)", |b| {
        b.to_async(&runtime).iter(|| async { remote.plan_of(account).await.expect("remote call") });
    });
    group.bench_function("baseline: plain HTTP/1.1 keep-alive JSON POST to bare axum", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = http.post(&plain_url).body(r#"["0"]"#).send().await.expect("sent");
            response.bytes().await.expect("body")
        });
    });
    group.finish();
}

criterion_group!(benches, port_calls);
criterion_main!(benches);
