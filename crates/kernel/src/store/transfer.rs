//! Copying a namespace's rows to another location, any engine to any engine, and comparing two copies
//! (`omnidesk data move`, `verify`, `status`).
//!
//! - Tables are found in each database's catalogue, without the bookkeeping every namespace has of its
//!   own (migration histories, moves, MariaDB's write lock) and without SQLite's FTS5 shadow tables. Both
//!   copies have the service's migrations applied, so they have the same tables, save what the service
//!   declares *derived* (its search index, which each engine keeps its own way): those are not copied but
//!   rebuilt on the target by the service ([`Derived`](crate::service::Derived)).
//! - Rows are read in primary-key order, in batches that continue after the last key read (the source's
//!   own order, so text keys need no common collation), and written parents first (foreign keys) in one
//!   target transaction per batch (by `COPY` on PostgreSQL), which also records the last key copied: an
//!   interrupted copy continues where it stopped.
//! - A PostgreSQL target's indexes, keys and foreign keys, and a SQLite target's `create index` indexes, are
//!   dropped before the rows are written and built again after ([`defer_indexes`], [`restore_indexes`]):
//!   building an index once over the table is several times faster than maintaining it row by row, and
//!   building a key checks it once. What was dropped is recorded at the target first, so an interrupted
//!   copy's rerun builds it too. MariaDB keeps its indexes and skips foreign key checks in the copy's
//!   transactions instead.
//! - A table's checksum is the wrapping sum of its rows' digests (SHA-256 of each row's values, engine
//!   independent: integers as integers, text as UTF-8), so both copies are summed in their own order. When
//!   counts or sums differ, the source is walked again and each batch's keys looked up in the target, to
//!   name the first rows that differ.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::{Engine, Kind, Namespace, StoreError, Value};

/// Rows read from the source per batch (and written to the target per transaction).
pub const BATCH: usize = 2_000;
/// Placeholders one statement may bind on every engine (SQLite allows 32,766).
const MAX_BINDS: usize = 30_000;
/// Differing rows named per table when two copies disagree.
const DIFFERENCES_NAMED: usize = 3;
/// Where a copy records how far it got, in the target (bookkeeping, never copied itself).
const PROGRESS_TABLE: &str = "_kernel_copy_progress";
/// Where a copy records the indexes and foreign keys it dropped at the target, to build them again after.
const DEFERRED_TABLE: &str = "_kernel_copy_deferred";

/// A value as read from any engine: what a checksum digests and what is written to the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn digest_into(&self, hasher: &mut Sha256) {
        match self {
            Cell::Null => hasher.update([0]),
            Cell::Int(v) => {
                hasher.update([1]);
                hasher.update(v.to_le_bytes());
            }
            Cell::Real(v) => {
                hasher.update([2]);
                hasher.update(v.to_bits().to_le_bytes());
            }
            Cell::Text(v) => {
                hasher.update([3]);
                hasher.update((v.len() as u64).to_le_bytes());
                hasher.update(v.as_bytes());
            }
            Cell::Bytes(v) => {
                hasher.update([4]);
                hasher.update((v.len() as u64).to_le_bytes());
                hasher.update(v);
            }
        }
    }

    /// The value bound for a column of `kind` (a null keeps the column's type, as PostgreSQL wants).
    fn into_value(self, kind: Kind) -> Value {
        match self {
            Cell::Null => Value::Null(kind),
            Cell::Int(v) if kind == Kind::Bool => Value::Bool(v != 0),
            Cell::Int(v) => Value::Int(v),
            Cell::Real(v) => Value::Real(v),
            Cell::Text(v) => Value::Text(v),
            Cell::Bytes(v) => Value::Bytes(v),
        }
    }

    fn bind(&self, kind: Kind) -> Value {
        self.clone().into_value(kind)
    }

    fn key_text(&self) -> String {
        match self {
            Cell::Null => "null".to_owned(),
            Cell::Int(v) => v.to_string(),
            Cell::Real(v) => v.to_string(),
            Cell::Text(v) => v.clone(),
            Cell::Bytes(v) => format!("{} bytes", v.len()),
        }
    }
}

/// A row's digest: the first 128 bits of SHA-256 over its values.
fn row_digest(row: &[Cell]) -> u128 {
    let mut hasher = Sha256::new();
    for cell in row {
        cell.digest_into(&mut hasher);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// A table as a copy sees it: its columns (and their kinds), its primary key and the tables it refers to.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    kinds: Vec<Kind>,
    /// Positions in `columns` of the primary key, in key order.
    key: Vec<usize>,
    references: Vec<String>,
}

/// The tables of a namespace that a copy moves, parents before the tables that refer to them.
pub async fn tables(namespace: &Namespace) -> Result<Vec<Table>, StoreError> {
    let engine = namespace.engine();
    let names = namespace.raw_fetch(engine_sql(engine, Catalogue::Tables), vec![], &[]).await?;
    let mut names: Vec<String> = names.into_iter().filter_map(|row| text(&row, 0)).collect();
    let shadows: HashSet<String> = if engine == Engine::Sqlite {
        let virtuals = namespace
            .raw_fetch(
                "select name from sqlite_master where type = 'table' and sql like 'create virtual table%'".into(),
                vec![],
                &[],
            )
            .await?;
        virtuals
            .iter()
            .filter_map(|row| text(row, 0))
            .flat_map(|v| ["data", "idx", "content", "docsize", "config"].map(|s| format!("{v}_{s}")))
            .collect()
    } else {
        HashSet::new()
    };
    names.retain(|name| !bookkeeping(name) && !shadows.contains(name));
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        tables.push(describe(namespace, engine, name).await?);
    }
    Ok(parents_first(tables))
}

