//! One OmniDesk process: some services (all of them in the monolith), their namespaces, and one listener.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::{RevocationLog, revocation};
use crate::config::Config;
use crate::events::{self, Transport};
use crate::http::{self, EdgeSettings, ListenerSettings, Problem, ScrapeAccess};
use crate::locations::{location_of, open_namespace};
use crate::metrics::Metrics;
use crate::ports::{Port, RemoteClient, credential_matches, decode_args, respond};
use crate::routes::RouteTable;
use crate::service::{PortRegistry, Remote, ServiceContext, ServiceSpec, Wiring};
use crate::store::Namespace;

/// Every service this binary knows, in a stable order.
pub type Catalogue = &'static [ServiceSpec];

/// A built process, ready to serve.
pub struct Process {
    router: Router,
    wiring: Wiring,
    namespaces: Vec<Namespace>,
    grace: Duration,
    listener: ListenerSettings,
    metrics: Metrics,
    /// Where `/metrics` is served without a credential, if anywhere (`http.metrics_listen`).
    metrics_listen: Option<std::net::SocketAddr>,
    transport: Arc<dyn Transport>,
    /// Stops the outbox relays and dead-letter pollers.
    stop_background: tokio::sync::watch::Sender<bool>,
}

impl Process {
    /// Builds a process hosting `hosted` (service names from `catalogue`): checks the route table, opens and
    /// migrates each hosted service's namespace, starts the services in dependency order, and assembles the
    /// router with the edge stack, `/healthz`, `/readyz`, `/metrics` and (with a secret) `/internal/*`.
    pub async fn build(config: Arc<Config>, catalogue: Catalogue, hosted: &[&str]) -> anyhow::Result<Self> {
        Self::build_with_site(config, catalogue, hosted, None).await
    }

