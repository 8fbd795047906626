//! Data namespaces (DESIGN §5): each service owns one, with its own migrations and migration history, and
//! nothing else touches it.
//!
//! Services never see a driver type. They write portable, lowercase SQL with `?` placeholders in their
//! store (`store.rs` or `store/`, declared with [`service_store!`](crate::service_store)), bind [`Value`]s
//! with [`args!`](crate::args) (ids and enums directly, once made text columns by
//! [`stored_as_text!`](crate::stored_as_text)), and read rows into `#[derive(sqlx::FromRow)]` structs. The
//! engine behind a [`Namespace`] is chosen by its [`Location`]: a SQLite file (`sqlite.rs`), a
//! PostgreSQL schema (`postgres.rs`) or a MariaDB database (`mysql.rs`); the kernel rewrites the statements
//! for the engine (`dialect.rs`), and the rare statement that must differ is written per engine in the
//! service's store, chosen by [`Namespace::engine`].
//! Every statement a namespace runs is checked against the tables its migrations create, in debug builds
//! ([`audit`]). The event bus's tables are created in every namespace by the kernel's own migrations
//! (`src/store/migrations/<engine>/`, history in `_kernel_migrations`).
//!
//! - Reads run on a pool of readers; writes and transactions are queued, in order, on one writer
//!   connection, and [`Namespace::begin`] takes the namespace's write lock at once (SQLite's `begin
//!   immediate`, PostgreSQL's advisory lock). A transaction runs hooks after it commits
//!   ([`Tx::after_commit`]: the realtime feed's wake-up, the reply worker's).
//! - Set-based statements take their rows as one JSON array argument ([`json_rows`], `select … from
//!   jsonb_each(?)`: on SQLite each row's `value` stays binary JSON, so `value ->> n` does not parse the row
//!   again), so a batch costs one statement per step whatever its size.
//! - Retention: [`Namespace::delete_in_slices`] deletes in short write transactions of [`DELETE_SLICE`]
//!   rows each, so other writers wait for one slice at a time, and [`trim_periodically`] is the loop that
//!   runs a trim, hourly (the event bus's, the realtime feed's, the user service's revocations).

pub mod audit;
mod dialect;
mod location;
mod mysql;
mod postgres;
mod provision;
mod sqlite;
mod value;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use crate::clock::now_ms;
use sqlx::migrate::Migrator;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, MySqlPool, PgPool, SqlitePool};

pub use dialect::Engine;
use dialect::translate;
pub use location::{DEFAULT_NAMESPACE_TEMPLATE, Location, namespace_name};
pub use provision::{Provisioned, provision};
pub use value::{Kind, Nullable, Value};

/// The kernel's own tables in every namespace: the event bus's outbox, processed events and dead letters.
pub(crate) static KERNEL_MIGRATIONS: Migrations = crate::migrations!(
    sqlite: "src/store/migrations/sqlite",
    postgres: "src/store/migrations/postgres",
    mysql: "src/store/migrations/mysql"
);

/// The kernel's test fixture namespace (a `things` table), for its own tests and benchmarks.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub static TEST_MIGRATIONS: Migrations = crate::migrations!(
    sqlite: "src/store/test_migrations/sqlite",
    postgres: "src/store/test_migrations/postgres",
    mysql: "src/store/test_migrations/mysql"
);

/// Where the kernel keeps the history of [`KERNEL_MIGRATIONS`] in each namespace.
pub(crate) const KERNEL_MIGRATIONS_TABLE: &str = "_kernel_migrations";

/// The table in every namespace where the migration history lives (sqlx's own bookkeeping).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A service's migrations, one set per engine (`migrations/{sqlite,postgres,mysql}/`), each with the same
/// versions.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
    pub mysql: &'static Migrator,
}

impl Migrations {
    pub fn for_engine(&self, engine: Engine) -> &'static Migrator {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
            Engine::MySql => self.mysql,
        }
    }
}

/// A crate's migrations for every engine, embedded from its `migrations/<engine>/` directories:
/// `migrations: Some(kernel::migrations!())`; or from the directories given, relative to the crate:
/// `kernel::migrations!(sqlite: "src/…/sqlite", postgres: "src/…/postgres", mysql: "src/…/mysql")`.
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::migrations!(
            sqlite: "./migrations/sqlite",
            postgres: "./migrations/postgres",
            mysql: "./migrations/mysql"
        )
    };
    (sqlite: $sqlite:literal, postgres: $postgres:literal, mysql: $mysql:literal) => {
        $crate::store::Migrations {
            sqlite: {
                static SQLITE: $crate::__sqlx::migrate::Migrator = $crate::__sqlx::migrate!($sqlite);
                &SQLITE
            },
            postgres: {
                static POSTGRES: $crate::__sqlx::migrate::Migrator = $crate::__sqlx::migrate!($postgres);
                &POSTGRES
            },
            mysql: {
                static MYSQL: $crate::__sqlx::migrate::Migrator = $crate::__sqlx::migrate!($mysql);
                &MYSQL
            },
        }
    };
}