/// Tables every namespace keeps for itself, which are never copied: migration histories, moves, copy
/// progress, MariaDB's write lock.
fn bookkeeping(name: &str) -> bool {
    name.starts_with("_sqlx_migrations") || name.starts_with("_kernel_") || name == "_write_lock"
}

enum Catalogue {
    Tables,
    Columns,
    Key,
    References,
}

/// The catalogue queries of each engine: table names; a table's columns (name, type); its primary key's
/// columns in order; the tables it refers to.
fn engine_sql(engine: Engine, what: Catalogue) -> String {
    let sql = match (engine, what) {
        (Engine::Sqlite, Catalogue::Tables) => {
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by rowid"
        }
        (Engine::Sqlite, Catalogue::Columns) => "select name, type from pragma_table_info(?) order by cid",
        (Engine::Sqlite, Catalogue::Key) => "select name from pragma_table_info(?) where pk > 0 order by pk",
        (Engine::Sqlite, Catalogue::References) => "select distinct \"table\" from pragma_foreign_key_list(?)",
        (Engine::Postgres, Catalogue::Tables) => {
            "select table_name::text from information_schema.tables where table_schema = current_schema() \
             and table_type = 'BASE TABLE' order by table_name"
        }
        (Engine::Postgres, Catalogue::Columns) => {
            "select column_name::text, data_type::text from information_schema.columns \
             where table_schema = current_schema() and table_name = $1 order by ordinal_position"
        }
        (Engine::Postgres, Catalogue::Key) => {
            "select a.attname::text from pg_index i join pg_attribute a on a.attrelid = i.indrelid \
             and a.attnum = any(i.indkey) where i.indrelid = (quote_ident(current_schema()) || '.' || \
             quote_ident($1))::regclass and i.indisprimary order by array_position(i.indkey, a.attnum)"
        }
        (Engine::Postgres, Catalogue::References) => {
            "select distinct p.relname::text from pg_constraint c join pg_class t on t.oid = c.conrelid \
             join pg_class p on p.oid = c.confrelid where c.contype = 'f' and t.relname = $1 \
             and t.relnamespace = current_schema()::regnamespace"
        }
        (Engine::MySql, Catalogue::Tables) => {
            "select table_name from information_schema.tables where table_schema = database() \
             and table_type = 'BASE TABLE' order by table_name"
        }
        (Engine::MySql, Catalogue::Columns) => {
            "select column_name, data_type from information_schema.columns where table_schema = database() \
             and table_name = ? order by ordinal_position"
        }
        (Engine::MySql, Catalogue::Key) => {
            "select column_name from information_schema.key_column_usage where table_schema = database() \
             and table_name = ? and constraint_name = 'PRIMARY' order by ordinal_position"
        }
        (Engine::MySql, Catalogue::References) => {
            "select distinct referenced_table_name from information_schema.key_column_usage \
             where table_schema = database() and table_name = ? and referenced_table_name is not null"
        }
    };
    sql.to_owned()
}

async fn describe(namespace: &Namespace, engine: Engine, name: String) -> Result<Table, StoreError> {
    let arg = || vec![Value::Text(name.clone())];
    let columns = namespace.raw_fetch(engine_sql(engine, Catalogue::Columns), arg(), &[]).await?;
    let mut names = Vec::new();
    let mut kinds = Vec::new();
    for row in &columns {
        let (Some(column), Some(declared)) = (text(row, 0), text(row, 1)) else { continue };
        kinds.push(declared_kind(&declared));
        names.push(column);
    }
    let mut key_names: Vec<String> = namespace
        .raw_fetch(engine_sql(engine, Catalogue::Key), arg(), &[])
        .await?
        .iter()
        .filter_map(|r| text(r, 0))
        .collect();
    if key_names.is_empty() && engine == Engine::Sqlite {
        // A SQLite table without a declared key (an FTS5 table) is keyed by its rowid, copied along.
        names.insert(0, "rowid".to_owned());
        kinds.insert(0, Kind::Int);
        key_names.push("rowid".to_owned());
    }
    if key_names.is_empty() {
        return Err(StoreError::Unsupported(format!(
            "table `{name}` has no primary key, so it cannot be copied in order and resumed"
        )));
    }
    let key = key_names
        .iter()
        .map(|k| names.iter().position(|c| c == k))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| StoreError::Unsupported(format!("table `{name}`: its key names a column it lacks")))?;
    let references = namespace
        .raw_fetch(engine_sql(engine, Catalogue::References), arg(), &[])
        .await?
        .iter()
        .filter_map(|r| text(r, 0))
        .filter(|parent| *parent != name)
        .collect();
    Ok(Table { name, columns: names, kinds, key, references })
}

