//! The two ways of applying customers' messages, held to each other (issue 13, finding 5).
//!
//! `desk::receive_message` applies one `input.message_received`; `desk::receive_messages` applies a
//! consumer batch, storing the messages to known open conversations together (`store_incoming`) and each
//! other one through `receive_message` in its place. The batch must leave every row, feed entry and event
//! that applying the messages one by one would. The two are kept in step by hand, so the property below
//! generates sequences of events — new and known contacts on three inboxes of two accounts and on an inbox
//! that no longer exists, details filled in over time, redeliveries, contacts identified before writing,
//! agents resolving, snoozing, reopening and reading conversations in between, Japanese contents, some
//! longer than a preview — applies each sequence one event per transaction in one fresh namespace and in
//! generated batches in another, and compares every table the paths write and the events they publish.
//!
//! Generated ids (contacts, conversations, activity entries) are compared as what they stand for
//! (`conversation(inbox#0/user-1)`), the times the paths stamp (`now_ms`) as `"now"`; the events' own ids
//! and times, and the inboxes and accounts, are the same in both namespaces (shown as `message@3`, the
//! message sent at step 3, `inbox#1`, `account#0`). The realtime feed is compared account by account: a
//! socket reads only its account's rows, and the batch writes each account's rows of a run together.

use std::collections::HashMap;
use std::sync::LazyLock;

use contracts::AccountId;
use contracts::channel::{ChannelContact, ChannelKind, MessageReceived};
use contracts::inbox::{ConversationStatus, InboxId, MessageId};
use kernel::args;
use kernel::clock::now_ms;
use kernel::store::{Engine, Namespace};
use kernel::testing::{Scratch, differing_rows, envelope_json, normalise, published};
use proptest::prelude::*;
use serde_json::Value;

use crate::MIGRATIONS;
use crate::desk;
use crate::feed::Feed;
use crate::store::{InboxRow, Store};

/// The inboxes: two of one account (an API and a widget inbox), one of another, and one that was deleted
/// (its messages have nowhere to go).
const INBOXES: [(usize, Option<ChannelKind>); 4] =
    [(0, Some(ChannelKind::Api)), (0, Some(ChannelKind::WebWidget)), (1, Some(ChannelKind::Api)), (0, None)];
const CONTACTS: [&str; 3] = ["user-1", "花子", "user-3"];
const NAMES: [Option<&str>; 4] = [None, Some("山田 花子"), Some("Hanako Yamada"), Some("田中")];
const EMAILS: [Option<&str>; 3] = [None, Some("hanako@example.jp"), Some("taro@example.jp")];
const PHONES: [Option<&str>; 2] = [None, Some("+81 90-1234-5678")];
/// What an agent does between messages (to the conversation of an earlier message's contact).
const ACTIONS: [AgentAction; 5] = [
    AgentAction::Set(ConversationStatus::Resolved),
    AgentAction::Set(ConversationStatus::Pending),
    AgentAction::Set(ConversationStatus::Snoozed),
    AgentAction::Set(ConversationStatus::Open),
    AgentAction::Read,
];

/// An agent's change to a conversation.
#[derive(Debug, Clone, Copy)]
enum AgentAction {
    Set(ConversationStatus),
    Read,
}
/// When the events of a case happen: long before the case runs, so that a time a path stamps is told apart.
const EPOCH_MS: i64 = 1_700_000_000_000;

fn content(index: usize) -> String {
    match index {
        0 => "こんにちは".to_owned(),
        1 => "返品をお願いします。".to_owned(),
        2 => "注文番号は 12345 です".to_owned(),
        3 => "ありがとうございました！".to_owned(),
        // Longer than the list's preview (140 characters).
        _ => "届いた商品が壊れていました。".repeat(12),
    }
}

/// One thing that happens.
#[derive(Debug, Clone)]
enum Step {
    /// A contact writes: `input.message_received` with what the channel knows of them.
    Message { inbox: usize, contact: usize, name: usize, email: usize, phone: usize, content: usize },
    /// An earlier message's event delivered again: the latest but this many (modulo their number).
    Redelivered(usize),
    /// A widget contact identified themselves before writing: `input.contact_identified`.
    Identified { inbox: usize, contact: usize, name: usize },
    /// An agent changes the conversation of an earlier message's contact (the latest message's but this
    /// many): one of [`ACTIONS`].
    Agent { back: usize, action: usize },
}