/// What a row type must be to be read on every engine: `#[derive(sqlx::FromRow)]` of fields that are.
pub trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, MySqlRow> + Send + Unpin
{
}
impl<T> Row for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, MySqlRow> + Send + Unpin
{
}

/// Why a storage call failed. Services map `UniqueViolation` to 409, `Unavailable` to 503
/// ([`Problem::from_store`](crate::http::Problem::from_store)); the rest are internal errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated ({constraint})")]
    UniqueViolation { constraint: String },
    #[error("service `{service}` used table `{table}`, which it does not own")]
    ForeignTable { service: &'static str, table: String },
    #[error("SQL that does not parse: {0}")]
    Unparsable(String),
    #[error("rows or an event that do not convert to or from JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database cannot be reached (refused, timed out, the connection lost, the server shutting
    /// down): the request fails fast and a later one succeeds once it is back.
    #[error("the database is unreachable: {0}")]
    Unavailable(sqlx::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The server is not one OmniDesk runs on (e.g. MySQL instead of MariaDB).
    #[error("{0}")]
    Unsupported(String),
    #[error("migrating namespace `{service}`: {source}")]
    Migration { service: &'static str, source: sqlx::migrate::MigrateError },
}

impl StoreError {
    fn classify(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
                StoreError::UniqueViolation { constraint }
            }
            // SQLSTATE class 08 (connection exception), 57P01–57P03 (the server shutting down or starting).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")) =>
            {
                StoreError::Unavailable(error)
            }
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Database(error),
        }
    }

    /// Whether the database could not be reached (rather than refusing or failing the statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether the namespace was closed (the process is shutting down): loops that use it stop.
    pub fn is_closed(&self) -> bool {
        matches!(self, StoreError::Unavailable(sqlx::Error::PoolClosed) | StoreError::Database(sqlx::Error::PoolClosed))
    }
}

/// Rows as one JSON array of arrays: the one argument of a set-based statement (`select value ->> 0, …
/// from jsonb_each(?)`), so that a batch costs one statement however many rows it has. Rows are
/// serialised straight from what they borrow (tuples become arrays; ids, strings).
pub fn json_rows<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    Ok(serde_json::to_string(rows)?)
}

/// How long `/readyz` waits for a namespace's database before reporting it unreachable (an
/// orchestrator's probe gives up after about a second).
const READINESS_TIMEOUT: Duration = Duration::from_millis(800);

/// One native pool per engine; the enum is the only place engines differ.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to the native pool of whichever engine `$on` is.
macro_rules! on_pool {
    ($on:expr, $pool:ident => $body:expr) => {
        match $on {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
            Pool::MySql($pool) => $body,
        }
    };
}

/// [`on_pool!`] for a transaction's connection.
macro_rules! on_tx {
    ($on:expr, $tx:ident => $body:expr) => {
        match $on {
            TxInner::Sqlite($tx) => $body,
            TxInner::Postgres($tx) => $body,
            TxInner::MySql($tx) => $body,
        }
    };
}

/// A statement with its arguments bound, as `query` (`sqlx::query` or `sqlx::query_as::<_, T>`) builds it.
macro_rules! bound {
    ($query:expr, $sql:expr, $args:expr) => {
        $args.into_iter().fold($query($sql), |q, v| q.bind(v))
    };
}

/// A statement's static text by engine and address (pointer, length).
type TextKey = (Engine, usize, usize);
/// Statements as another engine than SQLite runs them, rewritten once each (by the address of their static
/// text) and kept: a process runs a fixed set of statements.
static ENGINE_TEXT: LazyLock<RwLock<HashMap<TextKey, &'static str>>> = LazyLock::new(Default::default);

