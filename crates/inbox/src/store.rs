//! All of the inbox service's SQL. Every statement is scoped by `account_id`; a row of another account is
//! indistinguishable from a missing one.

use contracts::AccountId;
use kernel::args;
use kernel::store::{StoreError, Tx, json_rows};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub identifier: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub inbox_id: String,
    pub display_id: i64,
    pub status: String,
    pub snoozed_until: Option<i64>,
    pub priority: String,
    pub assignee_id: Option<String>,
    pub unread_count: i64,
    pub last_message_at: i64,
    pub last_message_preview: Option<String>,
    pub last_message_kind: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub labels: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub kind: String,
    pub content: String,
    pub sender_id: Option<String>,
    pub attributes: Option<String>,
    pub delivery_status: Option<String>,
    pub delivery_error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelRow {
    pub id: String,
    pub name: String,
    pub colour: String,
    pub description: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CannedRow {
    pub id: String,
    pub short_code: String,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub seq: i64,
    pub kind: String,
    /// `None`: not for the reader to see (another inbox's, for an agent).
    pub payload: Option<String>,
}

/// The per-tab counts of the conversation list.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TabCounts {
    pub mine: i64,
    pub unassigned: i64,
    pub all_count: i64,
}

/// What a conversation list asks for. `None` filters match everything.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub account: AccountId,
    /// `None` for every status.
    pub status: Option<String>,
    pub inbox: Option<String>,
    /// A specific assignee (the caller for "mine").
    pub assignee: Option<String>,
    pub unassigned: bool,
    pub label: Option<String>,
    /// Set for agents: only conversations of inboxes this user is a member of.
    pub member: Option<String>,
    pub caller: String,
    /// Rows strictly older than (last_message_at, id).
    pub before: (i64, String),
    pub limit: i64,
}

/// The start of every read of conversations as the list shows them (`conversation_cards`: the conversation
/// with its contact and labels), for `concat!` with the statement's own conditions.
macro_rules! conversation_card {
    () => {
        "select c.id, c.inbox_id, c.display_id, c.status, c.snoozed_until, c.priority, c.assignee_id, \
         c.unread_count, c.last_message_at, c.last_message_preview, c.last_message_kind, c.created_at, \
         c.updated_at, c.contact_id, c.contact_name, c.contact_email, c.contact_phone, c.labels from \
         conversation_cards c "
    };
}

/// A customer's conversation found by their channel identity ([`Store::known_conversations`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KnownConversation {
    pub inbox_id: String,
    pub source_id: String,
    pub channel: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub conversation_id: String,
    pub status: String,
}

/// An incoming message of a run ([`Store::insert_incoming`]): id, account, conversation, content, time.
pub type NewIncoming<'a> = (&'a str, &'a str, &'a str, &'a str, i64);

/// A conversation's new last message ([`Store::touch_conversations`]): account, conversation, time,
/// preview, messages to add to its unread count.
pub type Touch<'a> = (&'a str, &'a str, i64, &'a str, i64);

/// A search document ([`Store::index_all`]): scope, indexed text, kind, id, conversation.
pub type Document<'a> = (&'a str, &'a str, &'static str, &'a str, Option<&'a str>);

kernel::service_store!(Store);

impl Store {
    // Inboxes.

