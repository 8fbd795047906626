//! The black-box harness (DESIGN §9): start a real topology on free ports with fresh data, talk HTTP to it.
//!
//! - [`TestApp::monolith`]: every service in one in-process `Process`, its own data directory per test.
//! - [`TestApp::microservices`]: the real binary's `omnidesk up --topology microservices` — seven OS
//!   processes behind the gateway — started once per test binary and shared; tests isolate themselves by
//!   registering their own users.
//! - [`Topology::spawn`]: a private `omnidesk up` for tests that kill processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running topology and a client for it.
pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    /// The topology's data directory (for administrative commands such as `omnidesk plan-token`).
    pub data_dir: PathBuf,
    /// Keeps the data directory (and, for the monolith, the server) alive as long as the app.
    _resources: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

struct InProcess {
    _data: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
    _namespaces: Option<ServerNamespaces>,
}

/// The database server the suite runs on, `TEST_DATABASE_URL` (`postgres://…` or `mysql://…`); unset, every
/// test app keeps SQLite files in its data directory.
pub fn test_database() -> Option<String> {
    std::env::var("TEST_DATABASE_URL").ok().filter(|url| !url.is_empty())
}

/// A test app's namespaces on the test server: schemas `<prefix>_<service>`, dropped with it (the
/// servers of this machine kind outlive the tests). The prefix is `t<pid>p<uuid>`, so that a run can
/// sweep away what earlier runs' processes left behind (the shared topology's, a killed run's) without
/// touching a run still going; the app's connections carry the prefix as their `application_name`, so
/// the drop can end them first (an in-process server stopping with a transaction open would otherwise
/// hold a lock the drop waits for).
pub struct ServerNamespaces {
    /// The server as the tests reach it (not through the app's URL, which may lead through a relay).
    server: String,
    url: String,
    prefix: String,
}

impl ServerNamespaces {
    /// Fresh namespaces on the server of `server_url`.
    pub fn new(server_url: &str) -> Self {
        let prefix = fresh_prefix(server_url);
        Self { server: server_url.to_owned(), url: app_url(server_url, &prefix), prefix }
    }

    /// The namespaces `config` names on the test server (made by [`monolith_config`]), to drop with it.
    pub fn of(config: &kernel::Config) -> Option<Self> {
        let url = config.data.url.clone()?;
        let server = test_database()?;
        Some(Self { server, url, prefix: config.data.namespace.trim_end_matches("_{service}").to_owned() })
    }

    /// `data.url` for these namespaces.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `data.namespace` for these namespaces.
    pub fn template(&self) -> String {
        format!("{}_{{service}}", self.prefix)
    }

    /// The URL of `service`'s namespace among these, as `omnidesk data` takes it; with `{service}` for
    /// `service`, the template `omnidesk data split` takes.
    pub fn service_url(&self, service: &str) -> String {
        let name = format!("{}_{service}", self.prefix);
        if is_mysql(&self.server) {
            format!("{}/{name}", self.server.trim_end_matches('/'))
        } else {
            format!("{}&schema={name}", self.url)
        }
    }

    /// Writes `omnidesk.toml` naming these namespaces into `dir`, for the commands a test runs there.
    fn write_config(&self, dir: &Path) {
        let toml = format!("[data]\nurl = {:?}\nnamespace = {:?}\n", self.url, self.template());
        std::fs::write(dir.join("omnidesk.toml"), toml).expect("omnidesk.toml");
    }
}

impl Drop for ServerNamespaces {
    fn drop(&mut self) {
        // Straight to the server, not through the app's URL (which may lead through a test's relay).
        let prefix = self.prefix.clone();
        if is_mysql(&self.server) {
            on_mysql_server(&self.server, Some(prefix));
        } else {
            on_test_server(&self.server, Box::new(move |connection| Box::pin(drop_schemas(connection, prefix))));
        }
    }
}

