//! The search index (Japanese and English; see `search.rs`): SQLite's FTS5 table `search_index`, or on
//! the other engines the portable `search_documents` and `search_terms`, whose statements are here beside
//! their SQLite twins.

use super::*;
use crate::search::{Query, index_tokens};
use kernel::store::Engine;

/// The documents matching a [`Query`] on the portable index, `seq, doc_id, conversation_id`, among those
/// `$which` selects (a condition on `d`). Binds: account, the query's terms, account, its phrase count. A
/// phrase matches where its tokens sit at consecutive positions: grouped by document and start position,
/// all of its offsets are there.
macro_rules! portable_hits {
    ($which:literal) => {
        concat!(
            "select d.seq, d.doc_id, d.conversation_id from search_documents d where d.account_id = ? and ",
            $which,
            " and d.seq in (select p.doc_seq from (select t.doc_seq, cast(q.value ->> 0 as bigint) as phrase \
             from jsonb_each(?) as q join search_terms t on t.account_id = ? and t.term >= q.value ->> 2 \
             and t.term <= q.value ->> 3 group by t.doc_seq, cast(q.value ->> 0 as bigint), \
             t.position - cast(q.value ->> 1 as bigint) having count(*) = max(cast(q.value ->> 4 as bigint))) p \
             group by p.doc_seq having count(distinct p.phrase) = ?)"
        )
    };
}

impl Store {
    pub async fn index(tx: &mut Tx<'_>, document: &Document<'_>) -> Result<(), StoreError> {
        Self::index_all(tx, std::slice::from_ref(document)).await
    }