fn engine_text(engine: Engine, sql: &'static str) -> &'static str {
    if engine == Engine::Sqlite {
        return sql;
    }
    let key = (engine, sql.as_ptr() as usize, sql.len());
    if let Some(text) = ENGINE_TEXT.read().ok().and_then(|texts| texts.get(&key).copied()) {
        return text;
    }
    let text: &'static str = Box::leak(translate(engine, sql).into_boxed_str());
    if let Ok(mut texts) = ENGINE_TEXT.write() {
        texts.insert(key, text);
    }
    text
}

/// How many rows one statement of [`Namespace::delete_in_slices`] deletes.
pub const DELETE_SLICE: i64 = 1_000;

/// How long after start a namespace is first trimmed: start-up has other work to do.
const FIRST_TRIM_AFTER: Duration = Duration::from_secs(60);

/// Keeps rows for `keep`: a minute after start, then every `every`, calls `trim` with the cutoff (Unix
/// milliseconds; what is older goes) and logs what it deleted, as `what` of `service`. Returns when the
/// namespace's pools have closed.
pub async fn trim_periodically<F, Fut>(service: &str, what: &str, keep: Duration, every: Duration, mut trim: F)
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut wait = FIRST_TRIM_AFTER;
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let before = now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        match trim(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(service, what, deleted, "old rows deleted"),
            Err(StoreError::Database(sqlx::Error::PoolClosed)) => return,
            Err(error) => tracing::warn!(service, what, error = %error, "trimming old rows failed"),
        }
    }
}

/// A service's own database namespace.
#[derive(Clone)]
pub struct Namespace {
    service: &'static str,
    engine: Engine,
    /// Readers: several connections, each reading the latest committed state.
    pool: Pool,
    /// The one writer connection. SQLite admits one writer at a time anyway; queueing writers here, in
    /// order, instead of letting them collide in SQLite's busy handler (which sleeps and retries, and
    /// cannot save a read transaction that tries to upgrade after another write committed) gives both
    /// higher throughput and no "database is locked" errors. On PostgreSQL and MariaDB it keeps the same
    /// guarantee: a namespace's write transactions run one after another.
    writer: Pool,
    migrations: Option<Migrations>,
    /// Tables this service's migrations create; every statement is checked against them in debug builds.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    owned_tables: Arc<HashSet<String>>,
    /// Woken when a transaction that published events commits, so the relay publishes them at once.
    outbox: Arc<tokio::sync::Notify>,
    /// Dropped with the last clone of the namespace, which stops SQLite's background checkpoints.
    _checkpointing: Option<Arc<tokio::sync::oneshot::Sender<()>>>,
    /// Statements already audited, by address, so each is parsed once.
    #[cfg(debug_assertions)]
    audited: Arc<std::sync::Mutex<HashSet<usize>>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("service", &self.service)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// Opens (creating if needed) the namespace at `location`. Does not migrate; see [`Namespace::migrate`].
    pub async fn open(
        service: &'static str,
        location: &Location,
        migrations: Option<Migrations>,
    ) -> Result<Self, StoreError> {
        let engine = location.engine();
        let (pool, writer, checkpointing) = match location {
            Location::SqliteFile(path) => {
                let (pool, writer, checkpointing) = sqlite::open(path).await?;
                (Pool::Sqlite(pool), Pool::Sqlite(writer), Some(Arc::new(checkpointing)))
            }
            Location::Postgres { url, schema } => {
                let (pool, writer) = postgres::open(url, schema).await?;
                (Pool::Postgres(pool), Pool::Postgres(writer), None)
            }
            Location::MySql { url, database } => {
                let (pool, writer) = mysql::open(url, database).await?;
                (Pool::MySql(pool), Pool::MySql(writer), None)
            }
        };
        let owned_tables = match migrations {
            Some(m) => audit::tables_created(m.for_engine(engine), engine).map_err(StoreError::Unparsable)?,
            None => HashSet::new(),
        };
        Ok(Self {
            service,
            engine,
            pool,
            writer,
            migrations,
            owned_tables: Arc::new(owned_tables),
            outbox: Arc::default(),
            _checkpointing: checkpointing,
            #[cfg(debug_assertions)]
            audited: Arc::default(),
        })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The engine the namespace lives on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Applies the kernel's tables (outbox, processed events, dead letters) and this service's pending
    /// migrations, each recorded in the namespace's own history.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let service = self.service;
        let failed = |source| StoreError::Migration { service, source };
        let mut kernel = Migrator::with_migrations(KERNEL_MIGRATIONS.for_engine(self.engine).iter().cloned().collect());
        kernel.dangerous_set_table_name(KERNEL_MIGRATIONS_TABLE);
        on_pool!(&self.writer, pool => kernel.run(pool).await.map_err(failed))?;
        let Some(migrations) = self.migrations else { return Ok(()) };
        let migrator = migrations.for_engine(self.engine);
        on_pool!(&self.writer, pool => migrator.run(pool).await.map_err(failed))
    }

