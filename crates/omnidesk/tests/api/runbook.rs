//! The README's runbook for moving data, end to end on real processes: a monolith on SQLite, filled with
//! what a support team accumulates (thousands of conversations in Japanese, every plan and payment state,
//! invitations, labels, assignments, notes), is split to PostgreSQL while it serves, run as microservices
//! there, and merged back to SQLite files; then the same again with MariaDB. At every step every row is
//! compared through the API and by `omnidesk data verify`'s checksums. The split picks its own servers
//! (the machine's, as `scripts/test` sets them up), so this runs in the suite's SQLite pass only.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use payment::stripe::fake::{SubscriptionFixture, WebhookDelivery};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::desk::{ApiInbox, unix_now};
use crate::helpers::{ServerNamespaces, TestApp, TestUser, Topology, WEBHOOK_SECRET, test_database};
use crate::moves::{postgres_url, run_data};

const CONVERSATIONS: usize = 2_000;
const MESSAGES_EACH: usize = 10;
/// Posts in flight while filling.
const CONCURRENCY: usize = 16;

/// Lines a customer might write, in Japanese; each message is one of these with its number.
const LINES: &[&str] = &[
    "注文した商品がまだ届きません",
    "返品の手続きを教えてください",
    "領収書を発行していただけますか",
    "サイズを交換したいです",
    "ログインできなくなりました",
    "配送先の住所を変更したいです",
    "請求額が間違っているようです",
    "在庫の入荷予定はありますか",
];

fn mysql_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".to_owned())
}

/// Every service that keeps data.
fn stateful_services() -> Vec<&'static str> {
    omnidesk::CATALOGUE.iter().filter(|s| s.migrations.is_some()).map(|s| s.name).collect()
}

