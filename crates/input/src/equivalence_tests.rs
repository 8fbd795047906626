//! The two ways of recording customers' posts, held to each other (issue 13, finding 5).
//!
//! `Input::accept_alone` records one post with statements and a transaction of its own; the recorder
//! (`Recorder::record`, through `record_posts`) records a batch with set-based statements, and must give
//! every post the answer, and leave the rows and events, that recording the posts one by one would. The two
//! are kept in step by hand, so the property below generates sequences of posts — new and known contacts on
//! three channels of two accounts, retries, keys reused for another body, captured signatures sent again
//! under another key, monthly conversation limits reached midway, Japanese contents and names — records
//! each sequence one post at a time in one fresh namespace and in generated batches in another,
//! and compares the answers, the rows of every table the paths write and the events they publish.
//!
//! Message ids are chosen anew by each path, so they are compared as the post that was answered with them
//! (`post#3`); the times the paths stamp (`now_ms`) are compared as `"now"`; inbox and account ids are the
//! same in both namespaces and shown as `inbox#1`, `account#0`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use contracts::AccountId;
use contracts::channel::{ChannelContact, ChannelKind, ChannelRegistration, InputPort};
use contracts::inbox::InboxId;
use kernel::args;
use kernel::clock::now_ms;
use kernel::store::Engine;
use kernel::testing::{Scratch, differing_rows, envelope_json, normalise, published};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::domain::Origin;
use crate::post::{Accepted, Post, sha256_hex};
use crate::recorder::{Answer, Recorder, Submission};
use crate::store::{ContactDetails, Store};
use crate::tests::StandInPlan;
use crate::{Input, InputError, MIGRATIONS, Settings};

/// The account of each channel: channels 0 and 1 belong to one account, channel 2 to another.
const ACCOUNT_OF_CHANNEL: [usize; 3] = [0, 0, 1];
/// Contacts of the signed route, whose ids the caller chooses.
const SERVER_CONTACTS: [&str; 3] = ["user-1", "山田-2", "user-3"];
/// Widget contacts: identified on every channel before the sequence (with this name), none has written yet.
const WIDGET_CONTACTS: [(&str, Option<&str>); 2] = [("src_w0", Some("佐藤 美咲")), ("src_w1", None)];
const NAMES: [Option<&str>; 4] = [None, Some("山田 花子"), Some("Hanako Yamada"), Some("田中")];
const EMAILS: [Option<&str>; 3] = [None, Some("hanako@example.jp"), Some("taro@example.jp")];
const PHONES: [Option<&str>; 2] = [None, Some("+81 90-1234-5678")];
const CONTENTS: [&str; 5] = [
    "こんにちは",
    "注文した商品がまだ届きません。",
    "返品をお願いします🙏",
    "ありがとうございました！",
    "Order #42 の件です",
];
/// Few keys, so that they repeat: with the same body (a retry) and with another (a reused key).
const KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];
/// Signature timestamps (Unix seconds): few, so that a body is signed at the same second again.
const SIGNED_AT: [i64; 2] = [1_800_000_000, 1_800_000_001];

/// One thing a client does.
#[derive(Debug, Clone)]
enum Step {
    /// A post on the signed route: the caller's contact id and details, content, key and signature time.
    Signed {
        channel: usize,
        contact: usize,
        name: usize,
        email: usize,
        phone: usize,
        content: usize,
        key: usize,
        at: usize,
    },
    /// A widget contact writes, with the details stored for them; the key is optional on that route.
    Widget { channel: usize, contact: usize, content: usize, key: Option<usize> },
    /// An earlier post (the latest but this many, modulo their number) sent again as it was.
    Retry(usize),
    /// An earlier post's body and signature (the latest but `back`) sent again under another key: a
    /// captured request replayed.
    Captured { back: usize, key: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..3usize, 0..4usize, 0..3usize, 0..2usize, 0..5usize, 0..4usize, 0..2usize).prop_map(
            |(channel, contact, name, email, phone, content, key, at)| Step::Signed {
                channel, contact, name, email, phone, content, key, at
            }
        ),
        2 => (0..3usize, 0..2usize, 0..5usize, proptest::option::of(0..4usize))
            .prop_map(|(channel, contact, content, key)| Step::Widget { channel, contact, content, key }),
        2 => (0..16usize).prop_map(Step::Retry),
        1 => (0..16usize, 0..4usize).prop_map(|(back, key)| Step::Captured { back, key }),
    ]
}