/// A namespace prefix no one uses yet (sweeping, the first time, what gone runs left).
fn fresh_prefix(server_url: &str) -> String {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        if is_mysql(server_url) {
            on_mysql_server(server_url, None);
        } else {
            sweep_stale_schemas(server_url);
        }
    });
    format!("t{}p{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

/// The URL an app with namespaces `prefix` connects with: its connections named after them.
fn app_url(server_url: &str, prefix: &str) -> String {
    if is_mysql(server_url) {
        // MariaDB's connections are found by the database they use instead.
        return server_url.to_owned();
    }
    let separator = if server_url.contains('?') { '&' } else { '?' };
    format!("{server_url}{separator}application_name={prefix}")
}

fn is_mysql(url: &str) -> bool {
    kernel::store::Location::parse(url, "test").is_ok_and(|location| location.engine() == kernel::store::Engine::MySql)
}

/// Whether the test run that named `name` (`t<pid>p…`) has ended: its process is gone.
fn run_is_gone(name: &str) -> bool {
    let pid = name.strip_prefix('t').and_then(|rest| rest.split('p').next()).unwrap_or_default();
    !Path::new("/proc").join(pid).exists()
}

/// On a MariaDB test server: ends the connections to and drops the databases of `prefix`, or (without
/// one) of every test run whose process is gone.
fn on_mysql_server(url: &str, prefix: Option<String>) {
    let url = url.to_owned();
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            use sqlx::{ConnectOptions, Connection};
            let options: sqlx::mysql::MySqlConnectOptions = url.parse()?;
            let mut connection = options.connect().await?;
            let databases: Vec<(String,)> = sqlx::query_as(
                "select schema_name from information_schema.schemata where schema_name regexp '^t[0-9]+p[0-9a-f]+_'",
            )
            .fetch_all(&mut connection)
            .await?;
            for (database,) in databases {
                let doomed = match &prefix {
                    Some(prefix) => database.starts_with(&format!("{prefix}_")),
                    None => run_is_gone(&database),
                };
                if !doomed {
                    continue;
                }
                let sessions: Vec<(i64,)> =
                    sqlx::query_as("select cast(id as signed) from information_schema.processlist where db = ?")
                        .bind(&database)
                        .fetch_all(&mut connection)
                        .await?;
                for (session,) in sessions {
                    let _ =
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("kill {session}"))).execute(&mut connection).await;
                }
                let drop = format!("drop database if exists `{database}`");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut connection).await?;
            }
            // The logins `omnidesk db provision` made for them.
            let users: Vec<(String,)> =
                sqlx::query_as("select user from mysql.user where user regexp '^t[0-9]+p[0-9a-f]+_'")
                    .fetch_all(&mut connection)
                    .await?;
            for (user,) in users {
                let doomed = match &prefix {
                    Some(prefix) => user.starts_with(&format!("{prefix}_")),
                    None => run_is_gone(&user),
                };
                if doomed {
                    let drop = format!("drop user if exists '{user}'@'%'");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut connection).await?;
                }
            }
            connection.close().await
        })
    });
    if let Ok(Err(error)) = done.join() {
        eprintln!("cleaning up the test server's databases: {error}");
    }
}

/// Drops the schemas of test runs whose process is gone.
fn sweep_stale_schemas(url: &str) {
    let sweep: OnConnection = Box::new(|connection| {
        Box::pin(async move {
            let prefixes: Vec<(String,)> = sqlx::query_as(
                "select distinct substring(nspname from '^(t[0-9]+p[0-9a-f]+)_') from pg_namespace \
                 where nspname ~ '^t[0-9]+p[0-9a-f]+_'",
            )
            .fetch_all(&mut *connection)
            .await?;
            for (prefix,) in prefixes {
                if run_is_gone(&prefix) {
                    drop_schemas(connection, prefix).await?;
                }
            }
            Ok(())
        })
    });
    on_test_server(url, sweep);
}

