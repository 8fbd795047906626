//! Messages of a conversation.

use super::*;

impl Store {
    /// A page of a conversation's messages older than `before`, newest first.
    pub async fn messages(
        &self,
        account: AccountId,
        conversation: ConversationId,
        before: Before,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, conversation_id, kind, content, sender_id, attributes, delivery_status, delivery_error, \
                 created_at from messages where account_id = ? and conversation_id = ? \
                 and (created_at, id) < (?, ?) order by created_at desc, id desc limit ?",
                args![account, conversation, before.at, before.id, limit],
            )
            .await
    }

    /// Whether a message with this id is stored (a redelivered event's).
    pub async fn has_message(tx: &mut Tx<'_>, id: MessageId) -> Result<bool, StoreError> {
        let found: Option<(MessageId,)> = tx.fetch_optional("select id from messages where id = ?", args![id]).await?;
        Ok(found.is_some())
    }

    /// Inserts a message unless one with its id exists; false for a duplicate.
    pub async fn insert_message(tx: &mut Tx<'_>, account: AccountId, message: &MessageRow) -> Result<bool, StoreError> {
        let inserted = tx
            .execute(
                "insert into messages (id, account_id, conversation_id, kind, content, sender_id, attributes, \
                 delivery_status, delivery_error, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 on conflict (id) do nothing",
                args![
                    message.id,
                    account,
                    message.conversation_id,
                    message.kind,
                    message.content.clone(),
                    message.sender_id,
                    message.attributes.clone(),
                    message.delivery_status,
                    message.delivery_error.clone(),
                    message.created_at
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// Stores a run of incoming messages with one statement; the ids of those not stored before (a
    /// redelivered message is skipped).
    pub async fn insert_incoming(tx: &mut Tx<'_>, messages: &[NewIncoming<'_>]) -> Result<Vec<MessageId>, StoreError> {
        let inserted: Vec<(MessageId,)> = tx
            .fetch_all(
                "insert into messages (id, account_id, conversation_id, kind, content, created_at) \
                 select value ->> 'id', value ->> 'account', value ->> 'conversation', 'incoming', \
                 value ->> 'content', cast(value ->> 'created_at' as bigint) from jsonb_each(?) where true order by key on conflict (id) do nothing returning id",
                args![json_rows(messages)?],
            )
            .await?;
        Ok(inserted.into_iter().map(|(id,)| id).collect())
    }

    /// [`Store::touch_conversation`] for several conversations with one statement.
    pub async fn touch_conversations(tx: &mut Tx<'_>, touches: &[Touch<'_>]) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set last_message_at = cast(t.value ->> 'at' as bigint), \
             last_message_preview = t.value ->> 'preview', last_message_kind = 'incoming', \
             unread_count = unread_count + cast(t.value ->> 'unread' as bigint), \
             updated_at = cast(t.value ->> 'at' as bigint) \
             from jsonb_each(?) as t \
             where conversations.account_id = t.value ->> 'account' and conversations.id = t.value ->> 'conversation'",
            args![json_rows(touches)?],
        )
        .await
        .map(drop)
    }

    pub async fn set_delivery(
        tx: &mut Tx<'_>,
        account: AccountId,
        message: MessageId,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<Option<MessageRow>, StoreError> {
        tx.execute(
            "update messages set delivery_status = ?, delivery_error = ? where account_id = ? and id = ? \
             and kind = 'outgoing'",
            args![status, error, account, message],
        )
        .await?;
        tx.fetch_optional(
            "select id, conversation_id, kind, content, sender_id, attributes, delivery_status, delivery_error, \
             created_at from messages where account_id = ? and id = ?",
            args![account, message],
        )
        .await
    }
}