/// What a declared column type binds as, on any engine.
fn declared_kind(declared: &str) -> Kind {
    let declared = declared.to_ascii_lowercase();
    if declared.contains("int") {
        Kind::Int
    } else if declared.contains("bool") {
        Kind::Bool
    } else if ["real", "double", "float", "numeric", "decimal"].iter().any(|t| declared.contains(t)) {
        Kind::Real
    } else if ["blob", "bytea", "binary"].iter().any(|t| declared.contains(t)) {
        Kind::Bytes
    } else {
        Kind::Text
    }
}

/// `tables` ordered so that a table comes after those it refers to.
fn parents_first(mut tables: Vec<Table>) -> Vec<Table> {
    let mut ordered: Vec<Table> = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let ready = tables
            .iter()
            .position(|t| {
                t.references
                    .iter()
                    .all(|p| ordered.iter().any(|o| &o.name == p) || !tables.iter().any(|x| &x.name == p))
            })
            .unwrap_or(0);
        ordered.push(tables.remove(ready));
    }
    ordered
}

fn text(row: &[Cell], at: usize) -> Option<String> {
    match row.get(at) {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

/// How an identifier is quoted on `engine`.
fn quote(engine: Engine, name: &str) -> String {
    match engine {
        Engine::MySql => format!("`{name}`"),
        _ if name == "rowid" => name.to_owned(),
        _ => format!("\"{name}\""),
    }
}

/// Placeholder number `n` (from 1) on `engine`.
fn placeholder(engine: Engine, n: usize) -> String {
    if engine == Engine::Postgres { format!("${n}") } else { "?".to_owned() }
}

/// Reads `table` in key order: the batch of at most `limit` rows after `after` (a key), all columns.
fn select_after(engine: Engine, table: &Table, after: Option<&[Cell]>, limit: usize) -> (String, Vec<Value>) {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(engine, c)).collect();
    let key: Vec<String> = table.key.iter().map(|&i| quote(engine, &table.columns[i])).collect();
    let mut sql = format!("select {} from {}", columns.join(", "), quote(engine, &table.name));
    let mut args = Vec::new();
    if let Some(after) = after {
        let values = key.iter().enumerate().map(|(i, _)| after[i].bind(table.kinds[table.key[i]]));
        if engine == Engine::MySql && key.len() > 1 {
            // k1 > ? or (k1 = ? and (k2 > ? or (k2 = ? and …))): MariaDB scans the whole table for a row
            // value comparison, and uses the key's index for this.
            let mut condition = String::new();
            for (column, value) in key.iter().zip(values).rev() {
                let greater = format!("{column} > ?");
                condition = if condition.is_empty() {
                    args.insert(0, value);
                    greater
                } else {
                    args.insert(0, value.clone());
                    args.insert(0, value);
                    format!("{greater} or ({column} = ? and ({condition}))")
                };
            }
            sql.push_str(&format!(" where {condition}"));
        } else {
            // (k1, k2, …) > (?, ?, …): PostgreSQL and SQLite seek the key's index to it (PostgreSQL reads the
            // nested form above as a filter over the whole index).
            let marks: Vec<String> = (0..key.len()).map(|_| placeholder(engine, 0)).collect();
            sql.push_str(&format!(" where ({}) > ({})", key.join(", "), marks.join(", ")));
            args.extend(values);
        }
    }
    sql.push_str(&format!(" order by {} limit {limit}", key.join(", ")));
    (numbered(engine, &sql), args)
}

/// `sql` with PostgreSQL's placeholders numbered in order (`$0` written for each).
fn numbered(engine: Engine, sql: &str) -> String {
    if engine != Engine::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut rest = sql;
    while let Some(at) = rest.find("$0") {
        n += 1;
        out.push_str(&rest[..at]);
        out.push_str(&format!("${n}"));
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

/// One table's rows as a copy counts them: how many, and the sum of their digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub rows: u64,
    pub checksum: u128,
}

impl Tally {
    fn add(&mut self, row: &[Cell]) {
        self.rows += 1;
        self.checksum = self.checksum.wrapping_add(row_digest(row));
    }
}

/// Calls `each` with every batch of `table`'s rows at `namespace`, in key order, from after `after`. The
/// next batch is read while `each` handles this one.
async fn each_batch<F>(
    namespace: &Namespace,
    table: &Table,
    after: Option<Vec<Cell>>,
    mut each: F,
) -> Result<(), StoreError>
where
    F: AsyncFnMut(Vec<Vec<Cell>>) -> Result<(), StoreError>,
{
    let fetch = async |after: Option<&[Cell]>| {
        let (sql, args) = select_after(namespace.engine(), table, after, BATCH);
        namespace.raw_fetch(sql, args, &table.kinds).await
    };
    let mut rows = fetch(after.as_deref()).await?;
    while rows.len() == BATCH {
        let after: Option<Vec<Cell>> = rows.last().map(|row| table.key.iter().map(|&i| row[i].clone()).collect());
        let (next, handled) = tokio::join!(fetch(after.as_deref()), each(rows));
        handled?;
        rows = next?;
    }
    if !rows.is_empty() {
        each(rows).await?;
    }
    Ok(())
}

/// Counts and sums `table` at `namespace`.
pub async fn tally(namespace: &Namespace, table: &Table) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    each_batch(namespace, table, None, async |rows| {
        for row in &rows {
            tally.add(row);
        }
        Ok(())
    })
    .await?;
    Ok(tally)
}

/// How a copy is getting on, for a progress display.
pub trait Progress: Send {
    /// Before anything is copied: every table with the rows it has at the source.
    fn start(&mut self, tables: &[(String, u64)]);
    /// `rows` more rows of `table` were copied.
    fn copied(&mut self, table: &str, rows: u64);
    /// The move entered another stage (draining, copying, rebuilding, comparing, switched), in words.
    fn stage(&mut self, _what: &str) {}
}

/// What a copy did: rows copied now, and rows an earlier, interrupted run had copied already.
#[derive(Debug, Default, Clone, Copy)]
pub struct Copied {
    pub rows: u64,
    pub resumed: u64,
}

/// The tables both copies have, and those only one has, which must all be `derived`.
pub async fn common_tables(
    source: &Namespace,
    target: &Namespace,
    derived: &[&str],
) -> Result<Vec<(Table, Table)>, StoreError> {
    let from = tables(source).await?;
    let to = tables(target).await?;
    let mut common = Vec::new();
    for table in &from {
        match to.iter().find(|t| t.name == table.name) {
            Some(other) => {
                if derived.contains(&table.name.as_str()) && source.engine() != target.engine() {
                    continue;
                }
                if other.columns != table.columns {
                    return Err(StoreError::Unsupported(format!(
                        "table `{}` has columns {:?} here and {:?} at the target: are both on the same migrations?",
                        table.name, table.columns, other.columns
                    )));
                }
                common.push((table.clone(), other.clone()));
            }
            None if derived.contains(&table.name.as_str()) => {}
            None => {
                return Err(StoreError::Unsupported(format!("table `{}` is missing at the target", table.name)));
            }
        }
    }
    if let Some(extra) =
        to.iter().find(|t| !from.iter().any(|f| f.name == t.name) && !derived.contains(&t.name.as_str()))
    {
        return Err(StoreError::Unsupported(format!("the target has a table `{}` the source lacks", extra.name)));
    }
    // Parents first, as the target orders them.
    common.sort_by_key(|(_, t)| to.iter().position(|x| x.name == t.name));
    Ok(common)
}

/// Copies every row of `tables` from `source` to `target`, continuing an interrupted copy where it
/// stopped.
pub async fn copy(
    source: &Namespace,
    target: &Namespace,
    tables: &[(Table, Table)],
    progress: &mut dyn Progress,
) -> Result<Copied, StoreError> {
    target
        .raw_execute(format!(
            "create table if not exists {PROGRESS_TABLE} (table_name varchar(200) not null primary key, \
             last_key text not null, copied bigint not null)"
        ))
        .await?;
    let done = copied_so_far(target).await?;
    let mut totals = Vec::with_capacity(tables.len());
    for (table, _) in tables {
        totals.push((table.name.clone(), count(source, table).await?));
    }
    progress.start(&totals);
    let mut copied = Copied::default();
    for (table, target_table) in tables {
        let (after, before) = match done.get(&table.name) {
            Some((key, rows)) => (Some(key.clone()), *rows),
            None => (None, 0),
        };
        if before > 0 {
            progress.copied(&table.name, before);
            copied.resumed += before;
        }
        let mut so_far = before;
        let writes = Writes::new(target.engine(), target_table);
        each_batch(source, table, after, async |rows| {
            let batch = rows.len() as u64;
            so_far += batch;
            writes.write(target, rows, so_far).await?;
            progress.copied(&table.name, batch);
            copied.rows += batch;
            Ok(())
        })
        .await?;
    }
    fix_sequences(target, tables).await?;
    Ok(copied)
}

/// How many rows `table` has at `namespace`.
pub async fn count(namespace: &Namespace, table: &Table) -> Result<u64, StoreError> {
    let (sql, args) = count_sql(namespace.engine(), table);
    let rows = namespace.raw_fetch(sql, args, &[]).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Cell::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    })
}

