//! The help desk's rules: who may see and change what, and what every change records — an activity entry
//! in the conversation, a row in the realtime feed and, where other services care, an event — all in the
//! one transaction of the change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use contracts::channel::{
    ChannelContact, ChannelKind, ChannelRegistration, InputPort, MessageReceived, RegistrationError,
};
use contracts::inbox::{
    ConversationCreated, ConversationId, ConversationStatusChanged, InboxId, MessageCreated, MessageId, MessageKind,
};
use contracts::plan::{Feature, Limited, PlanPort};
use contracts::user::UserPort;
use contracts::{AccountId, Role, UserId};
use kernel::auth::Caller;
use kernel::http::FieldError;
use kernel::store::{StoreError, Tx};
use serde_json::json;

use crate::InboxError;
use crate::feed::Feed;
use crate::search;
use crate::store::{
    ContactRow, ConversationRow, Document, InboxRow, KnownConversation, MessageRow, NewIncoming, Store, Touch,
};
use crate::views::{ConversationView, MessageView};
use kernel::clock::now_ms;

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

/// A conversation's status, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Pending,
    Resolved,
    Snoozed,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Status::Open),
            "pending" => Some(Status::Pending),
            "resolved" => Some(Status::Resolved),
            "snoozed" => Some(Status::Snoozed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Resolved => "resolved",
            Status::Snoozed => "snoozed",
        }
    }
}

pub const PRIORITIES: &[&str] = &["none", "low", "medium", "high", "urgent"];

/// Changes made in one transaction, to report once it commits: to one inbox's conversations (only its
/// members among the agents are told), or to the whole account (contacts).
struct Changes {
    account: AccountId,
    /// The inbox of what [`Changes::push`] reports.
    inbox: Option<String>,
    /// Feed rows: kind, inbox, payload.
    feed: Vec<(&'static str, Option<String>, String)>,
}

impl Changes {
    /// Changes every agent of the account may see.
    fn new(account: AccountId) -> Self {
        Self { account, inbox: None, feed: Vec::new() }
    }

    /// Changes to conversations of `inbox`.
    fn in_inbox(account: AccountId, inbox: &str) -> Self {
        Self { account, inbox: Some(inbox.to_owned()), feed: Vec::new() }
    }

    fn push(&mut self, kind: &'static str, data: serde_json::Value) {
        self.feed.push((kind, self.inbox.clone(), data.to_string()));
    }

    /// A change every agent of the account may see (a contact's), whatever the inbox of the others.
    fn push_to_all(&mut self, kind: &'static str, data: serde_json::Value) {
        self.feed.push((kind, None, data.to_string()));
    }

    /// A change to a conversation of `inbox` (for changes of several inboxes in one transaction), its data
    /// already JSON.
    fn push_in(&mut self, inbox: &str, kind: &'static str, data: String) {
        self.feed.push((kind, Some(inbox.to_owned()), data));
    }

