use std::time::Duration;

use super::*;
use crate::routes::{RouteInfo, Routes};

fn slow_routes() -> Routes<()> {
    Routes::new().get("/api/slow", || async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        "finished"
    })
}

fn slow_table() -> Vec<RouteInfo> {
    slow_routes().table()
}

fn start_slow(_: ServiceContext) -> futures_util::future::BoxFuture<'static, anyhow::Result<Router>> {
    Box::pin(async { Ok(slow_routes().into_router(())) })
}

static SLOW: &[ServiceSpec] = &[ServiceSpec {
    routes: slow_table,
    start: start_slow,
    issues_tokens: true,
    ..ServiceSpec::without_features("slow", "a service with one slow route", &["/api/slow"])
}];

async fn serve_slow(config: Config) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let process = Process::build(Arc::new(config), SLOW, &["slow"]).await.expect("builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        process
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
    });
    (url, stop, server)
}

fn config_in(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.data.dir = dir.to_owned();
    config
}

#[tokio::test]
async fn a_request_in_flight_when_shutdown_begins_still_gets_its_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, stop, server) = serve_slow(config_in(dir.path())).await;
    let in_flight = tokio::spawn(reqwest::get(format!("{url}/api/slow")));
    tokio::time::sleep(Duration::from_millis(300)).await;

    drop(stop);
    let response = in_flight.await.expect("joined").expect("answered");

    assert_eq!(response.text().await.expect("body"), "finished");
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stopped").expect("joined");
}

#[tokio::test]
async fn a_request_running_past_the_timeout_is_answered_with_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_in(dir.path());
    config.http.request_timeout_secs = 1;
    let (url, _stop, _server) = serve_slow(config).await;

    let response = reqwest::get(format!("{url}/api/slow")).await.expect("answered");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["content-type"], http::PROBLEM_JSON);
}

#[test]
fn services_start_after_the_hosted_services_they_depend_on() {
    let a = ServiceSpec { depends_on: &["b"], ..ServiceSpec::without_features("a", "", &[]) };
    let b = ServiceSpec::without_features("b", "", &[]);
    let catalogue: &'static [ServiceSpec] = Box::leak(Box::new([a, b]));

    let order: Vec<&str> = start_order(catalogue, &["a", "b"]).expect("orders").iter().map(|s| s.name).collect();
    assert_eq!(order, ["b", "a"]);
    let alone: Vec<&str> = start_order(catalogue, &["a"]).expect("orders").iter().map(|s| s.name).collect();
    assert_eq!(alone, ["a"], "a dependency in another process does not hold anything up");
}

#[test]
fn a_dependency_cycle_is_a_start_up_error() {
    let a = ServiceSpec { depends_on: &["b"], ..ServiceSpec::without_features("a", "", &[]) };
    let b = ServiceSpec { depends_on: &["a"], ..ServiceSpec::without_features("b", "", &[]) };
    let catalogue: &'static [ServiceSpec] = Box::leak(Box::new([a, b]));

    assert!(start_order(catalogue, &["a", "b"]).is_err());
}

#[tokio::test]
async fn overlapping_claims_stop_a_process_from_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalogue: &'static [ServiceSpec] = Box::leak(Box::new([
        ServiceSpec::without_features("user", "", &["/api/users"]),
        ServiceSpec::without_features("inbox", "", &["/api/users/inboxes"]),
    ]));

    let error = Process::build(Arc::new(config_in(dir.path())), catalogue, &["user", "inbox"]).await.err();

    assert!(error.is_some_and(|e| e.to_string().contains("both claim")));
}
