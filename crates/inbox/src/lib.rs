//! The inbox service: where agents work. It owns inboxes (one per channel endpoint, with their member
//! agents), contacts and their channel identities, conversations (one per contact per inbox; status,
//! snooze, priority, assignee, labels, unread count), messages (incoming, outgoing, private notes, activity
//! entries), labels, canned responses, search (Japanese and English) and the agents' realtime feed, under
//! `/api/inboxes`, `/api/contacts`, `/api/conversations`, `/api/labels`, `/api/canned-responses`,
//! `/api/search` and `/api/realtime`.
//!
//! It asks the plan service for limits ([`PlanPort`]), the user service who is a member ([`UserPort`]) and
//! the input service for channel endpoints ([`InputPort`]). It consumes `input.message_received`,
//! `input.contact_identified` and `input.delivery_updated`, and publishes `conversation.created`,
//! `message.created` and `conversation.status_changed`.
//!
//! Settings (`services.inbox.settings`): `feed_retention_days` (default 7; 0 keeps it forever): realtime
//! feed rows older than this are deleted hourly. A socket reconnecting with a cursor from before what is
//! kept is told to reload (`"resync": true` in its `ready` frame) and goes on from the feed's head.

mod desk;
mod domain;
#[cfg(test)]
mod equivalence_tests;
mod events;
mod feed;
mod http;
mod lists;
mod realtime;
mod search;
mod store;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use contracts::UserId;
use contracts::channel::{ChannelKind, ContactIdentified, DeliveryUpdated, InputPort, MessageReceived};
use contracts::plan::{Allowance, FeatureAccess, PlanPort};
use contracts::user::UserPort;
use kernel::http::{FieldError, Problem};
use kernel::ports::PortError;
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

/// The service's tables, per engine.
const MIGRATIONS: Migrations = kernel::migrations!();

/// How often snoozed conversations are checked for their wake-up time.
const SNOOZE_CHECK: Duration = Duration::from_secs(5);

/// How often the realtime feed is trimmed to its retention.
const FEED_TRIM_EVERY: Duration = Duration::from_secs(3600);

/// How long realtime feed rows are kept unless `feed_retention_days` says otherwise.
const FEED_RETENTION_DAYS: u64 = 7;

/// The inbox service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::INBOX,
    summary: "inboxes, contacts, conversations, messages, labels, canned responses, search, realtime",
    prefixes: &[
        "/api/inboxes",
        "/api/conversations",
        "/api/contacts",
        "/api/labels",
        "/api/canned-responses",
        "/api/search",
        "/api/realtime",
    ],
    depends_on: &[contracts::services::PLAN, contracts::services::USER, contracts::services::INPUT],
    issues_tokens: false,
    migrations: Some(MIGRATIONS),
    derived: Some(kernel::service::Derived {
        tables: &["search_index", "search_documents", "search_terms"],
        rebuild: |namespace| Box::pin(async move { store::Store::new(namespace).rebuild_index().await }),
    }),
    routes: || http::routes().table(),
    openapi: || http::routes().openapi(),
    start: |context| Box::pin(start(context)),
};

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let feed = feed::Feed::default();
    let desk = Arc::new(desk::Desk {
        store: store::Store::new(context.namespace()),
        feed: feed.clone(),
        plans: context.port::<dyn PlanPort>()?,
        users: context.port::<dyn UserPort>()?,
        input: context.port::<dyn InputPort>()?,
    });
    let (receive, identify, delivery) = events::handlers(&feed);
    context.subscribe::<MessageReceived, _>(receive)?;
    context.subscribe::<ContactIdentified, _>(identify)?;
    context.subscribe::<DeliveryUpdated, _>(delivery)?;
    tokio::spawn(wake_snoozed(desk.clone()));
    let retention = feed_retention(&context.config().service(contracts::services::INBOX).settings)?;
    if let Some(keep) = retention {
        // Feed rows older than `keep` are deleted hourly; a cursor older than what is kept gets a resync.
        let store = desk.store.clone();
        tokio::spawn(kernel::store::trim_periodically(
            contracts::services::INBOX,
            "realtime feed",
            keep,
            FEED_TRIM_EVERY,
            move |before| {
                let store = store.clone();
                async move { store.trim_feed(before).await }
            },
        ));
    }
    Ok(http::routes().into_router(desk))
}

