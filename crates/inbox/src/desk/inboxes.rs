//! Inboxes: creating one with its channel endpoint, changing and deleting it, and who answers it.

use super::*;

impl Desk {
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
            id,
            name,
            channel,
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
        id: InboxId,
        name: String,
        callback_url: Option<String>,
    ) -> Result<InboxRow, InboxError> {
        require_manager(caller)?;
        let inbox = self.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
        self.input
            .register_channel(ChannelRegistration {
                account: caller.account,
                inbox: id,
                kind: inbox.channel,
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
    pub async fn delete_inbox(&self, caller: &Caller, id: InboxId) -> Result<(), InboxError> {
        require_manager(caller)?;
        self.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
        if self.store.has_conversations(caller.account, id).await? {
            return Err(InboxError::Conflict(
                "inbox_not_empty",
                "This inbox has conversations; resolve and keep them, or keep the inbox.",
            ));
        }
        self.input.remove_channel(caller.account, id).await?;
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
        inbox: InboxId,
        users: Vec<UserId>,
    ) -> Result<Vec<UserId>, InboxError> {
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
        let mut tx = self.store.namespace().begin().await?;
        Store::replace_inbox_members(&mut tx, caller.account, inbox, &users, now_ms()).await?;
        tx.commit().await?;
        // Which conversations an agent's lists show has changed.
        self.feed.lists.invalidate(caller.account);
        Ok(users)
    }
}
