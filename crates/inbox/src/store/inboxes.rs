//! Inboxes and who answers them.

use super::*;

impl Store {
    pub async fn inboxes(&self, account: AccountId) -> Result<Vec<InboxRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, channel, identifier, callback_url, created_at, updated_at from inboxes \
                 where account_id = ? order by created_at, id",
                args![account],
            )
            .await
    }

    pub async fn inbox(&self, account: AccountId, id: InboxId) -> Result<Option<InboxRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, channel, identifier, callback_url, created_at, updated_at from inboxes \
                 where account_id = ? and id = ?",
                args![account, id],
            )
            .await
    }

    /// The inbox with `id` in `account`, read inside `tx` (for the desk's transactions and the event
    /// handlers, which carry the account themselves).
    pub async fn inbox_in(tx: &mut Tx<'_>, account: AccountId, id: InboxId) -> Result<Option<InboxRow>, StoreError> {
        tx.fetch_optional(
            "select id, name, channel, identifier, callback_url, created_at, updated_at from inboxes \
             where account_id = ? and id = ?",
            args![account, id],
        )
        .await
    }

    pub async fn count_inboxes(&self, account: AccountId) -> Result<i64, StoreError> {
        let (count,): (i64,) = self
            .db
            .fetch_optional("select count(*) from inboxes where account_id = ?", args![account])
            .await?
            .unwrap_or((0,));
        Ok(count)
    }

    pub async fn insert_inbox(tx: &mut Tx<'_>, account: AccountId, row: &InboxRow) -> Result<(), StoreError> {
        tx.execute(
            "insert into inboxes (id, account_id, name, channel, identifier, callback_url, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?)",
            args![
                row.id,
                account,
                row.name.clone(),
                row.channel,
                row.identifier.clone(),
                row.callback_url.clone(),
                row.created_at,
                row.updated_at
            ],
        )
        .await
        .map(drop)
    }

    pub async fn update_inbox(
        tx: &mut Tx<'_>,
        account: AccountId,
        id: InboxId,
        name: &str,
        callback_url: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = tx
            .execute(
                "update inboxes set name = ?, callback_url = ?, updated_at = ? where account_id = ? and id = ?",
                args![name, callback_url, now, account, id],
            )
            .await?;
        Ok(changed == 1)
    }

    /// Deletes an inbox that has no conversations; false if it had some (or does not exist).
    pub async fn delete_inbox(tx: &mut Tx<'_>, account: AccountId, id: InboxId) -> Result<bool, StoreError> {
        tx.execute("delete from inbox_members where account_id = ? and inbox_id = ?", args![account, id]).await?;
        let deleted = tx
            .execute(
                "delete from inboxes where account_id = ? and id = ? \
                 and not exists (select 1 from conversations where inbox_id = ?)",
                args![account, id, id],
            )
            .await?;
        Ok(deleted == 1)
    }

    pub async fn has_conversations(&self, account: AccountId, inbox: InboxId) -> Result<bool, StoreError> {
        let found: Option<(ConversationId,)> = self
            .db
            .fetch_optional(
                "select id from conversations where account_id = ? and inbox_id = ? limit 1",
                args![account, inbox],
            )
            .await?;
        Ok(found.is_some())
    }

    pub async fn inbox_members(&self, account: AccountId, inbox: InboxId) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<(UserId,)> = self
            .db
            .fetch_all(
                "select user_id from inbox_members where account_id = ? and inbox_id = ? order by created_at, user_id",
                args![account, inbox],
            )
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn replace_inbox_members(
        tx: &mut Tx<'_>,
        account: AccountId,
        inbox: InboxId,
        users: &[UserId],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute("delete from inbox_members where account_id = ? and inbox_id = ?", args![account, inbox]).await?;
        for user in users {
            tx.execute(
                "insert into inbox_members (inbox_id, user_id, account_id, created_at) values (?, ?, ?, ?)",
                args![inbox, *user, account, now],
            )
            .await?;
        }
        Ok(())
    }

    pub async fn is_inbox_member(&self, account: AccountId, inbox: InboxId, user: UserId) -> Result<bool, StoreError> {
        let found: Option<(UserId,)> = self
            .db
            .fetch_optional(
                "select user_id from inbox_members where account_id = ? and inbox_id = ? and user_id = ?",
                args![account, inbox, user],
            )
            .await?;
        Ok(found.is_some())
    }
}
