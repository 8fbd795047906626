//! What the services' own tests share (behind the `testing` feature, enabled only as a dev-dependency, and
//! in the kernel's own tests): a migrated scratch namespace on any engine, the outbox read back in order, and how the equivalence properties run and
//! report their differences.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::events::{Delivery, Envelope, Transport, TransportError};
use crate::store::{Engine, Location, Migrations, Namespace};

/// How the equivalence properties run on SQLite: 32 cases (each opens and migrates two namespaces, a few
/// seconds in all in a debug build) unless `PROPTEST_CASES` says otherwise, and no regression file written into the
/// crate (a failure is reported with its shrunk case).
pub fn proptest_config() -> proptest::test_runner::Config {
    proptest_config_on(Engine::Sqlite)
}

/// [`proptest_config`] for a property whose namespaces are on `engine`: 8 cases on a database server
/// (a namespace there costs a schema or database and its migrations), 32 on SQLite.
pub fn proptest_config_on(engine: Engine) -> proptest::test_runner::Config {
    let default = proptest::test_runner::Config::default();
    let cases = match engine {
        _ if std::env::var_os("PROPTEST_CASES").is_some() => default.cases,
        Engine::Sqlite => 32,
        Engine::Postgres | Engine::MySql => 8,
    };
    proptest::test_runner::Config { cases, failure_persistence: None, max_shrink_iters: 2048, ..default }
}

/// The PostgreSQL server tests use (`TEST_POSTGRES_URL`; the test command starts it).
pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The MariaDB server tests use (`TEST_MYSQL_URL`; the test command starts it).
pub fn mysql_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".to_owned())
}

/// A migrated namespace of its own — a SQLite file in a temporary directory, or a fresh schema (PostgreSQL)
/// or database (MariaDB) on the test server — removed when this is dropped.
pub struct Scratch {
    pub namespace: Namespace,
    _cleanup: Cleanup,
}

enum Cleanup {
    Dir { _dir: tempfile::TempDir },
    Server { _drop: DropOnServer },
}

impl Scratch {
    /// Opens `name` with `migrations` applied, a SQLite file in a fresh directory.
    pub async fn open(name: &'static str, migrations: Migrations) -> Scratch {
        Self::open_on(Engine::Sqlite, name, migrations).await
    }

    /// Opens `name` with `migrations` applied on `engine`: a SQLite file in a fresh directory, or a schema
    /// or database of a fresh name on the test server ([`postgres_url`], [`mysql_url`]).
    pub async fn open_on(engine: Engine, name: &'static str, migrations: Migrations) -> Scratch {
        let (location, cleanup) = match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                (Location::SqliteFile(dir.path().join(format!("{name}.db"))), Cleanup::Dir { _dir: dir })
            }
            Engine::Postgres | Engine::MySql => {
                let fresh = format!("{name}_test_{}", uuid::Uuid::new_v4().simple());
                let location = if engine == Engine::Postgres {
                    Location::Postgres { url: postgres_url(), schema: fresh.clone() }
                } else {
                    Location::MySql { url: mysql_url(), database: fresh.clone() }
                };
                (location, Cleanup::Server { _drop: DropOnServer(engine, fresh) })
            }
        };
        let namespace = Namespace::open(name, &location, Some(migrations))
            .await
            .unwrap_or_else(|e| panic!("{name} on {} (is the server running?): {e}", engine.name()));
        namespace.migrate().await.expect("migrates");
        Scratch { namespace, _cleanup: cleanup }
    }
}

/// Drops a scratch schema (PostgreSQL) or database (MariaDB) when the test ends.
struct DropOnServer(Engine, String);

impl Drop for DropOnServer {
    fn drop(&mut self) {
        let (engine, name) = (self.0, std::mem::take(&mut self.1));
        // A thread of its own: the test's runtime may be the one dropping this.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
                use sqlx::ConnectOptions as _;
                if engine == Engine::MySql {
                    let mut connection = mysql_url().parse::<sqlx::mysql::MySqlConnectOptions>()?.connect().await?;
                    // A failed test may leave a session with a transaction open, which the drop would wait for.
                    let sessions: Vec<(i64,)> = sqlx::query_as(
                        "select cast(id as signed) from information_schema.processlist where db = ? and id <> connection_id()",
                    )
                    .bind(&name)
                    .fetch_all(&mut connection)
                    .await?;
                    for (id,) in sessions {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("kill {id}"))).execute(&mut connection).await;
                    }
                    let statement = format!("drop database if exists {name}");
                    return sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut connection).await.map(drop);
                }
                let mut connection = postgres_url().parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("drop schema if exists {name} cascade")))
                    .execute(&mut connection)
                    .await
                    .map(drop)
            })
        });
        let _ = dropped.join();
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
