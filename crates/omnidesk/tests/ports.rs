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

/// The plan port as the inbox service (a future caller) gets it: in a monolith, or from a process that
/// hosts inbox alone and reaches plan over HTTP.
async fn plan_ports(
    data: &std::path::Path,
    exchange: &str,
) -> (Arc<dyn PlanPort>, Arc<dyn PlanPort>, Vec<tokio::sync::oneshot::Sender<()>>) {
    let monolith = Process::build(Arc::new(config(data, exchange)), omnidesk::CATALOGUE, &omnidesk::service_names())
        .await
        .expect("monolith");
    let local = monolith.port::<dyn PlanPort>("inbox").expect("local port");

    let plan =
        Process::build(Arc::new(config(data, exchange)), omnidesk::CATALOGUE, &["plan"]).await.expect("plan process");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plan_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(plan.serve(listener, async move {
        let _ = stopped.await;
    }));
    let mut split = config(data, exchange);
    split.services.entry("plan".to_owned()).or_default().url = Some(plan_url);
    let inbox = Process::build(Arc::new(split), omnidesk::CATALOGUE, &["inbox"]).await.expect("inbox process");
    let remote = inbox.port::<dyn PlanPort>("inbox").expect("remote port");
    (local, remote, vec![stop])
}

#[tokio::test]
async fn limits_allowances_and_usage_answer_alike_locally_and_remotely() {
    let data = tempfile::tempdir().expect("tempdir");
    let exchange = format!("omnidesk-test.{}.events", uuid::Uuid::new_v4().simple());
    let (local, remote, _servers) = plan_ports(data.path(), &exchange).await;
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
    let _ =
        std::process::Command::new("rabbitmqctl").args(["-q", "delete_queue", &format!("{exchange}.plan")]).output();
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

#[tokio::test]
async fn members_answer_alike_locally_and_remotely() {
    use contracts::UserId;
    use contracts::user::UserPort;
    use serde_json::{Value, json};

    let data = tempfile::tempdir().expect("tempdir");
    let exchange = format!("omnidesk-test.{}.events", uuid::Uuid::new_v4().simple());
    // The account service group (user needs plan) serves HTTP; an owner registers and invites an agent.
    let (users_url, _stop_users) = serve(config(data.path(), &exchange), &["user", "plan"]).await;
    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = http.post(format!("{users_url}{path}")).json(&body);
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

    let monolith =
        Process::build(Arc::new(config(data.path(), &exchange)), omnidesk::CATALOGUE, &omnidesk::service_names())
            .await
            .expect("monolith");
    let local = monolith.port::<dyn UserPort>("inbox").expect("local port");
    let mut split = config(data.path(), &exchange);
    split.services.entry("user".to_owned()).or_default().url = Some(users_url.clone());
    let inbox = Process::build(Arc::new(split), omnidesk::CATALOGUE, &["inbox"]).await.expect("inbox process");
    let remote = inbox.port::<dyn UserPort>("inbox").expect("remote port");

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
    for service in ["plan", "user", "inbox"] {
        let queue = format!("{exchange}.{service}");
        let _ = std::process::Command::new("rabbitmqctl").args(["-q", "delete_queue", &queue]).output();
    }
}
