//! The service against a real namespace in a temporary directory: registration, accepting posts, replays,
//! the plan limit, and reply delivery to a local receiver. The plan service is replaced by a stand-in
//! port, since what is tested here is what input does with its answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use contracts::AccountId;
use contracts::channel::{ChannelContact, ChannelKind, ChannelRegistration, InputPort, RegistrationError};
use contracts::inbox::{ConversationId, InboxId, MessageCreated, MessageId, MessageKind};
use contracts::plan::{Allowance, Limited, PlanLimits, PlanPort, PlanSummary};
use kernel::events::{Envelope, Handler};
use kernel::ports::PortError;
use kernel::store::{Location, Migrations, Namespace};

use crate::channels::Channel;
use crate::inbound::{Accepted, Origin, Post, sha256_hex};
use crate::store::Store;
use crate::{Input, InputError, MIGRATIONS, Settings};

/// The plan service as input sees it: allows or refuses, and counts what is recorded.
#[derive(Default)]
struct StandInPlan {
    refuse: AtomicBool,
    recorded: AtomicU64,
}

#[async_trait]
impl PlanPort for StandInPlan {
    async fn plan_of(&self, _: AccountId) -> Result<PlanSummary, PortError> {
        Ok(PlanSummary { code: "free".into(), name: "Free".into() })
    }
    async fn limits_of(&self, _: AccountId) -> Result<PlanLimits, PortError> {
        Err(PortError::Unavailable { callee: "plan".into(), reason: "not used by input".into() })
    }
    async fn allowance(&self, _: AccountId, limited: Limited, _: u64) -> Result<Allowance, PortError> {
        let used = self.recorded.load(Ordering::SeqCst);
        let allowed = !self.refuse.load(Ordering::SeqCst);
        Ok(Allowance { allowed, limited, used, limit: Some(used + u64::from(allowed)), plan: "free".into() })
    }
    async fn record_usage(&self, _: AccountId, _: Limited, amount: u64) -> Result<u64, PortError> {
        Ok(self.recorded.fetch_add(amount, Ordering::SeqCst) + amount)
    }
}

struct Fixture {
    input: Arc<Input>,
    plan: Arc<StandInPlan>,
    namespace: Namespace,
    account: AccountId,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let namespace = Namespace::open(
        "input",
        &Location::SqliteFile(dir.path().join("input.db")),
        Some(Migrations { sqlite: &MIGRATIONS }),
    )
    .await
    .expect("opens");
    namespace.migrate().await.expect("migrates");
    let plan = Arc::new(StandInPlan::default());
    let input = Arc::new(Input { store: Store::new(namespace.clone()), plan: plan.clone() });
    Fixture { input, plan, namespace, account: AccountId::new(), _dir: dir }
}

impl Fixture {
    async fn register(&self, inbox: InboxId, callback_url: Option<&str>) -> Channel {
        let registration = ChannelRegistration {
            account: self.account,
            inbox,
            kind: ChannelKind::Api,
            callback_url: callback_url.map(str::to_owned),
        };
        let credentials = self.input.register_channel(registration).await.expect("port").expect("registers");
        self.input.open_channel(&credentials.identifier).await.expect("open")
    }

    async fn outbox(&self) -> i64 {
        kernel::events::outbox_backlog(&self.namespace).await.expect("outbox")
    }

    async fn transcript(&self, channel: &Channel, source_id: &str) -> Vec<(String, String, Option<String>)> {
        let rows = self.input.store.transcript(channel.inbox, source_id, 100).await.expect("transcript");
        rows.into_iter().map(|r| (r.direction, r.content, r.delivery_status)).collect()
    }
}

