//! Data namespaces (DESIGN §5): each service owns one, with its own migrations and migration history, and
//! nothing else touches it.
//!
//! Services never see a driver type. They write portable, lowercase SQL with `?` placeholders in their
//! store (`store.rs` or `store/`, declared with [`service_store!`](crate::service_store)), bind [`Value`]s
//! with [`args!`](crate::args) (ids and enums directly, once made text columns by
//! [`stored_as_text!`](crate::stored_as_text)), and read rows into `#[derive(sqlx::FromRow)]` structs. The
//! engine behind a [`Namespace`] is chosen by configuration: SQLite today (one file per service, in WAL
//! mode); PostgreSQL and MariaDB are further variants of [`Pool`] that service code does not notice. Every
//! statement a namespace runs is checked against the tables its migrations create, in debug builds
//! ([`audit`]). The event bus's tables are created in every namespace by the kernel's own migrations
//! (`src/store/migrations/`, history in `_kernel_migrations`).
//!
//! - Reads run on a pool of readers; writes and transactions are queued, in order, on one writer
//!   connection, and [`Namespace::begin`] takes the write lock at once (`begin immediate`). A transaction
//!   runs hooks after it commits ([`Tx::after_commit`]: the realtime feed's wake-up, the reply worker's).
//! - Set-based statements take their rows as one JSON array argument ([`json_rows`], `select … from
//!   jsonb_each(?)`: each row's `value` stays binary JSON, so `value ->> n` does not parse the row again),
//!   so a batch costs one statement per step whatever its size.
//! - Retention: [`Namespace::delete_in_slices`] deletes in short write transactions of [`DELETE_SLICE`]
//!   rows each, so other writers wait for one slice at a time, and [`trim_periodically`] is the loop that
//!   runs a trim, hourly (the event bus's, the realtime feed's, the user service's revocations).
//! - No memory map: in WAL mode SQLite drops a connection's map at every read transaction after another
//!   connection's write, which under steady writes costs an munmap on nearly every transaction.
//! - The WAL is checkpointed by a background task, off the writer's commits: on a connection of its own
//!   and then, briefly, through the writer, so that the WAL starts over instead of growing (left to the
//!   automatic checkpoint, it grew until a commit paid for the checkpoint and the truncation stalled the
//!   writer).

pub mod audit;
mod value;

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

/// The kernel's own tables in every namespace: the event bus's outbox, processed events and dead letters.
pub(crate) static KERNEL_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// Where the kernel keeps the history of [`KERNEL_MIGRATIONS`] in each namespace.
pub(crate) const KERNEL_MIGRATIONS_TABLE: &str = "_kernel_migrations";

pub use value::Value;

/// The table in every namespace where the migration history lives (sqlx's own bookkeeping).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A service's migrations, one set per engine.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
}

/// Why a storage call failed. Services map `UniqueViolation` to 409; the rest are internal errors.
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
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("migrating namespace `{service}`: {source}")]
    Migration { service: &'static str, source: sqlx::migrate::MigrateError },
}

impl StoreError {
    fn classify(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
            return StoreError::UniqueViolation { constraint };
        }
        StoreError::Database(error)
    }
}

/// WAL pages after which the committing writer checkpoints itself (64 MiB of 4 KiB pages).
const WAL_AUTOCHECKPOINT: u32 = 16_384;

/// The size a WAL file is cut back to when it starts over (bytes): the automatic checkpoint's threshold, so
/// that a WAL kept within it by the background checkpoints is never truncated. Truncating is not free:
/// the writer waits for the freed blocks (on a filesystem mounted with `discard`, for their discard),
/// and the next round has to allocate them again while a checkpoint's fsync holds the file's block map.
const JOURNAL_SIZE_LIMIT: u64 = WAL_AUTOCHECKPOINT as u64 * 4096;

/// How often the WAL is checkpointed in the background (four times as often in the kernel's own tests,
/// which watch several rounds).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(if cfg!(test) { 50 } else { 200 });

/// A background checkpoint that took no longer than this left little for the writer's checkpoint to copy.
const CHECKPOINT_CAUGHT_UP: Duration = Duration::from_millis(1);

/// How many background checkpoints a round runs at most before the writer's.
const CHECKPOINT_PASSES: usize = 8;