fn step() -> impl Strategy<Value = Step> {
    // Mostly messages, mostly to the two inboxes of one account and telling little about the contact, so
    // that batches hold runs of messages to open conversations (what `store_incoming` stores together).
    let inbox = prop_oneof![4 => Just(0usize), 2 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize)];
    let detail = |n: usize| prop_oneof![3 => Just(0usize), 1 => 1..n];
    prop_oneof![
        8 => (inbox, 0..3usize, detail(4), detail(3), detail(2), 0..5usize).prop_map(
            |(inbox, contact, name, email, phone, content)| {
                Step::Message { inbox, contact, name, email, phone, content }
            }
        ),
        2 => (0..16usize).prop_map(Step::Redelivered),
        1 => (0..3usize, 0..3usize, 0..4usize)
            .prop_map(|(inbox, contact, name)| Step::Identified { inbox, contact, name }),
        1 => (0..16usize, 0..5usize).prop_map(|(back, action)| Step::Agent { back, action }),
    ]
}

/// A generated case: what happens, each step with whether the batch path starts a new batch at it (a
/// message after something else always starts one). Cuts travel with their steps, and references to
/// earlier messages count back from the latest, so that a failing case shrinks to the few steps it needs.
#[derive(Debug, Clone)]
struct Case {
    steps: Vec<(bool, Step)>,
}

fn case() -> impl Strategy<Value = Case> {
    proptest::collection::vec((proptest::bool::weighted(0.15), step()), 1..32).prop_map(|steps| Case { steps })
}

/// What both namespaces share: the accounts, the inboxes, and when the case started (any time from then on
/// is one a path stamped).
struct World {
    accounts: [AccountId; 2],
    inboxes: [InboxId; 4],
    started_at: i64,
}

impl World {
    fn new() -> Self {
        Self {
            accounts: [AccountId::new(), AccountId::new()],
            inboxes: [InboxId::new(), InboxId::new(), InboxId::new(), InboxId::new()],
            started_at: now_ms(),
        }
    }
}

/// What happens, resolved: the events as delivered, and what is done between them.
#[derive(Debug, Clone)]
enum Action {
    /// An event, and whether the batch path starts a new batch with it.
    Deliver(MessageReceived, bool),
    Identify {
        account: AccountId,
        inbox: InboxId,
        contact: ChannelContact,
    },
    Agent {
        account: AccountId,
        inbox: InboxId,
        source_id: String,
        action: AgentAction,
        at: i64,
    },
}

fn actions(world: &World, steps: &[(bool, Step)]) -> Vec<Action> {
    let mut sent: Vec<MessageReceived> = Vec::new();
    let mut actions = Vec::new();
    for (index, (cut, step)) in steps.iter().enumerate() {
        let cut = *cut;
        let at = EPOCH_MS + 1000 * i64::try_from(index).unwrap_or(0);
        match *step {
            Step::Message { inbox, contact, name, email, phone, content: said } => {
                let event = MessageReceived {
                    account: world.accounts[INBOXES[inbox].0],
                    inbox: world.inboxes[inbox],
                    message: MessageId::new(),
                    contact: ChannelContact {
                        source_id: CONTACTS[contact].to_owned(),
                        name: NAMES[name].map(str::to_owned),
                        email: EMAILS[email].map(str::to_owned),
                        phone: PHONES[phone].map(str::to_owned),
                    },
                    content: content(said),
                    received_at: at,
                };
                sent.push(event.clone());
                actions.push(Action::Deliver(event, cut));
            }
            Step::Redelivered(back) if !sent.is_empty() => {
                actions.push(Action::Deliver(sent[sent.len() - 1 - back % sent.len()].clone(), cut));
            }
            Step::Identified { inbox, contact, name } => actions.push(Action::Identify {
                account: world.accounts[INBOXES[inbox].0],
                inbox: world.inboxes[inbox],
                contact: ChannelContact {
                    source_id: CONTACTS[contact].to_owned(),
                    name: NAMES[name].map(str::to_owned),
                    email: None,
                    phone: None,
                },
            }),
            Step::Agent { back, action } if !sent.is_empty() => {
                let event = &sent[sent.len() - 1 - back % sent.len()];
                actions.push(Action::Agent {
                    account: event.account,
                    inbox: event.inbox,
                    source_id: event.contact.source_id.clone(),
                    action: ACTIONS[action],
                    at,
                });
            }
            Step::Redelivered(_) | Step::Agent { .. } => {}
        }
    }
    actions
}

