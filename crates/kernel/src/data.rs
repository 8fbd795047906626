//! `omnidesk data`: moving a service's namespace to another location while the deployment keeps serving,
//! comparing two copies, and where each namespace lives.
//!
//! A move ([`move_service`]) follows the protocol of [`moves`]: it records itself in the source (so the
//! processes serving it hold their writes), lets the outbox drain, copies the rows ([`transfer`]),
//! rebuilds what the service derives (its search index) when the engine changes, then compares both
//! copies under the source's write lock and, only if every table matches, records the switch that fences
//! the source. The new location is written to `<data.dir>/locations.toml`, which every later start reads
//! before the configuration ([`location_of`](crate::locations::location_of)).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::config::Config;
use crate::locations::{location_of, open_namespace, record_location, recorded_location};
use crate::service::ServiceSpec;
use crate::store::moves::{self, Stage};
use crate::store::transfer::{self, Progress, TableComparison};
use crate::store::{Location, Namespace, StoreError};

/// How long a move waits for the service's outbox to be published before copying it as it is (what is
/// left is copied and published from the new location).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What a finished move did.
#[derive(Debug)]
pub struct Moved {
    pub from: Location,
    pub to: Location,
    pub tables: usize,
    /// Rows copied by this run, and by an earlier interrupted one.
    pub rows: u64,
    pub resumed: u64,
    /// Documents of the derived tables rebuilt at the target (engines differ).
    pub rebuilt: u64,
    /// Copying the rows, and then rebuilding the derived tables at the target.
    pub copy_time: Duration,
    pub rebuild_time: Duration,
    /// How long the service's writes were held: from the end of draining to the switch.
    pub write_pause: Duration,
}