/// Copies committed WAL frames back into the database file every [`CHECKPOINT_EVERY`], off the
/// writer's commits, so that the WAL starts over instead of growing, until the namespace is dropped
/// (`stop` resolves) or its pools close.
///
/// A round is passive checkpoints on a connection of its own, then one through the writer connection.
/// The first ones do the work (copying pages, and the fsyncs of the WAL and the database file) while the
/// writer goes on appending; each copies what was appended during the one before, so they shrink, and the
/// round moves on once one took no longer than [`CHECKPOINT_CAUGHT_UP`]. They cannot by themselves let the
/// WAL start over: SQLite restarts the WAL only in a write transaction that began when every frame had
/// been copied back, and under steady writes frames are always appended while a checkpoint runs. The last
/// one, between two write transactions, copies the little appended since, and the next write transaction
/// finds the WAL fully copied and writes from its start again. Without it the WAL grew until the automatic
/// checkpoint ran inside a commit, and the truncation that followed stalled the writer (measured: the help
/// desk's end-to-end p99 was ~50 ms at 1,000 messages/s).
async fn checkpoint_in_background(
    mut connection: sqlx::SqliteConnection,
    writer: SqlitePool,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !writer.is_closed() {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = checkpoint_round(&mut connection, &writer).await
            && !writer.is_closed()
        {
            tracing::debug!(error = %error, "background WAL checkpoint failed");
        }
    }
}

async fn checkpoint_round(connection: &mut sqlx::SqliteConnection, writer: &SqlitePool) -> Result<(), sqlx::Error> {
    const CHECKPOINT: &str = "pragma wal_checkpoint(passive)";
    for _ in 0..CHECKPOINT_PASSES {
        let started = std::time::Instant::now();
        sqlx::query(CHECKPOINT).execute(&mut *connection).await?;
        if started.elapsed() <= CHECKPOINT_CAUGHT_UP {
            break;
        }
    }
    sqlx::query(CHECKPOINT).execute(writer).await.map(drop)
}

/// Rows as one JSON array of arrays: the one argument of a set-based statement (`select value ->> 0, …
/// from jsonb_each(?)`), so that a batch costs one statement however many rows it has. Rows are
/// serialised straight from what they borrow (tuples become arrays; ids, strings).
pub fn json_rows<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    Ok(serde_json::to_string(rows)?)
}

/// One native pool per engine; the enum is the only place engines differ.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
}

/// Where a namespace lives, parsed from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    SqliteFile(std::path::PathBuf),
}

impl Location {
    /// The default location of `service`'s namespace under the data directory.
    pub fn default_for(data_dir: &Path, service: &str) -> Self {
        Location::SqliteFile(data_dir.join(format!("{service}.db")))
    }

    /// Whether a database is there already (for commands that only read, which must not create one).
    pub fn exists(&self) -> bool {
        match self {
            Location::SqliteFile(path) => path.exists(),
        }
    }

    /// Parses a database URL. Only `sqlite:` is supported in this build.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("a sqlite URL needs a file path, e.g. sqlite://data/user.db".to_owned());
            }
            return Ok(Location::SqliteFile(path.into()));
        }
        let scheme = url.split(':').next().unwrap_or(url);
        Err(format!("unsupported database scheme `{scheme}`; this build supports sqlite://PATH"))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
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
    /// Readers: several connections, each reading the latest committed state (WAL).
    pool: Pool,
    /// The one writer connection. SQLite admits one writer at a time anyway; queueing writers here, in
    /// order, instead of letting them collide in SQLite's busy handler (which sleeps and retries, and
    /// cannot save a read transaction that tries to upgrade after another write committed) gives both
    /// higher throughput and no "database is locked" errors.
    writer: Pool,
    migrations: Option<Migrations>,
    /// Tables this service's migrations create; every statement is checked against them in debug builds.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    owned_tables: Arc<HashSet<String>>,
    /// Woken when a transaction that published events commits, so the relay publishes them at once.
    outbox: Arc<tokio::sync::Notify>,
    /// Dropped with the last clone of the namespace, which stops its background checkpoints.
    _checkpointing: Arc<tokio::sync::oneshot::Sender<()>>,
    /// Statements already audited, by address, so each is parsed once.
    #[cfg(debug_assertions)]
    audited: Arc<std::sync::Mutex<HashSet<usize>>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("service", &self.service).finish_non_exhaustive()
    }
}

