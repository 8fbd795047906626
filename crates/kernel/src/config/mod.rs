//! Configuration: `omnidesk.toml` overlaid by environment variables (DESIGN §6).
//!
//! Precedence, lowest first: built-in defaults, the TOML file, `OMNIDESK_*` variables (nested keys joined
//! by `__`, e.g. `OMNIDESK_HTTP__LISTEN`), the seed's own variables (`ENVIRONMENT`, `DATABASE_MODE`,
//! `REDIS_MODE`, `RABBIT_MQ_*`, `PORT`, `OMNIDESK_DATA_DIR`), then command-line flags. Unknown keys are
//! errors, and every error names the key and what is wrong with it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::redact::{REDACTED, redact_url_password};

/// The commented example configuration shipped with the binary (`omnidesk config --example`).
pub const EXAMPLE: &str = include_str!("../../../../omnidesk.example.toml");

/// The effective configuration of one process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `ENVIRONMENT`: development (readable logs) or production (JSON logs).
    pub environment: Environment,
    pub http: HttpConfig,
    pub data: DataConfig,
    pub topology: TopologyConfig,
    /// Per-service settings, keyed by service name.
    pub services: BTreeMap<String, ServiceConfig>,
    pub auth: AuthConfig,
    pub internal: InternalConfig,
    pub redis: RedisConfig,
    pub rabbitmq: RabbitMqConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The address this process listens on (`--listen`; `PORT` replaces just the port).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request still running after this long is answered 503 and dropped.
    pub request_timeout_secs: u64,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (the gateway's address). Empty: believe no one. They are
    /// not capped by `max_connections_per_ip`, since they speak for many clients.
    pub trusted_proxies: Vec<IpAddr>,
    /// A connection must deliver a complete request head within this long of opening or of its previous
    /// response, or it is closed: a stalled client, and an idle keep-alive connection.
    pub header_read_timeout_secs: u64,
    /// Connections served at once; more are answered 503 and closed. Lowered at start to what the
    /// open-file limit allows.
    pub max_connections: usize,
    /// Connections served at once for one client: an IPv4 address or an IPv6 /64 (0: no such cap).
    pub max_connections_per_ip: usize,
    /// With it, `/metrics` on this listener answers a scraper that sends it as a bearer token; without
    /// it, `/metrics` is not served on this listener at all.
    pub metrics_token: Option<String>,
    /// A second listener serving only `/metrics`, without a credential, for a scraper on an internal
    /// network (e.g. `0.0.0.0:9100` in a pod, with only the cluster allowed to reach it).
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            max_connections_per_ip: 128,
            metrics_token: None,
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `OMNIDESK_DATA_DIR` / `--data-dir`: where embedded databases and keys live.
    pub dir: PathBuf,
    /// `DATABASE_MODE`: `monolithic` puts every namespace in one place (the data directory or one server);
    /// `distributed` lets each service name its own database with `services.<name>.database_url`.
    pub mode: DatabaseMode,
    /// `DATABASE_URL`: the server every namespace lives on (`postgres://…` or `mysql://…`), one schema or database per service named
    /// by `namespace`; without it, SQLite files under `dir`.
    pub url: Option<String>,
    /// The name of a service's namespace on a server (`{service}` is replaced): a PostgreSQL schema.
    pub namespace: String,
    /// Apply pending migrations when a service starts (otherwise run `omnidesk migrate`).
    pub migrate_on_start: bool,
    /// Days the event bus keeps published outbox rows and the ids of processed events (which deduplicate
    /// redeliveries); older ones are deleted hourly. 0 keeps them forever.
    pub event_retention_days: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data"),
            mode: DatabaseMode::Monolithic,
            url: None,
            namespace: crate::store::DEFAULT_NAMESPACE_TEMPLATE.to_owned(),
            migrate_on_start: true,
            event_retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseMode {
    #[default]
    Monolithic,
    Distributed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// Which services share a process.
    pub mode: TopologyMode,
    /// The colocation groups for `mode = "groups"`; every service in exactly one group.
    pub groups: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopologyMode {
    #[default]
    Monolith,
    Microservices,
    Groups,
}

impl std::str::FromStr for TopologyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "monolith" => Ok(Self::Monolith),
            "microservices" => Ok(Self::Microservices),
            "groups" => Ok(Self::Groups),
            other => Err(format!("unknown topology `{other}`; expected monolith, microservices or groups")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the process hosting this service is reachable, for the gateway and for remote port calls.
    pub url: Option<String>,
    /// Where this service's namespace lives with `DATABASE_MODE=distributed` (`sqlite://PATH`, or
    /// `postgres://…` with the schema `data.namespace` names unless the URL gives `?schema=NAME`); default:
    /// `data.url`'s server, else `<data.dir>/<service>.db`.
    pub database_url: Option<String>,
    /// The service's own settings (e.g. the payment provider's keys), read by the service itself. Values
    /// whose key contains `secret`, `key` or `password` are redacted when printed. Numbers and booleans
    /// (`delivery_max_attempts = 8` in TOML, or an environment variable, which figment reads as a number)
    /// are kept as their text; the service parses what it reads.
    #[serde(deserialize_with = "scalars_as_text")]
    pub settings: BTreeMap<String, String>,
}

/// Reads a map of scalars, keeping each value as text.
fn scalars_as_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Unsigned(u64),
        Float(f64),
        Flag(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Scalar::Text(text) => text,
                Scalar::Integer(n) => n.to_string(),
                Scalar::Unsigned(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Flag(flag) => flag.to_string(),
            };
            (key, text)
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl_secs: u64,
    /// Ed25519 private key (PEM) for signing; needed only where the user service runs.
    /// Default: `<data.dir>/keys/access-token.ed25519.pem`, created on first start.
    pub private_key_file: Option<PathBuf>,
    /// Ed25519 public key (PEM) for verifying; needed everywhere.
    pub public_key_file: Option<PathBuf>,
    /// Login attempts allowed at one e-mail address from one client IP per minute.
    pub login_attempts_per_email_per_client_per_minute: u32,
    /// Login attempts allowed per client IP per minute, whatever the address.
    pub login_attempts_per_ip_per_minute: u32,
    /// Failed logins allowed per e-mail address per minute from all the clients it has not signed in
    /// from; past it those clients wait, clients the user signed in from before do not.
    pub login_failures_per_email_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            private_key_file: None,
            public_key_file: None,
            login_attempts_per_email_per_client_per_minute: 5,
            login_attempts_per_ip_per_minute: 60,
            login_failures_per_email_per_minute: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// The service-to-service credential for `/internal/*` calls. Required in split topologies;
    /// `omnidesk up` generates one for its children.
    pub secret: Option<String>,
    /// Timeout of one remote port call.
    pub call_timeout_ms: u64,
}

impl Default for InternalConfig {
    fn default() -> Self {
        Self { secret: None, call_timeout_ms: 5_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `REDIS_MODE`: single node or cluster. Redis is not used yet: `validate` refuses a `url` and
    /// `cluster` rather than accept settings that would change nothing.
    pub mode: RedisMode,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Single,
    Cluster,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RabbitMqConfig {
    /// `RABBIT_MQ_HOST`. Without it, events travel in-process.
    pub host: Option<String>,
    /// `RABBIT_MQ_AMQP_PORT`.
    pub amqp_port: u16,
    /// `RABBIT_MQ_USER`.
    pub user: String,
    /// `RABBIT_MQ_PASSWORD`.
    pub password: Option<String>,
    /// The topic exchange events are published to; each consuming service's queue is `<exchange>.<service>`.
    /// Deployments sharing a broker (or test runs) use different exchanges.
    pub exchange: String,
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            host: None,
            amqp_port: 5672,
            user: "guest".to_owned(),
            password: None,
            exchange: crate::events::rabbitmq::EXCHANGE.to_owned(),
        }
    }
}

impl RabbitMqConfig {
    /// The seed's `amqp://USER:PASSWORD@HOST:PORT/`, when a host is configured.
    pub fn amqp_url(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let password = self.password.as_deref().unwrap_or("");
        Some(format!("amqp://{}:{password}@{host}:{}/", self.user, self.amqp_port))
    }
}

/// A configuration error that names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn key(key: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("`{key}`: {problem}"))
    }
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        let messages: Vec<String> = error.into_iter().map(|e| describe(&e)).collect();
        Self(messages.join("; "))
    }
}

