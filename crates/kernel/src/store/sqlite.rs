//! SQLite namespaces: one file per service, in WAL mode, with one writer connection and a pool of readers.
//!
//! - No memory map: in WAL mode SQLite drops a connection's map at every read transaction after another
//!   connection's write, which under steady writes costs an munmap on nearly every transaction.
//! - The WAL is checkpointed by a background task, off the writer's commits: on a connection of its own
//!   and then, briefly, through the writer, so that the WAL starts over instead of growing (left to the
//!   automatic checkpoint, it grew until a commit paid for the checkpoint and the truncation stalled the
//!   writer).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

/// WAL pages after which the committing writer checkpoints itself (64 MiB of 4 KiB pages).
const WAL_AUTOCHECKPOINT: u32 = 16_384;

/// The size a WAL file is cut back to when it starts over (bytes): the automatic checkpoint's threshold, so
/// that a WAL kept within it by the background checkpoints is never truncated. Truncating is not free:
/// the writer waits for the freed blocks (on a filesystem mounted with `discard`, for their discard),
/// and the next round has to allocate them again while a checkpoint's fsync holds the file's block map.
const JOURNAL_SIZE_LIMIT: u64 = WAL_AUTOCHECKPOINT as u64 * 4096;

/// What a write transaction asks right after `begin immediate`: whether a move has left this copy of the
/// namespace, which must then not be written to again.
pub(super) const FENCE: &str = "select exists (select 1 from _kernel_moves where state = 'switched')";

/// How often the WAL is checkpointed in the background (four times as often in the kernel's own tests,
/// which watch several rounds).
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(if cfg!(test) { 50 } else { 200 });

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

/// Opens the database file at `path` (creating it and its directory if needed): the readers, the writer, and
/// the handle that stops the background checkpoints when dropped.
pub(super) async fn open(
    path: &Path,
) -> Result<(SqlitePool, SqlitePool, tokio::sync::oneshot::Sender<()>), StoreError> {
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
        // A reader's worker thread hands rows to the caller through a channel of this many (sqlx's
        // default is 50): the size of a copy's batch, so that the worker reads it without stopping
        // to wake the caller and wait for it every 50 rows.
        .connect_with(options.clone().row_buffer_size(super::transfer::BATCH))
        .await?;
    let (checkpointing, stop_checkpointing) = tokio::sync::oneshot::channel();
    let checkpointer = sqlx::ConnectOptions::connect(&options).await?;
    tokio::spawn(checkpoint_in_background(checkpointer, writer.clone(), stop_checkpointing));
    Ok((pool, writer, checkpointing))
}
