//! MariaDB namespaces: a database per service (`utf8mb4_bin`, so text compares byte for byte as on
//! SQLite), reached by connecting with it as the default database, so that service SQL names its tables
//! unqualified.
//!
//! - Writes are serialised as on the other engines: one writer connection per process, and every write
//!   transaction first locks the namespace's one `_write_lock` row ([`LOCK`]), so processes sharing a
//!   namespace wait for each other. (It also keeps `auto_increment` sequences in commit order, which
//!   readers of "everything after seq N" rely on.)
//! - Sessions run at read committed, as on PostgreSQL.
//! - MySQL 8 is refused at open: it has no `returning`, which the stores use.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlPool};

use super::StoreError;

/// What a write transaction runs first: the namespace's write lock, held until it ends. It finds no row at a
/// copy of the namespace that a move has left (the switch deletes it), and the transaction is refused.
pub(super) const LOCK: &str = "select id from _write_lock where id = 1 for update";

/// How long a request waits for a connection before the namespace is reported unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reader connections per namespace and process (MariaDB's default limit is 151 for the server).
const READERS: u32 = 4;

/// Connects to `database` on the server of `url`, creating it if it does not exist: the readers and the
/// writer.
pub(super) async fn open(url: &str, database: &str) -> Result<(MySqlPool, MySqlPool), StoreError> {
    let options: MySqlConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    let (version,): (String,) = sqlx::query_as("select version()").fetch_one(&mut connection).await?;
    if !version.contains("MariaDB") {
        return Err(StoreError::Unsupported(format!(
            "the server at {} is MySQL {version}; OmniDesk runs on MariaDB 10.6 or later (MySQL lacks `returning`)",
            crate::redact::redact_url_password(url)
        )));
    }
    if !has_database(&mut connection, database).await? {
        // The name is checked (lowercase letters, digits, `_`) when the location is parsed.
        let create = format!("create database if not exists `{database}` character set utf8mb4 collate utf8mb4_bin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut connection).await?;
    }
    connection.close().await?;
    let options = options.database(database);
    let pool = |max: u32| {
        MySqlPoolOptions::new()
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(60))
            .after_connect(|connection, _| {
                Box::pin(async move {
                    connection.execute("set session transaction isolation level read committed").await?;
                    connection.execute("set session group_concat_max_len = 1048576").await.map(drop)
                })
            })
            .connect_lazy_with(options.clone())
    };
    Ok((pool(READERS), pool(1)))
}

/// Whether `database` exists on the server of `url`.
pub(super) async fn database_exists(url: &str, database: &str) -> Result<bool, StoreError> {
    let options: MySqlConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    let exists = has_database(&mut connection, database).await?;
    connection.close().await?;
    Ok(exists)
}

async fn has_database(connection: &mut sqlx::MySqlConnection, database: &str) -> Result<bool, StoreError> {
    let found: Option<(String,)> =
        sqlx::query_as("select schema_name from information_schema.schemata where schema_name = ?")
            .bind(database)
            .fetch_optional(connection)
            .await?;
    Ok(found.is_some())
}

/// Whether the login `name` (from any host) exists on the server of `url`.
pub(super) async fn user_exists(url: &str, name: &str) -> Result<bool, StoreError> {
    let options: MySqlConnectOptions = url.parse()?;
    let mut connection = options.connect().await?;
    let found: Option<(String,)> = sqlx::query_as("select user from mysql.user where user = ? and host = '%'")
        .bind(name)
        .fetch_optional(&mut connection)
        .await?;
    connection.close().await?;
    Ok(found.is_some())
}

/// Makes `name` a database only its own login reaches, as the server's administrator (`admin_url`): the
/// login `name`@`%` (created with `password` if missing; given `password` if one is passed for an
/// existing login) with every privilege on the database `name` and none elsewhere. Returns whether the
/// login was created. `name` is a checked namespace name; passwords are generated hex.
pub(super) async fn provision(admin_url: &str, name: &str, password: Option<&str>) -> Result<bool, StoreError> {
    let created = !user_exists(admin_url, name).await?;
    let options: MySqlConnectOptions = admin_url.parse()?;
    let mut connection = options.connect().await?;
    let mut statements = Vec::new();
    match (created, password) {
        (true, Some(password)) => statements.push(format!("create user '{name}'@'%' identified by '{password}'")),
        (true, None) => statements.push(format!("create user '{name}'@'%'")),
        (false, Some(password)) => statements.push(format!("alter user '{name}'@'%' identified by '{password}'")),
        (false, None) => {}
    }
    // `_` is a wildcard in a grant's database name: escaped, the grant covers this database only.
    let escaped = name.replace('_', "\\_");
    statements.extend([
        format!("create database if not exists `{name}` character set utf8mb4 collate utf8mb4_bin"),
        format!("grant all on `{escaped}`.* to '{name}'@'%'"),
    ]);
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut connection).await?;
    }
    connection.close().await?;
    Ok(created)
}