/// One figment error, worded for whoever set the value. Figment's own text quotes a list of expected values
/// twice (``expected ``monolithic` or `distributed`` ``) and names a variable's key by its path
/// (`DATA.MODE`); here the list is quoted once, and a value set by a variable is named by that variable.
fn describe(e: &figment::Error) -> String {
    use figment::error::{Kind, OneOf};
    let problem = match &e.kind {
        Kind::UnknownVariant(found, expected) => format!("expected {}, found `{found}`", OneOf(expected)),
        Kind::UnknownField(found, expected) => format!("unknown key `{found}`; expected {}", OneOf(expected)),
        other => other.to_string(),
    };
    let key = e.path.join(".");
    let Some(metadata) = &e.metadata else {
        return if key.is_empty() { problem } else { format!("`{key}`: {problem}") };
    };
    // The providers' names, as figment's `Env` gives them: `Env::raw()` (the seed's variables) and
    // `Env::prefixed("OMNIDESK_")`.
    let variable = if metadata.name == "environment variable(s)" {
        SEED_VARIABLES.iter().find(|(_, k)| k.eq_ignore_ascii_case(&key)).map(|(variable, _)| (*variable).to_owned())
    } else if metadata.name.starts_with("`OMNIDESK_`") {
        let path: Vec<String> = e.path.iter().map(|segment| segment.to_ascii_uppercase()).collect();
        Some(format!("OMNIDESK_{}", path.join("__")))
    } else {
        None
    };
    match variable {
        Some(variable) => format!("`{variable}` ({key}): {problem}"),
        None => {
            let key = if key.is_empty() { String::new() } else { format!("`{key}` ") };
            let source = metadata.source.as_ref().map_or_else(String::new, |source| format!("{source} "));
            format!("{key}in {source}{}: {problem}", metadata.name)
        }
    }
}