/// What a path left: the rows of each table it writes, and the events it published in order.
#[derive(Debug, PartialEq)]
struct Outcome {
    tables: Vec<(&'static str, Vec<Value>)>,
    events: Vec<Value>,
}

/// The rows of each table the paths write, as JSON objects, and whether their order is theirs to compare
/// (messages are compared in the order they were written, the feed in each account's order; the rest as
/// sets).
const TABLES: [(&str, &str, bool); 6] = [
    (
        "contacts",
        "select json_object('id', id, 'account', account_id, 'name', name, 'email', email, 'phone', phone, \
         'created_at', created_at, 'updated_at', updated_at) from contacts",
        false,
    ),
    (
        "contact_identities",
        "select json_object('inbox', inbox_id, 'source_id', source_id, 'account', account_id, 'contact', \
         contact_id, 'created_at', created_at) from contact_identities",
        false,
    ),
    (
        "conversations",
        "select json_object('id', id, 'account', account_id, 'inbox', inbox_id, 'contact', contact_id, \
         'display_id', display_id, 'status', status, 'snoozed_until', snoozed_until, 'priority', priority, \
         'assignee', assignee_id, 'unread_count', unread_count, 'last_message_at', last_message_at, \
         'last_message_preview', last_message_preview, 'last_message_kind', last_message_kind, 'created_at', \
         created_at, 'updated_at', updated_at) from conversations",
        false,
    ),
    (
        "messages",
        "select json_object('id', id, 'account', account_id, 'conversation', conversation_id, 'kind', kind, \
         'content', content, 'sender', sender_id, 'attributes', json(attributes), 'delivery_status', \
         delivery_status, 'delivery_error', delivery_error, 'created_at', created_at) from messages order by rowid",
        true,
    ),
    (
        "search_index",
        "select json_object('scope', scope, 'body', body, 'kind', doc_kind, 'doc', doc_id, 'conversation', \
         conversation_id) from search_index",
        false,
    ),
    (
        "realtime_feed",
        "select json_object('account', account_id, 'kind', kind, 'inbox', inbox_id, 'payload', json(payload), \
         'created_at', created_at) from realtime_feed order by account_id, seq",
        true,
    ),
];

/// The search index as a server keeps it (`search_documents` and their `search_terms`), for [`tables_on`].
const SERVER_SEARCH_INDEX: &str = "select json_object('scope', d.account_id, 'kind', d.doc_kind, 'doc', d.doc_id, \
     'conversation', d.conversation_id, 'terms', (select count(*) from search_terms t where t.doc_seq = d.seq)) \
     from search_documents d";

/// A table, the statement that reads its rows as JSON objects, and whether their order is compared.
type TableRead = (&'static str, &'static str, bool);

/// [`TABLES`] as `engine` reads them. Written for SQLite; on a server the search index is in two other
/// tables, messages have no rowid (they are compared as a set), text is read as JSON with another
/// function, and PostgreSQL builds an object with another function too (cast to text, as SQLite returns it).
fn tables_on(engine: Engine) -> &'static [TableRead] {
    static ON: LazyLock<HashMap<Engine, Vec<TableRead>>> = LazyLock::new(|| {
        let on_server = |engine: Engine| -> Vec<TableRead> {
            let rewritten = |sql: &str| -> String {
                let mut sql = sql.replace(" order by rowid", "");
                for column in ["attributes", "payload"] {
                    let json = match engine {
                        Engine::Postgres => format!("cast({column} as json)"),
                        _ => format!("json_query({column}, '$')"),
                    };
                    sql = sql.replace(&format!("json({column})"), &json);
                }
                if engine == Engine::Postgres {
                    let (object, from) = sql.split_at(sql.rfind(") from ").expect("an object from a table") + 1);
                    format!("{} as text){from}", object.replacen("json_object(", "cast(json_build_object(", 1))
                } else {
                    sql
                }
            };
            TABLES
                .iter()
                .map(|&(table, sql, ordered)| {
                    let sql = if table == "search_index" { SERVER_SEARCH_INDEX } else { sql };
                    (table, &*Box::leak(rewritten(sql).into_boxed_str()), ordered && !sql.contains(" order by rowid"))
                })
                .collect()
        };
        HashMap::from([
            (Engine::Sqlite, TABLES.to_vec()),
            (Engine::Postgres, on_server(Engine::Postgres)),
            (Engine::MySql, on_server(Engine::MySql)),
        ])
    });
    &ON[&engine]
}