/// A generated case: what clients do, each post with whether the batch path starts a new batch at it, and
/// the plans' limits. Cuts travel with their posts, and references to earlier posts count back from the
/// latest, so that a failing case shrinks to the few posts it needs.
#[derive(Debug, Clone)]
struct Case {
    steps: Vec<(bool, Step)>,
    /// Each account's monthly conversation limit (`None`: unlimited).
    limits: (Option<u64>, Option<u64>),
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec((proptest::bool::weighted(0.25), step()), 1..24),
        (proptest::option::of(0..4u64), proptest::option::of(0..4u64)),
    )
        .prop_map(|(steps, limits)| Case { steps, limits })
}

/// A post as sent: what [`Post`] is made of, and the channel it is sent to.
#[derive(Debug, Clone)]
struct Sent {
    /// Whether the batch path starts a new batch with it.
    cut: bool,
    channel: usize,
    key: Option<String>,
    payload: String,
    contact: ChannelContact,
    origin: Origin,
    content: String,
    signed_at: Option<i64>,
}

impl Sent {
    fn post(&self) -> Post {
        Post {
            idempotency_key: self.key.clone(),
            body_sha256: sha256_hex(self.payload.as_bytes()),
            payload: self.payload.clone(),
            contact: self.contact.clone(),
            origin: self.origin,
            content: self.content.clone(),
            signed_at: self.signed_at,
        }
    }
}

/// The posts `steps` send, in order.
fn posts(steps: &[(bool, Step)]) -> Vec<Sent> {
    let mut sent: Vec<Sent> = Vec::new();
    for (cut, step) in steps {
        let cut = *cut;
        let next = match *step {
            Step::Signed { channel, contact, name, email, phone, content, key, at } => {
                let contact = ChannelContact {
                    source_id: SERVER_CONTACTS[contact].to_owned(),
                    name: NAMES[name].map(str::to_owned),
                    email: EMAILS[email].map(str::to_owned),
                    phone: PHONES[phone].map(str::to_owned),
                };
                let mut body = json!({ "contact": { "source_id": contact.source_id }, "content": CONTENTS[content] });
                for (field, value) in [("name", &contact.name), ("email", &contact.email), ("phone", &contact.phone)] {
                    if let Some(value) = value {
                        body["contact"][field] = json!(value);
                    }
                }
                Sent {
                    cut,
                    channel,
                    key: Some(KEYS[key].to_owned()),
                    payload: body.to_string(),
                    contact,
                    origin: Origin::Server,
                    content: CONTENTS[content].to_owned(),
                    signed_at: Some(SIGNED_AT[at]),
                }
            }
            Step::Widget { channel, contact, content, key } => {
                let (source_id, name) = WIDGET_CONTACTS[contact];
                Sent {
                    cut,
                    channel,
                    key: key.map(|key| KEYS[key].to_owned()),
                    payload: json!({ "source_id": source_id, "content": CONTENTS[content] }).to_string(),
                    contact: ChannelContact {
                        source_id: source_id.to_owned(),
                        name: name.map(str::to_owned),
                        email: None,
                        phone: None,
                    },
                    origin: Origin::Widget,
                    content: CONTENTS[content].to_owned(),
                    signed_at: None,
                }
            }
            Step::Retry(back) if !sent.is_empty() => Sent { cut, ..sent[sent.len() - 1 - back % sent.len()].clone() },
            Step::Captured { back, key } if !sent.is_empty() => {
                Sent { cut, key: Some(KEYS[key].to_owned()), ..sent[sent.len() - 1 - back % sent.len()].clone() }
            }
            Step::Retry(_) | Step::Captured { .. } => continue,
        };
        sent.push(next);
    }
    sent
}

