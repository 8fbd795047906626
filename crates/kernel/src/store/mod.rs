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
pub mod moves;
mod mysql;
mod postgres;
mod provision;
mod sqlite;
pub mod transfer;
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
    /// A move of the namespace (`omnidesk data move`) is under way: writes wait until it ends.
    #[error("the namespace is being moved; writes resume when the move ends")]
    Moving,
    /// This copy of the namespace was moved elsewhere; the process switches to the new one within a second.
    #[error("the namespace has moved; its service writes to the new location")]
    Moved,
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
            // Raised by `_kernel_write_fence()` at a PostgreSQL copy that a move has left.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("OD001") => StoreError::Moved,
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

    /// Whether a move of the namespace refused the write (under way, or just done): retried later it
    /// succeeds.
    pub fn is_moving(&self) -> bool {
        matches!(self, StoreError::Moving | StoreError::Moved)
    }

    /// Whether the same call can succeed later without anything being changed: the database was
    /// unreachable or the namespace is moving. An event whose handling failed so is redelivered, never
    /// dead-lettered.
    pub fn is_transient(&self) -> bool {
        self.is_unavailable() || self.is_moving()
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

/// A service's own database namespace. Clones share it; [`Namespace::switch_to`] moves every clone to
/// another location at once (`omnidesk data move`).
#[derive(Clone)]
pub struct Namespace {
    service: &'static str,
    shared: Arc<Shared>,
}

/// What every clone of a namespace shares.
struct Shared {
    /// Where the namespace lives now, and its pools; replaced whole by a move.
    backend: RwLock<Arc<Backend>>,
    migrations: Option<Migrations>,
    /// Whether writes are refused because a move is under way ([`moves::Gate`]).
    gate: moves::Gate,
    /// Woken when a transaction that published events commits, so the relay publishes them at once.
    outbox: Arc<tokio::sync::Notify>,
    /// Statements already audited, by engine and address, so each is parsed once.
    #[cfg(debug_assertions)]
    audited: std::sync::Mutex<HashSet<(Engine, usize)>>,
}

/// A namespace at one location: its engine and pools.
struct Backend {
    location: Location,
    engine: Engine,
    /// Readers: several connections, each reading the latest committed state.
    pool: Pool,
    /// The one writer connection. SQLite admits one writer at a time anyway; queueing writers here, in
    /// order, instead of letting them collide in SQLite's busy handler (which sleeps and retries, and
    /// cannot save a read transaction that tries to upgrade after another write committed) gives both
    /// higher throughput and no "database is locked" errors. On PostgreSQL and MariaDB it keeps the same
    /// guarantee: a namespace's write transactions run one after another.
    writer: Pool,
    /// Tables this service's migrations create for this engine; every statement is checked against them in
    /// debug builds.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    owned_tables: HashSet<String>,
    /// Dropped with the backend, which stops SQLite's background checkpoints.
    _checkpointing: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Backend {
    async fn open(location: &Location, migrations: Option<Migrations>) -> Result<Self, StoreError> {
        let engine = location.engine();
        let (pool, writer, checkpointing) = match location {
            Location::SqliteFile(path) => {
                let (pool, writer, checkpointing) = sqlite::open(path).await?;
                (Pool::Sqlite(pool), Pool::Sqlite(writer), Some(checkpointing))
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
        Ok(Self { location: location.clone(), engine, pool, writer, owned_tables, _checkpointing: checkpointing })
    }

    async fn close(&self) {
        on_pool!(&self.pool, pool => pool.close().await);
        on_pool!(&self.writer, pool => pool.close().await);
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("service", &self.service)
            .field("location", &self.backend().location)
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
        let backend = Backend::open(location, migrations).await?;
        Ok(Self {
            service,
            shared: Arc::new(Shared {
                backend: RwLock::new(Arc::new(backend)),
                migrations,
                gate: moves::Gate::default(),
                outbox: Arc::default(),
                #[cfg(debug_assertions)]
                audited: Default::default(),
            }),
        })
    }

    /// Where the namespace lives now, and its pools.
    fn backend(&self) -> Arc<Backend> {
        match self.shared.backend.read() {
            Ok(backend) => backend.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Where the namespace lives now.
    pub fn location(&self) -> Location {
        self.backend().location.clone()
    }

    /// Moves every clone of this namespace to `location` (opened and migrated here), whose data a move has
    /// copied: reads and writes begun from now on go there; those under way finish where they started.
    pub async fn switch_to(&self, location: &Location) -> Result<(), StoreError> {
        let backend = Arc::new(Backend::open(location, self.shared.migrations).await?);
        migrate_backend(self.service, &backend, self.shared.migrations).await?;
        let old = {
            let mut current = match self.shared.backend.write() {
                Ok(current) => current,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *current, backend)
        };
        // The old pools close once what is using them is done.
        tokio::spawn(async move { old.close().await });
        Ok(())
    }

    /// Whether writes are refused now because a move is under way.
    pub(crate) fn gate(&self) -> &moves::Gate {
        &self.shared.gate
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The engine the namespace lives on.
    pub fn engine(&self) -> Engine {
        self.backend().engine
    }

    /// Applies the kernel's tables (outbox, processed events, dead letters, moves) and this service's
    /// pending migrations, each recorded in the namespace's own history.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_backend(self.service, &self.backend(), self.shared.migrations).await
    }

    /// Resolves when a transaction that published events has committed.
    pub(crate) fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.shared.outbox.clone()
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn readiness(&self) -> Result<(), String> {
        tokio::time::timeout(READINESS_TIMEOUT, self.check_ready())
            .await
            .unwrap_or_else(|_| Err(format!("database unreachable: no answer within {READINESS_TIMEOUT:?}")))
    }

    async fn check_ready(&self) -> Result<(), String> {
        let backend = self.backend();
        let kernel_tables: Option<i64> = on_pool!(&backend.pool, pool => {
            sqlx::query("select 1").execute(pool).await.map_err(|e| format!("database unreachable: {e}"))?;
            sqlx::query_scalar("select max(version) from _kernel_migrations where success")
                .fetch_one(pool)
                .await
                .map_err(|e| format!("event-bus tables missing: {e}"))?
        });
        if kernel_tables.is_none() {
            return Err("event-bus tables missing".to_owned());
        }
        let Some(migrations) = self.shared.migrations else {
            return Ok(());
        };
        let expected = migrations.for_engine(backend.engine).iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = on_pool!(&backend.pool, pool => {
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
        self.backend().close().await;
    }

    /// The text of `sql` for `backend`'s engine, audited (in debug builds) against the tables the service
    /// owns there.
    fn statement(&self, backend: &Backend, sql: &'static str) -> Result<&'static str, StoreError> {
        // Checked as written, in SQLite's dialect, whichever engine runs it.
        self.audit(backend, sql)?;
        Ok(engine_text(backend.engine, sql))
    }

    /// Checks (once per statement and engine, in debug builds) that `sql` names only tables the service's
    /// migrations create.
    fn audit(&self, backend: &Backend, sql: &'static str) -> Result<(), StoreError> {
        #[cfg(debug_assertions)]
        {
            let key = (backend.engine, sql.as_ptr() as usize);
            if self.shared.audited.lock().map(|seen| seen.contains(&key)).unwrap_or(false) {
                return Ok(());
            }
            audit::check_owned(self.service, &backend.owned_tables, sql, Engine::Sqlite)?;
            if let Ok(mut seen) = self.shared.audited.lock() {
                seen.insert(key);
            }
        }
        #[cfg(not(debug_assertions))]
        let _ = (backend, sql);
        Ok(())
    }

    /// Runs a statement in a write transaction of its own; returns the number of rows it affected.
    pub async fn execute(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.run(Writer::Service, sql, args, true).await
    }

    /// A statement as a write transaction of its own, so that it takes the namespace's lock (and its
    /// fence) like every other write.
    async fn run(&self, writer: Writer, sql: &'static str, args: Vec<Value>, audited: bool) -> Result<u64, StoreError> {
        let mut tx = self.begin_as(writer).await?;
        let ran = match if audited { self.statement(&tx.backend, sql) } else { Ok(engine_text(tx.backend.engine, sql)) }
        {
            Ok(sql) => tx.run(sql, args).await,
            Err(error) => Err(error),
        };
        match ran {
            Ok(affected) => tx.commit().await.map(|()| affected),
            // Rolled back now, not when the connection is next used: the lock is released at once.
            Err(error) => {
                tx.rollback().await;
                Err(error)
            }
        }
    }

    /// Deletes in slices: runs `sql` — a delete of at most [`DELETE_SLICE`] rows, whose last placeholder
    /// takes that number after `args` — until a run deletes fewer; returns how many rows went. Each run is a
    /// short write transaction of its own, so the namespace's other writers wait for one slice at a time.
    pub async fn delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.slices(Writer::Service, sql, args, true).await
    }

    /// [`Namespace::delete_in_slices`] for the kernel's own tables.
    pub(crate) async fn kernel_delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.slices(Writer::Kernel, sql, args, false).await
    }

    async fn slices(
        &self,
        writer: Writer,
        sql: &'static str,
        args: Vec<Value>,
        audited: bool,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let mut slice_args = args.clone();
            slice_args.push(Value::from(DELETE_SLICE));
            let slice = self.run(writer, sql, slice_args, audited).await?;
            deleted += slice;
            if slice < DELETE_SLICE as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Fetches at most one row.
    pub async fn fetch_optional<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>, StoreError> {
        let backend = self.backend();
        let sql = self.statement(&backend, sql)?;
        on_pool!(&backend.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_optional(pool).await)
            .map_err(StoreError::classify)
    }

    /// Fetches every row.
    pub async fn fetch_all<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        let backend = self.backend();
        let sql = self.statement(&backend, sql)?;
        read_all(&backend, sql, args).await
    }

    /// The kernel's own statements (event-bus tables), which the ownership audit does not apply to.
    pub(crate) async fn kernel_execute(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.run(Writer::Kernel, sql, args, false).await
    }

    pub(crate) async fn kernel_fetch_all<T: Row>(
        &self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<T>, StoreError> {
        let backend = self.backend();
        let sql = engine_text(backend.engine, sql);
        read_all(&backend, sql, args).await
    }

    pub(crate) async fn kernel_fetch_one<T: Row>(&self, sql: &'static str, args: Vec<Value>) -> Result<T, StoreError> {
        let backend = self.backend();
        let sql = engine_text(backend.engine, sql);
        on_pool!(&backend.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_one(pool).await)
            .map_err(StoreError::classify)
    }

    /// Starts a write transaction on the namespace's one writer connection; dropped without [`Tx::commit`]
    /// it rolls back. It takes the namespace's write lock at once (SQLite's `begin immediate`, PostgreSQL's
    /// advisory lock, MariaDB's `_write_lock` row), so a transaction never fails halfway when another
    /// process (the CLI) writes too; it waits for it instead. It is refused with [`StoreError::Moving`]
    /// while a move of the namespace is under way, and with [`StoreError::Moved`] at a copy a move has left.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        self.begin_as(Writer::Service).await
    }

    pub(crate) async fn begin_as(&self, writer: Writer) -> Result<Tx<'_>, StoreError> {
        if !self.shared.gate.admits(writer) {
            return Err(StoreError::Moving);
        }
        let backend = self.backend();
        let inner = match &backend.writer {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await.map_err(StoreError::classify)?;
                let moved: bool =
                    sqlx::query_scalar(sqlite::FENCE).fetch_one(&mut *tx).await.map_err(StoreError::classify)?;
                if moved {
                    return Err(StoreError::Moved);
                }
                TxInner::Sqlite(tx)
            }
            Pool::Postgres(pool) => {
                TxInner::Postgres(pool.begin_with(postgres::BEGIN).await.map_err(StoreError::classify)?)
            }
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.map_err(StoreError::classify)?;
                let locked: Option<i64> =
                    sqlx::query_scalar(mysql::LOCK).fetch_optional(&mut *tx).await.map_err(StoreError::classify)?;
                if locked.is_none() {
                    return Err(StoreError::Moved);
                }
                TxInner::MySql(tx)
            }
        };
        Ok(Tx { namespace: self, backend, inner, published: false, on_commit: Vec::new() })
    }
}

impl Namespace {
    /// Runs a statement built at run time (the copy's, over tables found in the catalogue) on the readers.
    /// `kinds` are the declared kinds of the columns read, where known: text and bytes are told apart by
    /// them (MariaDB reports a text column of a binary collation as bytes); other columns by their values.
    pub(crate) async fn raw_fetch(
        &self,
        sql: String,
        args: Vec<Value>,
        kinds: &[Kind],
    ) -> Result<Vec<Vec<transfer::Cell>>, StoreError> {
        let backend = self.backend();
        let sql = sqlx::AssertSqlSafe(sql);
        let rows = on_pool!(&backend.pool, pool => {
            bound!(sqlx::query, sql, args)
                .fetch_all(pool)
                .await
                .map_err(StoreError::classify)?
                .iter()
                .map(|row| cells(row, kinds))
                .collect::<Result<Vec<_>, _>>()
        });
        rows.map_err(StoreError::Database)
    }

    /// Runs a statement built at run time (the copy's DDL) on the writer, outside any transaction.
    pub(crate) async fn raw_execute(&self, sql: String) -> Result<(), StoreError> {
        let backend = self.backend();
        let sql = sqlx::AssertSqlSafe(sql);
        on_pool!(&backend.writer, pool => sqlx::query(sql).execute(pool).await.map(drop).map_err(StoreError::classify))
    }
}

/// A row's values as [`transfer::Cell`]s: text and bytes by the column's declared kind when known, else
/// by the type each value has (SQLite's are per value).
fn cells<R>(row: &R, kinds: &[Kind]) -> Result<Vec<transfer::Cell>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use sqlx::{TypeInfo as _, ValueRef as _};
    use transfer::Cell;
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            match kinds.get(i) {
                Some(Kind::Text) => return Ok(Cell::Text(row.try_get_unchecked::<String, _>(i)?)),
                Some(Kind::Bytes) => return Ok(Cell::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i)?)),
                _ => {}
            }
            // Any case, without an allocation per value (a copy reads millions).
            let type_info = raw.type_info();
            let name = type_info.name().as_bytes();
            let has = |part: &str| name.windows(part.len()).any(|w| w.eq_ignore_ascii_case(part.as_bytes()));
            Ok(if has("INT") {
                Cell::Int(row.try_get_unchecked::<i64, _>(i)?)
            } else if has("BOOL") {
                Cell::Int(i64::from(row.try_get_unchecked::<bool, _>(i)?))
            } else if ["REAL", "FLOAT", "DOUBLE"].iter().any(|t| has(t)) {
                Cell::Real(row.try_get_unchecked::<f64, _>(i)?)
            } else if has("BYTEA") || (has("BLOB") && !has("TEXT")) || has("BINARY") {
                Cell::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i)?)
            } else {
                Cell::Text(row.try_get_unchecked::<String, _>(i)?)
            })
        })
        .collect()
}