/// Whether `target` holds an unfinished copy (its progress table), which a rerun continues.
pub async fn has_unfinished_copy(target: &Namespace) -> Result<bool, StoreError> {
    has_table(target, PROGRESS_TABLE).await
}

/// Whether `namespace` has a table `name` (its bookkeeping included).
async fn has_table(namespace: &Namespace, name: &str) -> Result<bool, StoreError> {
    let names = namespace.raw_fetch(engine_sql(namespace.engine(), Catalogue::Tables), vec![], &[]).await?;
    Ok(names.iter().filter_map(|row| text(row, 0)).any(|found| found == name))
}

/// Deletes every row of `names` (those that exist) at `namespace`, in the order given.
pub async fn empty_tables(namespace: &Namespace, names: &[&str]) -> Result<(), StoreError> {
    let present: Vec<String> = tables(namespace).await?.into_iter().map(|t| t.name).collect();
    for name in names.iter().filter(|n| present.iter().any(|p| p == *n)) {
        namespace.raw_execute(format!("delete from {}", quote(namespace.engine(), name))).await?;
    }
    Ok(())
}

fn count_sql(engine: Engine, table: &Table) -> (String, Vec<Value>) {
    (format!("select count(*) from {}", quote(engine, &table.name)), vec![])
}

/// The last key and row count of each table an earlier run copied (from the target's progress table).
async fn copied_so_far(target: &Namespace) -> Result<HashMap<String, (Vec<Cell>, u64)>, StoreError> {
    let rows = target
        .raw_fetch(
            format!("select table_name, last_key, copied from {PROGRESS_TABLE}"),
            vec![],
            &[Kind::Text, Kind::Text, Kind::Int],
        )
        .await?;
    let mut done = HashMap::new();
    for row in rows {
        let (Some(table), Some(key), Some(Cell::Int(copied))) = (text(&row, 0), text(&row, 1), row.get(2).cloned())
        else {
            continue;
        };
        let key: Vec<serde_json::Value> = serde_json::from_str(&key)?;
        let key = key
            .into_iter()
            .map(|v| match v {
                serde_json::Value::Number(n) => n.as_i64().map_or(Cell::Null, Cell::Int),
                serde_json::Value::String(s) => Cell::Text(s),
                _ => Cell::Null,
            })
            .collect();
        done.insert(table, (key, u64::try_from(copied).unwrap_or(0)));
    }
    Ok(done)
}