/// What both namespaces share: the accounts, the inboxes, and when the case started (any time from then on
/// is one a path stamped).
struct World {
    accounts: [AccountId; 2],
    inboxes: [InboxId; 3],
    started_at: i64,
}

/// What a post was answered, comparable across namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answered {
    New,
    /// A replay of the post (`post#i`) that was recorded under the message id it answered with.
    Replayed(String),
    KeyReused,
    SignatureReplayed,
    PlanLimit {
        used: u64,
        limit: Option<u64>,
    },
    Failed(String),
    /// The batch could not decide: its caller would have recorded the post on its own.
    LeftAlone,
}

/// What a path did with a sequence: each post's answer, the rows of each table, the events published in
/// order, and each account's conversations counted by the plan.
#[derive(Debug, PartialEq)]
struct Outcome {
    answers: Vec<Answered>,
    tables: Vec<(&'static str, Vec<Value>)>,
    events: Vec<Value>,
    usage: Vec<u64>,
}

/// The rows of each table the paths write, as JSON objects, in an order both paths must agree on (for the
/// journal and the transcript, the order the rows were written in).
const TABLES: [(&str, &str); 5] = [
    (
        "channels",
        "select json_object('inbox', inbox_id, 'account', account_id, 'kind', kind, 'callback_url', callback_url, \
         'removed_at', removed_at) from channels order by inbox_id",
    ),
    (
        "channel_contacts",
        "select json_object('inbox', inbox_id, 'source_id', source_id, 'origin', origin, 'name', name, 'email', \
         email, 'phone', phone, 'created_at', created_at, 'first_message_at', first_message_at) \
         from channel_contacts order by inbox_id, source_id",
    ),
    (
        "inbound_events",
        "select json_object('inbox', inbox_id, 'key', idempotency_key, 'body_sha256', body_sha256, 'payload', \
         payload, 'source_id', source_id, 'message', message_id, 'received_at', received_at, 'signed_at', \
         signed_at) from inbound_events order by rowid",
    ),
    (
        "transcript_entries",
        "select json_object('message', message_id, 'inbox', inbox_id, 'source_id', source_id, 'direction', \
         direction, 'content', content, 'conversation', conversation_id, 'created_at', created_at, \
         'delivery_status', delivery_status, 'delivery_reason', delivery_reason) from transcript_entries \
         order by rowid",
    ),
    (
        "reply_deliveries",
        "select json_object('message', message_id, 'inbox', inbox_id, 'status', status) from reply_deliveries \
         order by rowid",
    ),
];

/// A table, the statement that reads its rows as JSON objects, and whether their order is compared.
type TableRead = (&'static str, &'static str, bool);

/// [`TABLES`] as `engine` reads them, and whether the rows' order is compared: written for SQLite, whose
/// rows come in the order they were written; a server has no rowid (its rows are compared as sets) and
/// PostgreSQL builds an object with another function.
fn tables_on(engine: Engine) -> &'static [TableRead] {
    static ON: LazyLock<HashMap<Engine, Vec<TableRead>>> = LazyLock::new(|| {
        let rewritten = |rewrite: fn(&str) -> String| -> Vec<TableRead> {
            TABLES.iter().map(|&(table, sql)| (table, &*Box::leak(rewrite(sql).into_boxed_str()), false)).collect()
        };
        HashMap::from([
            (Engine::Sqlite, TABLES.iter().map(|&(table, sql)| (table, sql, true)).collect()),
            (
                Engine::Postgres,
                rewritten(|sql| {
                    let built = sql.replacen("json_object(", "cast(json_build_object(", 1);
                    built.replace(" from ", " as text) from ").replace(" order by rowid", "")
                }),
            ),
            (Engine::MySql, rewritten(|sql| sql.replace(" order by rowid", ""))),
        ])
    });
    &ON[&engine]
}

