//! The route table, computed from the services and checked (DESIGN §2).
//!
//! Each service claims path prefixes (whole segments: `/api/plan` owns `/api/plan` and `/api/plan/x`, not
//! `/api/plans`) and declares its routes through [`Routes`], which builds its router, its table and its part
//! of the OpenAPI document from the same list, so what `omnidesk routes` prints and `/api/openapi.json`
//! describes is what is served. A route is declared by its handler's `#[utoipa::path]` (method, path,
//! parameters, bodies, answers), grouped per path by `utoipa_axum::routes!`. Two services claiming overlapping prefixes, a route
//! outside its service's claims, or a claim on a path the kernel reserves are start-up errors.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::UtoipaMethodRouter;

pub use crate::service::RouteInfo;
use crate::service::ServiceSpec;

/// Paths every process serves itself; no service may claim them.
pub const RESERVED_PREFIXES: &[&str] =
    &["/internal", "/healthz", "/readyz", "/metrics", crate::openapi::DOCUMENT_PATH, crate::openapi::DOCS_PATH];

/// A service's public routes: the table, the router and the OpenAPI paths, built together so they cannot
/// drift.
pub struct Routes<S> {
    router: Router<S>,
    table: Vec<RouteInfo>,
    api: OpenApi,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self { router: Router::new(), table: Vec::new(), api: OpenApi::default() }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The handlers of one path, each documented by its `#[utoipa::path]`:
    /// `.route(routes!(list_inboxes, create_inbox))`.
    ///
    /// # Panics
    /// When the handlers name more than one path (a programming error, met on the first start or test).
    pub fn route(mut self, (schemas, paths, handlers): UtoipaMethodRouter<S>) -> Self {
        let mut declared = paths.paths.iter();
        let (Some((path, item)), None) = (declared.next(), declared.next()) else {
            panic!("one `routes!` per path: {:?}", paths.paths.keys().collect::<Vec<_>>());
        };
        for method in crate::openapi::methods(item) {
            self.table.push(RouteInfo { method, path: path.clone() });
        }
        self.router = self.router.route(path, handlers);
        let components = self.api.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
        self.api.paths.paths.extend(paths.paths);
        self
    }

    /// An undocumented route: it is served and in the table, but not in the OpenAPI document — for
    /// tests' services only; a real service's undocumented route fails `every_route_is_in_the_openapi_document`.
    fn add<H, T>(mut self, method: Method, filter: MethodFilter, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, handler));
        self.table.push(RouteInfo { method, path: path.to_owned() });
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, MethodFilter::GET, path, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, MethodFilter::POST, path, handler)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PUT, MethodFilter::PUT, path, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, MethodFilter::PATCH, path, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    /// The declared routes, in declaration order.
    pub fn table(&self) -> Vec<RouteInfo> {
        self.table.clone()
    }

    /// The documented routes' part of the OpenAPI document: their paths and the schemas they name.
    pub fn openapi(&self) -> OpenApi {
        self.api.clone()
    }

    /// The router, with its state supplied.
    pub fn into_router(self, state: S) -> Router {
        self.router.with_state(state)
    }
}

/// Why a set of services cannot be served together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("services `{a}` and `{b}` both claim paths under `{a_prefix}` / `{b_prefix}`")]
    Overlap { a: &'static str, a_prefix: &'static str, b: &'static str, b_prefix: &'static str },
    #[error("service `{service}` declares route {method} {path} outside its claimed prefixes")]
    Unclaimed { service: &'static str, method: Method, path: String },
    #[error("service `{service}` claims `{prefix}`, which the kernel reserves")]
    Reserved { service: &'static str, prefix: &'static str },
    #[error("service `{service}` claims `{prefix}`; a prefix starts with `/`, has no trailing `/` and no parameters")]
    Malformed { service: &'static str, prefix: &'static str },
}

/// One line of the table: a route and the service that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRoute {
    pub service: &'static str,
    pub route: RouteInfo,
}

/// The merged, checked table of every service's claims and routes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// (prefix, owner), longest prefix first.
    claims: Vec<(&'static str, &'static str)>,
    routes: Vec<OwnedRoute>,
}