    /// [`Store::index`] for several documents with one statement (two on the portable index).
    pub async fn index_all(tx: &mut Tx<'_>, documents: &[Document<'_>]) -> Result<(), StoreError> {
        if documents.is_empty() {
            return Ok(());
        }
        if tx.engine() == Engine::Sqlite {
            let rows: Vec<_> = documents
                .iter()
                .map(|d| (crate::search::scope(d.account), d.body, d.kind.as_str(), d.id, d.conversation))
                .collect();
            return tx
                .execute(
                    "insert into search_index (scope, body, doc_kind, doc_id, conversation_id) \
                     select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 from jsonb_each(?)",
                    args![json_rows(&rows)?],
                )
                .await
                .map(drop);
        }
        let rows: Vec<_> = documents.iter().map(|d| (d.account, d.kind.as_str(), d.id, d.conversation)).collect();
        let stored: Vec<(i64, String, String)> = tx
            .fetch_all(
                "insert into search_documents (account_id, doc_kind, doc_id, conversation_id) \
                 select value ->> 0, value ->> 1, value ->> 2, value ->> 3 from jsonb_each(?) order by key \
                 returning seq, doc_kind, doc_id",
                args![json_rows(&rows)?],
            )
            .await?;
        let by_key: std::collections::HashMap<(&str, String), &Document<'_>> =
            documents.iter().map(|d| ((d.kind.as_str(), d.id.to_string()), d)).collect();
        let mut terms = Vec::new();
        for (seq, kind, id) in stored {
            if let Some(document) = by_key.get(&(kind.as_str(), id)) {
                terms.extend(
                    index_tokens(document.body)
                        .into_iter()
                        .map(|(term, position)| (document.account, term, seq, position)),
                );
            }
        }
        if terms.is_empty() {
            return Ok(());
        }
        // One term per position of a document: the key (account, term, document, position) cannot repeat.
        tx.execute(
            "insert into search_terms (account_id, term, doc_seq, position) select value ->> 0, value ->> 1, \
             cast(value ->> 2 as bigint), cast(value ->> 3 as bigint) from jsonb_each(?)",
            args![json_rows(&terms)?],
        )
        .await
        .map(drop)
    }

    pub async fn unindex(tx: &mut Tx<'_>, account: AccountId, kind: DocKind, id: uuid::Uuid) -> Result<(), StoreError> {
        let deleted = match tx.engine() {
            Engine::Sqlite => {
                tx.execute(
                    "delete from search_index where search_index = ? and doc_kind = ? and doc_id = ?",
                    args![format!("scope:\"{}\"", crate::search::scope(account)), kind.as_str(), id],
                )
                .await
            }
            // The document's terms go with it (`on delete cascade`).
            _ => {
                tx.execute(
                    "delete from search_documents where account_id = ? and doc_kind = ? and doc_id = ?",
                    args![account, kind.as_str(), id],
                )
                .await
            }
        };
        deleted.map(drop)
    }

    /// Contacts matching `query`, best first (on the portable index, latest first).
    pub async fn search_contacts(&self, query: &Query, limit: i64) -> Result<Vec<ContactRow>, StoreError> {
        let account = query.account;
        match self.db.engine() {
            Engine::Sqlite => {
                self.db
                    .fetch_all(
                        "select k.id, k.name, k.email, k.phone, k.created_at, k.updated_at from contacts k \
                         join (select doc_id, rank from search_index where search_index = ? and doc_kind = 'contact' \
                         order by rank limit ?) hit on hit.doc_id = k.id where k.account_id = ? order by hit.rank",
                        args![query.fts.as_str(), limit, account],
                    )
                    .await
            }
            _ => {
                self.db
                    .fetch_all(
                        concat!(
                            "select k.id, k.name, k.email, k.phone, k.created_at, k.updated_at from contacts k join (",
                            portable_hits!("d.doc_kind = 'contact'"),
                            " order by d.seq desc limit ?) hit on hit.doc_id = k.id where k.account_id = ? \
                             order by hit.seq desc"
                        ),
                        args![account, query.terms.as_str(), account, query.phrases, limit, account],
                    )
                    .await
            }
        }
    }

    /// Conversations whose contact, number or messages match `query`, latest first; `member` restricts
    /// them to an agent's inboxes.
    pub async fn search_conversations(
        &self,
        query: &Query,
        member: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let account = query.account;
        match self.db.engine() {
            Engine::Sqlite => {
                let fts = query.fts.as_str();
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
                        args![account, fts, fts, member, member, limit],
                    )
                    .await
            }
            _ => {
                let (terms, phrases) = (query.terms.as_str(), query.phrases);
                self.db
                    .fetch_all(
                        concat!(
                            conversation_card!(),
                            "where c.account_id = ? and (c.id in (select hit.conversation_id from (",
                            portable_hits!("d.conversation_id is not null"),
                            " order by d.seq desc limit 500) hit) or c.contact_id in (select hit.doc_id from (",
                            portable_hits!("d.doc_kind = 'contact'"),
                            " order by d.seq desc limit 500) hit)) and (? is null or c.inbox_id in (select m.inbox_id \
                             from inbox_members m where m.account_id = c.account_id and m.user_id = ?)) order by \
                             c.last_message_at desc, c.id desc limit ?"
                        ),
                        args![
                            account, account, terms, account, phrases, account, terms, account, phrases, member,
                            member, limit
                        ],
                    )
                    .await
            }
        }
    }

    /// Messages (not activity entries) matching `query`, best first (on the portable index, latest first).
    pub async fn search_messages(
        &self,
        query: &Query,
        member: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let account = query.account;
        match self.db.engine() {
            Engine::Sqlite => {
                self.db
                    .fetch_all(
                        "select m.id, m.conversation_id, m.kind, m.content, m.sender_id, m.attributes, \
                         m.delivery_status, m.delivery_error, m.created_at from messages m \
                         join (select doc_id, rank from search_index where search_index = ? and doc_kind = 'message' \
                         order by rank limit 500) hit on hit.doc_id = m.id \
                         join conversations c on c.id = m.conversation_id \
                         where m.account_id = ? and (? is null or c.inbox_id in (select im.inbox_id from inbox_members im \
                         where im.account_id = c.account_id and im.user_id = ?)) order by hit.rank limit ?",
                        args![query.fts.as_str(), account, member, member, limit],
                    )
                    .await
            }
            _ => {
                self.db
                    .fetch_all(
                        concat!(
                            "select m.id, m.conversation_id, m.kind, m.content, m.sender_id, m.attributes, \
                             m.delivery_status, m.delivery_error, m.created_at from messages m join (",
                            portable_hits!("d.doc_kind = 'message'"),
                            " order by d.seq desc limit 500) hit on hit.doc_id = m.id \
                             join conversations c on c.id = m.conversation_id \
                             where m.account_id = ? and (? is null or c.inbox_id in (select im.inbox_id from \
                             inbox_members im where im.account_id = c.account_id and im.user_id = ?)) \
                             order by hit.seq desc limit ?"
                        ),
                        args![account, query.terms.as_str(), account, query.phrases, account, member, member, limit],
                    )
                    .await
            }
        }
    }
}

