//! Where a namespace lives: a SQLite file, a schema on a PostgreSQL server, or a database on a MariaDB
//! server.

use std::path::{Path, PathBuf};

use super::dialect::Engine;
use crate::redact::redact_url_password;

/// Where a namespace lives, parsed from configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    SqliteFile(PathBuf),
    /// A schema of a PostgreSQL database: `url` names the server and database (without the `schema`
    /// parameter), `schema` the namespace in it.
    Postgres { url: String, schema: String },
    /// A database on a MariaDB server: `url` names the server (without a database), `database` the
    /// namespace.
    MySql { url: String, database: String },
}

/// The namespace name on a server when configuration names none: `omnidesk_<service>`.
pub const DEFAULT_NAMESPACE_TEMPLATE: &str = "omnidesk_{service}";

impl Location {
    /// The default location of `service`'s namespace under the data directory.
    pub fn default_for(data_dir: &Path, service: &str) -> Self {
        Location::SqliteFile(data_dir.join(format!("{service}.db")))
    }

    /// `service`'s namespace on the server of `url` (`DATABASE_MODE=monolithic` with `data.url`): a
    /// PostgreSQL schema named by `template` (`{service}` replaced), in the database the URL names.
    pub fn on_server(url: &str, template: &str, service: &str) -> Result<Self, String> {
        let name = namespace_name(template, service)?;
        match Location::parse(url, &name)? {
            // The server's URL may name a database to connect to; every service still gets its own.
            Location::MySql { url, .. } => Ok(Location::MySql { url, database: name }),
            Location::SqliteFile(_) => Err("data.url names a server (postgres://…); SQLite files are kept under \
                                            data.dir without it"
                .to_owned()),
            located => Ok(located),
        }
    }

    /// Parses a database URL: `sqlite://PATH`, or `postgres://…` (`postgresql://…`) whose namespace is
    /// the schema given by a `schema` parameter, else `default_schema`.
    pub fn parse(url: &str, default_schema: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("a sqlite URL needs a file path, e.g. sqlite://data/user.db".to_owned());
            }
            return Ok(Location::SqliteFile(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (url, schema) = take_parameter(url, "schema");
            let schema = schema.unwrap_or_else(|| default_schema.to_owned());
            check_name(&schema)?;
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| format!("not a PostgreSQL URL ({e}): {}", redact_url_password(&url)))?;
            return Ok(Location::Postgres { url, schema });
        }
        if let Some(rest) = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")) {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (database, query) = path.split_once('?').map_or((path, None), |(d, q)| (d, Some(q)));
            let database = if database.is_empty() { default_schema.to_owned() } else { database.to_owned() };
            check_name(&database)?;
            let url = format!("mysql://{authority}/{}", query.map(|q| format!("?{q}")).unwrap_or_default());
            url.parse::<sqlx::mysql::MySqlConnectOptions>()
                .map_err(|e| format!("not a MariaDB URL ({e}): {}", redact_url_password(&url)))?;
            return Ok(Location::MySql { url, database });
        }
        let scheme = url.split(':').next().unwrap_or(url);
        Err(format!(
            "unsupported database scheme `{scheme}`; this build supports sqlite://PATH, postgres://… and mysql://… \
             (MariaDB)"
        ))
    }

    /// Whether the namespace is there already (for commands that only read, which must not create one).
    pub async fn exists(&self) -> Result<bool, super::StoreError> {
        match self {
            Location::SqliteFile(path) => Ok(path.exists()),
            Location::Postgres { url, schema } => super::postgres::schema_exists(url, schema).await,
            Location::MySql { url, database } => super::mysql::database_exists(url, database).await,
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Location::SqliteFile(_) => Engine::Sqlite,
            Location::Postgres { .. } => Engine::Postgres,
            Location::MySql { .. } => Engine::MySql,
        }
    }
}

/// `template` with `{service}` replaced, checked as a namespace name.
pub fn namespace_name(template: &str, service: &str) -> Result<String, String> {
    let name = template.replace("{service}", service);
    check_name(&name)?;
    Ok(name)
}

/// Namespace names are unquoted identifiers on every engine: lowercase letters, digits and `_`, starting
/// with a letter or `_`, at most 63 bytes (PostgreSQL's limit).
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a namespace name: lowercase letters, digits and `_`, not starting with a digit, \
             at most 63 characters"
        ))
    }
}

/// `url` without its query parameter `key`, and that parameter's value.
fn take_parameter(url: &str, key: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => {
                value = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, value)
}

impl Location {
    /// The URL that names this location, password included (a move records it for the processes that
    /// follow; never shown: [`Location`]'s `Display` hides the password).
    pub fn url(&self) -> String {
        self.render(str::to_owned)
    }

    fn render(&self, server: impl Fn(&str) -> String) -> String {
        match self {
            Location::SqliteFile(path) => format!("sqlite://{}", path.display()),
            Location::Postgres { url, schema } => {
                let url = server(url);
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}schema={schema}")
            }
            Location::MySql { url, database } => {
                let url = server(url);
                let (base, query) = url.split_once('?').map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
                format!("{base}{database}{}", query.map(|q| format!("?{q}")).unwrap_or_default())
            }
        }
    }
}

/// Shown in messages and `omnidesk config`: never a password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(redact_url_password))
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_or_a_schema_and_others_are_refused() {
        assert_eq!(Location::parse("sqlite://data/u.db", "x"), Ok(Location::SqliteFile("data/u.db".into())));
        assert!(Location::parse("sqlite://", "x").is_err());
        assert_eq!(
            Location::parse("postgres://app:pw@db:5432/omni?sslmode=disable&schema=desk", "x"),
            Ok(Location::Postgres {
                url: "postgres://app:pw@db:5432/omni?sslmode=disable".into(),
                schema: "desk".into()
            })
        );
        assert_eq!(
            Location::parse("postgresql://db/omni", "omnidesk_user"),
            Ok(Location::Postgres { url: "postgresql://db/omni".into(), schema: "omnidesk_user".into() })
        );
        assert!(Location::parse("postgres://db/omni?schema=Bad-Name", "x").is_err());
        assert!(Location::parse("oracle://db", "x").expect_err("unsupported").contains("oracle"));
    }

    #[test]
    fn a_server_url_gives_each_service_its_schema_and_passwords_are_never_shown() {
        let location =
            Location::on_server("postgres://app:hunter2@db/omni", DEFAULT_NAMESPACE_TEMPLATE, "inbox").expect("parses");
        assert_eq!(location.to_string(), "postgres://app:<redacted>@db/omni?schema=omnidesk_inbox");
        assert!(Location::on_server("sqlite://x.db", DEFAULT_NAMESPACE_TEMPLATE, "inbox").is_err());
        assert!(Location::on_server("postgres://db/omni", "{service}-x", "inbox").is_err());
    }

    #[test]
    fn a_location_url_parses_back_to_the_same_location() {
        for url in [
            "sqlite://data/inbox.db",
            "postgres://app:pw@db/omni?sslmode=disable&schema=desk",
            "mysql://root:pw@db:3306/desk?ssl-mode=disabled",
        ] {
            let location = Location::parse(url, "unused").expect("parses");
            assert_eq!(location.url(), url);
            assert_eq!(Location::parse(&location.url(), "unused"), Ok(location));
        }
    }
}