/// `feed_retention_days`; `None` to keep the feed forever. A value that is not a number stops the start
/// rather than silently keeping everything.
fn feed_retention(settings: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Option<Duration>> {
    let days = match settings.get("feed_retention_days").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => FEED_RETENTION_DAYS,
        Some(value) => value.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("services.inbox.settings.feed_retention_days must be a number of days, not `{value}`")
        })?,
    };
    Ok((days > 0).then(|| Duration::from_secs(days.saturating_mul(24 * 3600))))
}

/// Reopens snoozed conversations when their time comes.
async fn wake_snoozed(desk: Arc<desk::Desk>) {
    let mut tick = tokio::time::interval(SNOOZE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = desk.wake_snoozed().await {
            tracing::warn!(error = %error, "reopening snoozed conversations failed");
        }
    }
}

/// Everything an inbox-service request can fail with, and how each is answered.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("`cursor` is not one this service gave")]
    InvalidCursor,
    #[error("invalid {0}: {1}")]
    InvalidField(&'static str, String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str, &'static str),
    #[error("user {0} is not a member of the account")]
    UnknownUser(UserId),
    #[error("no label named {0}")]
    UnknownLabel(String),
    #[error("plan limit reached")]
    PlanLimit(Allowance),
    #[error("not in the account's plan")]
    PlanFeature(FeatureAccess),
    #[error("the {0:?} channel is not available yet")]
    ChannelNotAvailable(ChannelKind),
    #[error(transparent)]
    Dependency(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<InboxError> for Problem {
    fn from(error: InboxError) -> Self {
        match error {
            InboxError::Invalid(errors) => Problem::validation(errors),
            InboxError::InvalidCursor => {
                Problem::bad_request("invalid_cursor", "`cursor` must be a value from `next_cursor`.")
            }
            InboxError::InvalidField(field, why) => Problem::validation(vec![FieldError::new(field, "invalid", why)]),
            InboxError::NotFound(what) => {
                Problem::not_found(&format!("{what}_not_found"), format!("No such {what} in your account."))
            }
            InboxError::Forbidden(why) => Problem::new(StatusCode::FORBIDDEN, "forbidden", why),
            InboxError::Conflict(code, why) => Problem::conflict(code, why),
            InboxError::UnknownUser(user) => Problem::validation(vec![FieldError::new(
                "user_id",
                "not_a_member",
                format!("User {user} is not a member of your account."),
            )]),
            InboxError::UnknownLabel(name) => Problem::validation(vec![FieldError::new(
                "labels",
                "unknown_label",
                format!("There is no label named `{name}`; create it first."),
            )]),
            InboxError::PlanLimit(allowance) => allowance.refusal(),
            InboxError::PlanFeature(access) => access.refusal(),
            InboxError::ChannelNotAvailable(kind) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "channel_not_available",
                format!("The {} channel is not available yet; create an `api` or `web_widget` inbox.", kind.as_str()),
            )
            .with_extension("channel", kind.as_str()),
            InboxError::Dependency(error) => error.into(),
            InboxError::Store(StoreError::UniqueViolation { .. }) => {
                Problem::conflict("already_exists", "Something with this name already exists in your account.")
            }
            InboxError::Store(error) => Problem::from_store(&error),
            InboxError::Internal(error) => Problem::internal(&error),
        }
    }
}

kernel::answered_as_problem!(InboxError);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_feed_is_kept_a_week_unless_the_settings_say_otherwise() {
        let with = |value: &str| BTreeMap::from([("feed_retention_days".to_owned(), value.to_owned())]);
        assert_eq!(feed_retention(&BTreeMap::new()).expect("default"), Some(Duration::from_secs(7 * 24 * 3600)));
        assert_eq!(feed_retention(&with("30")).expect("30"), Some(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(feed_retention(&with("0")).expect("forever"), None);
        let typo = feed_retention(&with("7d")).expect_err("not a number");
        assert!(typo.to_string().contains("feed_retention_days"), "{typo}");
    }
}