/// A contact as the index is rebuilt from it: id, account, name, e-mail, phone.
type ContactFields = (String, AccountId, Option<String>, Option<String>, Option<String>);

/// Rows read per batch while rebuilding the index.
const REBUILD_BATCH: i64 = 1_000;

impl Store {
    /// Fills an empty search index from the contacts, conversations and messages (a namespace moved to
    /// another engine, whose index is laid out differently: [`kernel::service::Derived`]). Each batch is
    /// indexed in one transaction; returns the documents indexed.
    pub async fn rebuild_index(&self) -> Result<u64, StoreError> {
        let mut indexed = 0;
        let mut after = String::new();
        loop {
            let rows: Vec<ContactFields> = self
                .db
                .fetch_all(
                    "select id, account_id, name, email, phone from contacts where id > ? order by id limit ?",
                    args![after.clone(), REBUILD_BATCH],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            let texts: Vec<String> = rows
                .iter()
                .map(|(_, _, name, email, phone)| {
                    crate::search::contact_text(name.as_deref(), email.as_deref(), phone.as_deref())
                })
                .collect();
            let documents: Vec<Document<'_>> = rows
                .iter()
                .zip(&texts)
                .filter_map(|((id, account, ..), body)| {
                    let id = id.parse().ok()?;
                    Some(Document { account: *account, body, kind: DocKind::Contact, id, conversation: None })
                })
                .collect();
            indexed += self.index_batch(&documents).await?;
        }
        let mut after = String::new();
        loop {
            let rows: Vec<(ConversationId, AccountId, i64)> = self
                .db
                .fetch_all(
                    "select id, account_id, display_id from conversations where id > ? order by id limit ?",
                    args![after.clone(), REBUILD_BATCH],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0.to_string();
            let texts: Vec<String> =
                rows.iter().map(|(_, _, display_id)| crate::search::index_text(&format!("#{display_id}"))).collect();
            let documents: Vec<Document<'_>> = rows
                .iter()
                .zip(&texts)
                .map(|((id, account, _), body)| Document {
                    account: *account,
                    body,
                    kind: DocKind::Conversation,
                    id: id.0,
                    conversation: Some(*id),
                })
                .collect();
            indexed += self.index_batch(&documents).await?;
        }
        let mut after = String::new();
        loop {
            // Activity lines are not searchable (they are rendered from their attributes).
            let rows: Vec<(MessageId, AccountId, ConversationId, String)> = self
                .db
                .fetch_all(
                    "select id, account_id, conversation_id, content from messages where id > ? and kind <> 'activity' \
                     order by id limit ?",
                    args![after.clone(), REBUILD_BATCH],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0.to_string();
            let texts: Vec<String> = rows.iter().map(|(.., content)| crate::search::index_text(content)).collect();
            let documents: Vec<Document<'_>> = rows
                .iter()
                .zip(&texts)
                .map(|((id, account, conversation, _), body)| Document {
                    account: *account,
                    body,
                    kind: DocKind::Message,
                    id: id.0,
                    conversation: Some(*conversation),
                })
                .collect();
            indexed += self.index_batch(&documents).await?;
        }
        Ok(indexed)
    }

    async fn index_batch(&self, documents: &[Document<'_>]) -> Result<u64, StoreError> {
        let mut tx = self.db.begin().await?;
        Self::index_all(&mut tx, documents).await?;
        tx.commit().await?;
        Ok(documents.len() as u64)
    }
}