/// Records `sent` in a fresh namespace, one post at a time or (`batched`) in batches, as the posts say.
async fn record(engine: Engine, world: &World, case: &Case, sent: &[Sent], batched: bool) -> Outcome {
    let scratch = Scratch::open_on(engine, "input", MIGRATIONS).await;
    let namespace = &scratch.namespace;
    let limits = [case.limits.0, case.limits.1];
    let plan = Arc::new(StandInPlan::default());
    for (account, limit) in world.accounts.iter().zip(limits) {
        plan.limit_to(*account, limit);
    }
    let input = Input::new(Store::new(namespace.clone()), plan.clone(), &Settings::default());
    let mut channels = Vec::new();
    for (index, inbox) in world.inboxes.iter().enumerate() {
        let account = world.accounts[ACCOUNT_OF_CHANNEL[index]];
        let registration = ChannelRegistration { account, inbox: *inbox, kind: ChannelKind::Api, callback_url: None };
        let credentials = input.register_channel(registration).await.expect("port").expect("registers");
        channels.push(input.open_channel(&credentials.identifier).await.expect("open"));
    }
    // The widget contacts identified themselves before writing, as `identify_contact` records them.
    let mut tx = input.store.begin().await.expect("begins");
    for inbox in world.inboxes {
        for (source_id, name) in WIDGET_CONTACTS {
            let details = ContactDetails {
                inbox,
                source_id,
                origin: Origin::Widget,
                name,
                email: None,
                phone: None,
                now_ms: now_ms(),
            };
            Store::upsert_contact(&mut tx, details).await.expect("identified");
        }
    }
    tx.commit().await.expect("commits");

    let mut answers: Vec<Option<Result<Accepted, InputError>>> = Vec::with_capacity(sent.len());
    if batched {
        let recorder = Recorder::new(input.store.clone(), plan.clone());
        let mut rest = sent;
        while !rest.is_empty() {
            let size = 1 + rest[1..].iter().take_while(|sent| !sent.cut).count();
            let (batch, after) = rest.split_at(size);
            let (submissions, answered): (Vec<_>, Vec<_>) = batch
                .iter()
                .map(|sent| {
                    let (answer, answered) = tokio::sync::oneshot::channel();
                    let channel = &channels[sent.channel];
                    let post = sent.post();
                    (Submission { inbox: channel.inbox, account: channel.account, post, trace: None, answer }, answered)
                })
                .unzip();
            assert!(recorder.record(submissions).await, "the namespace is open");
            for mut answered in answered {
                answers.push(match answered.try_recv().expect("answered") {
                    Answer::Recorded(result) => Some(result),
                    Answer::Alone(_) => None,
                });
            }
            rest = after;
        }
    } else {
        for sent in sent {
            answers.push(Some(input.accept_alone(&channels[sent.channel], sent.post()).await));
        }
    }

    // Every id a path chose or was given, by what it stands for.
    let mut labels: Vec<(String, String)> = Vec::new();
    for (index, answer) in answers.iter().enumerate() {
        if let Some(Ok(Accepted::New(message))) = answer {
            labels.push((message.to_string(), format!("post#{index}")));
        }
    }
    labels.extend(world.inboxes.iter().enumerate().map(|(i, inbox)| (inbox.to_string(), format!("inbox#{i}"))));
    labels.extend(world.accounts.iter().enumerate().map(|(i, account)| (account.to_string(), format!("account#{i}"))));
    let normal = |value: Value| normalise(value, &labels, world.started_at);

    let answers = answers
        .into_iter()
        .map(|answer| match answer {
            None => Answered::LeftAlone,
            Some(Ok(Accepted::New(_))) => Answered::New,
            Some(Ok(Accepted::Replayed(message))) => {
                let of = labels.iter().find(|(id, _)| *id == message.to_string());
                Answered::Replayed(of.map_or_else(|| format!("unknown {message}"), |(_, label)| label.clone()))
            }
            Some(Err(InputError::IdempotencyKeyReused)) => Answered::KeyReused,
            Some(Err(InputError::SignatureReplayed)) => Answered::SignatureReplayed,
            Some(Err(InputError::PlanLimit(allowance))) => {
                Answered::PlanLimit { used: allowance.used, limit: allowance.limit }
            }
            Some(Err(other)) => Answered::Failed(other.to_string()),
        })
        .collect();
    let mut tables = Vec::new();
    for (table, sql, ordered) in tables_on(engine) {
        let rows: Vec<(String,)> = namespace.fetch_all(sql, args![]).await.expect("rows");
        let mut rows: Vec<Value> =
            rows.into_iter().map(|(row,)| normal(serde_json::from_str(&row).expect("a JSON object"))).collect();
        if !ordered {
            rows.sort_by_key(Value::to_string);
        }
        tables.push((*table, rows));
    }
    let events = published(namespace).await.iter().map(|envelope| normal(envelope_json(envelope))).collect();
    let usage = world.accounts.iter().map(|account| plan.usage(*account)).collect();
    Outcome { answers, tables, events, usage }
}

