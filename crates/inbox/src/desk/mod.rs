//! The help desk's rules: who may see and change what, and what every change records — an activity entry
//! in the conversation, a row in the realtime feed and, where other services care, an event — all in the
//! one transaction of the change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use contracts::channel::{
    ChannelContact, ChannelKind, ChannelRegistration, DeliveryStatus, InputPort, MessageReceived, RegistrationError,
};
use contracts::inbox::{
    ContactId, ConversationCreated, ConversationId, ConversationStatus, ConversationStatusChanged, InboxId,
    MessageCreated, MessageId, MessageKind,
};
use contracts::plan::{Feature, Limited, PlanPort};
use contracts::user::UserPort;
use contracts::{AccountId, Role, UserId};
use kernel::auth::Caller;
use kernel::clock::now_ms;
use kernel::http::FieldError;
use kernel::store::{StoreError, Tx};
use serde_json::json;

use crate::InboxError;
use crate::domain::{DocKind, FeedKind, LabelId, Priority};
use crate::feed::Feed;
use crate::search;
use crate::store::{
    ContactRow, ConversationRow, Document, FeedEntry, Identity, InboxRow, KnownConversation, MessageRow, NewIncoming,
    Store, Touch,
};
use crate::views::{ConversationView, MessageView};

/// How much of a message the conversation list shows.
const PREVIEW_CHARS: usize = 140;

/// The inbox service's state: its store, the realtime wake-ups, and the ports it calls.
pub struct Desk {
    pub store: Store,
    pub feed: Feed,
    pub plans: Arc<dyn PlanPort>,
    pub users: Arc<dyn UserPort>,
    pub input: Arc<dyn InputPort>,
}

/// Changes made in one transaction, to report once it commits: to one inbox's conversations (only its
/// members among the agents are told), or to the whole account (contacts).
struct Changes {
    account: AccountId,
    /// The inbox of what [`Changes::push`] reports.
    inbox: Option<InboxId>,
    feed: Vec<FeedEntry>,
}

impl Changes {
    /// Changes every agent of the account may see.
    fn new(account: AccountId) -> Self {
        Self { account, inbox: None, feed: Vec::new() }
    }

    /// Changes to conversations of `inbox`.
    fn in_inbox(account: AccountId, inbox: InboxId) -> Self {
        Self { account, inbox: Some(inbox), feed: Vec::new() }
    }

    fn push(&mut self, kind: FeedKind, data: serde_json::Value) {
        self.feed.push(FeedEntry { kind, inbox: self.inbox, payload: data.to_string() });
    }

    /// A change every agent of the account may see (a contact's), whatever the inbox of the others.
    fn push_to_all(&mut self, kind: FeedKind, data: serde_json::Value) {
        self.feed.push(FeedEntry { kind, inbox: None, payload: data.to_string() });
    }

    /// A change to a conversation of `inbox` (for changes of several inboxes in one transaction), its data
    /// already JSON.
    fn push_in(&mut self, inbox: InboxId, kind: FeedKind, payload: String) {
        self.feed.push(FeedEntry { kind, inbox: Some(inbox), payload });
    }

    /// Writes the feed rows into `tx` and wakes the account's sockets once it commits.
    async fn record(self, tx: &mut Tx<'_>, feed: &Feed, now: i64) -> Result<(), InboxError> {
        if self.feed.is_empty() {
            return Ok(());
        }
        Store::append_feed(tx, self.account, &self.feed, now).await?;
        let feed = feed.clone();
        let account = self.account;
        tx.after_commit(move || feed.notify(account));
        Ok(())
    }
}

/// The data of a `message.created` change: the message and its conversation as they are after it.
#[derive(serde::Serialize)]
struct Created {
    message: MessageView,
    conversation: ConversationView,
}

fn preview(content: &str) -> String {
    content.chars().take(PREVIEW_CHARS).collect()
}

/// Only owners and admins configure the desk (inboxes, labels, canned responses).
pub fn require_manager(caller: &Caller) -> Result<(), InboxError> {
    if caller.role.manages_members() {
        Ok(())
    } else {
        Err(InboxError::Forbidden("Only owners and admins may do this."))
    }
}

mod contacts;
mod conversations;
mod inboxes;
mod intake;

