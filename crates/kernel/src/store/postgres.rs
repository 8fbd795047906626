//! PostgreSQL namespaces: a schema per service, reached through `search_path`, so that service SQL names
//! its tables unqualified as on SQLite.
//!
//! - Writes are serialised as on SQLite: one writer connection per process, and every write transaction
//!   takes the namespace's advisory lock first ([`BEGIN`]), so two processes writing to one namespace (a
//!   service and an administrative command) wait for each other instead of interleaving read-then-write
//!   steps the stores rely on being atomic.
//! - Pools connect lazily and give up waiting for a connection after [`ACQUIRE_TIMEOUT`]: while the server
//!   is down, requests fail fast (503) instead of queueing, and succeed again once it is back.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::StoreError;

/// How a write transaction starts: read committed (the default), holding the namespace's advisory lock
/// (keyed by the schema, which `search_path` makes the current one) until it ends, then refused (SQLSTATE
/// `OD001`) if a move has left this copy of the namespace.
pub(super) const BEGIN: &str =
    "begin; select pg_advisory_xact_lock(hashtext(current_schema())); select _kernel_write_fence()";

/// How long a request waits for a connection before the namespace is reported unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reader connections per namespace and process. PostgreSQL's default limit is 100 connections for the
/// whole server, and a monolith has a namespace per service.
const READERS: u32 = 4;

/// Connects to `schema` on the server of `url`, creating the schema if it does not exist (a provisioned
/// one does, owned by the service's own role): the readers and the writer.
pub(super) async fn open(url: &str, schema: &str) -> Result<(PgPool, PgPool), StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    if !has_schema(&mut connection, schema).await? {
        // The name is checked (lowercase letters, digits, `_`) when the location is parsed.
        let create = format!("create schema if not exists \"{schema}\"");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut connection).await?;
    }
    connection.close().await?;
    let options = options.options([("search_path", schema)]);
    let pool = |max: u32| {
        PgPoolOptions::new()
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options.clone())
    };
    Ok((pool(READERS), pool(1)))
}

/// Whether `schema` exists on the server of `url`.
pub(super) async fn schema_exists(url: &str, schema: &str) -> Result<bool, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    let exists = has_schema(&mut connection, schema).await?;
    connection.close().await?;
    Ok(exists)
}

async fn has_schema(connection: &mut sqlx::PgConnection, schema: &str) -> Result<bool, StoreError> {
    let found: Option<(String,)> = sqlx::query_as("select nspname::text from pg_namespace where nspname = $1")
        .bind(schema)
        .fetch_optional(connection)
        .await?;
    Ok(found.is_some())
}

/// Whether the login role `name` exists on the server of `url`.
pub(super) async fn role_exists(url: &str, name: &str) -> Result<bool, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    let found: Option<(String,)> = sqlx::query_as("select rolname::text from pg_roles where rolname = $1")
        .bind(name)
        .fetch_optional(&mut connection)
        .await?;
    connection.close().await?;
    Ok(found.is_some())
}

/// Makes `name` a namespace only its own login reaches, as the server's administrator (`admin_url`): a
/// login role `name` (created with `password` if missing; given `password` if one is passed for an
/// existing role), owning the schema `name` and everything already in it, the schema closed to everyone
/// else. Returns whether the role was created. `name` is a checked namespace name.
pub(super) async fn provision(admin_url: &str, name: &str, password: Option<&str>) -> Result<bool, StoreError> {
    let created = !role_exists(admin_url, name).await?;
    let options: PgConnectOptions = admin_url.parse()?;
    let mut connection = options.connect().await?;
    let mut tx = connection.begin().await?;
    // Utility statements take no parameters; the name is checked and passwords are generated hex.
    let mut statements = Vec::new();
    match (created, password) {
        (true, Some(password)) => statements.push(format!("create role \"{name}\" login password '{password}'")),
        (true, None) => statements.push(format!("create role \"{name}\" login")),
        (false, Some(password)) => statements.push(format!("alter role \"{name}\" login password '{password}'")),
        (false, None) => {}
    }
    statements.extend([
        format!("create schema if not exists \"{name}\" authorization \"{name}\""),
        format!("alter schema \"{name}\" owner to \"{name}\""),
        format!("revoke all on schema \"{name}\" from public"),
        // Tables and views made before (by an administrator's login, e.g. in monolithic mode) become the
        // role's; sequences of identity columns follow their tables.
        format!(
            "do $$ declare r record; begin \
             for r in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = '{name}' and c.relkind in ('r', 'p', 'v', 'm') loop \
             execute format('alter %s %I.%I owner to %I', case r.relkind when 'v' then 'view' \
             when 'm' then 'materialized view' else 'table' end, '{name}', r.relname, '{name}'); \
             end loop; end $$"
        ),
    ]);
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    connection.close().await?;
    Ok(created)
}