/// Where the one-at-a-time and the batch outcomes differ, said so a reader can find it.
fn differences(alone: &Outcome, batched: &Outcome) -> Vec<String> {
    let mut found = Vec::new();
    for (index, (a, b)) in alone.answers.iter().zip(&batched.answers).enumerate() {
        if a != b {
            found.push(format!("post#{index} answered {a:?} alone, {b:?} in a batch"));
        }
    }
    found.extend(differing_rows(alone.lists(), batched.lists()));
    if alone.usage != batched.usage {
        found.push(format!("conversations counted: {:?} alone, {:?} in batches", alone.usage, batched.usage));
    }
    found
}

impl Outcome {
    /// Each table's rows, then the events.
    fn lists(&self) -> impl Iterator<Item = (&str, &[Value])> {
        let tables = self.tables.iter().map(|(table, rows)| (*table, rows.as_slice()));
        tables.chain([("the events", self.events.as_slice())])
    }
}

/// The posts of a case, one a line, for a failure's message.
fn described(sent: &[Sent]) -> String {
    sent.iter()
        .enumerate()
        .map(|(index, s)| {
            format!(
                "{}post#{index}: channel {} key {:?} signed_at {:?} {:?} {}",
                if s.cut { "(a new batch) " } else { "" },
                s.channel,
                s.key,
                s.signed_at,
                s.contact,
                s.payload
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Records `case` one post at a time and in batches, each on a fresh namespace on `engine`, and compares.
fn check(engine: Engine, case: &Case) -> Result<(), TestCaseError> {
    let sent = posts(&case.steps);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (alone, batched) = runtime.block_on(async {
        let world = World {
            accounts: [AccountId::new(), AccountId::new()],
            inboxes: [InboxId::new(), InboxId::new(), InboxId::new()],
            started_at: now_ms(),
        };
        (record(engine, &world, case, &sent, false).await, record(engine, &world, case, &sent, true).await)
    });
    let found = differences(&alone, &batched);
    prop_assert!(found.is_empty(), "limits {:?}:\n{}\n\n{}", case.limits, described(&sent), found.join("\n"));
    prop_assert_eq!(alone, batched);
    Ok(())
}

// On every engine: the set-based statements are translated for each, and a batch that fails there falls
// back to one post at a time, which this property sees (its posts are answered `LeftAlone`).
proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::Sqlite))]
    #[test]
    fn posts_recorded_in_batches_are_answered_and_stored_as_recorded_one_by_one(case in case()) {
        check(Engine::Sqlite, &case)?;
    }
}

proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::Postgres))]
    #[test]
    fn on_postgres_posts_recorded_in_batches_are_answered_and_stored_as_recorded_one_by_one(case in case()) {
        check(Engine::Postgres, &case)?;
    }
}

proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::MySql))]
    #[test]
    fn on_mariadb_posts_recorded_in_batches_are_answered_and_stored_as_recorded_one_by_one(case in case()) {
        check(Engine::MySql, &case)?;
    }
}
