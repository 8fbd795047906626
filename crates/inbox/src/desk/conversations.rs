//! What agents do to a conversation: read it, reply or note, assign, prioritise, label, change its status.

use super::*;

impl Desk {
    /// The conversation, if the caller may see it: it is in their account and, for agents, in one of
    /// their inboxes. Anything else is "not found", so ids of other tenants reveal nothing.
    pub async fn visible_conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<ConversationRow, InboxError> {
        let conversation =
            self.store.conversation(caller.account, id).await?.ok_or(InboxError::NotFound("conversation"))?;
        if caller.role == Role::Agent
            && !self.store.is_inbox_member(caller.account, conversation.inbox_id, caller.user).await?
        {
            return Err(InboxError::NotFound("conversation"));
        }
        Ok(conversation)
    }

    /// An agent's reply (sent to the contact through the channel) or private note (never sent).
    pub async fn post_message(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        content: String,
        private: bool,
    ) -> Result<MessageView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        let account = caller.account;
        let mut tx = self.store.namespace().begin().await?;
        let inbox = Store::inbox_in(&mut tx, account, current.inbox_id).await?.ok_or(InboxError::NotFound("inbox"))?;
        let kind = if private { MessageKind::Note } else { MessageKind::Outgoing };
        let now = now_ms();
        let message = MessageRow {
            id: MessageId::new(),
            conversation_id: current.id,
            kind,
            content: content.clone(),
            sender_id: Some(caller.user),
            attributes: None,
            // A reply on a channel that delivers to a callback is pending until the input service says.
            delivery_status: (!private && inbox.callback_url.is_some()).then_some(DeliveryStatus::Pending),
            delivery_error: None,
            created_at: now,
        };
        Store::insert_message(&mut tx, account, &message).await?;
        Store::touch_conversation(&mut tx, account, current.id, &preview(&content), kind, 0, now).await?;
        let document = Document {
            account,
            body: &search::index_text(&content),
            kind: DocKind::Message,
            id: message.id.0,
            conversation: Some(current.id),
        };
        Store::index(&mut tx, &document).await?;
        // The contact's identity on this inbox, for the channel to deliver the reply to.
        let contact_source_id = Store::source_id_in(&mut tx, current.inbox_id, current.contact_id).await?;
        tx.publish(&MessageCreated {
            account,
            inbox: inbox.id,
            channel: inbox.channel,
            conversation: current.id,
            message: message.id,
            kind,
            content,
            sender: Some(caller.user),
            contact_source_id,
            created_at: now,
        })
        .await?;
        let updated =
            Store::conversation_in(&mut tx, account, current.id).await?.ok_or(InboxError::NotFound("conversation"))?;
        let view = MessageView::from(message);
        let mut changes = Changes::in_inbox(account, current.inbox_id);
        changes.push(
            FeedKind::MessageCreated,
            json!({ "message": view, "conversation": ConversationView::from(updated) }),
        );
        changes.record(&mut tx, &self.feed, now).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Changes the status (snoozing needs a future `snoozed_until`).
    pub async fn change_status(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        status: ConversationStatus,
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
        conversation: ConversationId,
        assignee: Option<UserId>,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        if let Some(user) = assignee
            && self.users.member(caller.account, user).await?.is_none()
        {
            return Err(InboxError::UnknownUser(user));
        }
        if current.assignee_id == assignee {
            return Ok(ConversationView::from(current));
        }
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::set_assignee(&mut tx, caller.account, current.id, assignee, now).await?;
        let activity = json!({ "action": "assigned", "from": current.assignee_id, "to": assignee });
        self.finish_conversation_change(tx, caller, &current, Some(activity), now, |view| {
            (
                FeedKind::ConversationAssigned,
                json!({ "conversation": view, "assignee_id": assignee, "by": caller.user }),
            )
        })
        .await
    }

    /// The end every change an agent makes to one conversation shares: its activity line (if it has one),
    /// the conversation as it is now, the feed row that reports it (`report` names the change and gives
    /// its data), and the commit.
    async fn finish_conversation_change(
        &self,
        mut tx: Tx<'_>,
        caller: &Caller,
        current: &ConversationRow,
        activity: Option<serde_json::Value>,
        now: i64,
        report: impl FnOnce(&ConversationView) -> (FeedKind, serde_json::Value),
    ) -> Result<ConversationView, InboxError> {
        let account = caller.account;
        let mut changes = Changes::in_inbox(account, current.inbox_id);
        if let Some(activity) = activity {
            add_activity(&mut tx, &mut changes, account, current.id, Some(caller.user), activity, now).await?;
        }
        let view = updated_view(&mut tx, account, current.id).await?;
        let (kind, data) = report(&view);
        changes.push(kind, data);
        changes.record(&mut tx, &self.feed, now).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn set_priority(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        priority: Priority,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::set_priority(&mut tx, caller.account, current.id, priority, now).await?;
        let activity = json!({ "action": "priority_changed", "from": current.priority, "to": priority });
        self.finish_conversation_change(tx, caller, &current, Some(activity), now, |view| {
            (FeedKind::ConversationUpdated, json!({ "conversation": view }))
        })
        .await
    }

    /// Replaces the conversation's labels with `names`, which must be labels of the account.
    pub async fn set_labels(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        names: Vec<String>,
    ) -> Result<ConversationView, InboxError> {
        let names = distinct_bounded(names, "labels")?;
        let current = self.visible_conversation(caller, conversation).await?;
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        let known = Store::label_names(&mut tx, caller.account).await?;
        let mut ids: Vec<LabelId> = Vec::new();
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            let (id, _) =
                known.iter().find(|(_, n)| *n == name).ok_or_else(|| InboxError::UnknownLabel(name.clone()))?;
            if !ids.contains(id) {
                ids.push(*id);
                wanted.push(name);
            }
        }
        wanted.sort();
        let before: Vec<String> = ConversationView::from(current.clone()).labels;
        if before == wanted {
            return Ok(ConversationView::from(current));
        }
        Store::replace_conversation_labels(&mut tx, caller.account, current.id, &ids, now).await?;
        let added: Vec<&String> = wanted.iter().filter(|n| !before.contains(n)).collect();
        let removed: Vec<&String> = before.iter().filter(|n| !wanted.contains(n)).collect();
        let activity = json!({ "action": "labelled", "added": added, "removed": removed });
        self.finish_conversation_change(tx, caller, &current, Some(activity), now, |view| {
            (FeedKind::ConversationUpdated, json!({ "conversation": view }))
        })
        .await
    }

    /// The caller has read the conversation: its unread count drops to zero.
    pub async fn mark_read(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<ConversationView, InboxError> {
        let current = self.visible_conversation(caller, conversation).await?;
        if current.unread_count == 0 {
            return Ok(ConversationView::from(current));
        }
        let now = now_ms();
        let mut tx = self.store.namespace().begin().await?;
        Store::mark_read(&mut tx, caller.account, current.id, now).await?;
        self.finish_conversation_change(tx, caller, &current, None, now, |view| {
            (FeedKind::ConversationUpdated, json!({ "conversation": view }))
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
            let Some(current) = Store::conversation_in(&mut tx, account, id).await? else { continue };
            if current.status != ConversationStatus::Snoozed {
                continue;
            }
            set_status(&mut tx, &self.feed, account, &current, ConversationStatus::Open, None, None).await?;
            tx.commit().await?;
            woken += 1;
        }
        Ok(woken)
    }
}