impl Namespace {
    /// Opens (creating if needed) the namespace at `location`. Does not migrate; see [`Namespace::migrate`].
    pub async fn open(
        service: &'static str,
        location: &Location,
        migrations: Option<Migrations>,
    ) -> Result<Self, StoreError> {
        let (pool, writer, checkpointing) = match location {
            Location::SqliteFile(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                }
                let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    // No memory map. In WAL mode SQLite unmaps a connection's whole map at the start of
                    // every read transaction after another connection has written
                    // (`pagerBeginReadTransaction`) and maps it again at the next page: under steady
                    // writes, an munmap (with its TLB shootdown across the cores, under the process-wide
                    // mmap lock) on nearly every transaction, while recently written pages are read from
                    // the WAL with pread() either way. Without it the help desk's ingest takes less CPU
                    // per message (docs/benchmarks.md, session 7).
                    .pragma("mmap_size", "0")
                    // Statement journals (multi-row statements inside a transaction) and temporary b-trees
                    // in memory rather than in temporary files.
                    .pragma("temp_store", "memory")
                    // The WAL is copied back into the database by `checkpoint_in_background`, off the
                    // writer's commits; the automatic checkpoint, which the committing writer pays for, is
                    // only a backstop should that fall behind.
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string())
                    // After a checkpoint lets the WAL start over, its file is cut back to this size.
                    .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string());
                let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
                // Readers beyond the cores only contend: SQLite work is CPU-bound here.
                let readers = std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 8));
                let pool = SqlitePoolOptions::new()
                    .max_connections(u32::try_from(readers).unwrap_or(4))
                    .connect_with(options.clone())
                    .await?;
                let (checkpointing, stop_checkpointing) = tokio::sync::oneshot::channel();
                let checkpointer = sqlx::ConnectOptions::connect(&options).await?;
                tokio::spawn(checkpoint_in_background(checkpointer, writer.clone(), stop_checkpointing));
                (Pool::Sqlite(pool), Pool::Sqlite(writer), checkpointing)
            }
        };
        let owned_tables = match migrations {
            Some(m) => audit::tables_created(m.sqlite).map_err(StoreError::Unparsable)?,
            None => HashSet::new(),
        };
        Ok(Self {
            service,
            pool,
            writer,
            migrations,
            owned_tables: Arc::new(owned_tables),
            outbox: Arc::default(),
            _checkpointing: Arc::new(checkpointing),
            #[cfg(debug_assertions)]
            audited: Arc::default(),
        })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Applies the kernel's tables (outbox, processed events, dead letters) and this service's pending
    /// migrations, each recorded in the namespace's own history.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let service = self.service;
        let Pool::Sqlite(pool) = &self.writer;
        let mut kernel = Migrator::with_migrations(KERNEL_MIGRATIONS.iter().cloned().collect());
        kernel.dangerous_set_table_name(KERNEL_MIGRATIONS_TABLE);
        kernel.run(pool).await.map_err(|source| StoreError::Migration { service, source })?;
        let Some(migrations) = self.migrations else { return Ok(()) };
        migrations.sqlite.run(pool).await.map_err(|source| StoreError::Migration { service, source })
    }

    /// Resolves when a transaction that published events has committed.
    pub(crate) fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// Whether the database answers and every migration this build knows is applied.
    pub async fn readiness(&self) -> Result<(), String> {
        let Pool::Sqlite(pool) = &self.pool;
        sqlx::query("select 1").execute(pool).await.map_err(|e| format!("database unreachable: {e}"))?;
        let kernel_tables: Option<i64> =
            sqlx::query_scalar("select max(version) from _kernel_migrations where success")
                .fetch_one(pool)
                .await
                .map_err(|e| format!("event-bus tables missing: {e}"))?;
        if kernel_tables.is_none() {
            return Err("event-bus tables missing".to_owned());
        }
        let Some(migrations) = self.migrations else {
            return Ok(());
        };
        let expected = migrations.sqlite.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(pool)
            .await
            .map_err(|e| format!("no migration history: {e}"))?;
        match applied {
            Some(v) if v >= expected => Ok(()),
            _ => Err(format!("migrations pending (expected version {expected}, applied {applied:?})")),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        let (Pool::Sqlite(pool), Pool::Sqlite(writer)) = (&self.pool, &self.writer);
        pool.close().await;
        writer.close().await;
    }

    fn audit(&self, sql: &'static str) -> Result<(), StoreError> {
        #[cfg(debug_assertions)]
        {
            let key = sql.as_ptr() as usize;
            if self.audited.lock().map(|seen| seen.contains(&key)).unwrap_or(false) {
                return Ok(());
            }
            audit::check_owned(self.service, &self.owned_tables, sql)?;
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
        self.audit(sql)?;
        let Pool::Sqlite(pool) = &self.writer;
        let query = args.into_iter().fold(sqlx::query(sql), |q, v| q.bind(v));
        Ok(query.execute(pool).await.map_err(StoreError::classify)?.rows_affected())
    }

    /// Deletes in slices: runs `sql` — a delete of at most [`DELETE_SLICE`] rows, whose last placeholder
    /// takes that number after `args` — until a run deletes fewer; returns how many rows went. Each run is a
    /// short write transaction of its own, so the namespace's other writers wait for one slice at a time.
    pub async fn delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.audit(sql)?;
        self.kernel_delete_in_slices(sql, args).await
    }

    /// [`Namespace::delete_in_slices`] for the kernel's own tables.
    pub(crate) async fn kernel_delete_in_slices(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let mut slice_args = args.clone();
            slice_args.push(Value::from(DELETE_SLICE));
            let slice = self.kernel_execute(sql, slice_args).await?;
            deleted += slice;
            if slice < DELETE_SLICE as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Fetches at most one row.
    pub async fn fetch_optional<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.audit(sql)?;
        let Pool::Sqlite(pool) = &self.pool;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_optional(pool).await.map_err(StoreError::classify)
    }

    /// Fetches every row.
    pub async fn fetch_all<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.audit(sql)?;
        let Pool::Sqlite(pool) = &self.pool;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_all(pool).await.map_err(StoreError::classify)
    }

    /// The kernel's own statements (event-bus tables), which the ownership audit does not apply to.
    pub(crate) async fn kernel_execute(&self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let Pool::Sqlite(pool) = &self.writer;
        let query = args.into_iter().fold(sqlx::query(sql), |q, v| q.bind(v));
        Ok(query.execute(pool).await.map_err(StoreError::classify)?.rows_affected())
    }

    pub(crate) async fn kernel_fetch_all<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let Pool::Sqlite(pool) = &self.pool;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_all(pool).await.map_err(StoreError::classify)
    }

    pub(crate) async fn kernel_fetch_one<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<T, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let Pool::Sqlite(pool) = &self.pool;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_one(pool).await.map_err(StoreError::classify)
    }

    /// Starts a write transaction on the namespace's one writer connection; dropped without [`Tx::commit`]
    /// it rolls back. `begin immediate` takes SQLite's write lock at once, so a transaction never fails
    /// halfway when another process (the CLI) writes too; it waits for it instead.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let Pool::Sqlite(pool) = &self.writer;
        let tx = pool.begin_with("begin immediate").await?;
        Ok(Tx { namespace: self, inner: TxInner::Sqlite(tx), published: false, on_commit: Vec::new() })
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
}

