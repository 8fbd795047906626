//! Ports as other services hold them (the plan's and the user service's): the same answers in process and over HTTP.

use std::sync::Arc;

use contracts::AccountId;
use contracts::plan::{Limited, PlanPort};
use kernel::Process;
use kernel::config::Config;

/// Processes sharing `data`; split ones carry events through the machine's RabbitMQ on `exchange`.
fn config(data: &std::path::Path, exchange: &str) -> Config {
    let mut config = Config::default();
    config.data.dir = data.to_owned();
    config.internal.secret = Some("test-secret".to_owned());
    config.rabbitmq.host = Some("127.0.0.1".to_owned());
    config.rabbitmq.password = Some("guest".to_owned());
    config.rabbitmq.exchange = exchange.to_owned();
    config
}

/// The processes a port is taken from, as the inbox service (a caller of user, plan and input) holds it:
/// `local` is a monolith; `remote` hosts inbox alone and reaches user, plan and input, which another process
/// serves at `url`, over HTTP. All three share the data directory.
struct Callers {
    local: Process,
    remote: Process,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn callers(data: &std::path::Path, exchange: &str) -> Callers {
    let (url, stop) = serve(config(data, exchange), &["user", "plan", "input"]).await;
    let local = Process::build(Arc::new(config(data, exchange)), omnidesk::CATALOGUE, &omnidesk::service_names())
        .await
        .expect("monolith");
    let mut split = config(data, exchange);
    for callee in ["user", "plan", "input"] {
        split.services.entry(callee.to_owned()).or_default().url = Some(url.clone());
    }
    let remote = Process::build(Arc::new(split), omnidesk::CATALOGUE, &["inbox"]).await.expect("inbox process");
    Callers { local, remote, url, _stop: stop }
}

/// Serves a process hosting `services` on a free port; returns its URL and the sender that stops it.
async fn serve(config: Config, services: &[&str]) -> (String, tokio::sync::oneshot::Sender<()>) {
    let process = Process::build(Arc::new(config), omnidesk::CATALOGUE, services).await.expect("process");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(process.serve(listener, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Removes the test exchange's queues from the broker (they are durable).
fn delete_queues(exchange: &str) {
    for service in omnidesk::service_names() {
        let queue = format!("{exchange}.{service}");
        let _ = std::process::Command::new("rabbitmqctl").args(["-q", "delete_queue", &queue]).output();
    }
}

#[tokio::test]
async fn limits_allowances_and_usage_answer_alike_locally_and_remotely() {
    let data = tempfile::tempdir().expect("tempdir");
    let exchange = format!("omnidesk-test.{}.events", uuid::Uuid::new_v4().simple());
    let callers = callers(data.path(), &exchange).await;
    let local = callers.local.port::<dyn PlanPort>("inbox").expect("local port");
    let remote = callers.remote.port::<dyn PlanPort>("inbox").expect("remote port");
    let account = AccountId::new();

    for port in [&local, &remote] {
        let limits = port.limits_of(account).await.expect("limits");
        assert_eq!(limits.inboxes, Some(1), "an account without a subscription is on free");
        let seats = port.allowance(account, Limited::Inboxes, 1).await.expect("allowance");
        assert!(!seats.allowed, "free allows one inbox, and there is one already: {seats:?}");
    }

    assert_eq!(local.record_usage(account, Limited::ConversationsPerMonth, 60).await, Ok(60));
    assert_eq!(remote.record_usage(account, Limited::ConversationsPerMonth, 40).await, Ok(100));
    let monthly = remote.allowance(account, Limited::ConversationsPerMonth, 0).await.expect("allowance");
    assert_eq!((monthly.used, monthly.limit, monthly.allowed), (100, Some(100), false));
    assert!(local.record_usage(account, Limited::Agents, 1).await.is_err(), "seats are not counted monthly");
    delete_queues(&exchange);
}

#[tokio::test]
async fn members_answer_alike_locally_and_remotely() {
    use contracts::UserId;
    use contracts::user::UserPort;
    use serde_json::{Value, json};

    let data = tempfile::tempdir().expect("tempdir");
    let exchange = format!("omnidesk-test.{}.events", uuid::Uuid::new_v4().simple());
    let callers = callers(data.path(), &exchange).await;
    // Through the served user service's API, an owner registers and invites an agent, who accepts.
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = http.post(format!("{}{path}", callers.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("sent").json::<Value>().await.expect("json") }
    };
    let (owner_email, password) = ("owner@example.jp", "correct horse battery");
    let registered =
        post("/api/users/register", None, json!({ "email": owner_email, "password": password, "name": "Aiko" })).await;
    let login = post("/api/users/login", None, json!({ "email": owner_email, "password": password })).await;
    let owner_token = login["access_token"].as_str().expect("access token");
    let invited =
        post("/api/users/invitations", Some(owner_token), json!({ "email": "kenji@example.jp", "role": "agent" }))
            .await;
    let accepted = post(
        "/api/users/invitations/accept",
        None,
        json!({ "token": invited["token"], "name": "Kenji", "password": "agent password 1" }),
    )
    .await;
    let account = registered["account"]["id"].as_str().expect("account").parse().expect("account id");
    let agent: UserId = accepted["user"]["id"].as_str().expect("agent").parse().expect("user id");

    let local = callers.local.port::<dyn UserPort>("inbox").expect("local port");
    let remote = callers.remote.port::<dyn UserPort>("inbox").expect("remote port");

    let members = local.members(account).await.expect("members");
    assert_eq!(
        members.iter().map(|m| (m.email.as_str(), m.role)).collect::<Vec<_>>(),
        [(owner_email, contracts::Role::Owner), ("kenji@example.jp", contracts::Role::Agent)]
    );
    assert_eq!(remote.members(account).await, Ok(members.clone()));
    for port in [&local, &remote] {
        assert_eq!(port.member(account, agent).await, Ok(Some(members[1].clone())));
        assert_eq!(port.member(account, UserId::new()).await, Ok(None), "an unknown user is no member");
        assert_eq!(port.member(AccountId::new(), agent).await, Ok(None), "nor a member of another account");
        assert_eq!(port.members(AccountId::new()).await, Ok(Vec::new()));
    }
    delete_queues(&exchange);
}