    /// [`build`](Self::build), with `site` answering what no route does (the agent console, in the
    /// monolith), behind the same edge stack.
    pub async fn build_with_site(
        config: Arc<Config>,
        catalogue: Catalogue,
        hosted: &[&str],
        site: Option<Router>,
    ) -> anyhow::Result<Self> {
        let names: Vec<&str> = catalogue.iter().map(|s| s.name).collect();
        config.validate(&names)?;
        RouteTable::build(catalogue)?;
        let order = start_order(catalogue, hosted)?;
        let hosted_names: Arc<[&'static str]> = order.iter().map(|s| s.name).collect();
        let issues_tokens = order.iter().any(|s| s.issues_tokens);

        let files = config.key_files();
        if issues_tokens {
            // The issuing process creates the key pair on first start; elsewhere it must already exist.
            files.ensure().with_context(|| format!("creating keys under {}", files.private_key.display()))?;
        }
        let verifier = Arc::new(files.verifier().map_err(|e| {
            anyhow::anyhow!("{e} (start the token-issuing service first, or set auth.public_key_file)")
        })?);

        let metrics = Metrics::new();
        let wiring = Wiring {
            config: config.clone(),
            metrics: metrics.clone(),
            hosted: hosted_names.clone(),
            registry: Arc::new(Mutex::new(PortRegistry::default())),
            deliveries: Arc::default(),
            verifier: verifier.clone(),
            revocation_log: Arc::default(),
            remote: Remote {
                http: reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build()?,
                secret: config.internal.secret.clone(),
                timeout: Duration::from_millis(config.internal.call_timeout_ms),
            },
        };

        let mut public = Router::new();
        let mut namespaces = Vec::new();
        for spec in &order {
            let namespace = open_namespace(&config, spec).await?;
            if config.data.migrate_on_start {
                namespace.migrate().await?;
                // A namespace moved by `omnidesk data move` is followed to where it lives now.
                crate::store::moves::settle(&namespace).await?;
            }
            let context = ServiceContext {
                spec: *spec,
                config: config.clone(),
                namespace: namespace.clone(),
                wiring: wiring.clone(),
            };
            let router = (spec.start)(context).await.with_context(|| format!("starting service `{}`", spec.name))?;
            public = public.merge(http::with_service_metrics(router, spec.name, metrics.clone()));
            namespaces.push(namespace);
            tracing::info!(service = spec.name, "service started");
        }

        let hosts_everything = catalogue.iter().all(|spec| hosted_names.contains(&spec.name));
        let transport = event_transport(&config, hosts_everything, &hosted_names.join("+")).await?;
        let (stop_background, stop) = tokio::sync::watch::channel(false);
        let deliveries = std::mem::take(&mut *wiring.deliveries.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        for (_, delivery) in deliveries {
            let delivery = Arc::new(delivery.with_metrics(metrics.clone()));
            transport.subscribe(delivery.clone()).await?;
            tokio::spawn(replay_dead_letters(delivery, stop.clone()));
        }
        for namespace in &namespaces {
            if config.data.event_retention_days > 0 {
                let keep = Duration::from_secs(config.data.event_retention_days.saturating_mul(24 * 3600));
                tokio::spawn(trim_events(namespace.clone(), keep, stop.clone()));
            }
            tokio::spawn(crate::store::moves::follow(namespace.clone(), stop.clone()));
            tokio::spawn(events::relay_metered(
                namespace.clone(),
                transport.clone(),
                OUTBOX_POLL,
                stop.clone(),
                Some(metrics.clone()),
            ));
        }

        let mut internal =
            std::mem::take(&mut wiring.registry.lock().map_err(|_| anyhow::anyhow!("registry poisoned"))?.internal);
        let revocations = match revocation_log(catalogue, &wiring)? {
            Some((log, served)) => {
                if let Some(served) = served {
                    internal = internal.merge(served);
                }
                let status = Arc::new(revocation::FollowStatus::default());
                let window = Duration::from_secs(config.auth.access_token_ttl_secs) + REVOCATION_MARGIN;
                tokio::spawn(revocation::follow(verifier.clone(), log, window, status.clone(), stop.clone()));
                Some(status)
            }
            None => None,
        };
        let settings = EdgeSettings::from(&config.http);
        // In the catalogue's order, so that every process describes the same service the same way.
        let hosted_specs: Vec<ServiceSpec> =
            catalogue.iter().filter(|spec| hosted_names.contains(&spec.name)).copied().collect();
        let public = public
            .merge(crate::openapi::router(crate::openapi::document(&hosted_specs)))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz).with_state(Readiness(namespaces.clone(), transport.clone(), revocations)))
            .route(
                "/metrics",
                get(http::render_metrics_for_scraper).with_state(ScrapeAccess::new(metrics.clone(), &settings)),
            )
            .fallback_service(site.unwrap_or_else(|| Router::new().fallback(http::not_found)))
            .layer(axum::Extension(verifier))
            .layer(axum::middleware::from_fn_with_state(config.http.body_limit_bytes, http::read_body_first));
        let public = http::edge(public, &settings);
        // Internal endpoints exist only with a credential to check, and get the lean internal stack (no
        // per-call spans or generated ids: port metrics cover them, and callers send their request id).
        let router = match config.internal.secret.clone() {
            Some(secret) if internal.has_routes() => {
                let internal = internal.route_layer(axum::middleware::from_fn(move |request, next| {
                    require_credential(secret.clone(), request, next)
                }));
                http::internal_edge(internal, &settings).fallback_service(public)
            }
            _ => public,
        };
        Ok(Self {
            router,
            wiring,
            namespaces,
            grace: Duration::from_secs(config.http.shutdown_grace_secs),
            listener: ListenerSettings::from(&config.http),
            metrics: metrics.clone(),
            metrics_listen: config.http.metrics_listen,
            transport,
            stop_background,
        })
    }

    /// Port `P` as service `caller` in this process would get it (for benchmarks and tests that measure
    /// the port mechanism itself; services get theirs from their context).
    pub fn port<P: Port + ?Sized>(&self, caller: &'static str) -> anyhow::Result<Arc<P>> {
        self.wiring.port::<P>(caller)
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish (up to the grace
    /// period) and closes the namespaces.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if let Some(listen) = self.metrics_listen {
            let mut stopped = self.stop_background.subscribe();
            let scrape = http::serve_metrics(listen, self.metrics.clone(), self.listener.clone(), async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            });
            tokio::spawn(async move {
                if let Err(error) = scrape.await {
                    tracing::error!(metrics.addr = %listen, error = %error, "cannot serve /metrics (http.metrics_listen)");
                }
            });
        }
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = http::serve(listener, self.router, self.listener, async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let grace = self.grace;
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests cut off after the grace period"),
        }
        // Publish what the last requests committed before the namespaces close (DESIGN §7: the outbox is
        // flushed); anything left stays in the outbox for the next start.
        let _ = self.stop_background.send(true);
        for namespace in &self.namespaces {
            match tokio::time::timeout(Duration::from_secs(5), events::flush(namespace, self.transport.as_ref())).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(service = namespace.service(), error = %error, "outbox not flushed"),
                Err(_) => tracing::warn!(service = namespace.service(), "outbox flush timed out"),
            }
        }
        // Consumers stop before the databases they write to close; unacknowledged events return to the broker.
        self.transport.close().await;
        for namespace in &self.namespaces {
            namespace.close().await;
        }
        Ok(())
    }
}