    /// Resolves when a transaction that published events has committed.
    pub(crate) fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn readiness(&self) -> Result<(), String> {
        tokio::time::timeout(READINESS_TIMEOUT, self.check_ready())
            .await
            .unwrap_or_else(|_| Err(format!("database unreachable: no answer within {READINESS_TIMEOUT:?}")))
    }

    async fn check_ready(&self) -> Result<(), String> {
        let kernel_tables: Option<i64> = on_pool!(&self.pool, pool => {
            sqlx::query("select 1").execute(pool).await.map_err(|e| format!("database unreachable: {e}"))?;
            sqlx::query_scalar("select max(version) from _kernel_migrations where success")
                .fetch_one(pool)
                .await
                .map_err(|e| format!("event-bus tables missing: {e}"))?
        });
        if kernel_tables.is_none() {
            return Err("event-bus tables missing".to_owned());
        }
        let Some(migrations) = self.migrations else {
            return Ok(());
        };
        let expected = migrations.for_engine(self.engine).iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = on_pool!(&self.pool, pool => {
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
                .fetch_one(pool)
                .await
                .map_err(|e| format!("no migration history: {e}"))?
        });
        match applied {
            Some(v) if v >= expected => Ok(()),
            _ => Err(format!("migrations pending (expected version {expected}, applied {applied:?})")),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        on_pool!(&self.pool, pool => pool.close().await);
        on_pool!(&self.writer, pool => pool.close().await);
    }

    /// The text of `sql` for this namespace's engine, audited (in debug builds) against the tables the
    /// service owns.
    fn statement(&self, sql: &'static str) -> Result<&'static str, StoreError> {
        // Checked as written, in SQLite's dialect, whichever engine runs it.
        self.audit(sql)?;
        Ok(self.kernel_statement(sql))
    }

    /// [`Namespace::statement`] for the kernel's own statements (event-bus tables), which the ownership
    /// audit does not apply to.
    fn kernel_statement(&self, sql: &'static str) -> &'static str {
        engine_text(self.engine, sql)
    }

    /// Checks (once per statement, in debug builds) that `sql` names only tables the service's migrations
    /// create.
    fn audit(&self, sql: &'static str) -> Result<(), StoreError> {
        #[cfg(debug_assertions)]
        {
            let key = sql.as_ptr() as usize;
            if self.audited.lock().map(|seen| seen.contains(&key)).unwrap_or(false) {
                return Ok(());
            }
            audit::check_owned(self.service, &self.owned_tables, sql, Engine::Sqlite)?;
            if let Ok(mut seen) = self.audited.lock() {
                seen.insert(key);
            }
        }
        #[cfg(not(debug_assertions))]
        let _ = sql;
        Ok(())
    }

    /// Runs a statement; returns the number of rows it affected.
    pub async fn execute(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.statement(sql)?;
        self.run(sql, args).await
    }

    async fn run(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        on_pool!(&self.writer, pool => {
            Ok(bound!(sqlx::query, sql, args).execute(pool).await.map_err(StoreError::classify)?.rows_affected())
        })
    }

    /// Deletes in slices: runs `sql` — a delete of at most [`DELETE_SLICE`] rows, whose last placeholder
    /// takes that number after `args` — until a run deletes fewer; returns how many rows went. Each run is a
    /// short write transaction of its own, so the namespace's other writers wait for one slice at a time.
    pub async fn delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.statement(sql)?;
        self.slices(sql, args).await
    }

    /// [`Namespace::delete_in_slices`] for the kernel's own tables.
    pub(crate) async fn kernel_delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.kernel_statement(sql);
        self.slices(sql, args).await
    }

    async fn slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let mut slice_args = args.clone();
            slice_args.push(Value::from(DELETE_SLICE));
            let slice = self.run(sql, slice_args).await?;
            deleted += slice;
            if slice < DELETE_SLICE as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Fetches at most one row.
    pub async fn fetch_optional<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>, StoreError> {
        let sql = self.statement(sql)?;
        on_pool!(&self.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_optional(pool).await)
            .map_err(StoreError::classify)
    }

    /// Fetches every row.
    pub async fn fetch_all<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        let sql = self.statement(sql)?;
        self.read_all(sql, args).await
    }