/// Ends the connections of the namespaces with `prefix` and drops their schemas.
async fn drop_schemas(connection: &mut sqlx::PgConnection, prefix: String) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1")
        .bind(&prefix)
        .execute(&mut *connection)
        .await?;
    let schemas: Vec<(String,)> =
        sqlx::query_as("select nspname::text from pg_namespace where starts_with(nspname, $1)")
            .bind(format!("{prefix}_"))
            .fetch_all(&mut *connection)
            .await?;
    for (schema,) in schemas {
        let drop = format!("drop schema if exists \"{schema}\" cascade");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *connection).await?;
    }
    // The logins `omnidesk db provision` made for them.
    let roles: Vec<(String,)> = sqlx::query_as("select rolname::text from pg_roles where starts_with(rolname, $1)")
        .bind(format!("{prefix}_"))
        .fetch_all(&mut *connection)
        .await?;
    for (role,) in roles {
        let drop = format!("drop role if exists \"{role}\"");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *connection).await?;
    }
    Ok(())
}

type OnConnection = Box<
    dyn for<'c> FnOnce(
            &'c mut sqlx::PgConnection,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>>
        + Send,
>;

/// Runs `work` on a connection to the test server, on a thread of its own (callers are `Drop`s and
/// one-time set-up inside the tests' runtimes); a failure is reported, not raised.
fn on_test_server(url: &str, work: OnConnection) {
    let url = url.to_owned();
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            use sqlx::{ConnectOptions, Connection};
            let options: sqlx::postgres::PgConnectOptions = url.parse()?;
            let mut connection = options.application_name("omnidesk-tests").connect().await?;
            work(&mut connection).await?;
            connection.close().await
        })
    });
    if let Ok(Err(error)) = done.join() {
        eprintln!("cleaning up the test server's schemas: {error}");
    }
}

/// A user registered by a test, with the credentials to log in.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub password: String,
}

/// The body of a successful login or refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts this is an RFC 9457 problem with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status.as_u16(), "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
    }
}

/// The payment provider's webhook signing secret every test topology is configured with.
pub const WEBHOOK_SECRET: &str = "whsec_test_omnidesk_secret";

/// The scrape credential of `/metrics` in every test topology.
pub const METRICS_TOKEN: &str = "scrape-omnidesk-test";

/// Configuration for an in-process monolith under `data_dir`.
pub fn monolith_config(data_dir: &Path) -> kernel::Config {
    let mut config = kernel::Config::default();
    config.data.dir = data_dir.to_owned();
    if let Some(url) = test_database() {
        // `monolith_with` takes charge of these namespaces (and drops them).
        let prefix = fresh_prefix(&url);
        config.data.url = Some(app_url(&url, &prefix));
        config.data.namespace = format!("{prefix}_{{service}}");
    }
    config.http.listen = "127.0.0.1:0".parse().expect("address");
    config.http.metrics_token = Some(METRICS_TOKEN.to_owned());
    config
        .services
        .entry("payment".to_owned())
        .or_default()
        .settings
        .insert("stripe_webhook_secret".to_owned(), WEBHOOK_SECRET.to_owned());
    // Reply deliveries retry after 50 ms instead of a second, so retry tests are quick; and they may reach
    // the tests' callback receivers, on loopback.
    let input = &mut config.services.entry("input".to_owned()).or_default().settings;
    input.insert("delivery_retry_base_ms".to_owned(), "50".to_owned());
    input.insert("callback_allow_private".to_owned(), "true".to_owned());
    // Every test posts from 127.0.0.1: the widget limits per client IP would count the whole suite.
    input.insert("widget_contacts_per_ip_per_minute".to_owned(), "1000000".to_owned());
    input.insert("widget_requests_per_ip_per_minute".to_owned(), "1000000".to_owned());
    config
}