/// How often each relay looks at its outbox when nothing woke it (rows left by a crash or a failed publish).
const OUTBOX_POLL: Duration = Duration::from_secs(1);

/// How much longer than the access-token lifetime a revocation is kept: the verifier's clock leeway and
/// room for clocks that disagree a little.
const REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// The log a process follows, and the internal endpoint serving it when the issuer is hosted here.
type Followed = (Arc<dyn RevocationLog>, Option<Router>);

/// Where this process reads revoked tokens from: the issuer's log when the issuer is hosted here (with the
/// internal endpoint that serves it to other processes), an HTTP client of that endpoint otherwise; `None`
/// when no service of the catalogue issues tokens, or the hosted issuer keeps no log.
fn revocation_log(catalogue: Catalogue, wiring: &Wiring) -> anyhow::Result<Option<Followed>> {
    let Some(issuer) = catalogue.iter().find(|spec| spec.issues_tokens) else { return Ok(None) };
    if wiring.hosted.contains(&issuer.name) {
        let kept = wiring.revocation_log.lock().map_err(|_| anyhow::anyhow!("revocation log poisoned"))?.clone();
        let Some(log) = kept else { return Ok(None) };
        let served = log.clone();
        let path = format!("/internal/{}/{}", issuer.name, revocation::METHOD);
        let endpoint = Router::new().route(
            &path,
            axum::routing::post(move |body: axum::body::Bytes| {
                let log = served.clone();
                async move {
                    match decode_args::<(i64,)>(&body) {
                        Ok((since_ms,)) => respond(log.revocations_since(since_ms).await),
                        Err(refused) => refused,
                    }
                }
            }),
        );
        return Ok(Some((log, Some(endpoint))));
    }
    let url = wiring.config.service(issuer.name).url.with_context(|| {
        format!(
            "every process learns revoked access tokens from `{0}`, which is not in this process: set services.{0}.url",
            issuer.name
        )
    })?;
    let secret = wiring.remote.secret.as_deref().with_context(|| {
        format!("reading revoked tokens from `{}` in another process needs internal.secret", issuer.name)
    })?;
    let client = RemoteClient::new(wiring.remote.http.clone(), issuer.name, &url, secret, wiring.remote.timeout)
        .map_err(anyhow::Error::msg)?;
    Ok(Some((Arc::new(revocation::RemoteLog(client)), None)))
}

/// How often consumers look for dead letters an operator asked to replay.
const REPLAY_POLL: Duration = Duration::from_secs(2);

/// The transport events travel by: RabbitMQ when configured; in-process when this process hosts every
/// service; otherwise there is no way for events to reach their consumers, which is a start-up error.
async fn event_transport(config: &Config, hosts_everything: bool, process: &str) -> anyhow::Result<Arc<dyn Transport>> {
    match config.rabbitmq.amqp_url() {
        Some(url) => Ok(events::rabbitmq::RabbitMq::connect_with(&url, process, &config.rabbitmq.exchange).await?),
        None if hosts_everything => Ok(Arc::new(events::inprocess::InProcess::new())),
        None => {
            bail!("services in separate processes exchange events through RabbitMQ: set RABBIT_MQ_HOST (rabbitmq.host)")
        }
    }
}

async fn replay_dead_letters(delivery: Arc<events::Delivery>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(REPLAY_POLL) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
        match delivery.replay_requested().await {
            Ok(0) => {}
            Ok(replayed) => tracing::info!(consumer = delivery.consumer(), replayed, "dead letters replayed"),
            Err(error) => {
                tracing::warn!(consumer = delivery.consumer(), error = %error, "replaying dead letters failed")
            }
        }
    }
}