/// A move refused because the copies differ; the source stays authoritative.
#[derive(Debug)]
pub struct Refused {
    pub differing: Vec<TableComparison>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the copy differs from the source; the move is refused and the source stays authoritative:")?;
        for table in &self.differing {
            writeln!(
                f,
                "  {}: {} rows here, {} at the target; {}",
                table.table,
                table.source.rows,
                table.target.rows,
                table.differing.join("; ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// What a dry run found: the tables and rows a move would copy, and whether the target is ready.
#[derive(Debug)]
pub struct Planned {
    pub from: Location,
    pub to: Location,
    pub tables: Vec<(String, u64)>,
    pub derived: Vec<String>,
    pub target: &'static str,
}

/// The source of `spec`'s namespace, opened, migrated and followed to where it lives now.
async fn open_source(config: &Config, spec: &ServiceSpec) -> anyhow::Result<Namespace> {
    let namespace = open_namespace(config, spec).await?;
    namespace.migrate().await?;
    moves::settle(&namespace).await?;
    Ok(namespace)
}

/// Opens `to` for a move of `source`: an empty namespace, one holding an interrupted copy (continued),
/// or a copy a move has left (fenced, so stale: emptied). Anything else with rows is refused.
async fn open_target(
    spec: &ServiceSpec,
    source: &Namespace,
    to: &Location,
) -> anyhow::Result<(Namespace, &'static str)> {
    if source.location() == *to {
        bail!("`{}` lives at {to} already", spec.name);
    }
    let target =
        Namespace::open(spec.name, to, spec.migrations).await.with_context(|| format!("opening the target {to}"))?;
    target.migrate().await.with_context(|| format!("migrating the target {to}"))?;
    if matches!(moves::current(&target).await?, Some(record) if record.stage == Stage::Switched) {
        transfer::clear(&target).await?;
        target.migrate().await?;
        return Ok((target, "an old copy this namespace moved away from (emptied and refilled)"));
    }
    if transfer::has_unfinished_copy(&target).await? {
        return Ok((target, "an interrupted copy (continued)"));
    }
    for table in transfer::tables(&target).await? {
        let rows = transfer::count(&target, &table).await?;
        if rows > 0 {
            bail!(
                "the target {to} already holds data ({rows} rows in `{}`); move to an empty namespace (or clean this \
                 one: omnidesk data move --abort --service {} --to …)",
                table.name,
                spec.name
            );
        }
    }
    Ok((target, "empty"))
}

fn derived_tables(spec: &ServiceSpec) -> &'static [&'static str] {
    spec.derived.map_or(&[], |d| d.tables)
}

/// What a move of `spec` to `to` would do, without doing it (`--dry-run`).
pub async fn plan_move(config: &Config, spec: &ServiceSpec, to: &Location) -> anyhow::Result<Planned> {
    let source = open_source(config, spec).await?;
    let (target, state) = open_target(spec, &source, to).await?;
    let tables = transfer::common_tables(&source, &target, derived_tables(spec)).await?;
    let mut counted = Vec::with_capacity(tables.len());
    for (table, _) in &tables {
        counted.push((table.name.clone(), transfer::count(&source, table).await?));
    }
    let derived = if source.engine() == target.engine() {
        Vec::new()
    } else {
        derived_tables(spec).iter().map(|t| (*t).to_owned()).collect()
    };
    let planned = Planned { from: source.location(), to: to.clone(), tables: counted, derived, target: state };
    source.close().await;
    target.close().await;
    Ok(planned)
}

/// Moves `spec`'s namespace to `to`, verified, while the deployment serving it keeps running (see the
/// module doc). On any failure the source stays authoritative and writes resume there; rerun to continue.
pub async fn move_service(
    config: &Config,
    spec: &ServiceSpec,
    to: &Location,
    progress: &mut dyn Progress,
) -> anyhow::Result<Moved> {
    let source = open_source(config, spec).await?;
    let (target, state) = open_target(spec, &source, to).await?;
    progress.stage(&format!("{}: from {} to {to} (the target is {state})", spec.name, source.location()));
    let tables = transfer::common_tables(&source, &target, derived_tables(spec)).await?;
    let record = moves::start(&source, &to.url()).await?;
    let lease = Lease::spawn(source.clone(), record.id.clone());
    let moved = run_move(spec, &source, &target, &tables, &record.id, &lease, progress).await;
    lease.stop();
    match moved {
        Ok(moved) => {
            transfer::finish(&target).await?;
            record_location(config, spec.name, to)?;
            source.close().await;
            target.close().await;
            Ok(moved)
        }
        Err(error) => {
            // Writes resume on the source at once (not when the lease lapses).
            if let Err(abort) = moves::abort(&source).await {
                tracing::warn!(error = %abort, "could not record the move as given up; writes resume when its lease lapses");
            }
            if error.downcast_ref::<Refused>().is_some() {
                transfer::clear(&target).await.ok();
            }
            Err(error)
        }
    }
}

async fn run_move(
    spec: &ServiceSpec,
    source: &Namespace,
    target: &Namespace,
    tables: &[(transfer::Table, transfer::Table)],
    id: &str,
    lease: &Lease,
    progress: &mut dyn Progress,
) -> anyhow::Result<Moved> {
    progress.stage("draining: the service's writes wait while its outbox is published");
    // Every serving process hears of the move within a poll.
    tokio::time::sleep(moves::POLL * 2).await;
    let deadline = Instant::now() + DRAIN_LIMIT;
    while crate::events::outbox_backlog(source).await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(moves::POLL).await;
    }
    lease.set(Stage::Copying).await?;
    let paused = Instant::now();
    tokio::time::sleep(moves::POLL * 2).await;
    progress.stage("copying");
    let started = Instant::now();
    let mut copied = copy_rows(source, target, tables, progress).await?;
    let mut copy_time = started.elapsed();
    let mut rebuilt = rebuild_derived(spec, source, target, progress).await?;
    let mut rebuild_time = started.elapsed() - copy_time;
    progress.stage("comparing both copies under the source's write lock");
    let mut lock = moves::lock_for_switch(source).await?;
    let mut compared = transfer::compare(source, target, tables).await?;
    if copied.resumed > 0 && compared.iter().any(|t| !t.matches()) {
        // The source changed between the interrupted run and this one: copy again, from the start.
        drop(lock);
        progress.stage("the source changed since the interrupted copy; copying again from the start");
        transfer::clear(target).await?;
        target.migrate().await?;
        let started = Instant::now();
        copied = copy_rows(source, target, tables, progress).await?;
        copy_time = started.elapsed();
        rebuilt = rebuild_derived(spec, source, target, progress).await?;
        rebuild_time = started.elapsed() - copy_time;
        lock = moves::lock_for_switch(source).await?;
        compared = transfer::compare(source, target, tables).await?;
    }
    let differing: Vec<TableComparison> = compared.iter().filter(|t| !t.matches()).cloned().collect();
    if !differing.is_empty() {
        drop(lock);
        return Err(Refused { differing }.into());
    }
    lock.switch(id).await?;
    let write_pause = paused.elapsed();
    progress.stage("switched: the service writes to the target now");
    Ok(Moved {
        from: source.location(),
        to: target.location(),
        tables: tables.len(),
        rows: copied.rows,
        resumed: copied.resumed,
        rebuilt,
        copy_time,
        rebuild_time,
        write_pause,
    })
}

/// Copies `tables`' rows from `source` to `target` with the target's indexes and keys dropped
/// ([`transfer::defer_indexes`]), and builds them after (the copy's time includes it).
async fn copy_rows(
    source: &Namespace,
    target: &Namespace,
    tables: &[(transfer::Table, transfer::Table)],
    progress: &mut dyn Progress,
) -> Result<transfer::Copied, StoreError> {
    let names: Vec<&str> = tables.iter().map(|(_, t)| t.name.as_str()).collect();
    transfer::defer_indexes(target, &names).await?;
    let copied = transfer::copy(source, target, tables, progress).await?;
    progress.stage("building the target's indexes");
    transfer::restore_indexes(target).await?;
    Ok(copied)
}

/// Rebuilds `spec`'s derived tables at `target` when its engine differs from the source's (they were
/// not copied).
async fn rebuild_derived(
    spec: &ServiceSpec,
    source: &Namespace,
    target: &Namespace,
    progress: &mut dyn Progress,
) -> Result<u64, StoreError> {
    let Some(derived) = spec.derived else { return Ok(0) };
    if source.engine() == target.engine() {
        return Ok(0);
    }
    progress.stage(&format!("rebuilding {} at the target", derived.tables.join(", ")));
    // Children first, so that an interrupted rebuild is started again from nothing.
    let children_first: Vec<&str> = derived.tables.iter().rev().copied().collect();
    transfer::empty_tables(target, &children_first).await?;
    transfer::defer_indexes(target, derived.tables).await?;
    let rebuilt = (derived.rebuild)(target.clone()).await?;
    progress.stage(&format!("building the indexes of {}", derived.tables.join(", ")));
    transfer::restore_indexes(target).await?;
    Ok(rebuilt)
}

/// Renews a move's lease while the command runs, so the serving processes keep holding writes.
struct Lease {
    stage: tokio::sync::watch::Sender<Stage>,
    task: tokio::task::JoinHandle<()>,
    source: Namespace,
    id: String,
}

impl Lease {
    fn spawn(source: Namespace, id: String) -> Self {
        let (stage, mut watched) = tokio::sync::watch::channel(Stage::Draining);
        let (namespace, move_id) = (source.clone(), id.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(moves::RENEW_EVERY).await;
                let current = *watched.borrow_and_update();
                let until = crate::clock::now_ms() + moves::millis(moves::LEASE);
                match moves::set_stage(&namespace, &move_id, current, until).await {
                    Ok(()) => {}
                    Err(StoreError::Unsupported(_)) => return,
                    Err(error) => tracing::warn!(error = %error, "renewing the move's lease failed; retrying"),
                }
            }
        });
        Self { stage, task, source, id }
    }