impl Tx<'_> {
    /// Runs a statement built at run time (the copy's inserts) in this transaction.
    pub(crate) async fn raw_execute(&mut self, sql: String, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = sqlx::AssertSqlSafe(sql);
        on_tx!(&mut self.inner, tx => {
            Ok(bound!(sqlx::query, sql, args).execute(&mut **tx).await.map_err(StoreError::classify)?.rows_affected())
        })
    }

    /// Loads `data`, rows in PostgreSQL's COPY text format, with `statement` (`copy … from stdin`) in this
    /// transaction: the copy's bulk path where the engine has one over the wire (PostgreSQL's).
    pub(crate) async fn copy_in(&mut self, statement: &str, data: Vec<u8>) -> Result<u64, StoreError> {
        let TxInner::Postgres(tx) = &mut self.inner else {
            return Err(StoreError::Unsupported(format!("copy from stdin on {:?}", self.backend.engine)));
        };
        let mut copy = tx.copy_in_raw(statement).await.map_err(StoreError::classify)?;
        if let Err(error) = copy.send(data).await {
            // The connection is usable again only once the copy is ended; the send's error is the one to tell.
            let _ = copy.abort("the copy's data could not be sent").await;
            return Err(StoreError::classify(error));
        }
        copy.finish().await.map_err(StoreError::classify)
    }
}

