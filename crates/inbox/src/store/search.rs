//! The search index (Japanese and English; see `search.rs`).

use super::*;

impl Store {
    pub async fn index(tx: &mut Tx<'_>, document: &Document<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into search_index (scope, body, doc_kind, doc_id, conversation_id) values (?, ?, ?, ?, ?)",
            args![document.scope, document.body, document.kind.as_str(), document.id, document.conversation],
        )
        .await
        .map(drop)
    }

    /// [`Store::index`] for several documents with one statement.
    pub async fn index_all(tx: &mut Tx<'_>, documents: &[Document<'_>]) -> Result<(), StoreError> {
        tx.execute(
            "insert into search_index (scope, body, doc_kind, doc_id, conversation_id) \
             select value ->> 'scope', value ->> 'body', value ->> 'kind', value ->> 'id', \
             value ->> 'conversation' from jsonb_each(?)",
            args![json_rows(documents)?],
        )
        .await
        .map(drop)
    }

    pub async fn unindex(tx: &mut Tx<'_>, scope: &str, kind: DocKind, id: uuid::Uuid) -> Result<(), StoreError> {
        tx.execute(
            "delete from search_index where search_index = ? and doc_kind = ? and doc_id = ?",
            args![format!("scope:\"{scope}\""), kind.as_str(), id],
        )
        .await
        .map(drop)
    }

    /// Contacts matching the FTS5 `query` (which names the account's scope itself), best first.
    pub async fn search_contacts(
        &self,
        account: AccountId,
        query: &str,
        limit: i64,
    ) -> Result<Vec<ContactRow>, StoreError> {
        self.db
            .fetch_all(
                "select k.id, k.name, k.email, k.phone, k.created_at, k.updated_at from contacts k \
                 join (select doc_id, rank from search_index where search_index = ? and doc_kind = 'contact' \
                 order by rank limit ?) hit on hit.doc_id = k.id where k.account_id = ? order by hit.rank",
                args![query, limit, account],
            )
            .await
    }

    /// Conversations whose contact, number or messages match `query`, latest first; `member` restricts
    /// them to an agent's inboxes.
    pub async fn search_conversations(
        &self,
        account: AccountId,
        query: &str,
        member: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    conversation_card!(),
                    "where c.account_id = ? and (c.id in (select conversation_id from \
                 search_index where search_index = ? and conversation_id is not null order by rank limit 500) or \
                 c.contact_id in (select doc_id from search_index where search_index = ? and doc_kind = \
                 'contact' order by rank limit 500)) and (? is null or c.inbox_id in (select m.inbox_id from \
                 inbox_members m where m.account_id = c.account_id and m.user_id = ?)) order by \
                 c.last_message_at desc, c.id desc limit ?"
                ),
                args![account, query, query, member, member, limit],
            )
            .await
    }

    /// Messages (not activity entries) matching `query`, best first.
    pub async fn search_messages(
        &self,
        account: AccountId,
        query: &str,
        member: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        self.db
            .fetch_all(
                "select m.id, m.conversation_id, m.kind, m.content, m.sender_id, m.attributes, m.delivery_status, \
                 m.delivery_error, m.created_at from messages m \
                 join (select doc_id, rank from search_index where search_index = ? and doc_kind = 'message' \
                 order by rank limit 500) hit on hit.doc_id = m.id \
                 join conversations c on c.id = m.conversation_id \
                 where m.account_id = ? and (? is null or c.inbox_id in (select im.inbox_id from inbox_members im \
                 where im.account_id = c.account_id and im.user_id = ?)) order by hit.rank limit ?",
                args![query, account, member, member, limit],
            )
            .await
    }
}
