//! The input service owns the public channel endpoints — the API channel under `/public/api` today; the
//! LINE webhook (`/hooks/line`) and inbound e-mail (`/hooks/email`) are claimed for later — the channels'
//! credentials, the raw inbound events kept for dedupe and audit, each contact's transcript, and the
//! delivery of agents' replies to callback URLs.
//!
//! The inbox service registers an inbox's endpoint through [`InputPort`]
//! (served by [`channels`]). What customers send is accepted here ([`inbound`]: verified, deduplicated,
//! recorded — in batches, one transaction each, by the [`recorder`] task) and reported as
//! `input.message_received` / `input.contact_identified`; inbox turns those into contacts, conversations
//! and messages. Replies come back as `message.created` ([`events`]); the [`replies`] worker posts them
//! to the channel's callback URL and reports `input.delivery_updated`.
//!
//! Settings (`services.input.settings`, e.g. `OMNIDESK_SERVICES__INPUT__SETTINGS__DELIVERY_MAX_ATTEMPTS`):
//! `delivery_max_attempts` (default 8), `delivery_retry_base_ms` (1000; attempt n waits base × 2ⁿ⁻¹),
//! `delivery_timeout_ms` (10000, per attempt), `delivery_poll_ms` (1000, how often the worker looks for due
//! deliveries when nothing woke it), `callback_allow_private` (false: callback URLs may not reach loopback,
//! private or link-local addresses, see [`callbacks`]; true for a desk whose receivers are on its own
//! network), `widget_contacts_per_ip_per_minute` (60) and `widget_requests_per_ip_per_minute` (600): how
//! many contacts one client IP may create, and widget requests it may make, a minute on the public
//! widget-style routes (the signed server-to-server route is not limited: its caller holds the secret).

mod callbacks;
pub mod channel_signature;
mod channels;
mod domain;
mod events;
mod http;
mod inbound;
mod post;
mod recorder;
mod replies;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use contracts::channel::InputPort;
use contracts::inbox::MessageCreated;
use contracts::plan::{Allowance, PlanPort};
use kernel::http::{FieldError, Problem};
use kernel::ports::PortError;
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

/// The service's tables, per engine.
const MIGRATIONS: Migrations = kernel::migrations!();

/// The input service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::INPUT,
    summary: "channel endpoints, raw inbound events, channel credentials, reply delivery",
    prefixes: &["/public/api", "/hooks/line", "/hooks/email"],
    depends_on: &[contracts::services::PLAN],
    issues_tokens: false,
    migrations: Some(MIGRATIONS),
    derived: None,
    routes: || http::routes().table(),
    openapi: || http::routes().openapi(),
    start: |context| Box::pin(start(context)),
};

/// The input service's settings, from `services.input.settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Attempts per reply before it is marked failed.
    pub delivery_max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each further one.
    pub delivery_retry_base: Duration,
    /// How long one attempt may take.
    pub delivery_timeout: Duration,
    /// How often the worker looks for due deliveries when nothing woke it.
    pub delivery_poll: Duration,
    /// Whether callbacks may reach loopback, private and link-local addresses.
    pub callback_allow_private: bool,
    /// Contacts one client IP may create a minute on the widget routes.
    pub widget_contacts_per_ip_per_minute: u32,
    /// Requests one client IP may make a minute on the widget routes.
    pub widget_requests_per_ip_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delivery_max_attempts: 8,
            delivery_retry_base: Duration::from_millis(1000),
            delivery_timeout: Duration::from_millis(10_000),
            delivery_poll: Duration::from_millis(1000),
            callback_allow_private: false,
            widget_contacts_per_ip_per_minute: 60,
            widget_requests_per_ip_per_minute: 600,
        }
    }
}

impl Settings {
    /// Reads the settings, refusing values that are not positive numbers (a typo should stop the start,
    /// not silently fall back to a default).
    pub fn from(settings: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let number =
            |key: &str, default: u64| -> anyhow::Result<u64> {
                match settings.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                    None => Ok(default),
                    Some(value) => value.parse::<u64>().ok().filter(|n| *n > 0).with_context(|| {
                        format!("services.input.settings.{key} must be a positive number, not `{value}`")
                    }),
                }
            };
        let defaults = Self::default();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            delivery_max_attempts: u32::try_from(number(
                "delivery_max_attempts",
                u64::from(defaults.delivery_max_attempts),
            )?)
            .unwrap_or(u32::MAX),
            delivery_retry_base: Duration::from_millis(number(
                "delivery_retry_base_ms",
                millis(defaults.delivery_retry_base),
            )?),
            delivery_timeout: Duration::from_millis(number("delivery_timeout_ms", millis(defaults.delivery_timeout))?),
            delivery_poll: Duration::from_millis(number("delivery_poll_ms", millis(defaults.delivery_poll))?),
            callback_allow_private: match settings.get("callback_allow_private").map(|v| v.trim()) {
                None | Some("") | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    anyhow::bail!("services.input.settings.callback_allow_private must be true or false, not `{other}`")
                }
            },
            widget_contacts_per_ip_per_minute: per_minute(number(
                "widget_contacts_per_ip_per_minute",
                u64::from(defaults.widget_contacts_per_ip_per_minute),
            )?),
            widget_requests_per_ip_per_minute: per_minute(number(
                "widget_requests_per_ip_per_minute",
                u64::from(defaults.widget_requests_per_ip_per_minute),
            )?),
        })
    }
}

