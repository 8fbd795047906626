//! `omnidesk`: one binary for every role. See `omnidesk --help` and the README's tour.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use kernel::config::{Config, TopologyMode};
use kernel::routes::RouteTable;
use kernel::{Process, gateway, supervisor};
use omnidesk::{CATALOGUE, service_names};
use tokio::net::TcpListener;

mod data;
mod db;

#[derive(Parser)]
#[command(
    name = "omnidesk",
    version,
    about = "OmniDesk: an omnichannel support desk, as one process or as microservices."
)]
struct Cli {
    /// Configuration file (default: ./omnidesk.toml if it exists).
    #[arg(long, global = true, env = "OMNIDESK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve OmniDesk: every service (the monolith) or the subset given with --services.
    Serve {
        /// Comma-separated services to host in this process (default: all).
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        #[command(flatten)]
        place: Place,
    },
    /// Serve the public gateway, forwarding each request to the process owning its path.
    Gateway {
        /// Address to listen on (default: http.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run a split topology on this machine: each group as a child process, plus the gateway.
    Up {
        /// monolith, microservices or groups (default: topology.mode).
        #[arg(long)]
        topology: Option<TopologyMode>,
        #[command(flatten)]
        place: Place,
    },
    /// Print the route table: method, path, owning service and hosting process.
    Routes {
        /// Which topology's processes to show (default: topology.mode).
        #[arg(long)]
        topology: Option<TopologyMode>,
    },
    /// Print the public API's OpenAPI 3.1 document (what `/api/openapi.json` serves through the gateway).
    Openapi,
    /// Apply pending migrations to every service's namespace (or one service's).
    Migrate {
        /// Migrate only this service's namespace (default: every service's).
        #[arg(long)]
        service: Option<String>,
        /// Data directory holding the namespaces (default: data.dir, ./data).
        #[arg(long, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Mint a single-use token that moves an account to a plan when its owner or an admin redeems it
    /// (`POST /api/plan/register/{plan_token}`).
    ///
    /// The token is written straight into the plan service's database, so run this where that database
    /// is (the data directory below). It prints the token, to hand to the account's owner; the token works
    /// for that account only, once, until it expires.
    PlanToken {
        /// The account to move, by id (a UUID: `account.id` in the login answer or in `GET /api/users/{id}`).
        #[arg(long)]
        account: String,
        /// The plan to move it to, by code; `GET /api/plans` shows what each plan costs and allows.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(plan::plan_codes()))]
        plan: String,
        /// How long the token can be redeemed, in seconds (the default is 7 days).
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        ttl_secs: u64,
        /// Data directory holding the plan service's database (default: data.dir, ./data).
        #[arg(long, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Inspect and replay events that consumers gave up on.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        /// Data directory holding the namespaces (default: data.dir, ./data).
        #[arg(long, global = true, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Administer the database servers the namespaces live on.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Move services' data between databases (any engine to any engine), verified, while OmniDesk runs;
    /// compare two copies; show where each service's data lives.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
        /// Data directory (default: data.dir, ./data): SQLite namespaces, and locations.toml, which
        /// records where moves put namespaces.
        #[arg(long, global = true, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets redacted), or the commented example.
    Config {
        /// Print the commented example of every key instead (omnidesk.example.toml).
        #[arg(long)]
        example: bool,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// List dead-lettered events in every service's namespace.
    Failed,
    /// Ask the running consumers to re-deliver dead letters (all, or one event).
    Replay {
        /// Re-deliver only this event (its `event_id` in what `omnidesk events failed` prints).
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Give every service (or those listed) a namespace on a PostgreSQL or MariaDB server and a login of its own
    /// that can reach nothing else, and print the configuration that runs them with those logins
    /// (`data.mode = "distributed"` and each `services.<name>.database_url`).
    ///
    /// Namespaces are named by data.namespace (default omnidesk_<service>); an existing one (made in
    /// monolithic mode) keeps its data and is handed to the new login. Rerunning it changes nothing
    /// except passwords, and those only with --reset-passwords.
    Provision {
        /// The server, as a login that may create logins and namespaces, e.g. postgres://postgres@db/omnidesk
        /// or mysql://root@db/.
        #[arg(long)]
        admin_url: String,
        /// Write the configuration to this file (readable by its owner only) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Comma-separated services (default: every service).
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// Give existing logins new passwords (running processes keep their connections; new ones need
        /// the new configuration).
        #[arg(long)]
        reset_passwords: bool,
    },
}

/// Where a process listens and keeps its data.
#[derive(clap::Args)]
struct Place {
    /// Address to listen on (default 127.0.0.1:8080; PORT sets just the port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (default ./data).
    #[arg(long, env = "OMNIDESK_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl Place {
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.http.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data.dir = dir.clone();
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config { example: true } = cli.command {
        print!("{}", kernel::config::EXAMPLE);
        return Ok(());
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if config.topology.groups.is_empty() {
        config.topology.groups =
            omnidesk::DEFAULT_GROUPS.iter().map(|group| group.iter().map(|s| (*s).to_owned()).collect()).collect();
    }
    config.validate(&service_names())?;
    kernel::telemetry::init(config.environment);

    match cli.command {
        Command::Serve { services, place } => {
            place.apply(&mut config);
            serve(config, services).await
        }
        Command::Gateway { listen } => {
            if let Some(listen) = listen {
                config.http.listen = listen;
            }
            run_gateway(config).await
        }
        Command::Up { topology, place } => {
            place.apply(&mut config);
            let mode = topology.unwrap_or(config.topology.mode);
            let groups = supervisor::groups_for(mode, &config.topology.groups, CATALOGUE)?;
            if groups.len() > 1 && config.http.metrics_listen.is_some() {
                bail!(
                    "http.metrics_listen names one address, which the processes of `omnidesk up` cannot all listen \
                     on; give scrapers http.metrics_token instead"
                );
            }
            if groups.len() > 1 && config.rabbitmq.host.is_none() {
                bail!(
                    "services in separate processes exchange events through RabbitMQ: set RABBIT_MQ_HOST \
                     (and RABBIT_MQ_USER / RABBIT_MQ_PASSWORD), e.g. RABBIT_MQ_HOST=127.0.0.1 RABBIT_MQ_PASSWORD=guest"
                );
            }
            let layout = supervisor::Layout {
                groups,
                listen: config.http.listen,
                data_dir: config.data.dir.clone(),
                exe: std::env::current_exe().context("locating the omnidesk binary")?,
                config_file: cli.config.clone(),
            };
            supervisor::up(config, CATALOGUE, layout, Some(web::router())).await
        }
        Command::Routes { topology } => {
            print_routes(&config, topology.unwrap_or(config.topology.mode))?;
            Ok(())
        }
        Command::Openapi => {
            println!("{}", kernel::openapi::document(CATALOGUE).to_pretty_json()?);
            Ok(())
        }
        Command::Migrate { service, data_dir } => {
            if let Some(dir) = data_dir {
                config.data.dir = dir;
            }
            let services = omnidesk::chosen_services(service.as_deref()).map_err(anyhow::Error::msg)?;
            for line in kernel::app::migrate(&config, CATALOGUE, &services).await? {
                println!("migrated {line}");
            }
            Ok(())
        }
        Command::PlanToken { account, plan, ttl_secs, data_dir } => {
            if let Some(dir) = data_dir {
                config.data.dir = dir;
            }
            let account: contracts::AccountId =
                account.parse().map_err(|_| anyhow::anyhow!("--account must be an account id (a UUID)"))?;
            let namespace = kernel::app::namespace_of(&config, CATALOGUE, contracts::services::PLAN).await?;
            let token =
                plan::mint_admin_token(namespace, account, &plan, std::time::Duration::from_secs(ttl_secs)).await?;
            println!("{token}");
            Ok(())
        }
        Command::Events { command, data_dir } => {
            if let Some(dir) = data_dir {
                config.data.dir = dir;
            }
            events_command(&config, command).await
        }
        Command::Db { command: DbCommand::Provision { admin_url, out, services, reset_passwords } } => {
            db::provision(&config, &admin_url, &services, out.as_deref(), reset_passwords).await
        }
        Command::Data { command, data_dir } => {
            if let Some(dir) = data_dir {
                config.data.dir = dir;
            }
            data::run(&config, command).await
        }
        Command::Config { .. } => {
            let recorded = kernel::locations::recorded_locations(&config.data.dir)?;
            for (service, url) in &recorded {
                config.services.entry(service.clone()).or_default().database_url = Some(url.clone());
            }
            if !recorded.is_empty() {
                println!(
                    "# services.{{{}}}.database_url: where `omnidesk data move` put them ({}), which every start uses",
                    recorded.keys().cloned().collect::<Vec<_>>().join(","),
                    config.data.dir.join(kernel::locations::LOCATIONS_FILE).display()
                );
            }
            print!("{}", config.redacted_toml());
            Ok(())
        }
    }
}

async fn serve(config: Config, services: Vec<String>) -> anyhow::Result<()> {
    let hosted: Vec<&str> =
        if services.is_empty() { service_names() } else { services.iter().map(String::as_str).collect() };
    let listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {} (http.listen / --listen / PORT)", config.http.listen))?;
    let address = listener.local_addr()?;
    // The monolith serves the agent console; in a split topology the gateway does.
    let site = (hosted.len() == CATALOGUE.len()).then(web::router);
    let process = Process::build_with_site(Arc::new(config), CATALOGUE, &hosted, site).await?;
    println!("OmniDesk is ready at http://{address} (services: {})", hosted.join(", "));
    process.serve(listener, shutdown_signal()).await
}

async fn run_gateway(config: Config) -> anyhow::Result<()> {
    let table = RouteTable::build(CATALOGUE)?;
    let mut upstreams = HashMap::new();
    for service in CATALOGUE {
        if let Some(url) = config.service(service.name).url {
            upstreams.insert(service.name, url);
        } else if !service.prefixes.is_empty() {
            tracing::warn!(
                service = service.name,
                "services.{}.url is not set; its paths will answer 503",
                service.name
            );
        }
    }
    let settings = kernel::http::EdgeSettings::from(&config.http);
    let metrics = kernel::metrics::Metrics::new();
    let document = kernel::openapi::document(CATALOGUE);
    let router = gateway::router(
        table,
        document,
        Some(web::router()),
        gateway::Upstreams::new(upstreams),
        metrics.clone(),
        &settings,
    );
    let listener =
        TcpListener::bind(config.http.listen).await.with_context(|| format!("listening on {}", config.http.listen))?;
    println!("OmniDesk gateway is ready at http://{}", listener.local_addr()?);
    if let Some(listen) = config.http.metrics_listen {
        let scrape = kernel::http::serve_metrics(listen, metrics.clone(), (&config.http).into(), shutdown_signal());
        tokio::spawn(async move {
            if let Err(error) = scrape.await {
                tracing::error!(metrics.addr = %listen, error = %error, "cannot serve /metrics (http.metrics_listen)");
            }
        });
    }
    kernel::http::serve(listener, router, (&config.http).into(), shutdown_signal()).await;
    Ok(())
}

/// `omnidesk events failed|replay`: both only concern events already stored, so a namespace without a
/// database is skipped, not created.
async fn events_command(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let mut total = 0;
    let mut found = 0;
    for service in CATALOGUE {
        let Some(namespace) = kernel::app::existing_namespace_of(config, CATALOGUE, service.name).await? else {
            continue;
        };
        found += 1;
        match &command {
            EventsCommand::Failed => {
                for letter in kernel::events::dead_letters(&namespace).await? {
                    println!("{}", serde_json::to_string(&letter)?);
                    total += 1;
                }
            }
            EventsCommand::Replay { event } => {
                total += kernel::events::request_replay(&namespace, event.as_deref()).await?;
            }
        }
        namespace.close().await;
    }
    if found == 0 {
        eprintln!("no OmniDesk data under {}: nothing to look at", config.data.dir.display());
        return Ok(());
    }
    match command {
        EventsCommand::Failed => eprintln!("{total} dead-lettered event(s)"),
        EventsCommand::Replay { .. } => {
            eprintln!("{total} dead letter(s) marked for replay; running consumers re-deliver them within seconds")
        }
    }
    Ok(())
}

fn print_routes(config: &Config, mode: TopologyMode) -> anyhow::Result<()> {
    let table = RouteTable::build(CATALOGUE)?;
    let groups = supervisor::groups_for(mode, &config.topology.groups, CATALOGUE)?;
    let process_of = |service: &str| {
        groups
            .iter()
            .find(|group| group.contains(&service))
            .map(|group| if groups.len() == 1 { "omnidesk".to_owned() } else { group.join("+") })
            .unwrap_or_default()
    };
    print!("{}", route_listing(&table, &service_names(), mode, process_of));
    Ok(())
}

/// What `omnidesk routes` prints: every route, then the claimed prefixes no route is under yet, then the
/// services that claim no path at all (hosted all the same, e.g. batch, whose jobs come later), in columns
/// as wide as their widest cell.
fn route_listing(
    table: &RouteTable,
    services: &[&'static str],
    mode: TopologyMode,
    process_of: impl Fn(&str) -> String,
) -> String {
    let row = |method: &str, path: &str, service: &str| {
        [method.to_owned(), path.to_owned(), service.to_owned(), process_of(service)]
    };
    let routes: Vec<_> =
        table.routes().iter().map(|owned| row(owned.route.method.as_str(), &owned.route.path, owned.service)).collect();
    // A prefix covers the paths that continue it by whole segments (as the route table checks claims).
    let under = |prefix: &str, path: &str| {
        path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let empty_claims: Vec<_> = table
        .claims()
        .into_iter()
        .filter(|(prefix, _)| !table.routes().iter().any(|owned| under(prefix, &owned.route.path)))
        .map(|(prefix, service)| row("*", &format!("{prefix}/**"), service))
        .collect();
    let claimed: Vec<&str> = table.claims().into_iter().map(|(_, service)| service).collect();
    let pathless: Vec<_> =
        services.iter().filter(|service| !claimed.contains(service)).map(|service| row("-", "-", service)).collect();

    let header = ["METHOD".to_owned(), "PATH".to_owned(), "SERVICE".to_owned(), format!("PROCESS ({mode:?})")];
    let every_row = std::iter::once(&header).chain(&routes).chain(&empty_claims).chain(&pathless);
    let mut widths = [0; 3];
    for cells in every_row {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 4]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };

    let mut out = line(&header);
    out.extend(routes.iter().map(line));
    if !empty_claims.is_empty() {
        out.push_str("\nClaimed prefixes with no routes under them yet:\n");
        out.extend(empty_claims.iter().map(line));
    }
    if !pathless.is_empty() {
        out.push_str("\nServices that claim no paths and serve no routes:\n");
        out.extend(pathless.iter().map(line));
    }
    out
}

/// Resolves on Ctrl-C, SIGTERM, or (for children of `omnidesk up`) when the parent process is gone.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
        () = supervisor::parent_gone() => tracing::warn!("parent process gone; shutting down"),
    }
    tracing::info!("shutting down; letting in-flight requests finish");
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use kernel::ServiceSpec;
    use kernel::routes::RouteInfo;

    use super::*;

    fn things_routes() -> Vec<RouteInfo> {
        vec![
            RouteInfo { method: Method::GET, path: "/api/things".to_owned() },
            RouteInfo {
                method: Method::DELETE,
                path: "/api/things/{thing_id}/attachments/{attachment_id}/thumbnails/{size}".to_owned(),
            },
        ]
    }

    /// A service with a path longer than any real one and a claim with nothing under it, and a service
    /// that claims no paths at all.
    const SERVICES: &[ServiceSpec] = &[
        ServiceSpec {
            routes: things_routes,
            ..ServiceSpec::without_features("things", "things", &["/api/things", "/hooks/things"])
        },
        ServiceSpec::without_features("jobs", "scheduled jobs", &[]),
    ];

    fn listing() -> String {
        let table = RouteTable::build(SERVICES).expect("a valid table");
        route_listing(&table, &["things", "jobs"], TopologyMode::Microservices, |service| format!("{service}-process"))
    }

    #[test]
    fn the_route_listing_keeps_its_columns_aligned_whatever_the_path_length() {
        let listing = listing();
        let header = listing.lines().next().expect("a header");
        let service_column = header.find("SERVICE").expect("a SERVICE column");
        let process_column = header.find("PROCESS").expect("a PROCESS column");

        let rows: Vec<&str> = listing.lines().skip(1).filter(|line| !line.is_empty() && !line.ends_with(':')).collect();

        assert_eq!(rows.len(), 4, "{listing}");
        for row in rows {
            assert!(row[service_column..].starts_with("things") || row[service_column..].starts_with("jobs"), "{row}");
            assert_eq!(&row[service_column - 1..service_column], " ", "{row}");
            assert!(row[process_column..].ends_with("-process") && !row[process_column..].contains(' '), "{row}");
        }
    }

    #[test]
    fn the_route_listing_names_idle_claims_and_services_without_paths() {
        let listing = listing();

        let idle = listing.split("Claimed prefixes with no routes under them yet:\n").nth(1).expect("idle claims");
        let pathless = listing.split("Services that claim no paths and serve no routes:\n").nth(1).expect("pathless");

        assert!(idle.lines().next().is_some_and(|line| line.contains("/hooks/things/**")), "{listing}");
        assert!(!idle.contains("/api/things/**"), "{listing}");
        assert!(pathless.lines().next().is_some_and(|line| line.contains("jobs") && line.ends_with("jobs-process")));
    }
}
