//! The service against a real namespace in a temporary directory: registration, accepting posts, replays,
//! the plan limit, and reply delivery to a local receiver. The plan service is replaced by a stand-in
//! port, since what is tested here is what input does with its answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use contracts::AccountId;
use contracts::channel::{
    ChannelContact, ChannelKind, ChannelRegistration, DeliveryStatus, InputPort, MessageReceived, RegistrationError,
};
use contracts::inbox::{ConversationId, InboxId, MessageCreated, MessageId, MessageKind};
use contracts::plan::{Allowance, Feature, FeatureAccess, Limited, PlanLimits, PlanPort, PlanSummary};
use kernel::events::{Delivery, Envelope, Handler};
use kernel::ports::PortError;
use kernel::testing::{Scratch, published};

use crate::channels::Channel;
use crate::domain::Origin;
use crate::post::{Accepted, Post, sha256_hex};
use crate::recorder::{Answer, Recorder, Submission};
use crate::store::{Store, TranscriptRow};
use crate::{Input, InputError, MIGRATIONS, Settings};
use kernel::clock::now_ms;

/// The plan service as input sees it: each account's monthly limit of conversations (none unless set) and
/// what is recorded against it, answered at once, and how often it was asked. The equivalence properties
/// use it too.
#[derive(Default)]
pub(super) struct StandInPlan {
    accounts: Mutex<HashMap<AccountId, (Option<u64>, u64)>>,
    asked: AtomicU64,
}

impl StandInPlan {
    pub(super) fn limit_to(&self, account: AccountId, conversations: Option<u64>) {
        self.accounts.lock().expect("lock").entry(account).or_insert((None, 0)).0 = conversations;
    }

    /// The conversations recorded against `account`.
    pub(super) fn usage(&self, account: AccountId) -> u64 {
        self.accounts.lock().expect("lock").get(&account).map_or(0, |(_, used)| *used)
    }
}

#[async_trait]
impl PlanPort for StandInPlan {
    async fn plan_of(&self, _: AccountId) -> Result<PlanSummary, PortError> {
        Ok(PlanSummary { code: "free".into(), name: "Free".into() })
    }
    async fn limits_of(&self, _: AccountId) -> Result<PlanLimits, PortError> {
        Err(PortError::Unavailable { callee: "plan".into(), reason: "not used by input".into() })
    }
    async fn allowance(&self, account: AccountId, limited: Limited, _: u64) -> Result<Allowance, PortError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let (limit, used) = self.accounts.lock().expect("lock").get(&account).copied().unwrap_or((None, 0));
        Ok(Allowance { allowed: limit.is_none_or(|l| used < l), limited, used, limit, plan: "free".into() })
    }
    async fn feature(&self, _: AccountId, _: Feature) -> Result<FeatureAccess, PortError> {
        Err(PortError::Unavailable { callee: "plan".into(), reason: "not used by input".into() })
    }
    async fn record_usage(&self, account: AccountId, _: Limited, amount: u64) -> Result<u64, PortError> {
        let mut accounts = self.accounts.lock().expect("lock");
        let (_, used) = accounts.entry(account).or_insert((None, 0));
        *used += amount;
        Ok(*used)
    }
}

struct Fixture {
    input: Arc<Input>,
    plan: Arc<StandInPlan>,
    scratch: Scratch,
    account: AccountId,
}