    /// Writes the feed rows into `tx` and wakes the account's sockets once it commits.
    async fn record(self, tx: &mut Tx<'_>, feed: &Feed, now: i64) -> Result<(), InboxError> {
        if self.feed.is_empty() {
            return Ok(());
        }
        Store::append_feed(tx, &self.account.to_string(), &self.feed, now).await?;
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

impl Desk {
    // Inboxes.

    /// Refuses unless the account's plan includes `feature`.
    pub async fn require_feature(&self, caller: &Caller, feature: Feature) -> Result<(), InboxError> {
        let access = self.plans.feature(caller.account, feature).await?;
        if access.allowed { Ok(()) } else { Err(InboxError::PlanFeature(access)) }
    }

    /// Creates an inbox and its channel endpoint, within the plan's inbox limit.
    pub async fn create_inbox(
        &self,
        caller: &Caller,
        name: String,
        channel: ChannelKind,
        callback_url: Option<String>,
    ) -> Result<(InboxRow, String), InboxError> {
        require_manager(caller)?;
        if !matches!(channel, ChannelKind::Api | ChannelKind::WebWidget) {
            return Err(InboxError::ChannelNotAvailable(channel));
        }
        let current = self.store.count_inboxes(caller.account).await?;
        let allowance =
            self.plans.allowance(caller.account, Limited::Inboxes, u64::try_from(current).unwrap_or(0)).await?;
        if !allowance.allowed {
            return Err(InboxError::PlanLimit(allowance));
        }
        let id = InboxId::new();
        let credentials = self
            .input
            .register_channel(ChannelRegistration {
                account: caller.account,
                inbox: id,
                kind: channel,
                callback_url: callback_url.clone(),
            })
            .await?
            .map_err(registration_error)?;
        let now = now_ms();
        let row = InboxRow {
            id: id.to_string(),
            name,
            channel: channel.as_str().to_owned(),
            identifier: Some(credentials.identifier),
            callback_url,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.namespace().begin().await?;
        Store::insert_inbox(&mut tx, caller.account, &row).await?;
        tx.commit().await?;
        Ok((row, credentials.secret))
    }

    pub async fn update_inbox(
        &self,
        caller: &Caller,
        id: &str,
        name: String,
        callback_url: Option<String>,
    ) -> Result<InboxRow, InboxError> {
        require_manager(caller)?;
        let inbox = self.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
        let kind = ChannelKind::parse(&inbox.channel).unwrap_or(ChannelKind::Api);
        let inbox_id: InboxId = id.parse().map_err(|_| InboxError::NotFound("inbox"))?;
        self.input
            .register_channel(ChannelRegistration {
                account: caller.account,
                inbox: inbox_id,
                kind,
                callback_url: callback_url.clone(),
            })
            .await?
            .map_err(registration_error)?;
        let mut tx = self.store.namespace().begin().await?;
        Store::update_inbox(&mut tx, caller.account, id, &name, callback_url.as_deref(), now_ms()).await?;
        tx.commit().await?;
        self.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))
    }

    /// Deletes an inbox without conversations (conversations are the account's history; they are never
    /// deleted with their inbox) and closes its channel endpoint.
    pub async fn delete_inbox(&self, caller: &Caller, id: &str) -> Result<(), InboxError> {
        require_manager(caller)?;
        self.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
        if self.store.has_conversations(caller.account, id).await? {
            return Err(InboxError::Conflict(
                "inbox_not_empty",
                "This inbox has conversations; resolve and keep them, or keep the inbox.",
            ));
        }
        let inbox_id: InboxId = id.parse().map_err(|_| InboxError::NotFound("inbox"))?;
        self.input.remove_channel(caller.account, inbox_id).await?;
        let mut tx = self.store.namespace().begin().await?;
        Store::delete_inbox(&mut tx, caller.account, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets who answers an inbox; every user must be a member of the account. The list is taken without
    /// its repetitions and bounded ([`MAX_LISTED`]), and checked against the account's members with one
    /// call, however long it is.
    pub async fn set_inbox_members(
        &self,
        caller: &Caller,
        inbox: &str,
        users: Vec<UserId>,
    ) -> Result<Vec<String>, InboxError> {
        require_manager(caller)?;
        self.store.inbox(caller.account, inbox).await?.ok_or(InboxError::NotFound("inbox"))?;
        let users = distinct_bounded(users, "user_ids")?;
        if !users.is_empty() {
            let members: HashSet<UserId> =
                self.users.members(caller.account).await?.into_iter().map(|member| member.user).collect();
            if let Some(unknown) = users.iter().find(|user| !members.contains(user)) {
                return Err(InboxError::UnknownUser(*unknown));
            }
        }
        let ids: Vec<String> = users.iter().map(UserId::to_string).collect();
        let mut tx = self.store.namespace().begin().await?;
        Store::replace_inbox_members(&mut tx, caller.account, inbox, &ids, now_ms()).await?;
        tx.commit().await?;
        // Which conversations an agent's lists show has changed.
        self.feed.lists.invalidate(caller.account);
        Ok(ids)
    }

    // Conversations.

    /// The conversation, if the caller may see it: it is in their account and, for agents, in one of
    /// their inboxes. Anything else is "not found", so ids of other tenants reveal nothing.
    pub async fn visible_conversation(&self, caller: &Caller, id: &str) -> Result<ConversationRow, InboxError> {
        let conversation =
            self.store.conversation(caller.account, id).await?.ok_or(InboxError::NotFound("conversation"))?;
        if caller.role == Role::Agent
            && !self.store.is_inbox_member(caller.account, &conversation.inbox_id, &caller.user.to_string()).await?
        {
            return Err(InboxError::NotFound("conversation"));
        }
        Ok(conversation)
    }

    /// An agent's reply (sent to the contact through the channel) or private note (never sent).
    pub async fn post_message(
        &self,
        caller: &Caller,
        conversation: &str,
        content: String,
        private: bool,
    ) -> Result<MessageView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        let account = caller.account.to_string();
        let mut tx = self.store.namespace().begin().await?;
        let inbox =
            Store::inbox_in(&mut tx, &account, &current.inbox_id).await?.ok_or(InboxError::NotFound("inbox"))?;
        let channel = ChannelKind::parse(&inbox.channel).unwrap_or(ChannelKind::Api);
        let kind = if private { MessageKind::Note } else { MessageKind::Outgoing };
        let now = now_ms();
        let message = MessageRow {
            id: MessageId::new().to_string(),
            conversation_id: current.id.clone(),
            kind: kind.as_str().to_owned(),
            content: content.clone(),
            sender_id: Some(caller.user.to_string()),
            attributes: None,
            // A reply on a channel that delivers to a callback is pending until the input service says.
            delivery_status: (!private && inbox.callback_url.is_some()).then(|| "pending".to_owned()),
            delivery_error: None,
            created_at: now,
        };
        Store::insert_message(&mut tx, &account, &message).await?;
        Store::touch_conversation(&mut tx, &account, &current.id, &preview(&content), kind.as_str(), 0, now).await?;
        Store::index(
            &mut tx,
            &search::scope(&account),
            &search::index_text(&content),
            "message",
            &message.id,
            Some(&current.id),
        )
        .await?;
        // The contact's identity on this inbox, for the channel to deliver the reply to.
        let contact_source_id = Store::source_id_in(&mut tx, &current.inbox_id, &current.contact_id).await?;
        tx.publish(&MessageCreated {
            account: caller.account,
            inbox: inbox.id.parse().map_err(|_| InboxError::NotFound("inbox"))?,
            channel,
            conversation: ConversationId(current.id.parse().map_err(|_| InboxError::NotFound("conversation"))?),
            message: MessageId(message.id.parse().map_err(|_| InboxError::NotFound("message"))?),
            kind,
            content,
            sender: Some(caller.user),
            contact_source_id,
            created_at: now,
        })
        .await?;
        let updated = Store::conversation_in(&mut tx, &account, &current.id)
            .await?
            .ok_or(InboxError::NotFound("conversation"))?;
        let view = MessageView::from(message);
        let mut changes = Changes::in_inbox(caller.account, &current.inbox_id);
        changes.push("message.created", json!({ "message": view, "conversation": ConversationView::from(updated) }));
        changes.record(&mut tx, &self.feed, now).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Changes the status (snoozing needs a future `snoozed_until`).
    pub async fn change_status(
        &self,
        caller: &Caller,
        conversation: &str,
        status: Status,
        snoozed_until: Option<i64>,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        let mut tx = self.store.namespace().begin().await?;
        let view =
            set_status(&mut tx, &self.feed, caller.account, &current, status, snoozed_until, Some(caller.user)).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Assigns the conversation to a member of the account, or unassigns it.
    pub async fn assign(
        &self,
        caller: &Caller,
        conversation: &str,
        assignee: Option<UserId>,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        if let Some(user) = assignee
            && self.users.member(caller.account, user).await?.is_none()
        {
            return Err(InboxError::UnknownUser(user));
        }
        let account = caller.account.to_string();
        let assignee_text = assignee.map(|u| u.to_string());
        if current.assignee_id == assignee_text {
            return Ok(ConversationView::from(current));
        }
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::set_assignee(&mut tx, &account, &current.id, assignee_text.as_deref(), now).await?;
        let activity =
            json!({ "action": "assigned", "from": current.assignee_id, "to": assignee_text, "by": caller.user });
        self.finish_conversation_change(tx, caller.account, &current, Some(activity), now, |view| {
            ("conversation.assigned", json!({ "conversation": view, "assignee_id": assignee_text, "by": caller.user }))
        })
        .await
    }

    /// The end every change to one conversation shares: its activity line (if it has one), the
    /// conversation as it is now, the feed row that reports it (`report` names the change and gives its
    /// data), and the commit.
    async fn finish_conversation_change(
        &self,
        mut tx: Tx<'_>,
        account: AccountId,
        current: &ConversationRow,
        activity: Option<serde_json::Value>,
        now: i64,
        report: impl FnOnce(&ConversationView) -> (&'static str, serde_json::Value),
    ) -> Result<ConversationView, InboxError> {
        let account_text = account.to_string();
        let mut changes = Changes::in_inbox(account, &current.inbox_id);
        if let Some(activity) = activity {
            add_activity(&mut tx, &mut changes, &account_text, &current.id, activity, now).await?;
        }
        let view = updated_view(&mut tx, &account_text, &current.id).await?;
        let (kind, data) = report(&view);
        changes.push(kind, data);
        changes.record(&mut tx, &self.feed, now).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn set_priority(
        &self,
        caller: &Caller,
        conversation: &str,
        priority: &str,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        let account = caller.account.to_string();
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::set_priority(&mut tx, &account, &current.id, priority, now).await?;
        let activity =
            json!({ "action": "priority_changed", "from": current.priority, "to": priority, "by": caller.user });
        self.finish_conversation_change(tx, caller.account, &current, Some(activity), now, |view| {
            ("conversation.updated", json!({ "conversation": view }))
        })
        .await
    }

    /// Replaces the conversation's labels with `names`, which must be labels of the account.
    pub async fn set_labels(
        &self,
        caller: &Caller,
        conversation: &str,
        names: Vec<String>,
    ) -> Result<ConversationView, InboxError> {
        let names = distinct_bounded(names, "labels")?;
        let current = self.visible_conversation(caller, conversation).await?;
        let account = caller.account.to_string();
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        let known = Store::label_names(&mut tx, &account).await?;
        let mut ids = Vec::new();
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            let (id, _) =
                known.iter().find(|(_, n)| *n == name).ok_or_else(|| InboxError::UnknownLabel(name.clone()))?;
            if !ids.contains(id) {
                ids.push(id.clone());
                wanted.push(name);
            }
        }
        wanted.sort();
        let before: Vec<String> = ConversationView::from(current.clone()).labels;
        if before == wanted {
            return Ok(ConversationView::from(current));
        }
        Store::replace_conversation_labels(&mut tx, &account, &current.id, &ids, now).await?;
        let added: Vec<&String> = wanted.iter().filter(|n| !before.contains(n)).collect();
        let removed: Vec<&String> = before.iter().filter(|n| !wanted.contains(n)).collect();
        let activity = json!({ "action": "labelled", "added": added, "removed": removed, "by": caller.user });
        self.finish_conversation_change(tx, caller.account, &current, Some(activity), now, |view| {
            ("conversation.updated", json!({ "conversation": view }))
        })
        .await
    }

    /// The caller has read the conversation: its unread count drops to zero.
    pub async fn mark_read(&self, caller: &Caller, conversation: &str) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        if current.unread_count == 0 {
            return Ok(ConversationView::from(current));
        }
        let account = caller.account.to_string();
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::mark_read(&mut tx, &account, &current.id, now).await?;
        self.finish_conversation_change(tx, caller.account, &current, None, now, |view| {
            ("conversation.updated", json!({ "conversation": view }))
        })
        .await
    }

    /// Reopens snoozed conversations whose time has come; returns how many.
    pub async fn wake_snoozed(&self) -> Result<usize, InboxError> {
        let due = self.store.due_snoozes(now_ms(), 100).await?;
        let mut woken = 0;
        for (account, id) in due {
            let mut tx = self.store.namespace().begin().await?;
            // Re-read inside the transaction: an agent may have changed it meanwhile.
            let Some(current) = Store::conversation_in(&mut tx, &account, &id).await? else { continue };
            if current.status != "snoozed" {
                continue;
            }
            let account_id = AccountId(uuid_of(&account)?);
            set_status(&mut tx, &self.feed, account_id, &current, Status::Open, None, None).await?;
            tx.commit().await?;
            woken += 1;
        }
        Ok(woken)
    }
}

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

fn uuid_of(id: &str) -> Result<uuid::Uuid, InboxError> {
    uuid::Uuid::parse_str(id).map_err(|_| InboxError::NotFound("conversation"))
}

async fn updated_view(tx: &mut Tx<'_>, account: &str, conversation: &str) -> Result<ConversationView, InboxError> {
    let row = Store::conversation_in(tx, account, conversation).await?.ok_or(InboxError::NotFound("conversation"))?;
    Ok(ConversationView::from(row))
}

/// Adds an activity entry to the conversation and reports it.
async fn add_activity(
    tx: &mut Tx<'_>,
    changes: &mut Changes,
    account: &str,
    conversation: &str,
    attributes: serde_json::Value,
    now: i64,
) -> Result<(), InboxError> {
    let action = attributes["action"].as_str().unwrap_or("activity").to_owned();
    let message = MessageRow {
        id: MessageId::new().to_string(),
        conversation_id: conversation.to_owned(),
        kind: MessageKind::Activity.as_str().to_owned(),
        content: action,
        sender_id: attributes["by"].as_str().map(str::to_owned),
        attributes: Some(attributes.to_string()),
        delivery_status: None,
        delivery_error: None,
        created_at: now,
    };
    Store::insert_message(tx, account, &message).await?;
    changes.push("message.created", json!({ "message": MessageView::from(message) }));
    Ok(())
}

/// Moves `current` to `status` inside `tx`: the change, its activity entry, its feed rows and the
/// `conversation.status_changed` event. `by` is `None` when the system did it.
async fn set_status(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    current: &ConversationRow,
    status: Status,
    snoozed_until: Option<i64>,
    by: Option<UserId>,
) -> Result<ConversationView, InboxError> {
    let account_text = account.to_string();
    let snoozed_until = if status == Status::Snoozed { snoozed_until } else { None };
    if current.status == status.as_str() && current.snoozed_until == snoozed_until {
        return Ok(ConversationView::from(current.clone()));
    }
    let now = now_ms();
    Store::set_status(tx, &account_text, &current.id, status.as_str(), snoozed_until, now).await?;
    let activity = json!({
        "action": "status_changed", "from": current.status, "to": status.as_str(),
        "snoozed_until": snoozed_until, "by": by,
    });
    let mut changes = Changes::in_inbox(account, &current.inbox_id);
    add_activity(tx, &mut changes, &account_text, &current.id, activity, now).await?;
    let view = updated_view(tx, &account_text, &current.id).await?;
    if current.status != status.as_str() {
        tx.publish(&ConversationStatusChanged {
            account,
            conversation: ConversationId(uuid_of(&current.id)?),
            from: current.status.clone(),
            to: status.as_str().to_owned(),
            by,
        })
        .await?;
    }
    changes.push(
        "conversation.status_changed",
        json!({ "conversation": view, "from": current.status, "to": status.as_str(), "by": by }),
    );
    changes.record(tx, feed, now).await?;
    Ok(view)
}

/// Applies a customer's message received on a channel: finds or creates the contact by its channel
/// identity, finds, reopens or starts its conversation, and stores the message under the id input chose
/// (a redelivery finds it there and changes nothing).
pub async fn receive_message(tx: &mut Tx<'_>, feed: &Feed, event: &MessageReceived) -> Result<(), InboxError> {
    let MessageReceived { account, inbox, message: message_id, ref contact, ref content, received_at } = *event;
    let account_text = account.to_string();
    let inbox_text = inbox.to_string();
    let Some(inbox_row) = Store::inbox_in(tx, &account_text, &inbox_text).await? else {
        // The inbox was deleted after input accepted the message; there is nowhere to put it.
        tracing::warn!(account.id = %account, inbox.id = %inbox, "message for an inbox that no longer exists");
        return Ok(());
    };
    let mut changes = Changes::in_inbox(account, &inbox_text);
    let contact_row = identify(tx, &mut changes, &account_text, &inbox_text, contact, received_at).await?;
    let conversation = match Store::conversation_of_contact(tx, &inbox_text, &contact_row.id).await? {
        Some((id, status)) => {
            if status != "open" {
                // A customer writing again reopens the conversation (there is one per contact).
                let current = Store::conversation_in(tx, &account_text, &id)
                    .await?
                    .ok_or(InboxError::NotFound("conversation"))?;
                set_status(tx, feed, account, &current, Status::Open, None, None).await?;
            }
            id
        }
        None => {
            let id = ConversationId::new();
            let display_id = Store::insert_conversation(
                tx,
                &account_text,
                &id.to_string(),
                &inbox_text,
                &contact_row.id,
                received_at,
            )
            .await?;
            tx.publish(&ConversationCreated {
                account,
                inbox,
                conversation: id,
                display_id,
                contact: contracts::inbox::ContactId(uuid_of(&contact_row.id)?),
            })
            .await?;
            Store::index(
                tx,
                &search::scope(&account_text),
                &search::index_text(&format!("#{display_id}")),
                "conversation",
                &id.to_string(),
                Some(&id.to_string()),
            )
            .await?;
            let view = updated_view(tx, &account_text, &id.to_string()).await?;
            changes.push("conversation.created", json!({ "conversation": view }));
            id.to_string()
        }
    };
    let message = MessageRow {
        id: message_id.to_string(),
        conversation_id: conversation.clone(),
        kind: MessageKind::Incoming.as_str().to_owned(),
        content: content.to_owned(),
        sender_id: None,
        attributes: None,
        delivery_status: None,
        delivery_error: None,
        created_at: received_at,
    };
    if !Store::insert_message(tx, &account_text, &message).await? {
        return Ok(());
    }
    Store::touch_conversation(tx, &account_text, &conversation, &preview(content), "incoming", 1, received_at).await?;
    Store::index(
        tx,
        &search::scope(&account_text),
        &search::index_text(content),
        "message",
        &message.id,
        Some(&conversation),
    )
    .await?;
    let view = updated_view(tx, &account_text, &conversation).await?;
    tx.publish(&MessageCreated {
        account,
        inbox,
        channel: ChannelKind::parse(&inbox_row.channel).unwrap_or(ChannelKind::Api),
        conversation: ConversationId(uuid_of(&conversation)?),
        message: message_id,
        kind: MessageKind::Incoming,
        content: content.to_owned(),
        sender: None,
        contact_source_id: Some(contact.source_id.clone()),
        created_at: received_at,
    })
    .await?;
    changes.push("message.created", json!({ "message": MessageView::from(message), "conversation": view }));
    changes.record(tx, feed, now_ms()).await?;
    Ok(())
}

/// Applies a run of customers' messages (a consumer batch), in order. Messages to a known contact's
/// open conversation that tell nothing new about the contact are stored together, with a constant number of
/// statements for the whole run; the others (a new contact or conversation, a conversation to reopen,
/// details to fill in) take [`receive_message`] in their place in the order.
pub async fn receive_messages(tx: &mut Tx<'_>, feed: &Feed, events: &[MessageReceived]) -> Result<(), InboxError> {
    let accounts: Vec<String> = events.iter().map(|e| e.account.to_string()).collect();
    let inboxes: Vec<String> = events.iter().map(|e| e.inbox.to_string()).collect();
    let mut identities: Vec<(&str, &str, &str)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (accounts[i].as_str(), inboxes[i].as_str(), e.contact.source_id.as_str()))
        .collect();
    identities.sort_unstable();
    identities.dedup();
    let known: HashMap<(String, String), KnownConversation> = Store::known_conversations(tx, &identities)
        .await?
        .into_iter()
        .map(|k| ((k.inbox_id.clone(), k.source_id.clone()), k))
        .collect();

    let mut run: Vec<(&MessageReceived, &KnownConversation)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match known.get(&(inboxes[i].clone(), event.contact.source_id.clone())) {
            Some(found) if found.status == Status::Open.as_str() && !tells_more(found, &event.contact) => {
                run.push((event, found));
            }
            _ => {
                store_incoming(tx, feed, &std::mem::take(&mut run)).await?;
                receive_message(tx, feed, event).await?;
            }
        }
    }
    store_incoming(tx, feed, &run).await
}

/// Whether a channel's details of a contact fill in something the contact lacks.
fn tells_more(known: &KnownConversation, contact: &ChannelContact) -> bool {
    (known.name.is_none() && contact.name.is_some())
        || (known.email.is_none() && contact.email.is_some())
        || (known.phone.is_none() && contact.phone.is_some())
}

/// Stores a run of messages to known, open conversations: what [`receive_message`] does for each, with
/// one statement per step for all of them.
async fn store_incoming(
    tx: &mut Tx<'_>,
    feed: &Feed,
    run: &[(&MessageReceived, &KnownConversation)],
) -> Result<(), InboxError> {
    if run.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = run.iter().map(|(event, _)| event.message.to_string()).collect();
    let accounts: Vec<String> = run.iter().map(|(event, _)| event.account.to_string()).collect();
    let previews: Vec<String> = run.iter().map(|(event, _)| preview(&event.content)).collect();
    let messages: Vec<NewIncoming<'_>> = run
        .iter()
        .enumerate()
        .map(|(i, (event, known))| {
            (
                ids[i].as_str(),
                accounts[i].as_str(),
                known.conversation_id.as_str(),
                event.content.as_str(),
                event.received_at,
            )
        })
        .collect();
    let inserted: HashSet<String> = Store::insert_incoming(tx, &messages).await?.into_iter().collect();
    // A redelivered message is already there: it changes nothing.
    let stored: Vec<usize> = (0..run.len()).filter(|&i| inserted.contains(&ids[i])).collect();
    if stored.is_empty() {
        return Ok(());
    }

    // Each conversation ends the run with its last message, and one unread more per message.
    let mut unread: HashMap<&str, i64> = HashMap::new();
    let mut last: HashMap<&str, usize> = HashMap::new();
    for &i in &stored {
        let conversation = run[i].1.conversation_id.as_str();
        *unread.entry(conversation).or_default() += 1;
        last.insert(conversation, i);
    }
    let touches: Vec<Touch<'_>> = last
        .iter()
        .map(|(conversation, &i)| {
            (accounts[i].as_str(), *conversation, run[i].0.received_at, previews[i].as_str(), unread[conversation])
        })
        .collect();
    Store::touch_conversations(tx, &touches).await?;

    let scopes: Vec<String> = accounts.iter().map(|a| search::scope(a)).collect();
    let texts: Vec<String> = stored.iter().map(|&i| search::index_text(&run[i].0.content)).collect();
    let documents: Vec<Document<'_>> = stored
        .iter()
        .zip(&texts)
        .map(|(&i, text)| {
            (scopes[i].as_str(), text.as_str(), "message", ids[i].as_str(), Some(run[i].1.conversation_id.as_str()))
        })
        .collect();
    Store::index_all(tx, &documents).await?;

    let conversation_ids: Vec<&str> = last.keys().copied().collect();
    let mut after_run: HashMap<String, ConversationRow> =
        Store::conversations_in(tx, &conversation_ids).await?.into_iter().map(|row| (row.id.clone(), row)).collect();

    let mut published = Vec::with_capacity(stored.len());
    let mut changes: Vec<Changes> = Vec::new();
    // Walking the run backwards, each message's view is the conversation's after the run, less the unread
    // messages that come after it, with itself as the last message: what it would have been had each been
    // stored on its own.
    let mut views = Vec::with_capacity(stored.len());
    for &i in stored.iter().rev() {
        let (event, known) = run[i];
        let row = after_run.get_mut(&known.conversation_id).ok_or(InboxError::NotFound("conversation"))?;
        let mut at_message = row.clone();
        at_message.last_message_at = event.received_at;
        at_message.updated_at = event.received_at;
        at_message.last_message_preview = Some(previews[i].clone());
        at_message.last_message_kind = Some(MessageKind::Incoming.as_str().to_owned());
        row.unread_count -= 1;
        views.push(ConversationView::from(at_message));
    }
    views.reverse();
    for (&i, view) in stored.iter().zip(views) {
        let (event, known) = run[i];
        let message = MessageRow {
            id: ids[i].clone(),
            conversation_id: known.conversation_id.clone(),
            kind: MessageKind::Incoming.as_str().to_owned(),
            content: event.content.clone(),
            sender_id: None,
            attributes: None,
            delivery_status: None,
            delivery_error: None,
            created_at: event.received_at,
        };
        published.push(MessageCreated {
            account: event.account,
            inbox: event.inbox,
            channel: ChannelKind::parse(&known.channel).unwrap_or(ChannelKind::Api),
            conversation: ConversationId(uuid_of(&known.conversation_id)?),
            message: event.message,
            kind: MessageKind::Incoming,
            content: event.content.clone(),
            sender: None,
            contact_source_id: Some(event.contact.source_id.clone()),
            created_at: event.received_at,
        });
        let at = match changes.iter().position(|c| c.account == event.account) {
            Some(at) => at,
            None => {
                changes.push(Changes::new(event.account));
                changes.len() - 1
            }
        };
        let created = serde_json::to_string(&Created { message: MessageView::from(message), conversation: view })
            .map_err(StoreError::from)?;
        changes[at].push_in(&known.inbox_id, "message.created", created);
    }
    tx.publish_all(&published).await?;
    let now = now_ms();
    for account_changes in changes {
        account_changes.record(tx, feed, now).await?;
    }
    Ok(())
}

/// The contact a channel identity belongs to, created on first sight; what the channel says of them now
/// fills in what the contact lacks (agents' edits are not overwritten).
async fn identify(
    tx: &mut Tx<'_>,
    changes: &mut Changes,
    account: &str,
    inbox: &str,
    contact: &ChannelContact,
    now: i64,
) -> Result<ContactRow, InboxError> {
    let scope = search::scope(account);
    match Store::contact_by_identity(tx, inbox, &contact.source_id).await? {
        Some(mut row) => {
            let before = (row.name.clone(), row.email.clone(), row.phone.clone());
            row.name = row.name.or_else(|| contact.name.clone());
            row.email = row.email.or_else(|| contact.email.clone());
            row.phone = row.phone.or_else(|| contact.phone.clone());
            if before != (row.name.clone(), row.email.clone(), row.phone.clone()) {
                row.updated_at = now;
                Store::update_contact(tx, account, &row).await?;
                Store::unindex(tx, &scope, "contact", &row.id).await?;
                Store::index(tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
                changes
                    .push_to_all("contact.updated", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
            }
            Ok(row)
        }
        None => {
            let row = ContactRow {
                id: contracts::inbox::ContactId::new().to_string(),
                name: contact.name.clone(),
                email: contact.email.clone(),
                phone: contact.phone.clone(),
                created_at: now,
                updated_at: now,
            };
            Store::insert_contact(tx, account, &row, inbox, &contact.source_id).await?;
            Store::index(tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
            changes.push_to_all("contact.created", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
            Ok(row)
        }
    }
}

/// What a contact is found by.
pub fn contact_text(row: &ContactRow) -> String {
    let fields = [row.name.as_deref(), row.email.as_deref(), row.phone.as_deref()];
    search::index_text(&fields.into_iter().flatten().collect::<Vec<_>>().join(" "))
}

/// Records a contact identified on a channel before writing.
pub async fn contact_identified(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    inbox: InboxId,
    contact: &ChannelContact,
) -> Result<(), InboxError> {
    let account_text = account.to_string();
    if Store::inbox_in(tx, &account_text, &inbox.to_string()).await?.is_none() {
        return Ok(());
    }
    let mut changes = Changes::new(account);
    let now = now_ms();
    identify(tx, &mut changes, &account_text, &inbox.to_string(), contact, now).await?;
    changes.record(tx, feed, now).await
}

/// Shows what became of delivering a reply.
pub async fn delivery_updated(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    message: MessageId,
    status: &str,
    reason: Option<&str>,
) -> Result<(), InboxError> {
    let account_text = account.to_string();
    let Some(row) = Store::set_delivery(tx, &account_text, &message.to_string(), status, reason).await? else {
        return Ok(());
    };
    let Some(conversation) = Store::conversation_in(tx, &account_text, &row.conversation_id).await? else {
        return Ok(());
    };
    let mut changes = Changes::in_inbox(account, &conversation.inbox_id);
    changes.push("message.updated", json!({ "message": MessageView::from(row) }));
    changes.record(tx, feed, now_ms()).await
}

/// An agent corrects a contact's details; the search index and the feed follow.
pub async fn update_contact(
    desk: &Desk,
    caller: &Caller,
    id: &str,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
) -> Result<ContactRow, InboxError> {
    let account = caller.account.to_string();
    let now = now_ms();
    let mut tx = desk.store.namespace().begin().await?;
    let mut row = Store::contact_in(&mut tx, &account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    row.name = name.or(row.name);
    row.email = email.or(row.email);
    row.phone = phone.or(row.phone);
    row.updated_at = now;
    Store::update_contact(&mut tx, &account, &row).await?;
    let scope = search::scope(&account);
    Store::unindex(&mut tx, &scope, "contact", &row.id).await?;
    Store::index(&mut tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
    let mut changes = Changes::new(caller.account);
    changes.push_to_all("contact.updated", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
    changes.record(&mut tx, &desk.feed, now).await?;
    tx.commit().await?;
    Ok(row)
}
