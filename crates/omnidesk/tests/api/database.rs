//! The database server going away and coming back, and per-service logins (run on a server:
//! `TEST_DATABASE_URL`, PostgreSQL or MariaDB, as `scripts/test` does; SQLite has no server to lose and no
//! logins).
//!
//! The monolith reaches the real test server through a TCP relay the test can cut, which is what a
//! restarted PostgreSQL looks like from OmniDesk's side: open connections die, new ones are refused, then
//! connections succeed again on the same address.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{ServerNamespaces, TestApp, monolith_config, test_database};

/// A TCP relay to `upstream` on a fixed local address; [`Relay::cut`] closes it and every connection
/// through it, [`Relay::restore`] listens again on the same address.
struct Relay {
    address: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("address");
        let relay = Self { address, upstream, tasks: Arc::default() };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("tasks").push(connection);
            }
        });
        self.tasks.lock().expect("tasks").push(accepting);
    }

    /// Closes the listener and every relayed connection (their sockets drop with their tasks).
    fn cut(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        // The aborted listener's socket is closed once its task is dropped; retry until the port is free.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.address).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("could not listen on {} again", self.address);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `url` with its host and port replaced by `address`.
fn through(url: &str, address: SocketAddr) -> String {
    let mut url = reqwest::Url::parse(url).expect("a URL");
    url.set_ip_host(address.ip()).expect("a URL with a host");
    url.set_port(Some(address.port())).expect("a URL with a host");
    url.into()
}

/// The server's `host:port` (the engine's default port if the URL names none).
fn host_and_port(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("a URL");
    let default = if url.scheme() == "mysql" { 3306 } else { 5432 };
    format!("{}:{}", url.host_str().expect("a host"), url.port().unwrap_or(default))
}

#[tokio::test]
async fn while_the_database_is_down_requests_get_503_and_succeed_again_after_without_a_restart() {
    let Some(server) = test_database() else {
        eprintln!("skipped: needs a database server (TEST_DATABASE_URL)");
        return;
    };
    let relay = Relay::start(host_and_port(&server)).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = monolith_config(data.path());
    config.data.url = config.data.url.as_deref().map(|url| through(url, relay.address));
    let app = TestApp::monolith_with(config, data).await;
    let (user, session) = app.signed_in().await;
    let user_path = format!("/api/users/{}", user.id);
    assert_eq!(app.get(&user_path, &session.access_token).await.status, StatusCode::OK);

    relay.cut();

    let down = app.get(&user_path, &session.access_token).await;
    down.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable");
    assert!(down.headers.contains_key("retry-after"), "{down:?}");
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    ready.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(ready.body["detail"].as_str().unwrap_or_default().contains("database unreachable"), "{ready:?}");

    relay.restore().await;

    let mut back = None;
    for _ in 0..100 {
        let reply = app.get(&user_path, &session.access_token).await;
        if reply.status == StatusCode::OK {
            back = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = back.expect("requests succeed again once the database is back");
    assert_eq!(back.body["id"], user.id.as_str());
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    // Writes too: a new login (a refresh token stored) works.
    app.login(&user).await;
}

/// `omnidesk db provision` gives each service a login of its own; the monolith runs on those logins, and
/// one service's login is refused another's tables by the server itself.
#[tokio::test]
async fn a_service_on_its_provisioned_login_is_refused_another_services_tables() {
    let Some(server) = test_database() else {
        eprintln!("skipped: needs a database server (TEST_DATABASE_URL)");
        return;
    };
    let namespaces = ServerNamespaces::new(&server);
    let data = tempfile::tempdir().expect("tempdir");
    let out = data.path().join("provisioned.toml");
    let provisioned = Command::new(env!("CARGO_BIN_EXE_omnidesk"))
        .args(["db", "provision", "--admin-url", namespaces.url(), "--out"])
        .arg(&out)
        .env("OMNIDESK_DATA__NAMESPACE", namespaces.template())
        .env_remove("OMNIDESK_CONFIG")
        .current_dir(data.path())
        .output()
        .expect("omnidesk db provision runs");
    assert!(provisioned.status.success(), "{}", String::from_utf8_lossy(&provisioned.stderr));
    let mode = std::fs::metadata(&out).expect("written").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file holds passwords");
    let written: toml::Table = std::fs::read_to_string(&out).expect("readable").parse().expect("TOML");
    let url_of = |service: &str| written["services"][service]["database_url"].as_str().expect("a URL").to_owned();

    let mut config = monolith_config(data.path());
    config.data.url = None;
    config.data.mode = kernel::config::DatabaseMode::Distributed;
    for service in omnidesk::service_names() {
        config.services.entry(service.to_owned()).or_default().database_url = Some(url_of(service));
    }
    let app = TestApp::monolith_with(config, data).await;
    let (user, session) = app.signed_in().await;
    assert_eq!(app.get(&format!("/api/users/{}", user.id), &session.access_token).await.status, StatusCode::OK);

    let inbox_url = url_of("inbox");
    let (inbox, user) =
        (namespaces.template().replace("{service}", "inbox"), namespaces.template().replace("{service}", "user"));
    let (own, refused) = if inbox_url.starts_with("mysql://") {
        let login: sqlx::mysql::MySqlConnectOptions = inbox_url.parse().expect("a MariaDB URL");
        let mut connection = sqlx::ConnectOptions::connect(&login).await.expect("the inbox login connects");
        let own: Result<(i64,), _> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("select count(*) from `{inbox}`.inboxes")))
                .fetch_one(&mut connection)
                .await;
        let refused = sqlx::query(sqlx::AssertSqlSafe(format!("select email from `{user}`.users")))
            .fetch_all(&mut connection)
            .await
            .map(drop);
        (own, refused)
    } else {
        let login: sqlx::postgres::PgConnectOptions = inbox_url.parse().expect("a PostgreSQL URL");
        let mut connection = sqlx::ConnectOptions::connect(&login).await.expect("the inbox login connects");
        let own: Result<(i64,), _> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("select count(*) from \"{inbox}\".inboxes")))
                .fetch_one(&mut connection)
                .await;
        let refused = sqlx::query(sqlx::AssertSqlSafe(format!("select email from \"{user}\".users")))
            .fetch_all(&mut connection)
            .await
            .map(drop);
        (own, refused)
    };
    assert_eq!(own.expect("its own tables").0, 0);
    let refused = refused.expect_err("another service's table");
    // PostgreSQL: insufficient_privilege (42501); MariaDB: 1142, SELECT command denied.
    let database_error = refused.as_database_error().expect("a database error");
    let denied = match database_error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        Some(mysql) => mysql.number() == 1142,
        None => database_error.code().as_deref() == Some("42501"),
    };
    assert!(denied, "permission denied, not data: {refused}");
}