/// The statements a copy writes one table's batches with, built once for the table.
struct Writes<'t> {
    table: &'t Table,
    engine: Engine,
    /// PostgreSQL's `copy … from stdin`, or the other engines' `insert into … values ` before the rows.
    head: String,
    /// Rows per insert (the engines' limit on placeholders), and the insert of that many.
    per_insert: usize,
    full_insert: String,
    forget: String,
    record: String,
}

impl<'t> Writes<'t> {
    fn new(engine: Engine, table: &'t Table) -> Self {
        let columns: Vec<String> = table.columns.iter().map(|c| quote(engine, c)).collect();
        let (name, columns) = (quote(engine, &table.name), columns.join(", "));
        let head = if engine == Engine::Postgres {
            format!("copy {name} ({columns}) from stdin")
        } else {
            format!("insert into {name} ({columns}) values ")
        };
        let per_insert = (MAX_BINDS / table.columns.len().max(1)).clamp(1, 1_000);
        let p = |n| placeholder(engine, n);
        let mut writes = Writes {
            table,
            engine,
            head,
            per_insert,
            full_insert: String::new(),
            forget: format!("delete from {PROGRESS_TABLE} where table_name = {}", p(1)),
            record: format!(
                "insert into {PROGRESS_TABLE} (table_name, last_key, copied) values ({}, {}, {})",
                p(1),
                p(2),
                p(3)
            ),
        };
        if engine != Engine::Postgres {
            writes.full_insert = writes.insert(per_insert);
        }
        writes
    }

    /// The insert of `rows` rows (on the engines whose placeholders are all `?`).
    fn insert(&self, rows: usize) -> String {
        let marks = vec!["?"; self.table.columns.len()].join(", ");
        let mut sql = String::with_capacity(self.head.len() + rows * (marks.len() + 4));
        sql.push_str(&self.head);
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            sql.push_str(&marks);
            sql.push(')');
        }
        sql
    }

    /// Inserts `rows` in `tx`, as many a statement as the engine takes.
    async fn insert_rows(&self, tx: &mut super::Tx<'_>, rows: Vec<Vec<Cell>>) -> Result<(), StoreError> {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Cell>> = rows.by_ref().take(self.per_insert).collect();
            let sql = if chunk.len() == self.per_insert { self.full_insert.clone() } else { self.insert(chunk.len()) };
            let mut args = Vec::with_capacity(chunk.len() * self.table.columns.len());
            for row in chunk {
                args.extend(row.into_iter().zip(&self.table.kinds).map(|(cell, &kind)| cell.into_value(kind)));
            }
            tx.raw_execute(sql, args).await?;
        }
        Ok(())
    }

    /// Writes `rows` at `target` in one transaction that also records the last key written and that
    /// `copied` rows of the table are copied now.
    async fn write(&self, target: &Namespace, rows: Vec<Vec<Cell>>, copied: u64) -> Result<(), StoreError> {
        let table = self.table;
        let Some(last) = rows.last().map(|row| {
            let key: Vec<serde_json::Value> = table
                .key
                .iter()
                .map(|&i| match &row[i] {
                    Cell::Int(v) => serde_json::Value::from(*v),
                    Cell::Text(v) => serde_json::Value::from(v.as_str()),
                    _ => serde_json::Value::Null,
                })
                .collect();
            serde_json::Value::from(key).to_string()
        }) else {
            return Ok(());
        };
        let mut tx = target.begin_as(super::Writer::Kernel).await?;
        match self.engine {
            Engine::Postgres => {
                tx.copy_in(&self.head, copy_text(table, &rows)).await?;
            }
            Engine::MySql => {
                // Parents are copied first and both copies compared after; the checks would only cost a
                // lookup per row. Session scoped, so set back, whatever the inserts did, before the
                // connection can return to the pool.
                tx.raw_execute("set foreign_key_checks = 0".to_owned(), vec![]).await?;
                let inserted = self.insert_rows(&mut tx, rows).await;
                let restored = tx.raw_execute("set foreign_key_checks = 1".to_owned(), vec![]).await;
                inserted?;
                restored?;
            }
            Engine::Sqlite => self.insert_rows(&mut tx, rows).await?,
        }
        tx.raw_execute(self.forget.clone(), vec![Value::Text(table.name.clone())]).await?;
        let copied = i64::try_from(copied).unwrap_or(i64::MAX);
        let args = vec![Value::Text(table.name.clone()), Value::Text(last), Value::Int(copied)];
        tx.raw_execute(self.record.clone(), args).await?;
        tx.commit().await
    }
}