/// How a namespace is given the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Each event in a transaction of its own, through `receive_message`.
    OneByOne,
    /// Each batch in one transaction, through `receive_messages`. A batch never holds one event twice:
    /// the consumer claims each envelope once per batch (`Delivery::deliver_batch`), so a redelivery comes
    /// in a later batch than its first copy, and a batch is cut there.
    Batches,
    /// As [`Path::Batches`], but cut only where the case says, even where a batch then holds an event twice.
    BatchesAsCut,
}

/// Applies `actions` in a fresh namespace along `path`.
async fn apply(engine: Engine, world: &World, actions: &[Action], path: Path) -> Outcome {
    let scratch = Scratch::open_on(engine, "inbox", MIGRATIONS).await;
    let namespace = &scratch.namespace;
    let feed = Feed::default();
    let mut tx = namespace.begin().await.expect("begins");
    for ((account, channel), inbox) in INBOXES.iter().zip(world.inboxes) {
        let Some(channel) = channel else { continue };
        let row = InboxRow {
            id: inbox,
            name: format!("{} の窓口", channel.as_str()),
            channel: *channel,
            identifier: None,
            callback_url: None,
            created_at: EPOCH_MS,
            updated_at: EPOCH_MS,
        };
        Store::insert_inbox(&mut tx, world.accounts[*account], &row).await.expect("inbox");
    }
    tx.commit().await.expect("commits");

    let mut batch: Vec<MessageReceived> = Vec::new();
    for action in actions {
        match action {
            Action::Deliver(event, cut) if path != Path::OneByOne => {
                let again = batch.iter().any(|earlier| earlier.message == event.message);
                if *cut || (again && path == Path::Batches) {
                    receive_batch(namespace, &feed, &std::mem::take(&mut batch)).await;
                }
                batch.push(event.clone());
            }
            Action::Deliver(event, _) => {
                let mut tx = namespace.begin().await.expect("begins");
                desk::receive_message(&mut tx, &feed, event).await.expect("applied");
                tx.commit().await.expect("commits");
            }
            other => {
                receive_batch(namespace, &feed, &std::mem::take(&mut batch)).await;
                apply_other(namespace, &feed, other).await;
            }
        }
    }
    receive_batch(namespace, &feed, &batch).await;

    let labels = labels(world, actions, namespace).await;
    let normal = |value: Value| normalise(value, &labels, world.started_at);
    let mut tables = Vec::new();
    for &(table, sql, ordered) in tables_on(engine) {
        let rows: Vec<(String,)> = namespace.fetch_all(sql, args![]).await.expect("rows");
        let mut rows: Vec<Value> =
            rows.into_iter().map(|(row,)| normal(serde_json::from_str(&row).expect("a JSON object"))).collect();
        if !ordered {
            rows.sort_by_key(Value::to_string);
        }
        tables.push((table, rows));
    }
    let events = published(namespace).await.iter().map(|envelope| normal(envelope_json(envelope))).collect();
    Outcome { tables, events }
}

/// Applies `batch` (if it holds anything) in one transaction, as the consumer does.
async fn receive_batch(namespace: &Namespace, feed: &Feed, batch: &[MessageReceived]) {
    if batch.is_empty() {
        return;
    }
    let mut tx = namespace.begin().await.expect("begins");
    desk::receive_messages(&mut tx, feed, batch).await.expect("applied");
    tx.commit().await.expect("commits");
}