fn post(source_id: &str, key: Option<&str>, content: &str) -> Post {
    let payload = format!(r#"{{"contact":{{"source_id":"{source_id}"}},"content":"{content}"}}"#);
    Post {
        idempotency_key: key.map(str::to_owned),
        body_sha256: sha256_hex(payload.as_bytes()),
        payload,
        contact: ChannelContact { source_id: source_id.into(), name: Some("Hanako".into()), email: None, phone: None },
        origin: Origin::Server,
        content: content.into(),
    }
}

#[tokio::test]
async fn registering_an_inbox_twice_keeps_its_identifier_and_secret_and_updates_the_callback() {
    let f = fixture().await;
    let inbox = InboxId::new();

    let first = f.register(inbox, None).await;
    let second = f.register(inbox, Some("https://example.jp/hooks")).await;

    assert_eq!(
        (first.identifier.as_str(), first.secret.as_str()),
        (second.identifier.as_str(), second.secret.as_str())
    );
    assert!(first.identifier.starts_with("inb_") && first.identifier.len() > 40, "{}", first.identifier);
    assert_eq!(second.callback_url.as_deref(), Some("https://example.jp/hooks"));
    assert_ne!(f.register(InboxId::new(), None).await.identifier, first.identifier);
}

#[tokio::test]
async fn a_relative_callback_url_is_refused_and_nothing_is_registered() {
    let f = fixture().await;
    let inbox = InboxId::new();
    let registration =
        ChannelRegistration { account: f.account, inbox, kind: ChannelKind::Api, callback_url: Some("/hooks".into()) };

    let answer = f.input.register_channel(registration).await.expect("port");

    assert_eq!(answer, Err(RegistrationError::InvalidCallbackUrl("/hooks".into())));
    assert_eq!(f.input.channel(f.account, inbox).await.expect("port"), None);
}

#[tokio::test]
async fn a_removed_channel_stops_accepting_and_comes_back_with_the_same_identifier() {
    let f = fixture().await;
    let inbox = InboxId::new();
    let channel = f.register(inbox, None).await;

    assert!(f.input.remove_channel(f.account, inbox).await.expect("port"));
    assert!(matches!(f.input.open_channel(&channel.identifier).await, Err(InputError::InboxNotFound)));
    assert_eq!(f.input.channel(f.account, inbox).await.expect("port"), None);
    assert!(!f.input.remove_channel(f.account, InboxId::new()).await.expect("port"));

    assert_eq!(f.register(inbox, None).await.identifier, channel.identifier);
}

#[tokio::test]
async fn another_accounts_inbox_id_gets_no_credentials() {
    let f = fixture().await;
    let inbox = InboxId::new();
    f.register(inbox, None).await;
    let stranger = ChannelRegistration { account: AccountId::new(), inbox, kind: ChannelKind::Api, callback_url: None };

    assert!(f.input.register_channel(stranger).await.is_err());
    assert_eq!(f.input.channel(AccountId::new(), inbox).await.expect("port"), None);
}

#[tokio::test]
async fn an_accepted_post_is_recorded_transcribed_and_published_in_one_go() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;

    let accepted = f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await.expect("accepted");

    assert!(matches!(accepted, Accepted::New(_)));
    assert_eq!(f.transcript(&channel, "user-1").await, [("incoming".into(), "hello".into(), None)]);
    assert_eq!(f.outbox().await, 1);
    assert_eq!(f.plan.recorded.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_retried_post_gets_the_same_id_and_changes_nothing() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let Accepted::New(first) = f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await.expect("first")
    else {
        panic!("the first post is new")
    };

    let again = f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await.expect("again");

    assert_eq!(again, Accepted::Replayed(first));
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 1);
    assert_eq!(f.outbox().await, 1);
}

#[tokio::test]
async fn a_key_reused_for_another_body_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await.expect("first");

    let reused = f.input.accept(&channel, post("user-1", Some("k1"), "something else")).await;

    assert!(matches!(reused, Err(InputError::IdempotencyKeyReused)), "{reused:?}");
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 1);
    assert_eq!(f.outbox().await, 1);
}

#[tokio::test]
async fn the_same_key_on_another_inbox_is_another_post() {
    let f = fixture().await;
    let one = f.register(InboxId::new(), None).await;
    let other = f.register(InboxId::new(), None).await;

    f.input.accept(&one, post("user-1", Some("k1"), "hello")).await.expect("one");
    let accepted = f.input.accept(&other, post("user-1", Some("k1"), "hello")).await.expect("other");

    assert!(matches!(accepted, Accepted::New(_)));
}

#[tokio::test]
async fn only_a_contacts_first_message_counts_as_a_conversation() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;

    for n in 0..3 {
        f.input.accept(&channel, post("user-1", None, &format!("message {n}"))).await.expect("accepted");
    }
    f.input.accept(&channel, post("user-2", None, "hi")).await.expect("accepted");

    assert_eq!(f.plan.recorded.load(Ordering::SeqCst), 2);
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 3);
}