/// The seed's variable names and the keys they set.
const SEED_VARIABLES: &[(&str, &str)] = &[
    ("ENVIRONMENT", "environment"),
    ("DATABASE_MODE", "data.mode"),
    ("DATABASE_URL", "data.url"),
    ("REDIS_MODE", "redis.mode"),
    ("RABBIT_MQ_USER", "rabbitmq.user"),
    ("RABBIT_MQ_PASSWORD", "rabbitmq.password"),
    ("RABBIT_MQ_HOST", "rabbitmq.host"),
    ("RABBIT_MQ_AMQP_PORT", "rabbitmq.amqp_port"),
    ("OMNIDESK_DATA_DIR", "data.dir"),
];

/// Variables read elsewhere that must not be mistaken for configuration keys (`WEB_DIST` is the console
/// build's, `crates/web/build.rs`, often left set in the shell that then runs the binary).
const NOT_KEYS: &[&str] = &["DATA_DIR", "CONFIG", "PARENT_PID", "LOG", "WEB_DIST"];

impl Config {
    /// Loads defaults, then `file` (if given or if `omnidesk.toml` exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::key("--config", format!("{} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("omnidesk.toml").exists() => figment = figment.merge(Toml::file("omnidesk.toml")),
            None => {}
        }
        figment = figment.merge(Env::prefixed("OMNIDESK_").ignore(NOT_KEYS).split("__")).merge(
            Env::raw().only(&SEED_VARIABLES.iter().map(|(var, _)| *var).collect::<Vec<_>>()).map(|var| {
                let key = SEED_VARIABLES
                    .iter()
                    .find(|(name, _)| var.as_str().eq_ignore_ascii_case(name))
                    .map_or("", |(_, key)| *key);
                key.into()
            }),
        );
        let mut config: Config = figment.extract()?;
        if let Ok(port) = std::env::var("PORT") {
            let port: u16 = port.parse().map_err(|_| ConfigError::key("PORT", format!("`{port}` is not a port")))?;
            config.http.listen.set_port(port);
        }
        Ok(config)
    }

    /// Checks what the types cannot: that service names exist, groups partition the services, URLs parse.
    pub fn validate(&self, known_services: &[&str]) -> Result<(), ConfigError> {
        for name in self.services.keys() {
            if !known_services.contains(&name.as_str()) {
                return Err(ConfigError::key(
                    &format!("services.{name}"),
                    format!("unknown service; known: {}", known_services.join(", ")),
                ));
            }
        }
        for (name, service) in &self.services {
            if let Some(url) = &service.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError::key(&format!("services.{name}.url"), "must start with http:// or https://"));
            }
            if let Some(url) = &service.database_url {
                let schema = crate::store::namespace_name(&self.data.namespace, name)
                    .map_err(|e| ConfigError::key("data.namespace", e))?;
                crate::store::Location::parse(url, &schema)
                    .map_err(|e| ConfigError::key(&format!("services.{name}.database_url"), e))?;
                if self.data.mode == DatabaseMode::Monolithic {
                    return Err(ConfigError::key(
                        &format!("services.{name}.database_url"),
                        "per-service databases need DATABASE_MODE=distributed (data.mode)",
                    ));
                }
            }
        }
        for service in known_services {
            crate::store::namespace_name(&self.data.namespace, service)
                .map_err(|e| ConfigError::key("data.namespace", e))?;
        }
        if let Some(url) = &self.data.url {
            crate::store::Location::on_server(
                url,
                &self.data.namespace,
                known_services.first().copied().unwrap_or("user"),
            )
            .map_err(|e| ConfigError::key("data.url", e))?;
        }
        if self.topology.mode == TopologyMode::Groups {
            let mut seen: Vec<&str> = Vec::new();
            for service in self.topology.groups.iter().flatten() {
                if !known_services.contains(&service.as_str()) {
                    return Err(ConfigError::key("topology.groups", format!("unknown service `{service}`")));
                }
                if seen.contains(&service.as_str()) {
                    return Err(ConfigError::key("topology.groups", format!("`{service}` is in two groups")));
                }
                seen.push(service);
            }
            if let Some(missing) = known_services.iter().find(|s| !seen.contains(s)) {
                return Err(ConfigError::key("topology.groups", format!("`{missing}` is in no group")));
            }
        }
        // Nothing uses Redis yet: a setting that would be accepted and ignored is refused instead.
        if self.redis.url.is_some() {
            return Err(ConfigError::key(
                "redis.url",
                "Redis is not supported yet; caches and rate limits are kept in each process (remove redis.url)",
            ));
        }
        if self.redis.mode == RedisMode::Cluster {
            return Err(ConfigError::key(
                "REDIS_MODE",
                "Redis is not supported yet, so there is no cluster to use; leave REDIS_MODE unset or `single`",
            ));
        }
        if self.http.header_read_timeout_secs == 0 {
            return Err(ConfigError::key("http.header_read_timeout_secs", "must be greater than zero"));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::key("http.max_connections", "must be greater than zero"));
        }
        if self.http.body_limit_bytes == 0 {
            return Err(ConfigError::key("http.body_limit_bytes", "must be greater than zero"));
        }
        if self.auth.login_attempts_per_email_per_client_per_minute == 0
            || self.auth.login_attempts_per_ip_per_minute == 0
            || self.auth.login_failures_per_email_per_minute == 0
        {
            return Err(ConfigError::key("auth.login_*_per_minute", "must be greater than zero"));
        }
        Ok(())
    }

    /// The configuration as TOML with every secret replaced by a marker, for `omnidesk config`.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |secret: &mut Option<String>| {
            if secret.is_some() {
                *secret = Some(REDACTED.to_owned());
            }
        };
        redact(&mut shown.internal.secret);
        redact(&mut shown.http.metrics_token);
        redact(&mut shown.rabbitmq.password);
        redact(&mut shown.redis.url);
        if let Some(url) = &mut shown.data.url {
            *url = redact_url_password(url);
        }
        for service in shown.services.values_mut() {
            if let Some(url) = &mut service.database_url {
                *url = redact_url_password(url);
            }
            for (key, value) in &mut service.settings {
                if ["secret", "key", "password"].iter().any(|word| key.contains(word)) {
                    *value = REDACTED.to_owned();
                }
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    pub fn service(&self, name: &str) -> ServiceConfig {
        self.services.get(name).cloned().unwrap_or_default()
    }

    /// The key files, defaulting to the data directory.
    pub fn key_files(&self) -> crate::auth::KeyFiles {
        let default = crate::auth::KeyFiles::under(&self.data.dir);
        crate::auth::KeyFiles {
            private_key: self.auth.private_key_file.clone().unwrap_or(default.private_key),
            public_key: self.auth.public_key_file.clone().unwrap_or(default.public_key),
        }
    }
}

#[cfg(test)]
mod tests;