    async fn read_all<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        on_pool!(&self.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_all(pool).await)
            .map_err(StoreError::classify)
    }

    /// The kernel's own statements (event-bus tables), which the ownership audit does not apply to.
    pub(crate) async fn kernel_execute(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.kernel_statement(sql);
        self.run(sql, args).await
    }

    pub(crate) async fn kernel_fetch_all<T: Row>(
        &self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = self.kernel_statement(sql);
        self.read_all(sql, args).await
    }

    pub(crate) async fn kernel_fetch_one<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<T, StoreError> {
        let sql = self.kernel_statement(sql);
        on_pool!(&self.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_one(pool).await)
            .map_err(StoreError::classify)
    }

    /// Starts a write transaction on the namespace's one writer connection; dropped without [`Tx::commit`]
    /// it rolls back. It takes the namespace's write lock at once (SQLite's `begin immediate`, PostgreSQL's
    /// advisory lock, MariaDB's `_write_lock` row), so a transaction never fails halfway when another process (the CLI) writes too; it
    /// waits for it instead.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let inner = match &self.writer {
            Pool::Sqlite(pool) => {
                TxInner::Sqlite(pool.begin_with("begin immediate").await.map_err(StoreError::classify)?)
            }
            Pool::Postgres(pool) => {
                TxInner::Postgres(pool.begin_with(postgres::BEGIN).await.map_err(StoreError::classify)?)
            }
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.map_err(StoreError::classify)?;
                sqlx::query(mysql::LOCK).execute(&mut *tx).await.map_err(StoreError::classify)?;
                TxInner::MySql(tx)
            }
        };
        Ok(Tx { namespace: self, inner, published: false, on_commit: Vec::new() })
    }
}

/// A transaction in one namespace. It cannot span namespaces: that is the point.
pub struct Tx<'a> {
    namespace: &'a Namespace,
    inner: TxInner,
    /// Whether this transaction wrote to the outbox (the relay is woken on commit).
    published: bool,
    /// What to run once the transaction has committed (never if it rolls back).
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Tx<'_> {
    /// The service whose namespace this transaction is in.
    pub(crate) fn service(&self) -> &'static str {
        self.namespace.service
    }

    /// The engine the transaction runs on.
    pub fn engine(&self) -> Engine {
        self.namespace.engine
    }

    /// Notes that this transaction wrote to the outbox, so that the relay is woken when it commits.
    pub(crate) fn mark_published(&mut self) {
        self.published = true;
    }

    pub async fn execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.namespace.statement(sql)?;
        self.run(sql, args).await
    }

    async fn run(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        on_tx!(&mut self.inner, tx => {
            Ok(bound!(sqlx::query, sql, args).execute(&mut **tx).await.map_err(StoreError::classify)?.rows_affected())
        })
    }

    pub async fn fetch_optional<T: Row>(
        &mut self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Option<T>, StoreError> {
        let sql = self.namespace.statement(sql)?;
        on_tx!(&mut self.inner, tx => bound!(sqlx::query_as::<_, T>, sql, args).fetch_optional(&mut **tx).await)
            .map_err(StoreError::classify)
    }

    pub async fn fetch_all<T: Row>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        let sql = self.namespace.statement(sql)?;
        self.read_all(sql, args).await
    }

    async fn read_all<T: Row>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        on_tx!(&mut self.inner, tx => bound!(sqlx::query_as::<_, T>, sql, args).fetch_all(&mut **tx).await)
            .map_err(StoreError::classify)
    }

    pub(crate) async fn kernel_execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.namespace.kernel_statement(sql);
        self.run(sql, args).await
    }

    pub(crate) async fn kernel_fetch_all<T: Row>(
        &mut self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = self.namespace.kernel_statement(sql);
        self.read_all(sql, args).await
    }

    /// Runs `hook` after this transaction commits, e.g. to wake readers of what it wrote. Hooks of a
    /// transaction that rolls back are dropped unrun.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(hook));
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        on_tx!(self.inner, tx => tx.commit().await)?;
        if self.published {
            self.namespace.outbox.notify_one();
        }
        for hook in self.on_commit {
            hook();
        }
        Ok(())
    }
}

/// Declares a service's store, `pub struct $name`: its handle on its own namespace, with `new` and
/// `namespace`; the service's SQL is its methods, in its `store.rs`.
#[macro_export]
macro_rules! service_store {
    ($name:ident) => {
        /// This service's handle on its namespace; all of the service's SQL is its methods.
        #[derive(Clone)]
        pub struct $name {
            db: $crate::store::Namespace,
        }

        impl $name {
            pub fn new(db: $crate::store::Namespace) -> Self {
                Self { db }
            }

            pub fn namespace(&self) -> &$crate::store::Namespace {
                &self.db
            }
        }
    };
}

#[cfg(test)]
mod tests;