#[tokio::test]
async fn a_new_conversation_over_the_plan_limit_is_refused_and_stores_nothing() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-1", None, "first")).await.expect("accepted");
    f.plan.refuse.store(true, Ordering::SeqCst);

    let refused = f.input.accept(&channel, post("user-2", Some("k2"), "hello")).await;
    let existing = f.input.accept(&channel, post("user-1", None, "still talking")).await;

    assert!(matches!(refused, Err(InputError::PlanLimit(_))), "{refused:?}");
    assert!(f.transcript(&channel, "user-2").await.is_empty());
    assert!(matches!(existing, Ok(Accepted::New(_))), "an open conversation goes on: {existing:?}");
}

#[tokio::test]
async fn a_widget_contact_is_reachable_by_its_source_id_and_a_servers_contact_is_not() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let widget = f.input.identify_contact(&channel, Default::default()).await.expect("identified");
    f.input.accept(&channel, post("user-42", None, "from the server")).await.expect("accepted");

    assert!(widget.source_id.starts_with("src_") && widget.source_id.len() > 40);
    assert!(f.input.widget_contact(&channel, &widget.source_id).await.is_ok());
    assert!(matches!(f.input.widget_contact(&channel, "user-42").await, Err(InputError::ContactNotFound)));
    assert_eq!(f.outbox().await, 2, "contact.identified and message_received");
}

fn reply(f: &Fixture, channel: &Channel, source_id: &str, kind: MessageKind) -> MessageCreated {
    MessageCreated {
        account: f.account,
        inbox: channel.inbox,
        channel: ChannelKind::Api,
        conversation: ConversationId::new(),
        message: MessageId::new(),
        kind,
        content: "Thanks, we are on it.".into(),
        sender: None,
        contact_source_id: Some(source_id.into()),
        created_at: crate::now_ms(),
    }
}

/// Applies `event` as the consumer would, in one transaction.
async fn consume(f: &Fixture, handler: &crate::events::RecordReplies, event: MessageCreated) {
    let envelope = Envelope::wrap(&event, "inbox", None).expect("envelope");
    let mut tx = f.namespace.begin().await.expect("tx");
    handler.handle(event, &envelope, &mut tx).await.expect("handled");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn replies_join_the_transcript_but_notes_never_do() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-1", None, "hello")).await.expect("accepted");
    let handler = crate::events::RecordReplies { wake: Arc::default() };

    consume(&f, &handler, reply(&f, &channel, "user-1", MessageKind::Note)).await;
    let answer = reply(&f, &channel, "user-1", MessageKind::Outgoing);
    consume(&f, &handler, answer.clone()).await;
    consume(&f, &handler, answer).await;

    assert_eq!(
        f.transcript(&channel, "user-1").await,
        [
            ("incoming".into(), "hello".into(), None),
            ("outgoing".into(), "Thanks, we are on it.".into(), Some("sent".into()))
        ]
    );
}

#[tokio::test]
async fn a_queued_reply_wakes_the_worker_only_once_committed() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), Some("https://example.jp/hooks")).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let handler = crate::events::RecordReplies { wake: wake.clone() };
    let woken = || tokio::time::timeout(Duration::from_millis(100), wake.notified());

    let event = reply(&f, &channel, "user-1", MessageKind::Outgoing);
    let envelope = Envelope::wrap(&event, "inbox", None).expect("envelope");
    let mut tx = f.namespace.begin().await.expect("tx");
    handler.handle(event, &envelope, &mut tx).await.expect("handled");
    drop(tx);
    assert!(woken().await.is_err(), "a rolled-back queueing wakes nobody");

    consume(&f, &handler, reply(&f, &channel, "user-1", MessageKind::Outgoing)).await;
    assert!(woken().await.is_ok());
}

/// What a receiver was last sent: the signature header, the delivery id header and the body.
type Received = (String, String, Vec<u8>);

/// A callback receiver on a free port that fails its first `failures` requests with 503, and keeps what
/// it was sent.
struct Receiver {
    url: String,
    hits: Arc<AtomicU32>,
    last: Arc<std::sync::Mutex<Option<Received>>>,
}

async fn receiver(failures: u32) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    let hits = Arc::new(AtomicU32::new(0));
    let last = Arc::new(std::sync::Mutex::new(None));
    let (counter, kept) = (hits.clone(), last.clone());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (counter, kept) = (counter.clone(), kept.clone());
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                *kept.lock().expect("lock") =
                    Some((header(crate::signature::HEADER), header(crate::delivery::DELIVERY_HEADER), body.to_vec()));
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, hits, last }
}