async fn fixture() -> Fixture {
    let scratch = Scratch::open("input", MIGRATIONS).await;
    let plan = Arc::new(StandInPlan::default());
    // The tests' callback receivers listen on loopback.
    let input = Arc::new(Input::new(Store::new(scratch.namespace.clone()), plan.clone(), &fast(8)));
    Fixture { input, plan, scratch, account: AccountId::new() }
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
        kernel::events::outbox_backlog(&self.scratch.namespace).await.expect("outbox")
    }

    /// The events published so far, in the outbox's order (which is the order the relay publishes them in).
    async fn published(&self) -> Vec<MessageReceived> {
        let envelopes = published(&self.scratch.namespace).await;
        envelopes.iter().map(|e| serde_json::from_str(e.payload.get()).expect("message_received")).collect()
    }

    /// Records `posts` on `channel` as one batch, the way the recorder task does, and returns each answer.
    async fn record_batch(&self, channel: &Channel, posts: Vec<Post>) -> Vec<Answer> {
        let recorder = Recorder::new(self.input.store.clone(), self.plan.clone());
        let (batch, answers): (Vec<_>, Vec<_>) = posts
            .into_iter()
            .map(|post| {
                let (answer, answered) = tokio::sync::oneshot::channel();
                (Submission { inbox: channel.inbox, account: channel.account, post, trace: None, answer }, answered)
            })
            .unzip();
        assert!(recorder.record(batch).await, "the namespace is open");
        answers.into_iter().map(|mut answered| answered.try_recv().expect("answered")).collect()
    }

    /// The transcript as its stored text: (direction, content, delivery status).
    async fn transcript(&self, channel: &Channel, source_id: &str) -> Vec<(String, String, Option<String>)> {
        let rows = self.input.store.transcript(channel.inbox, source_id, 100).await.expect("transcript");
        let text = |row: TranscriptRow| {
            (row.direction.as_str().to_owned(), row.content, row.delivery_status.map(|s| s.as_str().to_owned()))
        };
        rows.into_iter().map(text).collect()
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
        signed_at: None,
    }
}

/// Runs `futures` concurrently, first polled in their order (so their posts queue in that order), and
/// returns their outputs in that order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none()
                && let std::task::Poll::Ready(done) = future.as_mut().poll(cx)
            {
                *output = Some(done);
            }
        }
        if outputs.iter().all(Option::is_some) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    outputs.into_iter().map(|output| output.expect("polled to completion")).collect()
}

/// A post from `source_id` saying what it says about them (name, e-mail).
fn post_from(source_id: &str, name: Option<&str>, email: Option<&str>, content: &str) -> Post {
    let mut post = post(source_id, None, content);
    post.contact.name = name.map(str::to_owned);
    post.contact.email = email.map(str::to_owned);
    post
}

/// What a batch answered a post, as `accept` would return it.
fn outcome(answer: Answer) -> Result<Accepted, InputError> {
    match answer {
        Answer::Recorded(result) => result,
        Answer::Alone(post) => panic!("the batch was not recorded: {post:?}"),
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
async fn a_channel_whose_stored_kind_is_not_a_kind_is_an_error_not_an_api_channel() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.scratch.namespace.execute("update channels set kind = 'fax'", vec![]).await.expect("update");

    let read = f.input.store.channel_by_identifier(&channel.identifier).await;

    let error = read.expect_err("a kind that is not one is not read as a default").to_string();
    assert!(error.contains("`fax` is not a stored ChannelKind"), "{error}");
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
    assert_eq!(f.plan.usage(f.account), 1);
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

    assert_eq!(f.plan.usage(f.account), 2);
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 3);
}

#[tokio::test]
async fn a_new_conversation_over_the_plan_limit_is_refused_and_stores_nothing() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-1", None, "first")).await.expect("accepted");
    f.plan.limit_to(f.account, Some(1));

    let refused = f.input.accept(&channel, post("user-2", Some("k2"), "hello")).await;
    let existing = f.input.accept(&channel, post("user-1", None, "still talking")).await;

    assert!(matches!(refused, Err(InputError::PlanLimit(_))), "{refused:?}");
    assert!(f.transcript(&channel, "user-2").await.is_empty());
    assert!(matches!(existing, Ok(Accepted::New(_))), "an open conversation goes on: {existing:?}");
}