impl RouteTable {
    pub fn build(services: &[ServiceSpec]) -> Result<Self, RouteError> {
        let mut claims: Vec<(&'static str, &'static str)> = Vec::new();
        for service in services {
            for &prefix in service.prefixes {
                if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['{', '}', ':', '*']) {
                    return Err(RouteError::Malformed { service: service.name, prefix });
                }
                if RESERVED_PREFIXES.iter().any(|r| covers(prefix, r) || covers(r, prefix)) {
                    return Err(RouteError::Reserved { service: service.name, prefix });
                }
                if let Some(&(other_prefix, other)) =
                    claims.iter().find(|(p, owner)| *owner != service.name && (covers(p, prefix) || covers(prefix, p)))
                {
                    return Err(RouteError::Overlap {
                        a: other,
                        a_prefix: other_prefix,
                        b: service.name,
                        b_prefix: prefix,
                    });
                }
                claims.push((prefix, service.name));
            }
        }
        claims.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));

        let mut routes = Vec::new();
        for service in services {
            for route in (service.routes)() {
                if !service.prefixes.iter().any(|prefix| covers(prefix, &route.path)) {
                    return Err(RouteError::Unclaimed {
                        service: service.name,
                        method: route.method,
                        path: route.path.clone(),
                    });
                }
                routes.push(OwnedRoute { service: service.name, route });
            }
        }
        Ok(Self { claims, routes })
    }

    /// The service owning `path`, by longest claimed prefix.
    pub fn owner_of(&self, path: &str) -> Option<&'static str> {
        self.claims.iter().find(|(prefix, _)| covers(prefix, path)).map(|(_, owner)| *owner)
    }

    pub fn routes(&self) -> &[OwnedRoute] {
        &self.routes
    }

    /// Every claimed prefix with its owner, sorted by path.
    pub fn claims(&self) -> Vec<(&'static str, &'static str)> {
        let mut claims = self.claims.clone();
        claims.sort();
        claims
    }
}

/// Whether `prefix` covers `path` on a segment boundary.
fn covers(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceSpec;

    fn no_routes() -> Vec<RouteInfo> {
        Vec::new()
    }

    fn users_routes() -> Vec<RouteInfo> {
        vec![RouteInfo { method: Method::GET, path: "/api/users/{id}".to_owned() }]
    }

    fn spec(name: &'static str, prefixes: &'static [&'static str]) -> ServiceSpec {
        ServiceSpec { routes: no_routes, ..ServiceSpec::without_features(name, "test", prefixes) }
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let table = RouteTable::build(&[spec("plan", &["/api/plan"]), spec("catalogue", &["/api/plans"])])
            .expect("no overlap between /api/plan and /api/plans");
        assert_eq!(table.owner_of("/api/plan"), Some("plan"));
        assert_eq!(table.owner_of("/api/plan/register/x"), Some("plan"));
        assert_eq!(table.owner_of("/api/plans"), Some("catalogue"));
        assert_eq!(table.owner_of("/api/planet"), None);
    }

    #[test]
    fn two_services_claiming_overlapping_prefixes_is_an_error() {
        let error = RouteTable::build(&[spec("user", &["/api/users"]), spec("inbox", &["/api/users/inboxes"])])
            .expect_err("/api/users would swallow /api/users/inboxes");
        assert!(matches!(error, RouteError::Overlap { a: "user", b: "inbox", .. }), "{error}");
        // The seed's catch-all `/api` group would also swallow the kernel's `/api/openapi.json`.
        let error = RouteTable::build(&[spec("user", &["/api/users"]), spec("inbox", &["/api"])]).expect_err("/api");
        assert!(matches!(error, RouteError::Reserved { service: "inbox", .. }), "{error}");
    }

    #[test]
    fn the_same_prefix_claimed_twice_is_an_error() {
        let error = RouteTable::build(&[spec("a", &["/api/x"]), spec("b", &["/api/x"])]).expect_err("same prefix");
        assert!(matches!(error, RouteError::Overlap { .. }));
    }

    #[test]
    fn a_route_outside_its_services_claims_is_an_error() {
        let service = ServiceSpec { routes: users_routes, ..spec("plan", &["/api/plan"]) };
        let error = RouteTable::build(&[service]).expect_err("plan cannot serve /api/users");
        assert!(matches!(error, RouteError::Unclaimed { service: "plan", .. }));
    }

    #[test]
    fn reserved_and_malformed_prefixes_are_refused() {
        assert!(matches!(RouteTable::build(&[spec("x", &["/internal/x"])]), Err(RouteError::Reserved { .. })));
        assert!(matches!(RouteTable::build(&[spec("x", &["/api/x/"])]), Err(RouteError::Malformed { .. })));
        assert!(matches!(RouteTable::build(&[spec("x", &["/api/{id}"])]), Err(RouteError::Malformed { .. })));
    }
}