/// Applies what is not a message, the same way whichever path applies the messages.
async fn apply_other(namespace: &Namespace, feed: &Feed, action: &Action) {
    let mut tx = namespace.begin().await.expect("begins");
    match action {
        Action::Deliver(..) => unreachable!("messages are applied by the path under test"),
        Action::Identify { account, inbox, contact } => {
            desk::contact_identified(&mut tx, feed, *account, *inbox, contact).await.expect("identified");
        }
        Action::Agent { account, inbox, source_id, action, at } => {
            let (account, inbox) = (*account, *inbox);
            let conversation = match Store::contact_by_identity(&mut tx, inbox, source_id).await.expect("read") {
                Some(contact) => Store::conversation_of_contact(&mut tx, inbox, contact.id).await.expect("read"),
                None => None,
            };
            // An agent's change as the store records it (the activity entries and feed rows of the desk's
            // own rules are not what is compared here, and would be the same in both namespaces).
            if let Some((conversation, _)) = conversation {
                match *action {
                    AgentAction::Read => Store::mark_read(&mut tx, account, conversation, *at).await,
                    AgentAction::Set(ConversationStatus::Snoozed) => {
                        let until = Some(at + 3_600_000);
                        Store::set_status(&mut tx, account, conversation, ConversationStatus::Snoozed, until, *at).await
                    }
                    AgentAction::Set(status) => {
                        Store::set_status(&mut tx, account, conversation, status, None, *at).await
                    }
                }
                .expect("changed");
            }
        }
    }
    tx.commit().await.expect("commits");
}

/// Every id a path chose or was given, with what it stands for.
async fn labels(world: &World, actions: &[Action], namespace: &Namespace) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let inbox_label = |id: &str| {
        world.inboxes.iter().position(|inbox| inbox.to_string() == id).map_or(id.to_owned(), |i| format!("inbox#{i}"))
    };
    let identities: Vec<(String, String, String)> = namespace
        .fetch_all("select contact_id, inbox_id, source_id from contact_identities", args![])
        .await
        .expect("identities");
    for (contact, inbox, source_id) in identities {
        labels.push((contact, format!("contact({}/{source_id})", inbox_label(&inbox))));
    }
    let conversations: Vec<(String, String, String)> = namespace
        .fetch_all(
            "select c.id, i.inbox_id, i.source_id from conversations c join contact_identities i \
             on i.contact_id = c.contact_id and i.inbox_id = c.inbox_id",
            args![],
        )
        .await
        .expect("conversations");
    for (conversation, inbox, source_id) in conversations {
        labels.push((conversation, format!("conversation({}/{source_id})", inbox_label(&inbox))));
    }
    // In the order they were written (a server has no rowid: their time, then what they say).
    let activities = match namespace.engine() {
        Engine::Sqlite => "select id from messages where kind = 'activity' order by rowid",
        Engine::Postgres | Engine::MySql => {
            "select id from messages where kind = 'activity' order by created_at, content, attributes"
        }
    };
    let activities: Vec<(String,)> = namespace.fetch_all(activities, args![]).await.expect("activities");
    labels.extend(activities.into_iter().enumerate().map(|(n, (id,))| (id, format!("activity#{n}"))));
    for action in actions {
        if let Action::Deliver(event, _) = action {
            let at = (event.received_at - EPOCH_MS) / 1000;
            labels.push((event.message.to_string(), format!("message@{at}")));
        }
    }
    labels.extend(world.inboxes.iter().enumerate().map(|(i, inbox)| (inbox.to_string(), format!("inbox#{i}"))));
    for (i, account) in world.accounts.iter().enumerate() {
        labels.push((account.to_string(), format!("account#{i}")));
        labels.push((crate::search::scope(*account), format!("scope#{i}")));
    }
    labels
}

/// Where the one-at-a-time and the batch outcomes differ, said so a reader can find it.
fn differences(alone: &Outcome, batched: &Outcome) -> Vec<String> {
    differing_rows(alone.lists(), batched.lists())
}

impl Outcome {
    /// Each table's rows, then the events.
    fn lists(&self) -> impl Iterator<Item = (&str, &[Value])> {
        let tables = self.tables.iter().map(|(table, rows)| (*table, rows.as_slice()));
        tables.chain([("the events", self.events.as_slice())])
    }
}