#[tokio::test]
async fn a_batch_records_each_post_with_one_transcript_line_and_one_event_in_the_posts_order() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let posts = (0..9).map(|n| post(&format!("user-{}", n % 3), Some(&format!("k{n}")), &format!("message {n}")));

    let answers = f.record_batch(&channel, posts.collect()).await;

    let ids: Vec<MessageId> = answers
        .into_iter()
        .map(|answer| match outcome(answer) {
            Ok(Accepted::New(message)) => message,
            other => panic!("not recorded: {other:?}"),
        })
        .collect();
    let events = f.published().await;
    assert_eq!(events.iter().map(|e| e.message).collect::<Vec<_>>(), ids);
    assert_eq!(
        events.iter().map(|e| e.content.as_str()).collect::<Vec<_>>(),
        (0..9).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    let lines = f.transcript(&channel, "user-1").await;
    assert_eq!(
        lines.iter().map(|(_, content, _)| content.as_str()).collect::<Vec<_>>(),
        ["message 1", "message 4", "message 7"]
    );
    assert_eq!(f.plan.usage(f.account), 3, "three contacts started conversations");
    assert_eq!(f.plan.asked.load(Ordering::SeqCst), 1, "the plan is asked once for the batch's account");
}

#[tokio::test]
async fn concurrent_posts_from_several_contacts_are_each_recorded_once_in_order() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let contents = |contact: usize| (0..6).map(move |n| format!("{contact}: message {n}"));
    let posts = (0..6).flat_map(|n| (0..5).map(move |contact| (contact, format!("{contact}: message {n}"))));

    let accepted = join_all(
        posts.map(|(contact, content)| f.input.accept(&channel, post(&format!("user-{contact}"), None, &content))),
    )
    .await;

    assert!(accepted.iter().all(|a| matches!(a, Ok(Accepted::New(_)))), "{accepted:?}");
    let events = f.published().await;
    assert_eq!(events.len(), 30);
    for contact in 0..5 {
        let source_id = format!("user-{contact}");
        let lines = f.transcript(&channel, &source_id).await;
        assert_eq!(lines.iter().map(|(_, c, _)| c.clone()).collect::<Vec<_>>(), contents(contact).collect::<Vec<_>>());
        let theirs: Vec<String> =
            events.iter().filter(|e| e.contact.source_id == source_id).map(|e| e.content.clone()).collect();
        assert_eq!(theirs, contents(contact).collect::<Vec<_>>(), "events in the order of the posts");
    }
    assert_eq!(f.plan.usage(f.account), 5);
}

#[tokio::test]
async fn the_same_key_twice_in_one_batch_is_recorded_once_and_replayed_or_refused_after() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;

    let answers = f
        .record_batch(
            &channel,
            vec![
                post("user-1", Some("k1"), "hello"),
                post("user-1", Some("k1"), "hello"),
                post("user-1", Some("k1"), "something else"),
            ],
        )
        .await;

    let answers: Vec<_> = answers.into_iter().map(outcome).collect();
    let Ok(Accepted::New(first)) = answers[0] else { panic!("the first is recorded: {answers:?}") };
    assert_eq!(answers[1].as_ref().ok(), Some(&Accepted::Replayed(first)));
    assert!(matches!(answers[2], Err(InputError::IdempotencyKeyReused)), "{answers:?}");
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 1);
    assert_eq!(f.outbox().await, 1);
}

/// `post` as the signed route makes it: signed at `signed_at`.
fn signed(source_id: &str, key: &str, content: &str, signed_at: i64) -> Post {
    Post { signed_at: Some(signed_at), ..post(source_id, Some(key), content) }
}