/// Starts `omnidesk up --topology MODE` on `data`, as an operator would after a move.
fn start(mode: &str, data: &std::path::Path) -> Topology {
    Topology::spawn_on(mode, &[("OMNIDESK_AUTH__LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "1000000")], data)
}

/// An account of the fill, signed in as its owner (the token outlives the topologies: every process
/// checks it with the same keys, and nobody logs in again, which would change the user service's rows).
struct Account {
    name: &'static str,
    token: String,
}

async fn owner(app: &TestApp, name: &'static str) -> (TestUser, Account) {
    let (user, session) = app.signed_in().await;
    app.eventually("/api/plan", &session.access_token, |body| !body["since"].is_null()).await;
    (user, Account { name, token: session.access_token })
}

async fn deliver(app: &TestApp, event: &Value) {
    let delivered = crate::account::deliver(app, &WebhookDelivery::signed(event, WEBHOOK_SECRET, unix_now())).await;
    assert_eq!(delivered.status, StatusCode::OK, "{delivered:?}");
}

fn subscription(user: &TestUser, plan: &str, amount: i64) -> SubscriptionFixture {
    let mut fixture = SubscriptionFixture::new(user.account_id.parse().expect("account id"), plan, unix_now());
    fixture.currency = "jpy".to_owned();
    fixture.amount = amount;
    fixture
}

async fn ok(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Value {
    let reply = app.call(method.clone(), path, token, Some(body)).await;
    assert!(reply.status.is_success(), "{method} {path}: {reply:?}");
    reply.body
}

/// Fills the monolith: the accounts (every plan; payments paid, failed and a cancelled subscription; one
/// with nothing), and in the main one two inboxes, labels, canned responses, an agent, invitations
/// pending and revoked, `CONVERSATIONS` customers writing `MESSAGES_EACH` messages each, and the agents'
/// work on a tenth of them (replies, notes, labels, assignment, priority, resolved and snoozed).
async fn fill(app: &TestApp) -> Vec<Account> {
    let (main_user, main) = owner(app, "business, by plan token").await;
    app.move_to_plan(&main_user, &main.token, "business").await;
    let (starter_user, starter) = owner(app, "starter, paid").await;
    deliver(app, &subscription(&starter_user, "starter", 2_980).invoice_paid()).await;
    let (pro_user, pro) = owner(app, "pro, paid").await;
    deliver(app, &subscription(&pro_user, "pro", 9_800).invoice_paid()).await;
    let (failed_user, failed) = owner(app, "free, payment failed").await;
    deliver(app, &subscription(&failed_user, "pro", 9_800).invoice_payment_failed()).await;
    let (cancelled_user, cancelled) = owner(app, "free, subscription cancelled").await;
    let fixture = subscription(&cancelled_user, "starter", 2_980);
    deliver(app, &fixture.invoice_paid()).await;
    app.eventually("/api/plan", &cancelled.token, |body| body["plan"]["code"] == "starter").await;
    deliver(app, &fixture.subscription_deleted()).await;
    let (_, free) = owner(app, "free").await;
    app.eventually("/api/plan", &pro.token, |body| body["plan"]["code"] == "pro").await;
    app.eventually("/api/plan", &cancelled.token, |body| body["plan"]["code"] == "free").await;

    let token = main.token.as_str();
    let inboxes = [app.create_api_inbox(token, None).await, app.create_api_inbox(token, None).await];
    let labels = ["返品", "至急", "請求", "配送", "VIP"];
    for (n, name) in labels.iter().enumerate() {
        ok(app, Method::POST, "/api/labels", token, json!({ "name": name, "colour": format!("#E11D4{n}") })).await;
    }
    for (code, content) in
        [("thanks", "お問い合わせありがとうございます。"), ("wait", "確認いたしますので少々お待ちください。")]
    {
        ok(app, Method::POST, "/api/canned-responses", token, json!({ "short_code": code, "content": content })).await;
    }
    let invited =
        |role: &str| json!({ "email": format!("{role}-{}@example.jp", uuid::Uuid::new_v4().simple()), "role": role });
    let agent_invitation = ok(app, Method::POST, "/api/users/invitations", token, invited("agent")).await;
    let accepted = app
        .post(
            "/api/users/invitations/accept",
            json!({ "token": agent_invitation["token"], "name": "佐藤 健二", "password": "correct horse battery", "language": "ja" }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{accepted:?}");
    let agent = Account { name: "agent", token: accepted.body["access_token"].as_str().expect("token").to_owned() };
    let agent_id = accepted.body["user"]["id"].as_str().expect("agent id").to_owned();
    ok(app, Method::POST, "/api/users/invitations", token, invited("admin")).await;
    let revoked = ok(app, Method::POST, "/api/users/invitations", token, invited("agent")).await;
    let path = format!("/api/users/invitations/{}", revoked["invitation"]["id"].as_str().expect("id"));
    assert!(app.call(Method::DELETE, &path, token, None).await.status.is_success());
    let members = format!("/api/inboxes/{}/members", inboxes[0].id);
    ok(app, Method::PUT, &members, token, json!({ "user_ids": [agent_id] })).await;

    // The customers, each writing in turn so that conversations interleave as they do.
    let posts = (0..MESSAGES_EACH).flat_map(|round| (0..CONVERSATIONS).map(move |customer| (round, customer)));
    let mut posted = futures_util::stream::iter(posts)
        .map(|(round, customer)| post(app, &inboxes[customer % 2], round, customer))
        .buffer_unordered(CONCURRENCY);
    while let Some(status) = posted.next().await {
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    drop(posted);
    let all = "/api/conversations?status=all&limit=1";
    app.eventually_for(all, token, std::time::Duration::from_secs(120), |body| {
        body["meta"]["counts"]["all"] == CONVERSATIONS
    })
    .await;

    // The agents' work on every tenth conversation.
    let conversations = pages(app, "/api/conversations?status=all&limit=100", token).await;
    for (n, conversation) in conversations.iter().enumerate().filter(|(n, _)| n % 10 == 0) {
        let path = format!("/api/conversations/{}", conversation["id"].as_str().expect("id"));
        let messages = format!("{path}/messages");
        ok(app, Method::POST, &messages, token, json!({ "content": format!("ご連絡ありがとうございます（{n}）") }))
            .await;
        ok(app, Method::POST, &messages, token, json!({ "content": "在庫を確認中", "private": true })).await;
        let labelled = json!({ "labels": [labels[n % labels.len()], labels[(n + 1) % labels.len()]] });
        ok(app, Method::PUT, &format!("{path}/labels"), token, labelled).await;
        ok(app, Method::POST, &format!("{path}/assignee"), token, json!({ "assignee_id": main_user.id })).await;
        ok(app, Method::POST, &format!("{path}/priority"), token, json!({ "priority": "high" })).await;
        let status = match n % 30 {
            0 => json!({ "status": "resolved" }),
            10 => json!({ "status": "snoozed", "snoozed_until": (unix_now() + 30 * 86_400) * 1000 }),
            _ => json!({ "status": "pending" }),
        };
        ok(app, Method::POST, &format!("{path}/status"), token, status).await;
    }
    vec![main, agent, starter, pro, failed, cancelled, free]
}

async fn post(app: &TestApp, inbox: &ApiInbox, round: usize, customer: usize) -> StatusCode {
    let content = format!("{}（{customer}-{round}）", LINES[(customer + round) % LINES.len()]);
    let key = format!("m-{customer}-{round}");
    let name = format!("顧客 {customer}");
    app.post_signed(inbox, &key, &format!("customer-{customer}"), &name, &content).await.status
}

/// Every item of a paginated list, following `next_cursor`.
async fn pages(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = path.to_owned();
    loop {
        let page = app.get(&next, token).await;
        assert_eq!(page.status, StatusCode::OK, "{next}: {page:?}");
        items.extend(page.body["data"].as_array().expect("a page").iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}&cursor={cursor}"),
            None => return items,
        }
    }
}

/// Everything the API shows each account, by account and request.
type Shown = BTreeMap<String, Value>;

async fn everything_shown(app: &TestApp, accounts: &[Account]) -> Shown {
    let mut shown = Shown::new();
    for account in accounts {
        let token = account.token.as_str();
        let mut record = |path: String, value: Value| {
            shown.insert(format!("{}: {path}", account.name), value);
        };
        for path in [
            "/api/users",
            "/api/users/invitations",
            "/api/plan",
            "/api/billing",
            "/api/billing/payments",
            "/api/inboxes",
            "/api/labels",
            "/api/canned-responses",
        ] {
            let reply = app.get(path, token).await;
            assert!(reply.status.as_u16() < 500, "{path}: {reply:?}");
            record(path.to_owned(), json!({ "status": reply.status.as_u16(), "body": reply.body }));
        }
        // Searches whose every hit fits in a page (engines rank hits differently: SQLite by relevance, the
        // servers newest first), compared as sets.
        for query in ["1999", "%E9%A1%A7%E5%AE%A2%201999", "%E8%BF%94%E5%93%81%20199"] {
            let path = format!("/api/search?q={query}&limit=100");
            let mut found = app.get(&path, token).await;
            assert_eq!(found.status, StatusCode::OK, "{path}: {found:?}");
            for hits in ["contacts", "conversations", "messages"] {
                let hits = found.body[hits].as_array_mut().expect("hits");
                assert!(hits.len() < 100, "{path}: every hit in one page");
                hits.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            }
            record(path, found.body);
        }
        for inbox in app.get("/api/inboxes", token).await.body.as_array().into_iter().flatten() {
            let path = format!("/api/inboxes/{}/members", inbox["id"].as_str().expect("id"));
            let members = app.get(&path, token).await.body;
            record(path, members);
        }
        let contacts = pages(app, "/api/contacts?limit=100", token).await;
        record("/api/contacts".to_owned(), Value::Array(contacts));
        let conversations = pages(app, "/api/conversations?status=all&limit=100", token).await;
        let threads = futures_util::stream::iter(&conversations)
            .map(|conversation| async move {
                let path =
                    format!("/api/conversations/{}/messages?limit=100", conversation["id"].as_str().expect("id"));
                let messages = pages(app, &path, token).await;
                (path, Value::Array(messages))
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (path, messages) in threads {
            record(path, messages);
        }
        record("/api/conversations".to_owned(), Value::Array(conversations));
    }
    shown
}

/// The fill is asynchronous (ingest, events between services, reply deliveries): what the API shows once
/// two looks in a row agree.
async fn settled(app: &TestApp, accounts: &[Account]) -> Shown {
    let mut last = everything_shown(app, accounts).await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = everything_shown(app, accounts).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("what the API shows kept changing");
}

#[track_caller]
fn assert_same(expected: &Shown, actual: &Shown, step: &str) {
    let missing: Vec<&String> = expected.keys().filter(|key| !actual.contains_key(*key)).collect();
    assert!(missing.is_empty(), "{step}: no longer shown: {missing:?}");
    for (key, value) in expected {
        if actual[key] != *value {
            let (before, after) = (value.to_string(), actual[key].to_string());
            let from = before.bytes().zip(after.bytes()).take_while(|(a, b)| a == b).count().saturating_sub(200);
            let shown = |text: &str| {
                text.char_indices().skip_while(|(at, _)| *at < from).map(|(_, c)| c).take(600).collect::<String>()
            };
            panic!("{step}: {key} changed; from byte {from}:\nbefore: {}\nafter:  {}", shown(&before), shown(&after));
        }
    }
    assert_eq!(expected.len(), actual.len(), "{step}: more shown than before");
}

/// `omnidesk data verify` of every service between its SQLite file under `data` and its copy among
/// `namespaces`.
async fn verify_each(app: &TestApp, data: &std::path::Path, namespaces: &ServerNamespaces) {
    for service in stateful_services() {
        let file = format!("sqlite://{}", data.join(format!("{service}.db")).display());
        let copy = namespaces.service_url(service);
        let verified = run_data(app, &["verify", "--service", service, "--from", &file, "--to", &copy]).await;
        assert!(verified.contains("tables identical"), "{service}: {verified}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_filled_monolith_splits_to_postgres_and_to_mariadb_runs_as_microservices_and_merges_back_unchanged() {
    if test_database().is_some() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let mut running = start("monolith", data.path());
    let app = |topology: &Topology| TestApp::new(topology.base_url.clone(), data.path().to_owned(), None);
    let accounts = fill(&app(&running)).await;
    let mut expected = settled(&app(&running), &accounts).await;
    let messages: usize = expected
        .iter()
        .filter(|(key, _)| key.contains("/messages"))
        .map(|(_, v)| v.as_array().map_or(0, Vec::len))
        .sum();
    assert!(messages >= CONVERSATIONS * MESSAGES_EACH, "{messages} messages shown");
    let found = &expected[&format!("{}: /api/search?q=1999&limit=100", accounts[0].name)];
    assert_eq!(found["messages"].as_array().map(Vec::len), Some(MESSAGES_EACH), "{found}");

    for (round, server) in [postgres_url(), mysql_url()].into_iter().enumerate() {
        let namespaces = ServerNamespaces::new(&server);
        let template = namespaces.service_url("{service}");

        // Split while the monolith serves; each service's old file is left fenced, and equal to its copy.
        let split = run_data(&app(&running), &["split", "--to", &template]).await;
        for service in stateful_services() {
            assert!(split.contains(&format!("{service}: moved to ")), "{service} moved:\n{split}");
        }
        assert_eq!(split.matches(", verified;").count(), stateful_services().len(), "{split}");
        verify_each(&app(&running), data.path(), &namespaces).await;
        assert_same(&expected, &everything_shown(&app(&running), &accounts).await, "the monolith after the split");

        // Microservices on those databases: everything shows as it did; then a day's work there.
        drop(running);
        running = start("microservices", data.path());
        let split_app = app(&running);
        assert_same(&expected, &everything_shown(&split_app, &accounts).await, "microservices after the split");
        let token = accounts[0].token.as_str();
        let inbox = split_app.create_api_inbox(token, None).await;
        let customer = format!("split-customer-{round}");
        let reply = split_app.post_signed(&inbox, &customer, &customer, "新しい顧客", "分割後の問い合わせ").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        ok(
            &split_app,
            Method::POST,
            "/api/labels",
            token,
            json!({ "name": format!("分割後 {round}"), "colour": "#123456" }),
        )
        .await;
        split_app
            .eventually("/api/conversations?status=all&limit=1", token, |body| {
                body["meta"]["counts"]["all"] == CONVERSATIONS + round + 1
            })
            .await;
        expected = settled(&split_app, &accounts).await;

        // Merge back while the microservices serve, into the SQLite files they came from.
        let home = format!("sqlite://{}", data.path().display());
        let merged = run_data(&split_app, &["merge", "--to", &home]).await;
        assert_eq!(merged.matches(", verified;").count(), stateful_services().len(), "{merged}");
        verify_each(&split_app, data.path(), &namespaces).await;
        let status = run_data(&split_app, &["status"]).await;
        assert!(!status.contains("recorded"), "every service back where the configuration puts it:\n{status}");
        assert_same(&expected, &everything_shown(&split_app, &accounts).await, "microservices after the merge");

        drop(running);
        running = start("monolith", data.path());
        assert_same(&expected, &everything_shown(&app(&running), &accounts).await, "the monolith after the merge");
    }
}
