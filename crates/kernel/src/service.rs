//! What a service is to the kernel: a static [`ServiceSpec`] (name, claimed prefixes, routes as
//! [`RouteInfo`], migrations, dependencies) and a `start` function that turns a [`ServiceContext`] (its
//! namespace, the ports it calls and provides, its event handlers, the token signer) into its router.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::Method;
use futures_util::future::BoxFuture;

use crate::auth::{RevocationLog, Revoker, TokenSigner, TokenVerifier};
use crate::config::Config;
use crate::events::{Delivery, Event, Handler};
use crate::metrics::Metrics;
use crate::ports::{Port, PortMeters, RemoteClient};
use crate::store::{Migrations, Namespace};

/// One public route: its method and its path pattern (`/api/users/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
}

/// A service, as the kernel sees it. Each service crate exports one as `SERVICE`.
#[derive(Clone, Copy)]
pub struct ServiceSpec {
    /// The service's name: its namespace, its process's name, its metrics label.
    pub name: &'static str,
    /// One line on what it owns.
    pub summary: &'static str,
    /// The public path prefixes it owns (whole segments).
    pub prefixes: &'static [&'static str],
    /// Services whose ports it calls; in a shared process they start first.
    pub depends_on: &'static [&'static str],
    /// Whether it signs access tokens (and so needs the private key; a process hosting it creates the key
    /// pair on first start). Every other process only verifies, with the public key.
    pub issues_tokens: bool,
    /// Its migrations, if it stores anything.
    pub migrations: Option<Migrations>,
    /// Tables it can rebuild from its other tables (a search index), which a move to another engine
    /// rebuilds there instead of copying (`omnidesk data move`).
    pub derived: Option<Derived>,
    /// Its public routes (built by the same `routes::Routes` value as its router).
    pub routes: fn() -> Vec<RouteInfo>,
    /// Its part of the OpenAPI document: the documented routes' paths and schemas (the same `Routes`).
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// Starts the service: provides its ports, acquires the ports it needs, returns its public router.
    pub start: fn(ServiceContext) -> BoxFuture<'static, anyhow::Result<axum::Router>>,
}

impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSpec").field("name", &self.name).field("prefixes", &self.prefixes).finish()
    }
}

impl ServiceSpec {
    /// A service whose features have not been built yet: it owns its prefixes and serves nothing under them.
    pub const fn without_features(
        name: &'static str,
        summary: &'static str,
        prefixes: &'static [&'static str],
    ) -> Self {
        fn no_routes() -> Vec<RouteInfo> {
            Vec::new()
        }
        fn no_paths() -> utoipa::openapi::OpenApi {
            utoipa::openapi::OpenApi::default()
        }
        fn start_empty(_: ServiceContext) -> BoxFuture<'static, anyhow::Result<axum::Router>> {
            Box::pin(async { Ok(axum::Router::new()) })
        }
        Self {
            name,
            summary,
            prefixes,
            depends_on: &[],
            issues_tokens: false,
            migrations: None,
            derived: None,
            routes: no_routes,
            openapi: no_paths,
            start: start_empty,
        }
    }
}

/// Tables a service derives from its other tables, laid out per engine (its search index: FTS5 on SQLite,
/// plain tables elsewhere). A move between engines does not copy them: the target's are rebuilt.
#[derive(Clone, Copy)]
pub struct Derived {
    /// The derived tables, on every engine.
    pub tables: &'static [&'static str],
    /// Fills the (empty) derived tables of a namespace from its other tables; returns the rows derived
    /// from. Runs before the copy is compared and switched to, with the namespace's writes held.
    pub rebuild: fn(Namespace) -> BoxFuture<'static, Result<u64, crate::store::StoreError>>,
}

/// How a process reaches the services it does not host.
#[derive(Clone)]
pub(crate) struct Remote {
    pub http: reqwest::Client,
    pub secret: Option<String>,
    pub timeout: Duration,
}

/// Shared by the services starting in one process: the ports they provide and the internal endpoints.
#[derive(Default)]
pub(crate) struct PortRegistry {
    local: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    pub internal: axum::Router,
}