#[tokio::test]
async fn a_signature_is_accepted_once_whatever_the_key_alone_in_a_batch_and_within_one() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let first = f.input.accept(&channel, signed("user-1", "k1", "hello", 1_800_000_000)).await;
    assert!(matches!(first, Ok(Accepted::New(_))), "{first:?}");

    let alone = f.input.accept_alone(&channel, signed("user-1", "k2", "hello", 1_800_000_000)).await;
    let batch = f
        .record_batch(
            &channel,
            vec![
                signed("user-1", "k3", "hello", 1_800_000_000),
                signed("user-1", "k4", "hello again", 1_800_000_001),
                signed("user-1", "k5", "hello again", 1_800_000_001),
                signed("user-1", "k1", "hello", 1_800_000_000),
                signed("user-1", "k6", "hello", 1_800_000_002),
            ],
        )
        .await;

    assert!(matches!(alone, Err(InputError::SignatureReplayed)), "{alone:?}");
    let batch: Vec<_> = batch.into_iter().map(outcome).collect();
    assert!(matches!(batch[0], Err(InputError::SignatureReplayed)), "accepted before: {batch:?}");
    assert!(matches!(batch[1], Ok(Accepted::New(_))), "{batch:?}");
    assert!(matches!(batch[2], Err(InputError::SignatureReplayed)), "accepted earlier in the batch: {batch:?}");
    assert!(matches!(batch[3], Ok(Accepted::Replayed(_))), "a retry keeps its key and is a replay: {batch:?}");
    assert!(matches!(batch[4], Ok(Accepted::New(_))), "the same body signed anew is another post: {batch:?}");
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 3);
    assert_eq!(f.outbox().await, 3);
}

#[tokio::test]
async fn concurrent_retries_of_one_post_get_one_id() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;

    let accepted = join_all((0..10).map(|_| f.input.accept(&channel, post("user-1", Some("k1"), "hello")))).await;

    let ids: std::collections::HashSet<MessageId> = accepted
        .iter()
        .map(|a| match a {
            Ok(Accepted::New(id) | Accepted::Replayed(id)) => *id,
            Err(error) => panic!("{error}"),
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(accepted.iter().filter(|a| matches!(a, Ok(Accepted::New(_)))).count(), 1);
    assert_eq!(f.outbox().await, 1);
}

#[tokio::test]
async fn a_batch_replays_a_key_recorded_before_and_records_the_rest() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    let Ok(Accepted::New(earlier)) = f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await else {
        panic!("the first post is new")
    };

    let answers =
        f.record_batch(&channel, vec![post("user-1", Some("k1"), "hello"), post("user-1", Some("k2"), "more")]).await;

    let answers: Vec<_> = answers.into_iter().map(outcome).collect();
    assert_eq!(answers[0].as_ref().ok(), Some(&Accepted::Replayed(earlier)));
    assert!(matches!(answers[1], Ok(Accepted::New(_))), "{answers:?}");
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 2);
    assert_eq!(f.outbox().await, 2);
    assert_eq!(f.plan.usage(f.account), 1, "the contact's conversation started with the first");
}

#[tokio::test]
async fn a_batch_refuses_a_key_recorded_before_with_another_body_and_stores_nothing_for_it() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-1", Some("k1"), "hello")).await.expect("first");

    let answers =
        f.record_batch(&channel, vec![post("user-1", Some("k1"), "something else"), post("user-2", None, "hi")]).await;

    let answers: Vec<_> = answers.into_iter().map(outcome).collect();
    assert!(matches!(answers[0], Err(InputError::IdempotencyKeyReused)), "{answers:?}");
    assert!(matches!(answers[1], Ok(Accepted::New(_))), "{answers:?}");
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 1);
    assert_eq!(f.outbox().await, 2);
}