    /// Moves the record on to `stage` now (and keeps renewing it).
    async fn set(&self, stage: Stage) -> Result<(), StoreError> {
        self.stage.send_replace(stage);
        let until = crate::clock::now_ms() + moves::millis(moves::LEASE);
        moves::set_stage(&self.source, &self.id, stage, until).await
    }

    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Lease {
    /// A move dropped half way (Ctrl-C) stops renewing: its lease lapses unless the move is given up.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Gives up the move of `spec` under way (writes resume on the source) and empties the target of an
/// unfinished copy: the one the move record names, or `to`. Returns what was done, in words.
pub async fn abort_move(config: &Config, spec: &ServiceSpec, to: Option<&Location>) -> anyhow::Result<Vec<String>> {
    let source = open_source(config, spec).await?;
    let mut done = Vec::new();
    let mut target = to.cloned();
    if let Some(record) = moves::abort(&source).await? {
        done.push(format!("gave up the move to {}; writes resume at {}", record.target_location()?, source.location()));
        target = target.or(Some(record.target_location()?));
    }
    if let Some(to) = target.filter(|to| *to != source.location())
        && to.exists().await?
    {
        let namespace = Namespace::open(spec.name, &to, spec.migrations).await?;
        if transfer::has_unfinished_copy(&namespace).await? {
            let dropped = transfer::clear(&namespace).await?;
            done.push(format!("emptied the unfinished copy at {to} ({} tables dropped)", dropped.len()));
        } else {
            done.push(format!("left {to} as it is: it holds no unfinished copy"));
        }
        namespace.close().await;
    }
    if done.is_empty() {
        done.push(format!("no move of `{}` under way", spec.name));
    }
    source.close().await;
    Ok(done)
}

/// Compares `spec`'s namespace at `from` and at `to`: counts and checksums per table, with the first
/// differing keys. Neither is changed (both must exist).
pub async fn verify(spec: &ServiceSpec, from: &Location, to: &Location) -> anyhow::Result<Vec<TableComparison>> {
    let open = async |location: &Location| -> anyhow::Result<Namespace> {
        if !location.exists().await? {
            bail!("there is no `{}` namespace at {location}", spec.name);
        }
        Ok(Namespace::open(spec.name, location, spec.migrations).await?)
    };
    let (source, target) = (open(from).await?, open(to).await?);
    let tables = transfer::common_tables(&source, &target, derived_tables(spec)).await?;
    let compared = transfer::compare(&source, &target, &tables).await?;
    source.close().await;
    target.close().await;
    Ok(compared)
}

/// Where one service's namespace lives, and what it holds.
#[derive(Debug)]
pub struct Status {
    pub service: &'static str,
    pub location: Location,
    /// Whether the location came from `locations.toml` (a move) rather than the configuration.
    pub recorded: bool,
    pub exists: bool,
    pub bytes: Option<u64>,
    pub tables: Vec<(String, u64)>,
    /// A move under way, in words.
    pub moving: Option<String>,
}

/// [`Status`] of every service in `catalogue` that stores anything.
pub async fn status(config: &Config, catalogue: crate::Catalogue) -> anyhow::Result<Vec<Status>> {
    let mut all = Vec::new();
    for spec in catalogue.iter().filter(|s| s.migrations.is_some()) {
        let location = location_of(config, spec.name)?;
        let recorded = recorded_location(&config.data.dir, spec.name)?.is_some();
        if !location.exists().await? {
            all.push(Status {
                service: spec.name,
                location,
                recorded,
                exists: false,
                bytes: None,
                tables: Vec::new(),
                moving: None,
            });
            continue;
        }
        let namespace = Namespace::open(spec.name, &location, spec.migrations).await?;
        let mut tables = Vec::new();
        for table in transfer::tables(&namespace).await? {
            tables.push((table.name.clone(), transfer::count(&namespace, &table).await?));
        }
        let moving = match moves::current(&namespace).await {
            Ok(Some(record)) if record.holds_writes() => {
                Some(format!("{} to {}", record.stage.as_str(), record.target_location()?))
            }
            Ok(Some(record)) if record.stage == Stage::Switched => {
                Some(format!("moved to {} (this copy is fenced)", record.target_location()?))
            }
            _ => None,
        };
        let bytes = size(&namespace, &location).await.ok();
        namespace.close().await;
        all.push(Status { service: spec.name, location, recorded, exists: true, bytes, tables, moving });
    }
    Ok(all)
}

/// The bytes a namespace takes on disk: the SQLite file and its WAL, or the tables and indexes.
async fn size(namespace: &Namespace, location: &Location) -> anyhow::Result<u64> {
    let sql = match location {
        Location::SqliteFile(path) => {
            let mut bytes = 0;
            for suffix in ["", "-wal"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            }
            return Ok(bytes);
        }
        Location::Postgres { .. } => {
            "select cast(coalesce(sum(pg_total_relation_size(c.oid)), 0) as bigint) from pg_class c join pg_namespace n \
             on n.oid = c.relnamespace where n.nspname = current_schema() and c.relkind in ('r', 'm')"
        }
        Location::MySql { .. } => {
            "select cast(coalesce(sum(data_length + index_length), 0) as signed) from information_schema.tables \
             where table_schema = database()"
        }
    };
    let rows = namespace.raw_fetch(sql.to_owned(), vec![], &[]).await?;
    match rows.first().and_then(|r| r.first()) {
        Some(transfer::Cell::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        _ => Ok(0),
    }
}

/// The location `service` moves to for `omnidesk data split --to TEMPLATE` and `data merge --to URL`:
/// `{service}` in the URL replaced; else, on a server, the service's namespace there (named by
/// `data.namespace`), or for `sqlite://DIR` the file `DIR/<service>.db`.
pub fn target_for(config: &Config, url: &str, service: &str) -> anyhow::Result<Location> {
    let default = crate::store::namespace_name(&config.data.namespace, service).map_err(anyhow::Error::msg)?;
    if url.contains("{service}") {
        return Location::parse(&url.replace("{service}", service), &default).map_err(anyhow::Error::msg);
    }
    match Location::parse(url, &default).map_err(anyhow::Error::msg)? {
        Location::SqliteFile(dir) => Ok(Location::default_for(&dir, service)),
        Location::MySql { url, .. } => Ok(Location::MySql { url, database: default }),
        Location::Postgres { url, .. } => Ok(Location::Postgres { url, schema: default }),
    }
}