/// The environment of `omnidesk up` in tests: events between processes go through the machine's RabbitMQ.
pub const SPLIT_ENV: &[(&str, &str)] = &[
    ("RABBIT_MQ_HOST", "127.0.0.1"),
    ("RABBIT_MQ_USER", "guest"),
    ("RABBIT_MQ_PASSWORD", "guest"),
    ("OMNIDESK_SERVICES__PAYMENT__SETTINGS__STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("OMNIDESK_HTTP__METRICS_TOKEN", METRICS_TOKEN),
    ("OMNIDESK_SERVICES__INPUT__SETTINGS__DELIVERY_RETRY_BASE_MS", "50"),
    ("OMNIDESK_SERVICES__INPUT__SETTINGS__CALLBACK_ALLOW_PRIVATE", "true"),
    ("OMNIDESK_SERVICES__INPUT__SETTINGS__WIDGET_CONTACTS_PER_IP_PER_MINUTE", "1000000"),
    ("OMNIDESK_SERVICES__INPUT__SETTINGS__WIDGET_REQUESTS_PER_IP_PER_MINUTE", "1000000"),
];

impl TestApp {
    /// The monolith, in this process, on a fresh data directory.
    pub async fn monolith() -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let config = monolith_config(data.path());
        Self::monolith_with(config, data).await
    }

    /// The monolith with a custom configuration (its data directory must be `data`).
    pub async fn monolith_with(config: kernel::Config, data: tempfile::TempDir) -> Self {
        let namespaces = ServerNamespaces::of(&config);
        if let Some(namespaces) = &namespaces {
            namespaces.write_config(data.path());
        }
        let (base_url, stop) = start_in_process(config).await;
        let data_dir = data.path().to_owned();
        Self::new(base_url, data_dir, Some(Arc::new(InProcess { _data: data, _stop: stop, _namespaces: namespaces })))
    }

    /// Microservices: seven processes behind the gateway, shared by the tests of this binary.
    pub async fn microservices() -> Self {
        static SHARED: OnceLock<Topology> = OnceLock::new();
        let topology = SHARED.get_or_init(|| {
            // An exchange of this run's own: two runs at once (two checkouts, CI and a developer) must not
            // consume each other's events. The shared topology lives as long as the test process, so its
            // queues outlive it; each run sweeps away those of earlier runs (no consumer left).
            sweep_stale_queues("omnidesk-test.shared");
            let exchange = format!("{SHARED_PREFIX}{}.events", std::process::id());
            Topology::spawn(
                "microservices",
                &[
                    ("OMNIDESK_AUTH__LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "1000000"),
                    ("OMNIDESK_RABBITMQ__EXCHANGE", &exchange),
                ],
            )
        });
        Self::new(topology.base_url.clone(), topology.data_dir.clone(), None)
    }

    pub fn new(base_url: String, data_dir: PathBuf, resources: Option<Arc<dyn std::any::Any + Send + Sync>>) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { base_url, http, data_dir, _resources: resources }
    }

    /// Opens `spec`'s namespace where this app keeps it (a SQLite file in the data directory, or the
    /// schema its `omnidesk.toml` names on the test server), for the few tests that check what was stored.
    pub async fn namespace(&self, spec: &kernel::ServiceSpec) -> kernel::store::Namespace {
        let file = self.data_dir.join("omnidesk.toml");
        let mut config = if file.exists() {
            kernel::Config::load(Some(&file)).expect("the app's omnidesk.toml loads")
        } else {
            kernel::Config::default()
        };
        config.data.dir = self.data_dir.clone();
        let location = kernel::locations::location_of(&config, spec.name).expect("a location");
        kernel::store::Namespace::open(spec.name, &location, spec.migrations).await.expect("the namespace opens")
    }

    /// Runs `omnidesk ARGS --data-dir <this topology's data>`; returns its standard output.
    pub fn omnidesk(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_omnidesk"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("OMNIDESK_CONFIG")
            .current_dir(&self.data_dir)
            .output()
            .expect("omnidesk runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    }

    /// Polls `GET path` with `token` until `done` holds for the body (events are asynchronous), for up to
    /// ten seconds.
    pub async fn eventually(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Reply {
        self.eventually_for(path, token, std::time::Duration::from_secs(10), done).await
    }

    /// [`TestApp::eventually`] with a deadline of `patience`.
    pub async fn eventually_for(
        &self,
        path: &str,
        token: &str,
        patience: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Reply {
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            let reply = self.get(path, token).await;
            if reply.status == StatusCode::OK && done(&reply.body) {
                return reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("GET {path} never reached the expected state: {:?}", self.get(path, token).await);
    }

    /// Sends a request with an optional JSON body and bearer token.
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// POSTs raw bytes with the given content type (for malformed and oversize bodies).
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base_url)).header("content-type", content_type);
        read(request.body(body).send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body)).await
    }

    /// `POST /api/users/register` with the given fields, returning the raw reply.
    pub async fn try_register(&self, email: &str, password: &str, name: &str) -> Reply {
        self.post("/api/users/register", json!({ "email": email, "password": password, "name": name })).await
    }

    /// Registers a new user with a unique address; asserts it worked.
    pub async fn register(&self) -> TestUser {
        let email = format!("agent-{}@example.jp", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let reply = self.try_register(&email, &password, "Aiko Tanaka").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        TestUser {
            id: reply.body["user"]["id"].as_str().expect("user id").to_owned(),
            account_id: reply.body["account"]["id"].as_str().expect("account id").to_owned(),
            email,
            password,
        }
    }

    pub async fn try_login(&self, email: &str, password: &str) -> Reply {
        self.post("/api/users/login", json!({ "email": email, "password": password })).await
    }

    /// Logs `user` in; asserts it worked.
    pub async fn login(&self, user: &TestUser) -> Session {
        let reply = self.try_login(&user.email, &user.password).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        serde_json::from_value(reply.body).expect("session body")
    }

    /// Registers and logs in a new user.
    pub async fn signed_in(&self) -> (TestUser, Session) {
        let user = self.register().await;
        let session = self.login(&user).await;
        (user, session)
    }

    /// Moves `user`'s account to `plan` the way an administrator does: a plan token from
    /// `omnidesk plan-token`, redeemed by the owner. Returns the redemption's answer.
    pub async fn move_to_plan(&self, user: &TestUser, token: &str, plan: &str) -> Reply {
        let plan_token = self.omnidesk(&["plan-token", "--account", &user.account_id, "--plan", plan]);
        let path = format!("/api/plan/register/{plan_token}");
        let redeemed = self.request(Method::POST, &path, Some(token), None).await;
        assert_eq!(redeemed.status, StatusCode::OK, "{redeemed:?}");
        redeemed
    }
}

async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let content_type =
        headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Reply { status, content_type, headers, body }
}

/// The exchange-name prefix of the shared microservices topologies.
const SHARED_PREFIX: &str = "omnidesk-test.shared-";

/// Deletes the queues under `prefix` that no process consumes any more.
fn sweep_stale_queues(prefix: &str) {
    let Ok(listed) = Command::new("rabbitmqctl").args(["-q", "list_queues", "name", "consumers"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let mut columns = line.split_whitespace();
        if let (Some(queue), Some("0")) = (columns.next(), columns.next())
            && queue.starts_with(prefix)
        {
            let _ = Command::new("rabbitmqctl").args(["-q", "delete_queue", queue]).output();
        }
    }
}

/// Builds and serves a monolith in this process; dropping the sender stops it.
pub async fn start_in_process(config: kernel::Config) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(config.http.listen).await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let process = kernel::Process::build_with_site(
        Arc::new(config),
        omnidesk::CATALOGUE,
        &omnidesk::service_names(),
        Some(web::router()),
    )
    .await
    .expect("builds");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(process.serve(listener, async move {
        let _ = stopped.await;
    }));
    (base_url, stop)
}

/// A real `omnidesk up` process tree.
pub struct Topology {
    pub base_url: String,
    pub data_dir: PathBuf,
    /// The RabbitMQ exchange of this topology; its queues are `<exchange>.<service>`.
    exchange: String,
    child: Child,
    _data: Option<tempfile::TempDir>,
    _namespaces: Option<ServerNamespaces>,
}

impl Topology {
    /// Starts `omnidesk up --topology <mode>` on a free port and a fresh data directory, and waits for its
    /// ready line.
    pub fn spawn(mode: &str, env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut topology = Self::spawn_on(mode, env, data.path());
        topology._data = Some(data);
        topology
    }

    /// [`Topology::spawn`] on the data directory `data_dir`, which the caller keeps (topologies started
    /// one after another on the same data, as an operator switches).
    pub fn spawn_on(mode: &str, env: &[(&str, &str)], data_dir: &Path) -> Self {
        // Topologies start one at a time. Each supervisor picks free loopback ports for its children and
        // releases them just before the children bind them; two supervisors starting at once could pick
        // the same port in that window, and one gateway would then reach the other's process.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut command = Command::new(env!("CARGO_BIN_EXE_omnidesk"));
        command
            .args(["up", "--topology", mode, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("OMNIDESK_PARENT_PID", std::process::id().to_string())
            .env("OMNIDESK_LOG", "warn")
            .env_remove("OMNIDESK_CONFIG")
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in SPLIT_ENV.iter().chain(env) {
            command.env(key, value);
        }
        // An exchange (and so queues) of its own: topologies running side by side must not consume each
        // other's events. The shared topology is never dropped, so it reuses one name run after run rather
        // than leaving a queue behind each time.
        let exchange = match env.iter().find(|(key, _)| *key == "OMNIDESK_RABBITMQ__EXCHANGE") {
            Some((_, shared)) => (*shared).to_owned(),
            None => format!("omnidesk-test.{}.events", uuid::Uuid::new_v4().simple()),
        };
        command.env("OMNIDESK_RABBITMQ__EXCHANGE", &exchange);
        let namespaces = test_database().map(|url| {
            let namespaces = ServerNamespaces::new(&url);
            command.env("DATABASE_URL", namespaces.url()).env("OMNIDESK_DATA__NAMESPACE", namespaces.template());
            namespaces.write_config(data_dir);
            namespaces
        });
        let mut child = command.spawn().expect("omnidesk up starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base_url = loop {
            let line = lines.next().expect("omnidesk up printed its ready line").expect("utf-8");
            if let Some(rest) = line.strip_prefix("OmniDesk is ready at ") {
                break rest.split_whitespace().next().expect("url").to_owned();
            }
        };
        // Keep draining stdout so the supervisor never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { base_url, data_dir: data_dir.to_owned(), exchange, child, _data: None, _namespaces: namespaces }
    }

    /// The supervisor's state file.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.data_dir.join("run/up.json")).expect("up.json");
        serde_json::from_str(&text).expect("up.json is JSON")
    }

    /// The pid of the process hosting `service`.
    pub fn pid_of(&self, service: &str) -> i32 {
        let state = self.state();
        let group = state["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["services"].as_array().is_some_and(|s| s.iter().any(|n| n == service)))
            .expect("a group hosts the service")
            .clone();
        i32::try_from(group["pid"].as_i64().expect("pid")).expect("pid fits")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Its queues would otherwise stay on the broker (they are durable).
        if let Ok(listed) = Command::new("rabbitmqctl").args(["-q", "list_queues", "name"]).output() {
            for queue in String::from_utf8_lossy(&listed.stdout).lines() {
                if queue.starts_with(&format!("{}.", self.exchange)) {
                    let _ = Command::new("rabbitmqctl").args(["-q", "delete_queue", queue]).output();
                }
            }
        }
    }
}

/// Runs each named test body (an `async fn(TestApp)`) against every topology.
#[macro_export]
macro_rules! in_every_topology {
    ($($test:ident),* $(,)?) => {
        mod monolith {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::monolith().await).await;
                }
            )*
        }
        mod microservices {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::microservices().await).await;
                }
            )*
        }
    };
}