#[tokio::test]
async fn a_batch_refuses_only_the_new_conversations_over_the_plan_limit() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post("user-0", None, "earlier")).await.expect("accepted");
    f.plan.limit_to(f.account, Some(3));

    let answers = f
        .record_batch(
            &channel,
            vec![
                post("user-1", None, "one"),
                post("user-2", None, "two"),
                post("user-3", Some("k3"), "three"),
                post("user-1", None, "one again"),
                post("user-0", None, "an open conversation goes on"),
                post("user-4", None, "four"),
            ],
        )
        .await;

    let answers: Vec<_> = answers.into_iter().map(outcome).collect();
    for recorded in [0, 1, 3, 4] {
        assert!(matches!(answers[recorded], Ok(Accepted::New(_))), "{recorded}: {answers:?}");
    }
    for refused in [2, 5] {
        let Err(InputError::PlanLimit(allowance)) = &answers[refused] else { panic!("{refused}: {answers:?}") };
        assert_eq!((allowance.allowed, allowance.used, allowance.limit), (false, 3, Some(3)));
    }
    assert!(f.transcript(&channel, "user-3").await.is_empty());
    assert!(f.transcript(&channel, "user-4").await.is_empty());
    assert_eq!(f.transcript(&channel, "user-1").await.len(), 2);
    assert_eq!(f.plan.usage(f.account), 3);
    // The refused post's key is free: once the plan allows, the same post is new.
    f.plan.limit_to(f.account, Some(4));
    let retried = f.input.accept(&channel, post("user-3", Some("k3"), "three")).await;
    assert!(matches!(retried, Ok(Accepted::New(_))), "{retried:?}");
}

#[tokio::test]
async fn each_event_of_a_batch_names_the_contact_as_stored_after_its_own_post() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post_from("user-1", Some("Hanako"), None, "hello")).await.expect("accepted");
    f.published().await;

    f.record_batch(
        &channel,
        vec![
            post_from("user-1", None, Some("hanako@example.jp"), "my address"),
            post_from("user-1", Some("Hanako Yamada"), None, "my full name"),
            post_from("user-2", None, None, "hi"),
        ],
    )
    .await;

    let contacts: Vec<ChannelContact> = f.published().await.into_iter().map(|e| e.contact).collect();
    let details = |c: &ChannelContact| (c.source_id.clone(), c.name.clone(), c.email.clone());
    assert_eq!(
        contacts.iter().map(details).collect::<Vec<_>>(),
        [
            ("user-1".into(), Some("Hanako".into()), Some("hanako@example.jp".into())),
            ("user-1".into(), Some("Hanako Yamada".into()), Some("hanako@example.jp".into())),
            ("user-2".into(), None, None),
        ]
    );
    let stored = f.input.store.contact(channel.inbox, "user-1").await.expect("read").expect("stored");
    assert_eq!((stored.name.as_deref(), stored.email.as_deref()), (Some("Hanako Yamada"), Some("hanako@example.jp")));
    assert_eq!(f.plan.usage(f.account), 2, "user-1 started once, before the batch");
}

#[tokio::test]
async fn a_contacts_name_changed_and_changed_back_in_one_batch_is_stored_as_last_sent() {
    let f = fixture().await;
    let channel = f.register(InboxId::new(), None).await;
    f.input.accept(&channel, post_from("user-1", Some("Hanako"), None, "hello")).await.expect("accepted");

    f.record_batch(
        &channel,
        vec![
            post_from("user-1", Some("Hanako"), None, "same name"),
            post_from("user-1", Some("Hanako Yamada"), None, "full name"),
            post_from("user-1", Some("Hanako"), None, "short name again"),
        ],
    )
    .await;

    let stored = f.input.store.contact(channel.inbox, "user-1").await.expect("read").expect("stored");
    assert_eq!(stored.name.as_deref(), Some("Hanako"));
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
        created_at: now_ms(),
    }
}

/// Delivers `event` (in an envelope of its own) to `handler` as the service's consumer does: decoded, left
/// alone if the handler does not want it, applied in one transaction otherwise.
async fn consume(f: &Fixture, handler: &crate::events::RecordReplies, event: MessageCreated) {
    let envelope = Envelope::wrap(&event, "inbox", None).expect("envelope");
    let mut delivery = Delivery::new("input", f.scratch.namespace.clone());
    delivery.add::<MessageCreated, _>(Arc::new(crate::events::RecordReplies { wake: handler.wake.clone() }));
    let outcome = delivery.deliver(&envelope).await.expect("delivered");
    assert_ne!(outcome, kernel::events::Outcome::DeadLettered, "{event:?}");
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
    let mut tx = f.scratch.namespace.begin().await.expect("tx");
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
    last: Arc<Mutex<Option<Received>>>,
}

