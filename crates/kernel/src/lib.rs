//! The OmniDesk kernel: the dual-mode runtime every service is written against.
//!
//! A service is a [`ServiceSpec`]: the path prefixes it owns, its routes, its migrations and a `start`
//! function. The kernel decides where it runs. [`app::Process`] hosts any subset of services in one process —
//! all of them in the monolith, one per process in microservices — with the same code either way: [`ports`]
//! turn a call to another service into a direct call or an HTTP request, [`store`] gives each service its own
//! namespace, [`auth`] verifies tokens without a hop, and [`routes`] computes and checks who owns which path
//! (and [`openapi`] what each route takes and answers).
//! [`gateway`] and [`supervisor`] run the split topologies.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod data;
pub mod events;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod locations;
pub mod metrics;
pub mod openapi;
pub mod ports;
pub mod redact;
pub mod routes;
pub mod service;
pub mod signature;
pub mod store;
pub mod supervisor;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use app::{Catalogue, Process};
pub use config::Config;
pub use service::{ServiceContext, ServiceSpec};
/// For the macros (`uuid_id!`, `stored_as_text!`) expanded in other crates.
#[doc(hidden)]
pub use sqlx as __sqlx;
/// For [`uuid_id!`]'s OpenAPI schema.
#[doc(hidden)]
pub use utoipa as __utoipa;