/// Who asks to write, which decides what a move under way lets through ([`moves::Gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// The service's own writes, and the event consumers' (which are the service's too).
    Service,
    /// The event bus's bookkeeping: the relay stamping what it published, trims, dead letters.
    Kernel,
}

async fn read_all<T: Row>(backend: &Backend, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
    on_pool!(&backend.pool, pool => bound!(sqlx::query_as::<_, T>, sql, args).fetch_all(pool).await)
        .map_err(StoreError::classify)
}

/// Applies the kernel's migrations and then the service's (if any) at `backend`.
async fn migrate_backend(
    service: &'static str,
    backend: &Backend,
    migrations: Option<Migrations>,
) -> Result<(), StoreError> {
    let failed = |source| StoreError::Migration { service, source };
    let mut kernel = Migrator::with_migrations(KERNEL_MIGRATIONS.for_engine(backend.engine).iter().cloned().collect());
    kernel.dangerous_set_table_name(KERNEL_MIGRATIONS_TABLE);
    on_pool!(&backend.writer, pool => kernel.run(pool).await.map_err(failed))?;
    let Some(migrations) = migrations else { return Ok(()) };
    let migrator = migrations.for_engine(backend.engine);
    on_pool!(&backend.writer, pool => migrator.run(pool).await.map_err(failed))
}