async fn receiver(failures: u32) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    let hits = Arc::new(AtomicU32::new(0));
    let last = Arc::new(Mutex::new(None));
    let (counter, kept) = (hits.clone(), last.clone());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (counter, kept) = (counter.clone(), kept.clone());
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                *kept.lock().expect("lock") = Some((
                    header(crate::channel_signature::HEADER),
                    header(crate::replies::DELIVERY_HEADER),
                    body.to_vec(),
                ));
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
        callback_allow_private: true,
        ..Settings::default()
    }
}

/// Runs the worker until no delivery is pending (or two seconds pass).
async fn deliver_all(f: &Fixture, settings: &Settings) {
    let worker = Arc::new(crate::replies::Worker::new(f.input.store.clone(), settings).expect("worker"));
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
    let now = now_ms() / 1000;
    assert!(crate::channel_signature::verify(Some(&signature), &body, &channel.secret, now, 300).is_ok());
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
    assert_eq!(rows[0].delivery_status, Some(DeliveryStatus::Failed));
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
    assert_eq!(rows[0].delivery_status, Some(DeliveryStatus::Failed));
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
    assert!(!Settings::default().callback_allow_private, "callbacks stay off private networks unless allowed");
    assert!(set("callback_allow_private", "true").expect("valid").callback_allow_private);
    assert!(set("callback_allow_private", "yes").is_err());
    assert_eq!(set("widget_contacts_per_ip_per_minute", "5").expect("valid").widget_contacts_per_ip_per_minute, 5);
    assert!(set("widget_requests_per_ip_per_minute", "0").is_err(), "a limit of nothing is a typo");
}

/// A deployment that does not allow private callbacks refuses a receiver on loopback, however it is named.
#[tokio::test]
async fn a_reply_is_not_posted_to_a_private_address_unless_the_deployment_allows_it() {
    let f = fixture().await;
    let guarded =
        Input::new(f.input.store.clone(), f.plan.clone(), &Settings { callback_allow_private: false, ..fast(1) });
    let loopback = "http://127.0.0.1:9/hooks";
    let registration =
        ChannelRegistration { account: f.account, inbox: InboxId::new(), kind: ChannelKind::Api, callback_url: None };
    let refused = guarded
        .register_channel(ChannelRegistration { callback_url: Some(loopback.to_owned()), ..registration.clone() })
        .await
        .expect("port");
    assert_eq!(refused, Err(RegistrationError::PrivateCallbackUrl(loopback.to_owned())));
    assert_eq!(f.input.channel(f.account, registration.inbox).await.expect("port"), None, "nothing registered");

    // Set while private callbacks were allowed, or a name that now resolves to loopback: the worker refuses
    // to post, whichever it is.
    let target = receiver(0).await;
    let handler = crate::events::RecordReplies { wake: Arc::default() };
    let mut channels = Vec::new();
    for url in [target.url.clone(), target.url.replace("127.0.0.1", "localhost")] {
        let channel = f.register(InboxId::new(), Some(&url)).await;
        consume(&f, &handler, reply(&f, &channel, "user-1", MessageKind::Outgoing)).await;
        channels.push(channel);
    }
    deliver_all(&f, &Settings { callback_allow_private: false, ..fast(1) }).await;

    assert_eq!(target.hits.load(Ordering::SeqCst), 0, "nothing reached the receiver");
    for channel in channels {
        let rows = f.input.store.transcript(channel.inbox, "user-1", 10).await.expect("transcript");
        assert_eq!(rows[0].delivery_status, Some(DeliveryStatus::Failed));
        let reason = rows[0].delivery_reason.clone().unwrap_or_default();
        assert!(reason.contains("private address"), "{reason}");
    }
}
