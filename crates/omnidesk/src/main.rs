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
    /// Apply pending migrations to every service's namespace (or one service's).
    Migrate {
        #[arg(long)]
        service: Option<String>,
        #[arg(long, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Mint a single-use plan token that moves an account to a plan (`POST /api/plan/register/:plan_token`).
    PlanToken {
        #[arg(long)]
        account: String,
        #[arg(long)]
        plan: String,
        /// How long the token can be redeemed.
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        ttl_secs: u64,
        #[arg(long, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Inspect and replay events that consumers gave up on.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        #[arg(long, global = true, env = "OMNIDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets redacted), or the commented example.
    Config {
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
        #[arg(long)]
        event: Option<String>,
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
            let plan = supervisor::Plan {
                groups,
                listen: config.http.listen,
                data_dir: config.data.dir.clone(),
                exe: std::env::current_exe().context("locating the omnidesk binary")?,
                config_file: cli.config.clone(),
            };
            supervisor::up(config, CATALOGUE, plan).await
        }
        Command::Routes { topology } => {
            print_routes(&config, topology.unwrap_or(config.topology.mode))?;
            Ok(())
        }
        Command::Migrate { service, data_dir } => {
            if let Some(dir) = data_dir {
                config.data.dir = dir;
            }
            let services = match &service {
                Some(name) if !service_names().contains(&name.as_str()) => {
                    bail!("unknown service `{name}`; known: {}", service_names().join(", "))
                }
                Some(name) => vec![name.as_str()],
                None => service_names(),
            };
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
        Command::Config { .. } => {
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
    let process = Process::build(Arc::new(config), CATALOGUE, &hosted).await?;
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
    let router = gateway::router(table, gateway::Upstreams::new(upstreams), metrics.clone(), &settings);
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
    println!("{:<7} {:<34} {:<12} PROCESS ({mode:?})", "METHOD", "PATH", "SERVICE");
    for owned in table.routes() {
        println!(
            "{:<7} {:<34} {:<12} {}",
            owned.route.method.as_str(),
            owned.route.path,
            owned.service,
            process_of(owned.service)
        );
    }
    let served: Vec<&str> = table.routes().iter().map(|r| r.service).collect();
    let idle: Vec<_> = table.claims().into_iter().filter(|(_, service)| !served.contains(service)).collect();
    if !idle.is_empty() {
        println!("\nClaimed prefixes whose service has no routes yet:");
        for (prefix, service) in idle {
            println!("{:<7} {:<34} {:<12} {}", "*", format!("{prefix}/**"), service, process_of(service));
        }
    }
    Ok(())
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