/// A transaction in one namespace. It cannot span namespaces: that is the point.
pub struct Tx<'a> {
    namespace: &'a Namespace,
    /// Where it runs: a move switching the namespace meanwhile does not move it.
    backend: Arc<Backend>,
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
        self.backend.engine
    }

    /// Notes that this transaction wrote to the outbox, so that the relay is woken when it commits.
    pub(crate) fn mark_published(&mut self) {
        self.published = true;
    }

    pub async fn execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = self.namespace.statement(&self.backend, sql)?;
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
        let sql = self.namespace.statement(&self.backend, sql)?;
        on_tx!(&mut self.inner, tx => bound!(sqlx::query_as::<_, T>, sql, args).fetch_optional(&mut **tx).await)
            .map_err(StoreError::classify)
    }

    pub async fn fetch_all<T: Row>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        let sql = self.namespace.statement(&self.backend, sql)?;
        self.read_all(sql, args).await
    }

    async fn read_all<T: Row>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError> {
        on_tx!(&mut self.inner, tx => bound!(sqlx::query_as::<_, T>, sql, args).fetch_all(&mut **tx).await)
            .map_err(StoreError::classify)
    }

    pub(crate) async fn kernel_execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let sql = engine_text(self.backend.engine, sql);
        self.run(sql, args).await
    }

    pub(crate) async fn kernel_fetch_all<T: Row>(
        &mut self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = engine_text(self.backend.engine, sql);
        self.read_all(sql, args).await
    }

    /// Runs `hook` after this transaction commits, e.g. to wake readers of what it wrote. Hooks of a
    /// transaction that rolls back are dropped unrun.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(hook));
    }

    /// Rolls back now (dropping a transaction rolls it back when its connection is next used).
    pub async fn rollback(self) {
        if let Err(error) = on_tx!(self.inner, tx => tx.rollback().await) {
            tracing::debug!(error = %error, "rolling back failed; the connection is discarded");
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        on_tx!(self.inner, tx => tx.commit().await).map_err(StoreError::classify)?;
        if self.published {
            self.namespace.shared.outbox.notify_one();
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