/// What happens in a case, one a line, for a failure's message.
fn described(world: &World, actions: &[Action]) -> String {
    let inbox = |id: &InboxId| world.inboxes.iter().position(|inbox| inbox == id).unwrap_or(usize::MAX);
    actions
        .iter()
        .map(|action| match action {
            Action::Deliver(e, cut) => format!(
                "{}message@{} to inbox#{} of account#{}: {:?} says {:?}",
                if *cut { "(a new batch) " } else { "" },
                (e.received_at - EPOCH_MS) / 1000,
                inbox(&e.inbox),
                world.accounts.iter().position(|account| *account == e.account).unwrap_or(usize::MAX),
                e.contact,
                e.content
            ),
            Action::Identify { inbox: id, contact, .. } => format!("identified on inbox#{}: {contact:?}", inbox(id)),
            Action::Agent { inbox: id, source_id, action, .. } => {
                format!("agent: {action:?} the conversation of {source_id} on inbox#{}", inbox(id))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Applies `case` one message at a time and in batches, each on a fresh namespace on `engine`, and compares.
fn check(engine: Engine, case: &Case) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let world = World::new();
    let actions = actions(&world, &case.steps);
    let (alone, batched) = runtime.block_on(async {
        (apply(engine, &world, &actions, Path::OneByOne).await, apply(engine, &world, &actions, Path::Batches).await)
    });
    let found = differences(&alone, &batched);
    prop_assert!(found.is_empty(), "{}\n\n{}", described(&world, &actions), found.join("\n"));
    prop_assert_eq!(alone, batched);
    Ok(())
}

// On every engine: the set-based statements are translated for each (a batch that fails fails here; the
// consumer would fall back to one event at a time and hide it).
proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::Sqlite))]
    #[test]
    fn messages_applied_in_batches_leave_what_applying_them_one_by_one_leaves(case in case()) {
        check(Engine::Sqlite, &case)?;
    }
}

proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::Postgres))]
    #[test]
    fn on_postgres_messages_applied_in_batches_leave_what_applying_them_one_by_one_leaves(case in case()) {
        check(Engine::Postgres, &case)?;
    }
}

proptest! {
    #![proptest_config(kernel::testing::proptest_config_on(Engine::MySql))]
    #[test]
    fn on_mariadb_messages_applied_in_batches_leave_what_applying_them_one_by_one_leaves(case in case()) {
        check(Engine::MySql, &case)?;
    }
}

/// A message redelivered in the batch that first delivers it, to a conversation that was open before the
/// batch, is stored, counted, indexed, reported and published once, as alone. (A difference the property
/// found: the batch path counted it twice. The consumer does not send one envelope twice in a batch, so
/// `Path::Batches` keeps the property clear of it and this test keeps the case.)
#[test]
fn an_event_twice_in_one_batch_is_stored_once() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let world = World::new();
    let says = |step: usize| Step::Message { inbox: 0, contact: 0, name: 0, email: 0, phone: 0, content: step };
    let actions = actions(&world, &[(false, says(0)), (true, says(1)), (false, Step::Redelivered(0))]);

    let (alone, batched) = runtime.block_on(async {
        (
            apply(Engine::Sqlite, &world, &actions, Path::OneByOne).await,
            apply(Engine::Sqlite, &world, &actions, Path::BatchesAsCut).await,
        )
    });

    let found = differences(&alone, &batched);
    assert!(found.is_empty(), "{}\n\n{}", described(&world, &actions), found.join("\n"));
}

/// An event naming another account than its inbox's is dropped, in a batch as alone (the inbox is not
/// that account's). (A difference the property found: the batch path filed it into the inbox's open
/// conversation under the other account. Input always names the channel's account, so the property does
/// not generate such events and this test keeps the case.)
#[test]
fn an_event_naming_another_account_is_dropped_in_a_batch_too() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let world = World::new();
    let says = |step: usize| Step::Message { inbox: 0, contact: 0, name: 0, email: 0, phone: 0, content: step };
    let mut actions = actions(&world, &[(false, says(0)), (true, says(1)), (false, says(2))]);
    if let Some(Action::Deliver(event, _)) = actions.last_mut() {
        event.account = world.accounts[1];
    }

    let (alone, batched) = runtime.block_on(async {
        (
            apply(Engine::Sqlite, &world, &actions, Path::OneByOne).await,
            apply(Engine::Sqlite, &world, &actions, Path::Batches).await,
        )
    });

    let found = differences(&alone, &batched);
    assert!(found.is_empty(), "{}\n\n{}", described(&world, &actions), found.join("\n"));
}
