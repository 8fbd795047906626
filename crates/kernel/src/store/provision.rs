//! Ownership enforced by the database: `omnidesk db provision` gives each service a namespace (a
//! PostgreSQL schema, a MariaDB database) and a login
//! of its own that reaches nothing else, so a statement naming another service's table is refused by the
//! server (permission denied), not only by the ownership audit.

use super::location::Location;

/// A service's namespace, provisioned.
pub struct Provisioned {
    /// The URL the service connects with: its own login, and the password when one was set now.
    pub url: String,
    /// Whether the login was created now (otherwise it existed).
    pub created: bool,
    /// Whether a password was set now (a new login, or `reset_password`); otherwise the URL has none.
    pub password_set: bool,
}

/// Creates, as the administrator of `admin_url`'s server, the namespace `name` and a login of the same
/// name that owns it and can reach only it. An existing login keeps its password unless `reset_password`.
pub async fn provision(admin_url: &str, name: &str, reset_password: bool) -> Result<Provisioned, String> {
    let location = Location::parse(admin_url, name)?;
    let server = match &location {
        Location::Postgres { url, schema } if schema == name => url.clone(),
        Location::Postgres { .. } => {
            return Err("--admin-url must not name a schema: each service gets its own".to_owned());
        }
        // The URL's database (if any) is only where the administrator connects.
        Location::MySql { url, .. } => url.clone(),
        Location::SqliteFile(_) => {
            return Err("--admin-url names a database server (postgres://… or mysql://…); SQLite files have no logins"
                .to_owned());
        }
    };
    let is_mysql = matches!(location, Location::MySql { .. });
    let exists = if is_mysql {
        super::mysql::user_exists(&server, name).await
    } else {
        super::postgres::role_exists(&server, name).await
    }
    .map_err(|e| e.to_string())?;
    let password = (!exists || reset_password).then(new_password);
    let created = if is_mysql {
        super::mysql::provision(&server, name, password.as_deref()).await
    } else {
        super::postgres::provision(&server, name, password.as_deref()).await
    }
    .map_err(|e| e.to_string())?;
    let mut url = reqwest::Url::parse(&server).map_err(|e| format!("--admin-url: {e}"))?;
    let set = |url: &mut reqwest::Url| -> Result<(), ()> {
        url.set_username(name)?;
        url.set_password(password.as_deref())
    };
    set(&mut url).map_err(|()| "--admin-url must name a host".to_owned())?;
    if is_mysql {
        url.set_path(name);
    } else {
        url.query_pairs_mut().append_pair("schema", name);
    }
    Ok(Provisioned { url: url.into(), created, password_set: password.is_some() })
}

/// 192 random bits, hex: safe to write into a `create role … password '…'` statement.
fn new_password() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