/// `rows` in PostgreSQL's COPY text format: a line per row, a tab between values, `\\N` for a null, and
/// backslash escapes for what would end a value or a line.
fn copy_text(table: &Table, rows: &[Vec<Cell>]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(rows.len() * 256);
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                out.push('\t');
            }
            // Writing to a String cannot fail.
            let _ = match cell {
                Cell::Null => write!(out, "\\N"),
                Cell::Int(v) if table.kinds[c] == Kind::Bool => write!(out, "{}", if *v != 0 { 't' } else { 'f' }),
                Cell::Int(v) => write!(out, "{v}"),
                Cell::Real(v) if v.is_nan() => write!(out, "NaN"),
                Cell::Real(v) if v.is_infinite() => write!(out, "{}Infinity", if *v < 0.0 { "-" } else { "" }),
                Cell::Real(v) => write!(out, "{v}"),
                Cell::Text(v) => {
                    // The runs between the characters to escape go in whole.
                    let mut rest = v.as_str();
                    while let Some(at) = rest.find(['\\', '\t', '\n', '\r']) {
                        out.push_str(&rest[..at]);
                        out.push_str(match rest.as_bytes()[at] {
                            b'\\' => "\\\\",
                            b'\t' => "\\t",
                            b'\n' => "\\n",
                            _ => "\\r",
                        });
                        rest = &rest[at + 1..];
                    }
                    out.push_str(rest);
                    Ok(())
                }
                // bytea's hex input `\x…`, its backslash escaped for COPY.
                Cell::Bytes(v) => {
                    out.push_str("\\\\x");
                    v.iter().try_for_each(|b| write!(out, "{b:02x}"))
                }
            };
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Sets PostgreSQL's identity sequences past the rows copied with their own values (SQLite and MariaDB
/// move theirs on an explicit insert).
async fn fix_sequences(target: &Namespace, tables: &[(Table, Table)]) -> Result<(), StoreError> {
    if target.engine() != Engine::Postgres {
        return Ok(());
    }
    for (_, table) in tables {
        let identities = target
            .raw_fetch(
                "select column_name::text from information_schema.columns where table_schema = current_schema() \
                 and table_name = $1 and (is_identity = 'YES' or column_default like 'nextval(%')"
                    .to_owned(),
                vec![Value::Text(table.name.clone())],
                &[],
            )
            .await?;
        for column in identities.iter().filter_map(|r| text(r, 0)) {
            let name = quote(Engine::Postgres, &table.name);
            let column = quote(Engine::Postgres, &column);
            target
                .raw_execute(format!(
                    "select setval(pg_get_serial_sequence('{name}', '{}'), coalesce(max({column}), 0) + 1, false) from {name}",
                    column.trim_matches('"')
                ))
                .await?;
        }
    }
    Ok(())
}

/// Drops the copy's bookkeeping from the target once the move is done.
pub async fn finish(target: &Namespace) -> Result<(), StoreError> {
    target.raw_execute(format!("drop table if exists {PROGRESS_TABLE}")).await?;
    target.raw_execute(format!("drop table if exists {DEFERRED_TABLE}")).await
}

/// What a copy drops at the target and builds again after, in the order it builds them: indexes, then
/// keys (a primary key or unique constraint), then the foreign keys that lean on those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Build {
    Index = 0,
    Key = 1,
    ForeignKey = 2,
}

impl Build {
    fn from_stored(stored: i64) -> Self {
        match stored {
            0 => Build::Index,
            1 => Build::Key,
            _ => Build::ForeignKey,
        }
    }
}

/// An index or constraint a copy dropped at the target, with what builds it again.
#[derive(Debug, PartialEq)]
pub(super) struct Deferred {
    table: String,
    name: String,
    build: Build,
    /// `create index …` (as the catalogue gives it), or a constraint's definition (`primary key (…)`,
    /// `foreign key (…) references …`).
    definition: String,
}

impl Deferred {
    fn drop_sql(&self, engine: Engine) -> String {
        match self.build {
            Build::Index => format!("drop index {}", quote(engine, &self.name)),
            Build::Key | Build::ForeignKey => {
                format!("alter table {} drop constraint {}", quote(engine, &self.table), quote(engine, &self.name))
            }
        }
    }

    fn create_sql(&self, engine: Engine) -> String {
        match self.build {
            Build::Index => self.definition.clone(),
            Build::Key | Build::ForeignKey => format!(
                "alter table {} add constraint {} {}",
                quote(engine, &self.table),
                quote(engine, &self.name),
                self.definition
            ),
        }
    }
}