/// How the services of one process find each other's ports.
#[derive(Clone)]
pub(crate) struct Wiring {
    pub config: Arc<Config>,
    pub metrics: Metrics,
    pub hosted: Arc<[&'static str]>,
    pub registry: Arc<Mutex<PortRegistry>>,
    pub remote: Remote,
    /// Each consuming service's event handlers, collected while services start.
    pub deliveries: Arc<Mutex<HashMap<&'static str, Delivery>>>,
    /// This process's token verifier (revocations are applied to it).
    pub verifier: Arc<TokenVerifier>,
    /// The token issuer's revocation log, when the issuer is hosted here and keeps one.
    pub revocation_log: Arc<Mutex<Option<Arc<dyn RevocationLog>>>>,
}

impl Wiring {
    /// Resolves port `P` for `caller`: local when the callee is hosted here, remote otherwise; metered.
    pub fn port<P: Port + ?Sized>(&self, caller: &'static str) -> anyhow::Result<Arc<P>> {
        let callee = P::SERVICE;
        let (inner, mode) = if self.hosted.contains(&callee) {
            let registry = self.registry.lock().map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
            let local = registry
                .local
                .get(&TypeId::of::<P>())
                .and_then(|boxed| boxed.downcast_ref::<Arc<P>>())
                .with_context(|| format!("`{callee}` is hosted here but has not provided {}", P::NAME))?;
            (local.clone(), "local")
        } else {
            let url = self.config.service(callee).url.with_context(|| {
                format!("`{caller}` calls `{callee}`, which is not in this process: set services.{callee}.url")
            })?;
            let secret = self
                .remote
                .secret
                .as_deref()
                .with_context(|| format!("`{caller}` calls `{callee}` in another process: set internal.secret"))?;
            let client = RemoteClient::new(self.remote.http.clone(), callee, &url, secret, self.remote.timeout)
                .map_err(anyhow::Error::msg)?;
            (P::remote(client), "remote")
        };
        let meters = P::METHODS.iter().map(|method| self.metrics.port_method(caller, callee, method, mode)).collect();
        Ok(P::metered(inner, PortMeters::new(meters)))
    }
}

/// Everything a service gets when it starts.
pub struct ServiceContext {
    pub(crate) spec: ServiceSpec,
    pub(crate) config: Arc<Config>,
    pub(crate) namespace: Namespace,
    pub(crate) wiring: Wiring,
}

impl ServiceContext {
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This service's own database namespace, migrated.
    pub fn namespace(&self) -> Namespace {
        self.namespace.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.wiring.metrics
    }

    /// Applies events of type `E` with `handler`, effectively once, in this service's namespace (DESIGN §4).
    pub fn subscribe<E: Event, H: Handler<E>>(&self, handler: Arc<H>) -> anyhow::Result<()> {
        let mut deliveries = self.wiring.deliveries.lock().map_err(|_| anyhow::anyhow!("deliveries poisoned"))?;
        deliveries
            .entry(self.spec.name)
            .or_insert_with(|| Delivery::new(self.spec.name, self.namespace.clone()))
            .add::<E, H>(handler);
        Ok(())
    }

    /// Makes this service's implementation of port `P` available: to services in this process as a direct
    /// call, to other processes through the internal endpoints.
    pub fn provide<P: Port + ?Sized>(&self, implementation: Arc<P>) -> anyhow::Result<()> {
        if P::SERVICE != self.spec.name {
            bail!("service `{}` cannot provide {}, which belongs to `{}`", self.spec.name, P::NAME, P::SERVICE);
        }
        let mut registry = self.wiring.registry.lock().map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
        registry.local.insert(TypeId::of::<P>(), Box::new(implementation.clone()));
        let internal = std::mem::take(&mut registry.internal);
        registry.internal = internal.merge(P::serve(implementation));
        Ok(())
    }

    /// The port `P` for this service to call: the callee itself when this process hosts it, otherwise an
    /// HTTP client to the callee's process. Either way every call is metered with this service as caller.
    pub fn port<P: Port + ?Sized>(&self) -> anyhow::Result<Arc<P>> {
        if !self.spec.depends_on.contains(&P::SERVICE) {
            bail!("service `{}` uses {} but does not list `{}` in depends_on", self.spec.name, P::NAME, P::SERVICE);
        }
        self.wiring.port::<P>(self.spec.name)
    }

    /// Makes `log` the record every process reads revoked access tokens from (see
    /// [`crate::auth::revocation`]), and returns what makes this process refuse what the service has just
    /// revoked. Only the service that issues tokens keeps one.
    pub fn keep_revocations(&self, log: Arc<dyn RevocationLog>) -> anyhow::Result<Revoker> {
        if !self.spec.issues_tokens {
            bail!("service `{}` does not issue tokens and cannot revoke them", self.spec.name);
        }
        *self.wiring.revocation_log.lock().map_err(|_| anyhow::anyhow!("revocation log poisoned"))? = Some(log);
        Ok(Revoker(self.wiring.verifier.clone()))
    }

    /// The access-token signer; only the service that issues tokens asks for it.
    pub fn token_signer(&self) -> anyhow::Result<TokenSigner> {
        let files = self.config.key_files();
        files.ensure().with_context(|| format!("creating the signing key {}", files.private_key.display()))?;
        files.signer(Duration::from_secs(self.config.auth.access_token_ttl_secs)).map_err(anyhow::Error::msg)
    }
}