fn per_minute(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The widget routes' limits per client IP.
pub struct WidgetLimits {
    contacts: Arc<kernel::limits::PerMinute<std::net::IpAddr>>,
    requests: Arc<kernel::limits::PerMinute<std::net::IpAddr>>,
}

impl WidgetLimits {
    fn new(settings: &Settings) -> Self {
        Self {
            contacts: kernel::limits::PerMinute::new(settings.widget_contacts_per_ip_per_minute),
            requests: kernel::limits::PerMinute::new(settings.widget_requests_per_ip_per_minute),
        }
    }

    /// Spends one widget request of `ip`.
    pub fn request(&self, ip: std::net::IpAddr) -> Result<(), InputError> {
        self.requests.check(&ip).map_err(InputError::RateLimited)
    }

    /// Spends one new contact of `ip` (and one request).
    pub fn contact(&self, ip: std::net::IpAddr) -> Result<(), InputError> {
        self.request(ip)?;
        self.contacts.check(&ip).map_err(InputError::RateLimited)
    }
}

/// What the input service's handlers and port share.
pub struct Input {
    store: store::Store,
    plan: Arc<dyn PlanPort>,
    /// Where accepted posts queue for the recorder task, which records them in batches.
    recorder: tokio::sync::mpsc::Sender<recorder::Submission>,
    /// Open channels by identifier, kept for a moment (every post looks its channel up).
    channels: channels::OpenChannels,
    /// Whether callback URLs may name private addresses (`callback_allow_private`).
    allow_private_callbacks: bool,
    /// What one client IP may do on the widget routes.
    widget_limits: WidgetLimits,
}

impl Input {
    /// The service's shared state; starts its recorder task, which stops when this is dropped.
    fn new(store: store::Store, plan: Arc<dyn PlanPort>, settings: &Settings) -> Self {
        let recorder = recorder::Recorder::new(store.clone(), plan.clone()).spawn();
        Self {
            store,
            plan,
            recorder,
            channels: channels::OpenChannels::default(),
            allow_private_callbacks: settings.callback_allow_private,
            widget_limits: WidgetLimits::new(settings),
        }
    }
}

/// Why an inbound request was not accepted. Mapped to problems in one place, below.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no open channel has this identifier")]
    InboxNotFound,
    #[error("no such contact on this channel")]
    ContactNotFound,
    #[error(transparent)]
    InvalidSignature(#[from] channel_signature::ChannelSignatureError),
    #[error("the Idempotency-Key header is required")]
    IdempotencyKeyRequired,
    #[error("the Idempotency-Key header is invalid: {0}")]
    IdempotencyKeyInvalid(&'static str),
    #[error("the Idempotency-Key was used before with another body")]
    IdempotencyKeyReused,
    #[error("this signature was accepted before")]
    SignatureReplayed,
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("the plan's limit is reached")]
    PlanLimit(Box<Allowance>),
    #[error(transparent)]
    Dependency(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored rows disagree: {0}")]
    Corrupt(String),
    #[error("the recorder of accepted posts stopped before answering")]
    RecorderStopped,
    #[error("too many widget requests from this client; retry in {0} s")]
    RateLimited(u64),
}

impl From<InputError> for Problem {
    fn from(error: InputError) -> Self {
        use axum::http::{HeaderValue, StatusCode, header};
        match error {
            InputError::InboxNotFound => Problem::not_found("inbox_not_found", "No inbox has this identifier."),
            InputError::ContactNotFound => {
                Problem::not_found("contact_not_found", "No contact with this source id in this inbox.")
            }
            InputError::InvalidSignature(reason) => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid_signature", reason.to_string())
                    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("OmniDesk-Signature"))
            }
            InputError::IdempotencyKeyRequired => Problem::bad_request(
                "idempotency_key_required",
                "Send an `Idempotency-Key` header (at most 255 characters) so that retries are safe.",
            ),
            InputError::IdempotencyKeyInvalid(reason) => {
                Problem::bad_request("idempotency_key_invalid", format!("The Idempotency-Key header {reason}."))
            }
            InputError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different body; use a new key for a new message.",
            ),
            InputError::SignatureReplayed => Problem::conflict(
                "signature_replayed",
                "This signature was accepted before under another Idempotency-Key. Each signature is accepted once: \
                 sign every new post anew (a retry keeps its key and is answered as a replay).",
            ),
            InputError::MalformedJson(reason) => {
                Problem::bad_request("malformed_json", format!("The body is not valid JSON: {reason}"))
            }
            InputError::Invalid(errors) => Problem::validation(errors),
            InputError::PlanLimit(allowance) => allowance.refusal(),
            InputError::Dependency(error) => error.into(),
            InputError::Store(error) => Problem::from_store(&error),
            InputError::Corrupt(reason) => Problem::internal(&reason),
            InputError::RecorderStopped => Problem::internal(&"the recorder of accepted posts stopped"),
            InputError::RateLimited(retry_after) => Problem::too_many_requests("widget_rate_limited", retry_after),
        }
    }
}

kernel::answered_as_problem!(InputError);

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let settings = Settings::from(&context.config().service(contracts::services::INPUT).settings)?;
    let store = store::Store::new(context.namespace());
    let input = Arc::new(Input::new(store.clone(), context.port::<dyn PlanPort>()?, &settings));
    context.provide::<dyn InputPort>(input.clone())?;
    let worker = replies::Worker::new(store, &settings)?;
    context.subscribe::<MessageCreated, _>(Arc::new(events::RecordReplies { wake: worker.wake() }))?;
    worker.spawn();
    Ok(http::routes().into_router(input))
}

#[cfg(test)]
mod equivalence_tests;
#[cfg(test)]
mod tests;