/// What a copy into the tables `names` at `target` can drop and build again after: on PostgreSQL every
/// index, primary key, unique constraint and foreign key; on SQLite the indexes made by `create index`
/// (its keys are part of the table). Nothing on MariaDB.
pub(super) async fn deferrable(target: &Namespace, names: &[&str]) -> Result<Vec<Deferred>, StoreError> {
    let engine = target.engine();
    let marks: Vec<String> = names.iter().enumerate().map(|(i, _)| placeholder(engine, i + 1)).collect();
    let marks = marks.join(", ");
    let args = || names.iter().map(|n| Value::Text((*n).to_owned())).collect::<Vec<_>>();
    let mut queries = Vec::new();
    match engine {
        Engine::Sqlite => queries.push((
            Build::Index,
            format!(
                "select m.tbl_name, m.name, m.sql from sqlite_master m join pragma_index_list(m.tbl_name) l \
                 on l.name = m.name where m.type = 'index' and l.origin = 'c' and m.tbl_name in ({marks}) \
                 order by m.tbl_name, m.name"
            ),
        )),
        Engine::Postgres => {
            let on_tables = format!("t.relnamespace = current_schema()::regnamespace and t.relname::text in ({marks})");
            queries.push((
                Build::Index,
                format!(
                    "select t.relname::text, c.relname::text, pg_get_indexdef(i.indexrelid) from pg_index i \
                     join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid \
                     where {on_tables} and not exists (select 1 from pg_constraint k \
                     where k.conindid = i.indexrelid and k.contype in ('p', 'u', 'x')) order by 1, 2"
                ),
            ));
            for (build, types) in [(Build::Key, "'p', 'u'"), (Build::ForeignKey, "'f'")] {
                queries.push((
                    build,
                    format!(
                        "select t.relname::text, k.conname::text, pg_get_constraintdef(k.oid) from pg_constraint k \
                         join pg_class t on t.oid = k.conrelid where k.contype in ({types}) and {on_tables} \
                         order by 1, 2"
                    ),
                ));
            }
        }
        Engine::MySql => {}
    }
    let mut deferred = Vec::new();
    for (build, sql) in queries {
        for row in target.raw_fetch(sql, args(), &[Kind::Text, Kind::Text, Kind::Text]).await? {
            if let (Some(table), Some(name), Some(definition)) = (text(&row, 0), text(&row, 1), text(&row, 2)) {
                deferred.push(Deferred { table, name, build, definition });
            }
        }
    }
    Ok(deferred)
}

/// Drops what [`deferrable`] finds on the tables `names` at `target` before a copy writes into them, each
/// recorded at the target in the transaction that drops it. Returns how many.
pub async fn defer_indexes(target: &Namespace, names: &[&str]) -> Result<usize, StoreError> {
    let engine = target.engine();
    if engine == Engine::MySql || names.is_empty() {
        return Ok(0);
    }
    target
        .raw_execute(format!(
            "create table if not exists {DEFERRED_TABLE} (table_name varchar(200) not null, \
             name varchar(200) not null, build integer not null, definition text not null, \
             primary key (table_name, name))"
        ))
        .await?;
    let mut deferred = deferrable(target, names).await?;
    let p = |n| placeholder(engine, n);
    let record = format!(
        "insert into {DEFERRED_TABLE} (table_name, name, build, definition) values ({}, {}, {}, {})",
        p(1),
        p(2),
        p(3),
        p(4)
    );
    // Dropped in the reverse of the order they are built in: a foreign key leans on a key.
    deferred.sort_by_key(|d| std::cmp::Reverse(d.build as i64));
    for item in &deferred {
        let mut tx = target.begin_as(super::Writer::Kernel).await?;
        let args = vec![
            Value::Text(item.table.clone()),
            Value::Text(item.name.clone()),
            Value::Int(item.build as i64),
            Value::Text(item.definition.clone()),
        ];
        tx.raw_execute(record.clone(), args).await?;
        tx.raw_execute(item.drop_sql(engine), vec![]).await?;
        tx.commit().await?;
    }
    Ok(deferred.len())
}

/// Builds again at `target` everything a copy deferred there, in [`Build`]'s order, each with its record
/// deleted in the same transaction. Returns how many. A key the copied rows violate fails here, and the
/// move with it.
pub async fn restore_indexes(target: &Namespace) -> Result<usize, StoreError> {
    let engine = target.engine();
    if engine == Engine::MySql {
        return Ok(0);
    }
    if !has_table(target, DEFERRED_TABLE).await? {
        return Ok(0);
    }
    let rows = target
        .raw_fetch(
            format!(
                "select table_name, name, build, definition from {DEFERRED_TABLE} order by build, table_name, name"
            ),
            vec![],
            &[Kind::Text, Kind::Text, Kind::Int, Kind::Text],
        )
        .await?;
    let p = |n| placeholder(engine, n);
    let forget = format!("delete from {DEFERRED_TABLE} where table_name = {} and name = {}", p(1), p(2));
    let mut restored = 0;
    for row in rows {
        let (Some(table), Some(name), Some(Cell::Int(build)), Some(definition)) =
            (text(&row, 0), text(&row, 1), row.get(2).cloned(), text(&row, 3))
        else {
            continue;
        };
        let item = Deferred { table, name, build: Build::from_stored(build), definition };
        let mut tx = target.begin_as(super::Writer::Kernel).await?;
        tx.raw_execute(item.create_sql(engine), vec![]).await?;
        tx.raw_execute(forget.clone(), vec![Value::Text(item.table), Value::Text(item.name)]).await?;
        tx.commit().await?;
        restored += 1;
    }
    Ok(restored)
}

/// How one table compares between two copies.
#[derive(Debug, Clone)]
pub struct TableComparison {
    pub table: String,
    pub source: Tally,
    pub target: Tally,
    /// The first rows that differ, by key: missing at the target, or with other values.
    pub differing: Vec<String>,
}