fn fast(max_attempts: u32) -> Settings {
    Settings {
        delivery_max_attempts: max_attempts,
        delivery_retry_base: Duration::from_millis(10),
        delivery_timeout: Duration::from_secs(5),
        delivery_poll: Duration::from_millis(20),
    }
}

/// Runs the worker until no delivery is pending (or two seconds pass).
async fn deliver_all(f: &Fixture, settings: &Settings) {
    let worker = Arc::new(crate::delivery::Worker::new(f.input.store.clone(), settings).expect("worker"));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(_next) = worker.clone().run_due().await.expect("runs") {
        assert!(std::time::Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_reply_is_delivered_signed_after_two_failures_and_ends_sent() {
    let f = fixture().await;
    let target = receiver(2).await;
    let channel = f.register(InboxId::new(), Some(&target.url)).await;
    let handler = crate::events::RecordReplies { wake: Arc::default() };
    let event = reply(&f, &channel, "user-1", MessageKind::Outgoing);
    let message = event.message;
    consume(&f, &handler, event).await;
    assert_eq!(f.transcript(&channel, "user-1").await[0].2.as_deref(), Some("pending"));
    let outbox_before = f.outbox().await;

    deliver_all(&f, &fast(8)).await;

    assert_eq!(target.hits.load(Ordering::SeqCst), 3);
    assert_eq!(f.transcript(&channel, "user-1").await[0].2.as_deref(), Some("sent"));
    assert_eq!(f.outbox().await - outbox_before, 3, "two pending updates and one sent");
    let (signature, delivery, body) = target.last.lock().expect("lock").clone().expect("received");
    let now = crate::now_ms() / 1000;
    assert_eq!(crate::signature::verify(Some(&signature), &body, &channel.secret, now, 300), Ok(()));
    assert!(!delivery.is_empty());
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["event"], "message.created");
    assert_eq!(body["inbox"], channel.identifier.as_str());
    assert_eq!(body["message"]["id"], message.to_string());
    assert_eq!(body["contact"]["source_id"], "user-1");
}

#[tokio::test]
async fn a_reply_that_never_gets_through_ends_failed_with_the_reason() {
    let f = fixture().await;
    let target = receiver(u32::MAX).await;
    let channel = f.register(InboxId::new(), Some(&target.url)).await;
    let handler = crate::events::RecordReplies { wake: Arc::default() };
    consume(&f, &handler, reply(&f, &channel, "user-1", MessageKind::Outgoing)).await;

    deliver_all(&f, &fast(3)).await;

    assert_eq!(target.hits.load(Ordering::SeqCst), 3);
    let rows = f.input.store.transcript(channel.inbox, "user-1", 10).await.expect("transcript");
    assert_eq!(rows[0].delivery_status.as_deref(), Some("failed"));
    assert_eq!(rows[0].delivery_reason.as_deref(), Some("HTTP 503"));
}

#[tokio::test]
async fn an_unreachable_receiver_is_reported_as_a_connection_failure() {
    let f = fixture().await;
    // A port that was free a moment ago: nothing listens there.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let channel = f.register(InboxId::new(), Some(&format!("http://127.0.0.1:{port}/hooks"))).await;
    let handler = crate::events::RecordReplies { wake: Arc::default() };
    consume(&f, &handler, reply(&f, &channel, "user-1", MessageKind::Outgoing)).await;

    deliver_all(&f, &fast(1)).await;

    let rows = f.input.store.transcript(channel.inbox, "user-1", 10).await.expect("transcript");
    assert_eq!(rows[0].delivery_status.as_deref(), Some("failed"));
    let reason = rows[0].delivery_reason.clone().unwrap_or_default();
    assert!(reason.contains("connect") || reason.contains("refused"), "{reason}");
}

#[test]
fn settings_default_and_refuse_what_is_not_a_positive_number() {
    assert_eq!(Settings::from(&Default::default()).expect("defaults"), Settings::default());
    let set = |key: &str, value: &str| Settings::from(&[(key.to_owned(), value.to_owned())].into());
    assert_eq!(set("delivery_retry_base_ms", "50").expect("valid").delivery_retry_base, Duration::from_millis(50));
    assert_eq!(set("delivery_max_attempts", "3").expect("valid").delivery_max_attempts, 3);
    assert!(set("delivery_max_attempts", "0").is_err());
    assert!(set("delivery_retry_base_ms", "fast").is_err());
}