pub use contacts::{contact_identified, delivery_updated, update_contact};
pub use intake::{receive_message, receive_messages};

/// The most items a list in a request body may hold (inbox members, a conversation's labels), after
/// repetitions are dropped.
pub const MAX_LISTED: usize = 500;

/// `items` without repetitions, in their first order; more than [`MAX_LISTED`] is a 422 naming `field`.
fn distinct_bounded<T: Eq + std::hash::Hash + Clone>(items: Vec<T>, field: &str) -> Result<Vec<T>, InboxError> {
    let mut seen = HashSet::with_capacity(items.len().min(MAX_LISTED + 1));
    let mut distinct = Vec::new();
    for item in items {
        if seen.insert(item.clone()) {
            if distinct.len() == MAX_LISTED {
                return Err(InboxError::Invalid(vec![FieldError::new(
                    field,
                    "too_many",
                    format!("`{field}` may hold at most {MAX_LISTED} different items."),
                )]));
            }
            distinct.push(item);
        }
    }
    Ok(distinct)
}

fn registration_error(error: RegistrationError) -> InboxError {
    match error {
        RegistrationError::InvalidCallbackUrl(why) => InboxError::InvalidField("callback_url", why),
        RegistrationError::PrivateCallbackUrl(url) => InboxError::InvalidField(
            "callback_url",
            format!(
                "{url} names a private, loopback or link-local address, which callbacks may not reach \
                 (services.input.settings.callback_allow_private)"
            ),
        ),
    }
}

async fn updated_view(
    tx: &mut Tx<'_>,
    account: AccountId,
    conversation: ConversationId,
) -> Result<ConversationView, InboxError> {
    let row = Store::conversation_in(tx, account, conversation).await?.ok_or(InboxError::NotFound("conversation"))?;
    Ok(ConversationView::from(row))
}

/// Adds an activity entry to the conversation and reports it: `attributes` say what happened (`action`,
/// and its details), `by` who did it (`None`: the system).
async fn add_activity(
    tx: &mut Tx<'_>,
    changes: &mut Changes,
    account: AccountId,
    conversation: ConversationId,
    by: Option<UserId>,
    mut attributes: serde_json::Value,
    now: i64,
) -> Result<(), InboxError> {
    attributes["by"] = json!(by);
    let message = MessageRow {
        id: MessageId::new(),
        conversation_id: conversation,
        kind: MessageKind::Activity,
        content: attributes["action"].as_str().unwrap_or("activity").to_owned(),
        sender_id: by,
        attributes: Some(attributes.to_string()),
        delivery_status: None,
        delivery_error: None,
        created_at: now,
    };
    Store::insert_message(tx, account, &message).await?;
    changes.push(FeedKind::MessageCreated, json!({ "message": MessageView::from(message) }));
    Ok(())
}

/// Moves `current` to `status` inside `tx`: the change, its activity entry, its feed rows and the
/// `conversation.status_changed` event. `by` is `None` when the system did it.
async fn set_status(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    current: &ConversationRow,
    status: ConversationStatus,
    snoozed_until: Option<i64>,
    by: Option<UserId>,
) -> Result<ConversationView, InboxError> {
    let snoozed_until = if status == ConversationStatus::Snoozed { snoozed_until } else { None };
    if current.status == status && current.snoozed_until == snoozed_until {
        return Ok(ConversationView::from(current.clone()));
    }
    let now = now_ms();
    Store::set_status(tx, account, current.id, status, snoozed_until, now).await?;
    let activity =
        json!({ "action": "status_changed", "from": current.status, "to": status, "snoozed_until": snoozed_until });
    let mut changes = Changes::in_inbox(account, current.inbox_id);
    add_activity(tx, &mut changes, account, current.id, by, activity, now).await?;
    let view = updated_view(tx, account, current.id).await?;
    if current.status != status {
        tx.publish(&ConversationStatusChanged {
            account,
            conversation: current.id,
            from: current.status,
            to: status,
            by,
        })
        .await?;
    }
    changes.push(
        FeedKind::ConversationStatusChanged,
        json!({ "conversation": view, "from": current.status, "to": status, "by": by }),
    );
    changes.record(tx, feed, now).await?;
    Ok(view)
}