impl Tx<'_> {
    /// The service whose namespace this transaction is in.
    pub(crate) fn service(&self) -> &'static str {
        self.namespace.service
    }

    /// Notes that this transaction wrote to the outbox, so that the relay is woken when it commits.
    pub(crate) fn mark_published(&mut self) {
        self.published = true;
    }

    pub async fn execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.namespace.audit(sql)?;
        let TxInner::Sqlite(tx) = &mut self.inner;
        let query = args.into_iter().fold(sqlx::query(sql), |q, v| q.bind(v));
        Ok(query.execute(&mut **tx).await.map_err(StoreError::classify)?.rows_affected())
    }

    pub async fn fetch_optional<T>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.namespace.audit(sql)?;
        let TxInner::Sqlite(tx) = &mut self.inner;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_optional(&mut **tx).await.map_err(StoreError::classify)
    }

    pub async fn fetch_all<T>(&mut self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.namespace.audit(sql)?;
        let TxInner::Sqlite(tx) = &mut self.inner;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_all(&mut **tx).await.map_err(StoreError::classify)
    }

    pub(crate) async fn kernel_execute(&mut self, sql: &'static str, args: Vec<Value>) -> Result<u64, StoreError> {
        let TxInner::Sqlite(tx) = &mut self.inner;
        let query = args.into_iter().fold(sqlx::query(sql), |q, v| q.bind(v));
        Ok(query.execute(&mut **tx).await.map_err(StoreError::classify)?.rows_affected())
    }

    pub(crate) async fn kernel_fetch_all<T>(
        &mut self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let TxInner::Sqlite(tx) = &mut self.inner;
        let query = args.into_iter().fold(sqlx::query_as::<_, T>(sql), |q, v| q.bind(v));
        query.fetch_all(&mut **tx).await.map_err(StoreError::classify)
    }

    /// Runs `hook` after this transaction commits, e.g. to wake readers of what it wrote. Hooks of a
    /// transaction that rolls back are dropped unrun.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(hook));
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        let TxInner::Sqlite(tx) = self.inner;
        tx.commit().await?;
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
