//! What the services' own tests share (behind the `testing` feature, enabled only as a dev-dependency): a
//! migrated scratch namespace, the outbox read back in order, and how the equivalence properties run and
//! report their differences.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::events::{Delivery, Envelope, Transport, TransportError};
use crate::store::{Location, Migrations, Namespace};

/// How the equivalence properties run: 32 cases (each opens and migrates two namespaces, a few seconds in
/// all in a debug build) unless `PROPTEST_CASES` says otherwise, and no regression file written into the
/// crate (a failure is reported with its shrunk case).
pub fn proptest_config() -> proptest::test_runner::Config {
    let default = proptest::test_runner::Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 32 };
    proptest::test_runner::Config { cases, failure_persistence: None, max_shrink_iters: 2048, ..default }
}

/// A migrated SQLite namespace in a temporary directory, removed when this is dropped.
pub struct Scratch {
    pub namespace: Namespace,
    _dir: tempfile::TempDir,
}

impl Scratch {
    /// Opens `name` with `migrations` applied, in a fresh directory.
    pub async fn open(name: &'static str, migrations: Migrations) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = Location::SqliteFile(dir.path().join(format!("{name}.db")));
        let namespace = Namespace::open(name, &location, Some(migrations)).await.expect("opens");
        namespace.migrate().await.expect("migrates");
        Scratch { namespace, _dir: dir }
    }
}

/// Publishes everything in `namespace`'s outbox and returns it in the outbox's order (the order the
/// relay publishes in).
pub async fn published(namespace: &Namespace) -> Vec<Envelope> {
    let kept = Kept::default();
    crate::events::flush(namespace, &kept).await.expect("flushed");
    std::mem::take(&mut *kept.0.lock().expect("lock"))
}

/// An envelope as JSON: its type, topic, account, key and payload.
pub fn envelope_json(envelope: &Envelope) -> Value {
    json!({
        "type": envelope.kind,
        "topic": envelope.topic,
        "account": envelope.account,
        "key": envelope.key,
        "payload": serde_json::from_str::<Value>(envelope.payload.get()).expect("JSON"),
    })
}

/// A transport that keeps what it is given.
#[derive(Default)]
struct Kept(Mutex<Vec<Envelope>>);

#[async_trait]
impl Transport for Kept {
    fn name(&self) -> &'static str {
        "kept"
    }
    async fn publish(&self, envelope: &Envelope) -> Result<(), TransportError> {
        self.0.lock().expect("lock").push(envelope.clone());
        Ok(())
    }
    async fn subscribe(&self, _: Arc<Delivery>) -> Result<(), TransportError> {
        Ok(())
    }
}

/// `value` with every id replaced by its label and every number from `started_at` on (a time stamped
/// during the case) by `"now"`, so that two runs of one case compare equal.
pub fn normalise(value: Value, labels: &[(String, String)], started_at: i64) -> Value {
    match value {
        Value::String(text) => {
            Value::String(labels.iter().fold(text, |text, (id, label)| text.replace(id.as_str(), label)))
        }
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= started_at) => Value::String("now".into()),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| normalise(v, labels, started_at)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, normalise(v, labels, started_at))).collect())
        }
        other => other,
    }
}

/// Each named list of rows (tables, then events) that differs between the two runs, said so a reader can
/// find it.
pub fn differing_rows<'a>(
    alone: impl IntoIterator<Item = (&'a str, &'a [Value])>,
    batched: impl IntoIterator<Item = (&'a str, &'a [Value])>,
) -> Vec<String> {
    let lines = |rows: &[Value]| rows.iter().map(Value::to_string).collect::<Vec<_>>().join("\n           ");
    alone
        .into_iter()
        .zip(batched)
        .filter(|((_, a), (_, b))| a != b)
        .map(|((name, a), (_, b))| format!("{name} differ\n  alone:   {}\n  batched: {}", lines(a), lines(b)))
        .collect()
}