/// Deletes what the event bus of `namespace` no longer needs (see [`events::trim`]) every [`TRIM_EVERY`],
/// the first time a minute after start.
async fn trim_events(namespace: Namespace, keep: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let trimming = crate::store::trim_periodically(namespace.service(), "event bus", keep, TRIM_EVERY, |before| {
        events::trim(&namespace, before)
    });
    tokio::select! {
        () = trimming => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

/// How often each namespace's event-bus tables are trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(3600);

/// Applies every hosted service's migrations without serving (`omnidesk migrate`).
pub async fn migrate(config: &Config, catalogue: Catalogue, services: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for spec in catalogue.iter().filter(|s| services.contains(&s.name)) {
        let namespace = open_namespace(config, spec).await?;
        namespace.migrate().await?;
        namespace.close().await;
        done.push(format!("{}: {}", spec.name, location_of(config, spec.name)?));
    }
    Ok(done)
}

/// Opens and migrates `service`'s namespace outside a serving process (for administrative commands).
pub async fn namespace_of(config: &Config, catalogue: Catalogue, service: &str) -> anyhow::Result<Namespace> {
    let spec = catalogue.iter().find(|s| s.name == service).with_context(|| format!("unknown service `{service}`"))?;
    let namespace = open_namespace(config, spec).await?;
    namespace.migrate().await?;
    Ok(namespace)
}

/// [`namespace_of`] for commands that only look at what is there (`omnidesk events failed`, `replay`):
/// `None` when the namespace has no database yet, which is then not created.
pub async fn existing_namespace_of(
    config: &Config,
    catalogue: Catalogue,
    service: &str,
) -> anyhow::Result<Option<Namespace>> {
    if !location_of(config, service)?.exists().await? {
        return Ok(None);
    }
    namespace_of(config, catalogue, service).await.map(Some)
}

/// The hosted services, each after the hosted services it depends on.
fn start_order(catalogue: Catalogue, hosted: &[&str]) -> anyhow::Result<Vec<ServiceSpec>> {
    for name in hosted {
        if !catalogue.iter().any(|s| s.name == *name) {
            let known: Vec<&str> = catalogue.iter().map(|s| s.name).collect();
            bail!("unknown service `{name}`; known: {}", known.join(", "));
        }
    }
    let mut order: Vec<ServiceSpec> = Vec::new();
    let mut pending: Vec<ServiceSpec> = catalogue.iter().filter(|s| hosted.contains(&s.name)).copied().collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|s| s.depends_on.iter().all(|dep| !hosted.contains(dep) || order.iter().any(|o| o.name == *dep)));
        match ready {
            Some(index) => order.push(pending.remove(index)),
            None => bail!(
                "services depend on each other in a cycle: {:?}",
                pending.iter().map(|s| s.name).collect::<Vec<_>>()
            ),
        }
    }
    Ok(order)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

#[derive(Clone)]
struct Readiness(Vec<Namespace>, Arc<dyn Transport>, Option<Arc<revocation::FollowStatus>>);

/// `/readyz`: 200 while this process can serve requests, 503 (naming why) when it cannot. Databases are
/// needed to serve; the broker is not (the outbox keeps events until it is back), so a lost broker makes
/// the answer `degraded`, still 200, with what is degraded named: an orchestrator keeps sending traffic to
/// a process that can take it, and an operator sees what is wrong.
async fn readyz(State(Readiness(namespaces, transport, revocations)): State<Readiness>) -> Response {
    // Checked side by side: a process's namespaces may all be on one server that is down.
    let checks = futures_util::future::join_all(namespaces.iter().map(Namespace::readiness)).await;
    let failures: Vec<String> = namespaces
        .iter()
        .zip(checks)
        .filter_map(|(namespace, check)| check.err().map(|reason| format!("{}: {reason}", namespace.service())))
        .collect();
    if !failures.is_empty() {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", failures.join("; ")).into_response();
    }
    let services: Vec<&str> = namespaces.iter().map(Namespace::service).collect();
    let mut degraded = Vec::new();
    if !transport.is_connected() {
        degraded.push(format!("events: the {} transport is disconnected; events wait in the outbox", transport.name()));
    }
    degraded.extend(revocations.and_then(|status| status.degraded()));
    if degraded.is_empty() {
        axum::Json(json!({ "status": "ready", "services": services })).into_response()
    } else {
        axum::Json(json!({ "status": "degraded", "services": services, "degraded": degraded })).into_response()
    }
}

async fn require_credential(secret: String, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if credential_matches(request.headers(), &secret) {
        next.run(request).await
    } else {
        Problem::unauthorized("internal_credential_required", "Internal endpoints need the service credential.")
            .into_response()
    }
}

#[cfg(test)]
mod tests;