    pub async fn inboxes(&self, account: AccountId) -> Result<Vec<InboxRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, channel, identifier, callback_url, created_at, updated_at from inboxes \
                 where account_id = ? order by created_at, id",
                args![account.to_string()],
            )
            .await
    }

    pub async fn inbox(&self, account: AccountId, id: &str) -> Result<Option<InboxRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, channel, identifier, callback_url, created_at, updated_at from inboxes \
                 where account_id = ? and id = ?",
                args![account.to_string(), id],
            )
            .await
    }

    /// The inbox with `id`, whatever its account (for events, which carry the account themselves).
    pub async fn inbox_in(tx: &mut Tx<'_>, account: &str, id: &str) -> Result<Option<InboxRow>, StoreError> {
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
            .fetch_optional("select count(*) from inboxes where account_id = ?", args![account.to_string()])
            .await?
            .unwrap_or((0,));
        Ok(count)
    }

    pub async fn insert_inbox(tx: &mut Tx<'_>, account: AccountId, row: &InboxRow) -> Result<(), StoreError> {
        tx.execute(
            "insert into inboxes (id, account_id, name, channel, identifier, callback_url, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?)",
            args![
                row.id.clone(),
                account.to_string(),
                row.name.clone(),
                row.channel.clone(),
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
        id: &str,
        name: &str,
        callback_url: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = tx
            .execute(
                "update inboxes set name = ?, callback_url = ?, updated_at = ? where account_id = ? and id = ?",
                args![name, callback_url, now, account.to_string(), id],
            )
            .await?;
        Ok(changed == 1)
    }

    /// Deletes an inbox that has no conversations; false if it had some (or does not exist).
    pub async fn delete_inbox(tx: &mut Tx<'_>, account: AccountId, id: &str) -> Result<bool, StoreError> {
        tx.execute("delete from inbox_members where account_id = ? and inbox_id = ?", args![account.to_string(), id])
            .await?;
        let deleted = tx
            .execute(
                "delete from inboxes where account_id = ? and id = ? \
                 and not exists (select 1 from conversations where inbox_id = ?)",
                args![account.to_string(), id, id],
            )
            .await?;
        Ok(deleted == 1)
    }

    pub async fn has_conversations(&self, account: AccountId, inbox: &str) -> Result<bool, StoreError> {
        let found: Option<(i64,)> = self
            .db
            .fetch_optional(
                "select 1 from conversations where account_id = ? and inbox_id = ? limit 1",
                args![account.to_string(), inbox],
            )
            .await?;
        Ok(found.is_some())
    }

    pub async fn inbox_members(&self, account: AccountId, inbox: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self
            .db
            .fetch_all(
                "select user_id from inbox_members where account_id = ? and inbox_id = ? order by created_at, user_id",
                args![account.to_string(), inbox],
            )
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn replace_inbox_members(
        tx: &mut Tx<'_>,
        account: AccountId,
        inbox: &str,
        users: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "delete from inbox_members where account_id = ? and inbox_id = ?",
            args![account.to_string(), inbox],
        )
        .await?;
        for user in users {
            tx.execute(
                "insert into inbox_members (inbox_id, user_id, account_id, created_at) values (?, ?, ?, ?)",
                args![inbox, user.clone(), account.to_string(), now],
            )
            .await?;
        }
        Ok(())
    }

    pub async fn is_inbox_member(&self, account: AccountId, inbox: &str, user: &str) -> Result<bool, StoreError> {
        let found: Option<(i64,)> = self
            .db
            .fetch_optional(
                "select 1 from inbox_members where account_id = ? and inbox_id = ? and user_id = ?",
                args![account.to_string(), inbox, user],
            )
            .await?;
        Ok(found.is_some())
    }

    // Contacts.

    pub async fn contacts(
        &self,
        account: AccountId,
        before: (i64, String),
        limit: i64,
    ) -> Result<Vec<ContactRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? \
                 and (created_at, id) < (?, ?) order by created_at desc, id desc limit ?",
                args![account.to_string(), before.0, before.1, limit],
            )
            .await
    }

    pub async fn contact(&self, account: AccountId, id: &str) -> Result<Option<ContactRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? and id = ?",
                args![account.to_string(), id],
            )
            .await
    }

    pub async fn contact_identities(
        &self,
        account: AccountId,
        contact: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .fetch_all(
                "select inbox_id, source_id from contact_identities where account_id = ? and contact_id = ? \
                 order by created_at",
                args![account.to_string(), contact],
            )
            .await
    }

    /// The contact a channel identity belongs to.
    pub async fn contact_by_identity(
        tx: &mut Tx<'_>,
        inbox: &str,
        source_id: &str,
    ) -> Result<Option<ContactRow>, StoreError> {
        tx.fetch_optional(
            "select k.id, k.name, k.email, k.phone, k.created_at, k.updated_at from contact_identities i \
             join contacts k on k.id = i.contact_id where i.inbox_id = ? and i.source_id = ?",
            args![inbox, source_id],
        )
        .await
    }

    pub async fn insert_contact(
        tx: &mut Tx<'_>,
        account: &str,
        contact: &ContactRow,
        inbox: &str,
        source_id: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into contacts (id, account_id, name, email, phone, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?)",
            args![
                contact.id.clone(),
                account,
                contact.name.clone(),
                contact.email.clone(),
                contact.phone.clone(),
                contact.created_at,
                contact.updated_at
            ],
        )
        .await?;
        tx.execute(
            "insert into contact_identities (inbox_id, source_id, account_id, contact_id, created_at) \
             values (?, ?, ?, ?, ?)",
            args![inbox, source_id, account, contact.id.clone(), contact.created_at],
        )
        .await
        .map(drop)
    }

    /// The contact's identity on `inbox`, for delivering replies there.
    pub async fn source_id_in(tx: &mut Tx<'_>, inbox: &str, contact: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = tx
            .fetch_optional(
                "select source_id from contact_identities where inbox_id = ? and contact_id = ? limit 1",
                args![inbox, contact],
            )
            .await?;
        Ok(row.map(|(source,)| source))
    }

    pub async fn update_contact(tx: &mut Tx<'_>, account: &str, contact: &ContactRow) -> Result<bool, StoreError> {
        let changed = tx
            .execute(
                "update contacts set name = ?, email = ?, phone = ?, updated_at = ? where account_id = ? and id = ?",
                args![
                    contact.name.clone(),
                    contact.email.clone(),
                    contact.phone.clone(),
                    contact.updated_at,
                    account,
                    contact.id.clone()
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn contact_in(tx: &mut Tx<'_>, account: &str, id: &str) -> Result<Option<ContactRow>, StoreError> {
        tx.fetch_optional(
            "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? and id = ?",
            args![account, id],
        )
        .await
    }

    // Conversations.

    pub async fn conversations(&self, filter: &ListFilter) -> Result<Vec<ConversationRow>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    conversation_card!(),
                    "where c.account_id = ? and (? is null or c.status = ?) and (? is null or \
                 c.inbox_id = ?) and (? is null or c.assignee_id = ?) and (? = 0 or c.assignee_id is null) and \
                 (? is null or exists (select 1 from conversation_labels fl join labels f on f.id = fl.label_id \
                 where fl.conversation_id = c.id and f.name = ?)) and (? is null or c.inbox_id in (select \
                 m.inbox_id from inbox_members m where m.account_id = c.account_id and m.user_id = ?)) and \
                 (c.last_message_at, c.id) < (?, ?) order by c.last_message_at \
                 desc, c.id desc limit ?"
                ),
                args![
                    filter.account.to_string(),
                    filter.status.clone(),
                    filter.status.clone(),
                    filter.inbox.clone(),
                    filter.inbox.clone(),
                    filter.assignee.clone(),
                    filter.assignee.clone(),
                    i64::from(filter.unassigned),
                    filter.label.clone(),
                    filter.label.clone(),
                    filter.member.clone(),
                    filter.member.clone(),
                    filter.before.0,
                    filter.before.1.clone(),
                    filter.limit
                ],
            )
            .await
    }

    /// The counts of the "mine", "unassigned" and "all" tabs under the list's other filters. Without a
    /// label or membership filter the count reads only the `conversations_by_tabs` index.
    pub async fn tab_counts(&self, filter: &ListFilter) -> Result<TabCounts, StoreError> {
        let mut args = args![
            filter.caller.clone(),
            filter.account.to_string(),
            filter.status.clone(),
            filter.status.clone(),
            filter.inbox.clone(),
            filter.inbox.clone()
        ];
        let sql = if filter.label.is_none() && filter.member.is_none() {
            "select coalesce(sum(case when assignee_id = ? then 1 else 0 end), 0) as mine, \
             coalesce(sum(case when assignee_id is null then 1 else 0 end), 0) as unassigned, \
             count(*) as all_count from conversations \
             where account_id = ? and (? is null or status = ?) and (? is null or inbox_id = ?)"
        } else {
            args.extend(args![
                filter.label.clone(),
                filter.label.clone(),
                filter.member.clone(),
                filter.member.clone()
            ]);
            "select coalesce(sum(case when c.assignee_id = ? then 1 else 0 end), 0) as mine, \
             coalesce(sum(case when c.assignee_id is null then 1 else 0 end), 0) as unassigned, \
             count(*) as all_count from conversations c \
             where c.account_id = ? and (? is null or c.status = ?) and (? is null or c.inbox_id = ?) \
             and (? is null or exists (select 1 from conversation_labels fl join labels f on f.id = fl.label_id \
             where fl.conversation_id = c.id and f.name = ?)) \
             and (? is null or c.inbox_id in (select m.inbox_id from inbox_members m \
             where m.account_id = c.account_id and m.user_id = ?))"
        };
        let counts = self.db.fetch_optional(sql, args).await?;
        Ok(counts.unwrap_or(TabCounts { mine: 0, unassigned: 0, all_count: 0 }))
    }

    pub async fn conversation(&self, account: AccountId, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        self.db
            .fetch_optional(
                concat!(conversation_card!(), "where c.account_id = ? and c.id = ?"),
                args![account.to_string(), id],
            )
            .await
    }

    pub async fn conversation_in(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
    ) -> Result<Option<ConversationRow>, StoreError> {
        tx.fetch_optional(concat!(conversation_card!(), "where c.account_id = ? and c.id = ?"), args![account, id])
            .await
    }

    pub async fn conversation_of_contact(
        tx: &mut Tx<'_>,
        inbox: &str,
        contact: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        tx.fetch_optional(
            "select id, status from conversations where inbox_id = ? and contact_id = ?",
            args![inbox, contact],
        )
        .await
    }

    /// The conversations of known customers, by channel identity (account, inbox, source id), with what
    /// a run of their messages needs: the contact's details, the conversation's status and the channel.
    pub async fn known_conversations(
        tx: &mut Tx<'_>,
        identities: &[(&str, &str, &str)],
    ) -> Result<Vec<KnownConversation>, StoreError> {
        tx.fetch_all(
            "select i.inbox_id, i.source_id, n.channel, k.name, k.email, k.phone, \
             c.id as conversation_id, c.status from jsonb_each(?) as j \
             join contact_identities i on i.inbox_id = j.value ->> 1 and i.source_id = j.value ->> 2 \
             join inboxes n on n.id = i.inbox_id and n.account_id = j.value ->> 0 \
             join contacts k on k.id = i.contact_id \
             join conversations c on c.inbox_id = i.inbox_id and c.contact_id = k.id",
            args![json_rows(identities)?],
        )
        .await
    }

    /// Conversations by id, as [`Store::conversation_in`] reads them, with one statement.
    pub async fn conversations_in(tx: &mut Tx<'_>, ids: &[&str]) -> Result<Vec<ConversationRow>, StoreError> {
        tx.fetch_all(
            concat!(conversation_card!(), "where c.id in (select value from jsonb_each(?))"),
            args![json_rows(ids)?],
        )
        .await
    }

    /// The contact's conversations, latest first; `member` restricts them to an agent's inboxes.
    pub async fn contact_conversations(
        &self,
        account: AccountId,
        contact: &str,
        member: Option<String>,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    conversation_card!(),
                    "where c.account_id = ? and c.contact_id = ? \
                 and (? is null or c.inbox_id in (select m.inbox_id from inbox_members m \
                 where m.account_id = c.account_id and m.user_id = ?)) order by c.last_message_at desc"
                ),
                args![account.to_string(), contact, member.clone(), member],
            )
            .await
    }

    /// Starts a conversation with the next display number of the account (safe: writers are serialised,
    /// and the unique index would refuse a duplicate anyway).
    pub async fn insert_conversation(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
        inbox: &str,
        contact: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let (next,): (i64,) = tx
            .fetch_optional(
                "select coalesce(max(display_id), 0) + 1 from conversations where account_id = ?",
                args![account],
            )
            .await?
            .unwrap_or((1,));
        tx.execute(
            "insert into conversations (id, account_id, inbox_id, contact_id, display_id, status, last_message_at, \
             created_at, updated_at) values (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            args![id, account, inbox, contact, next, now, now, now],
        )
        .await?;
        Ok(next)
    }

    pub async fn set_status(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
        status: &str,
        snoozed_until: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set status = ?, snoozed_until = ?, updated_at = ? where account_id = ? and id = ?",
            args![status, snoozed_until, now, account, id],
        )
        .await
        .map(drop)
    }

    pub async fn set_assignee(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
        assignee: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set assignee_id = ?, updated_at = ? where account_id = ? and id = ?",
            args![assignee, now, account, id],
        )
        .await
        .map(drop)
    }

    pub async fn set_priority(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
        priority: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set priority = ?, updated_at = ? where account_id = ? and id = ?",
            args![priority, now, account, id],
        )
        .await
        .map(drop)
    }

    pub async fn mark_read(tx: &mut Tx<'_>, account: &str, id: &str, now: i64) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set unread_count = 0, updated_at = ? where account_id = ? and id = ?",
            args![now, account, id],
        )
        .await
        .map(drop)
    }

    /// Records a new last message on the conversation; incoming ones count as unread.
    pub async fn touch_conversation(
        tx: &mut Tx<'_>,
        account: &str,
        id: &str,
        preview: &str,
        kind: &str,
        unread: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set last_message_at = ?, last_message_preview = ?, last_message_kind = ?, \
             unread_count = unread_count + ?, updated_at = ? where account_id = ? and id = ?",
            args![now, preview, kind, unread, now, account, id],
        )
        .await
        .map(drop)
    }

    /// Snoozed conversations whose time has come, oldest first.
    pub async fn due_snoozes(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .fetch_all(
                "select account_id, id from conversations where status = 'snoozed' and snoozed_until <= ? \
                 order by snoozed_until limit ?",
                args![now, limit],
            )
            .await
    }

    // Labels.

    pub async fn labels(&self, account: AccountId) -> Result<Vec<LabelRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, colour, description, created_at from labels where account_id = ? order by name",
                args![account.to_string()],
            )
            .await
    }

    pub async fn label(&self, account: AccountId, id: &str) -> Result<Option<LabelRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, colour, description, created_at from labels where account_id = ? and id = ?",
                args![account.to_string(), id],
            )
            .await
    }

    pub async fn insert_label(&self, account: AccountId, label: &LabelRow) -> Result<(), StoreError> {
        self.db
            .execute(
                "insert into labels (id, account_id, name, colour, description, created_at) values (?, ?, ?, ?, ?, ?)",
                args![
                    label.id.clone(),
                    account.to_string(),
                    label.name.clone(),
                    label.colour.clone(),
                    label.description.clone(),
                    label.created_at
                ],
            )
            .await
            .map(drop)
    }

    pub async fn update_label(&self, account: AccountId, label: &LabelRow) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "update labels set name = ?, colour = ?, description = ? where account_id = ? and id = ?",
                args![
                    label.name.clone(),
                    label.colour.clone(),
                    label.description.clone(),
                    account.to_string(),
                    label.id.clone()
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn delete_label(&self, account: AccountId, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "delete from conversation_labels where account_id = ? and label_id = ?",
            args![account.to_string(), id],
        )
        .await?;
        let deleted =
            tx.execute("delete from labels where account_id = ? and id = ?", args![account.to_string(), id]).await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Every label of the account, as (id, name).
    pub async fn label_names(tx: &mut Tx<'_>, account: &str) -> Result<Vec<(String, String)>, StoreError> {
        tx.fetch_all("select id, name from labels where account_id = ?", args![account]).await
    }

    pub async fn replace_conversation_labels(
        tx: &mut Tx<'_>,
        account: &str,
        conversation: &str,
        labels: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "delete from conversation_labels where account_id = ? and conversation_id = ?",
            args![account, conversation],
        )
        .await?;
        for label in labels {
            tx.execute(
                "insert into conversation_labels (conversation_id, label_id, account_id, created_at) values (?, ?, ?, ?)",
                args![conversation, label.clone(), account, now],
            )
            .await?;
        }
        Ok(())
    }

    // Canned responses.

    pub async fn canned_responses(
        &self,
        account: AccountId,
        prefix: Option<&str>,
    ) -> Result<Vec<CannedRow>, StoreError> {
        let pattern = prefix.map(|p| format!("{}%", p.replace(['%', '_'], "")));
        self.db
            .fetch_all(
                "select id, short_code, content, created_at, updated_at from canned_responses where account_id = ? \
                 and (? is null or short_code like ?) order by short_code",
                args![account.to_string(), pattern.clone(), pattern],
            )
            .await
    }

    pub async fn canned_response(&self, account: AccountId, id: &str) -> Result<Option<CannedRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, short_code, content, created_at, updated_at from canned_responses \
                 where account_id = ? and id = ?",
                args![account.to_string(), id],
            )
            .await
    }

    pub async fn insert_canned_response(&self, account: AccountId, row: &CannedRow) -> Result<(), StoreError> {
        self.db
            .execute(
                "insert into canned_responses (id, account_id, short_code, content, created_at, updated_at) \
                 values (?, ?, ?, ?, ?, ?)",
                args![
                    row.id.clone(),
                    account.to_string(),
                    row.short_code.clone(),
                    row.content.clone(),
                    row.created_at,
                    row.updated_at
                ],
            )
            .await
            .map(drop)
    }

    pub async fn update_canned_response(&self, account: AccountId, row: &CannedRow) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "update canned_responses set short_code = ?, content = ?, updated_at = ? where account_id = ? and id = ?",
                args![row.short_code.clone(), row.content.clone(), row.updated_at, account.to_string(), row.id.clone()],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn delete_canned_response(&self, account: AccountId, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute("delete from canned_responses where account_id = ? and id = ?", args![account.to_string(), id])
            .await?;
        Ok(deleted == 1)
    }

    // Messages.

    /// A page of a conversation's messages older than `before`, newest first.
    pub async fn messages(
        &self,
        account: AccountId,
        conversation: &str,
        before: (i64, String),
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, conversation_id, kind, content, sender_id, attributes, delivery_status, delivery_error, \
                 created_at from messages where account_id = ? and conversation_id = ? \
                 and (created_at, id) < (?, ?) order by created_at desc, id desc limit ?",
                args![account.to_string(), conversation, before.0, before.1, limit],
            )
            .await
    }

    /// Inserts a message unless one with its id exists; false for a duplicate.
    pub async fn insert_message(tx: &mut Tx<'_>, account: &str, message: &MessageRow) -> Result<bool, StoreError> {
        let inserted = tx
            .execute(
                "insert into messages (id, account_id, conversation_id, kind, content, sender_id, attributes, \
                 delivery_status, delivery_error, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 on conflict (id) do nothing",
                args![
                    message.id.clone(),
                    account,
                    message.conversation_id.clone(),
                    message.kind.clone(),
                    message.content.clone(),
                    message.sender_id.clone(),
                    message.attributes.clone(),
                    message.delivery_status.clone(),
                    message.delivery_error.clone(),
                    message.created_at
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// Stores a run of incoming messages with one statement; the ids of those not stored before (a
    /// redelivered message is skipped).
    pub async fn insert_incoming(tx: &mut Tx<'_>, messages: &[NewIncoming<'_>]) -> Result<Vec<String>, StoreError> {
        let inserted: Vec<(String,)> = tx
            .fetch_all(
                "insert into messages (id, account_id, conversation_id, kind, content, created_at) \
                 select value ->> 0, value ->> 1, value ->> 2, 'incoming', value ->> 3, value ->> 4 \
                 from jsonb_each(?) where true order by key on conflict (id) do nothing returning id",
                args![json_rows(messages)?],
            )
            .await?;
        Ok(inserted.into_iter().map(|(id,)| id).collect())
    }

    /// [`Store::touch_conversation`] for several conversations with one statement.
    pub async fn touch_conversations(tx: &mut Tx<'_>, touches: &[Touch<'_>]) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set last_message_at = t.value ->> 2, last_message_preview = t.value ->> 3, \
             last_message_kind = 'incoming', unread_count = unread_count + (t.value ->> 4), \
             updated_at = t.value ->> 2 from jsonb_each(?) as t \
             where conversations.account_id = t.value ->> 0 and conversations.id = t.value ->> 1",
            args![json_rows(touches)?],
        )
        .await
        .map(drop)
    }

    pub async fn set_delivery(
        tx: &mut Tx<'_>,
        account: &str,
        message: &str,
        status: &str,
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

    // Search.

    pub async fn index(
        tx: &mut Tx<'_>,
        scope: &str,
        body: &str,
        kind: &str,
        id: &str,
        conversation: Option<&str>,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into search_index (scope, body, doc_kind, doc_id, conversation_id) values (?, ?, ?, ?, ?)",
            args![scope, body, kind, id, conversation],
        )
        .await
        .map(drop)
    }

    /// [`Store::index`] for several documents with one statement.
    pub async fn index_all(tx: &mut Tx<'_>, documents: &[Document<'_>]) -> Result<(), StoreError> {
        tx.execute(
            "insert into search_index (scope, body, doc_kind, doc_id, conversation_id) \
             select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 from jsonb_each(?)",
            args![json_rows(documents)?],
        )
        .await
        .map(drop)
    }

    pub async fn unindex(tx: &mut Tx<'_>, scope: &str, kind: &str, id: &str) -> Result<(), StoreError> {
        tx.execute(
            "delete from search_index where search_index = ? and doc_kind = ? and doc_id = ?",
            args![format!("scope:\"{scope}\""), kind, id],
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
                args![query, limit, account.to_string()],
            )
            .await
    }

    /// Conversations whose contact, number or messages match `query`, latest first; `member` restricts
    /// them to an agent's inboxes.
    pub async fn search_conversations(
        &self,
        account: AccountId,
        query: &str,
        member: Option<String>,
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
                args![account.to_string(), query, query, member.clone(), member, limit],
            )
            .await
    }

    /// Messages (not activity entries) matching `query`, best first.
    pub async fn search_messages(
        &self,
        account: AccountId,
        query: &str,
        member: Option<String>,
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
                args![query, account.to_string(), member.clone(), member, limit],
            )
            .await
    }

    // The realtime feed.

    /// Appends `entries` (kind, inbox, payload) to the account's feed, in order, with one statement.
    pub async fn append_feed(
        tx: &mut Tx<'_>,
        account: &str,
        entries: &[(&'static str, Option<String>, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into realtime_feed (account_id, kind, inbox_id, payload, created_at) \
             select ?, value ->> 0, value ->> 1, value ->> 2, ? from jsonb_each(?) order by key",
            args![account, now, json_rows(entries)?],
        )
        .await
        .map(drop)
    }

    /// The account's feed rows after `after`. For an agent (`member`: their user id), rows about an inbox
    /// they are not a member of now come without their payload: the socket skips them, but its cursor
    /// moves past them, so they are read once.
    pub async fn feed_after(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
        member: Option<&str>,
    ) -> Result<Vec<FeedRow>, StoreError> {
        let account = account.to_string();
        self.db
            .fetch_all(
                "select seq, kind, case when inbox_id is null or ? is null or inbox_id in \
                   (select inbox_id from inbox_members where account_id = ? and user_id = ?) then payload end \
                 as payload from realtime_feed where account_id = ? and seq > ? order by seq limit ?",
                args![member, account.clone(), member, account, after, limit],
            )
            .await
    }

    /// The oldest seq the feed still has (`None` if it is empty); rows before it were trimmed.
    pub async fn feed_start(&self) -> Result<Option<i64>, StoreError> {
        let start: Option<(Option<i64>,)> =
            self.db.fetch_optional("select min(seq) from realtime_feed", args![]).await?;
        Ok(start.and_then(|(seq,)| seq))
    }

    /// The last seq the feed has given (of any account), if any: no client can have seen a later one.
    pub async fn feed_end(&self) -> Result<Option<i64>, StoreError> {
        let end: Option<(Option<i64>,)> = self.db.fetch_optional("select max(seq) from realtime_feed", args![]).await?;
        Ok(end.and_then(|(seq,)| seq))
    }

    /// Deletes feed rows written before `before` (Unix milliseconds), in slices of short transactions; the
    /// newest row always stays, so that [`Store::feed_start`] tells how far the feed was trimmed. Returns
    /// how many rows went.
    pub async fn trim_feed(&self, before: i64) -> Result<u64, StoreError> {
        // Rows are written in time order: the old ones are those before the first recent one (found by
        // walking only the old rows), or all but the newest.
        let recent: Option<(i64,)> = self
            .db
            .fetch_optional("select seq from realtime_feed where created_at >= ? order by seq limit 1", args![before])
            .await?;
        let keep_from = match recent {
            Some((seq,)) => seq,
            None => {
                let newest: Option<(Option<i64>,)> =
                    self.db.fetch_optional("select max(seq) from realtime_feed", args![]).await?;
                match newest.and_then(|(seq,)| seq) {
                    Some(newest) => newest,
                    None => return Ok(0),
                }
            }
        };
        self.db
            .delete_in_slices(
                "delete from realtime_feed where seq in (select seq from realtime_feed where seq < ? order by seq limit ?)",
                args![keep_from],
            )
            .await
    }

    pub async fn feed_head(&self, account: AccountId) -> Result<i64, StoreError> {
        let head: Option<(Option<i64>,)> = self
            .db
            .fetch_optional("select max(seq) from realtime_feed where account_id = ?", args![account.to_string()])
            .await?;
        Ok(head.and_then(|(seq,)| seq).unwrap_or(0))
    }
}