impl TableComparison {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// Compares every table both copies have (counts and checksums), naming the first differing keys.
pub async fn compare(
    source: &Namespace,
    target: &Namespace,
    tables: &[(Table, Table)],
) -> Result<Vec<TableComparison>, StoreError> {
    let mut comparisons = Vec::with_capacity(tables.len());
    for (from, to) in tables {
        let (source_tally, target_tally) = tokio::try_join!(tally(source, from), tally(target, to))?;
        let mut comparison = TableComparison {
            table: from.name.clone(),
            source: source_tally,
            target: target_tally,
            differing: Vec::new(),
        };
        if !comparison.matches() {
            comparison.differing = first_differences(source, target, from, to).await?;
        }
        comparisons.push(comparison);
    }
    Ok(comparisons)
}

/// Walks the source and looks each batch's keys up at the target, until [`DIFFERENCES_NAMED`] rows differ.
async fn first_differences(
    source: &Namespace,
    target: &Namespace,
    from: &Table,
    to: &Table,
) -> Result<Vec<String>, StoreError> {
    let mut differing = Vec::new();
    let mut at_target = 0u64;
    let engine = target.engine();
    let outcome = each_batch(source, from, None, async |rows| {
        for chunk in rows.chunks((MAX_BINDS / from.key.len().max(1)).min(500)) {
            // select … where (k1 = ? and k2 = ?) or (…): the same rows, looked up by key.
            let mut args = Vec::new();
            let mut conditions = Vec::new();
            for row in chunk {
                // Both copies have the same columns (checked by `common_tables`), so the same key positions.
                let parts: Vec<String> = from
                    .key
                    .iter()
                    .map(|&i| {
                        args.push(row[i].bind(to.kinds[i]));
                        format!("{} = {}", quote(engine, &to.columns[i]), placeholder(engine, 0))
                    })
                    .collect();
                conditions.push(format!("({})", parts.join(" and ")));
            }
            let columns: Vec<String> = to.columns.iter().map(|c| quote(engine, c)).collect();
            let sql = numbered(
                engine,
                &format!(
                    "select {} from {} where {}",
                    columns.join(", "),
                    quote(engine, &to.name),
                    conditions.join(" or ")
                ),
            );
            let found = target.raw_fetch(sql, args, &to.kinds).await?;
            at_target += found.len() as u64;
            let key_of = |row: &[Cell]| from.key.iter().map(|&i| row[i].key_text()).collect::<Vec<_>>();
            let by_key: HashMap<Vec<String>, u128> = found.iter().map(|r| (key_of(r), row_digest(r))).collect();
            for row in chunk {
                let key = key_of(row);
                let what = match by_key.get(&key) {
                    None => "missing at the target",
                    Some(&digest) if digest != row_digest(row) => "different at the target",
                    Some(_) => continue,
                };
                differing.push(format!("{} = {} ({what})", key_label(from), key.join(", ")));
                if differing.len() >= DIFFERENCES_NAMED {
                    return Err(StoreError::Unsupported(String::new()));
                }
            }
        }
        Ok(())
    })
    .await;
    match outcome {
        Ok(()) | Err(StoreError::Unsupported(_)) => {}
        Err(error) => return Err(error),
    }
    if differing.is_empty() {
        differing.push(format!("rows only at the target (it has {at_target} of the source's keys)"));
    }
    Ok(differing)
}

fn key_label(table: &Table) -> String {
    let names: Vec<&str> = table.key.iter().map(|&i| table.columns[i].as_str()).collect();
    format!("({})", names.join(", "))
}

/// Drops every table of `namespace` (an aborted move's target): the copy's tables, children first, and
/// its bookkeeping, so that it can be migrated and copied into afresh.
pub async fn clear(namespace: &Namespace) -> Result<Vec<String>, StoreError> {
    let engine = namespace.engine();
    // Views first: they name the tables (and the migrations create them again).
    let views = match engine {
        Engine::Sqlite => "select name from sqlite_master where type = 'view'",
        Engine::Postgres => {
            "select table_name::text from information_schema.views where table_schema = current_schema()"
        }
        Engine::MySql => "select table_name from information_schema.views where table_schema = database()",
    };
    for view in namespace.raw_fetch(views.to_owned(), vec![], &[Kind::Text]).await?.iter().filter_map(|r| text(r, 0)) {
        namespace.raw_execute(format!("drop view if exists {}", quote(engine, &view))).await?;
    }
    let mut names: Vec<String> = namespace
        .raw_fetch(engine_sql(engine, Catalogue::Tables), vec![], &[])
        .await?
        .iter()
        .filter_map(|r| text(r, 0))
        .collect();
    let ordered: Vec<String> = tables(namespace).await?.into_iter().rev().map(|t| t.name).collect();
    names.retain(|n| !ordered.contains(n));
    let mut dropped = Vec::new();
    for name in ordered.into_iter().chain(names) {
        if engine == Engine::Sqlite && name.starts_with("sqlite_") {
            continue;
        }
        namespace.raw_execute(format!("drop table if exists {}", quote(engine, &name))).await?;
        dropped.push(name);
    }
    if engine == Engine::Postgres {
        namespace.raw_execute("drop function if exists _kernel_write_fence()".to_owned()).await?;
    }
    Ok(dropped)
}
