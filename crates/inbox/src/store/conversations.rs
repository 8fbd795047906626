//! Conversations: the list, one conversation, and the changes agents make to it.

use super::*;

impl Store {
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
                    filter.account,
                    filter.status,
                    filter.status,
                    filter.inbox,
                    filter.inbox,
                    filter.assignee,
                    filter.assignee,
                    i64::from(filter.unassigned),
                    filter.label.clone(),
                    filter.label.clone(),
                    filter.member,
                    filter.member,
                    filter.before.at,
                    filter.before.id,
                    filter.limit
                ],
            )
            .await
    }

    /// The counts of the "mine", "unassigned" and "all" tabs under the list's other filters. Without a
    /// label or membership filter the count reads only the `conversations_by_tabs` index.
    pub async fn tab_counts(&self, filter: &ListFilter) -> Result<TabCounts, StoreError> {
        let mut args = args![filter.caller, filter.account, filter.status, filter.status, filter.inbox, filter.inbox];
        let sql = if filter.label.is_none() && filter.member.is_none() {
            "select cast(coalesce(sum(case when assignee_id = ? then 1 else 0 end), 0) as bigint) as mine, \
             cast(coalesce(sum(case when assignee_id is null then 1 else 0 end), 0) as bigint) as unassigned, \
             count(*) as all_count from conversations \
             where account_id = ? and (? is null or status = ?) and (? is null or inbox_id = ?)"
        } else {
            args.extend(args![filter.label.clone(), filter.label.clone(), filter.member, filter.member]);
            "select cast(coalesce(sum(case when c.assignee_id = ? then 1 else 0 end), 0) as bigint) as mine, \
             cast(coalesce(sum(case when c.assignee_id is null then 1 else 0 end), 0) as bigint) as unassigned, \
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

    pub async fn conversation(
        &self,
        account: AccountId,
        id: ConversationId,
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.db
            .fetch_optional(concat!(conversation_card!(), "where c.account_id = ? and c.id = ?"), args![account, id])
            .await
    }

    pub async fn conversation_in(
        tx: &mut Tx<'_>,
        account: AccountId,
        id: ConversationId,
    ) -> Result<Option<ConversationRow>, StoreError> {
        tx.fetch_optional(concat!(conversation_card!(), "where c.account_id = ? and c.id = ?"), args![account, id])
            .await
    }

    pub async fn conversation_of_contact(
        tx: &mut Tx<'_>,
        inbox: InboxId,
        contact: ContactId,
    ) -> Result<Option<(ConversationId, ConversationStatus)>, StoreError> {
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
        identities: &[Identity<'_>],
    ) -> Result<Vec<KnownConversation>, StoreError> {
        tx.fetch_all(
            "select n.account_id, i.inbox_id, i.source_id, n.channel, k.name, k.email, k.phone, \
             c.id as conversation_id, c.status from jsonb_each(?) as j \
             join contact_identities i on i.inbox_id = j.value ->> 'inbox' and i.source_id = j.value ->> 'source_id' \
             join inboxes n on n.id = i.inbox_id and n.account_id = j.value ->> 'account' \
             join contacts k on k.id = i.contact_id \
             join conversations c on c.inbox_id = i.inbox_id and c.contact_id = k.id",
            args![json_rows(identities)?],
        )
        .await
    }

    /// Conversations by id, as [`Store::conversation_in`] reads them, with one statement.
    pub async fn conversations_in(tx: &mut Tx<'_>, ids: &[ConversationId]) -> Result<Vec<ConversationRow>, StoreError> {
        tx.fetch_all(
            concat!(conversation_card!(), "where c.id in (select value ->> 0 from jsonb_each(?))"),
            args![json_rows(&ids.iter().map(|id| (id,)).collect::<Vec<_>>())?],
        )
        .await
    }

    /// The contact's conversations, latest first; `member` restricts them to an agent's inboxes.
    pub async fn contact_conversations(
        &self,
        account: AccountId,
        contact: ContactId,
        member: Option<UserId>,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    conversation_card!(),
                    "where c.account_id = ? and c.contact_id = ? \
                 and (? is null or c.inbox_id in (select m.inbox_id from inbox_members m \
                 where m.account_id = c.account_id and m.user_id = ?)) order by c.last_message_at desc"
                ),
                args![account, contact, member, member],
            )
            .await
    }

    /// Starts a conversation with the next display number of the account (safe: writers are serialised,
    /// and the unique index would refuse a duplicate anyway).
    pub async fn insert_conversation(
        tx: &mut Tx<'_>,
        account: AccountId,
        id: ConversationId,
        inbox: InboxId,
        contact: ContactId,
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
        account: AccountId,
        id: ConversationId,
        status: ConversationStatus,
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
        account: AccountId,
        id: ConversationId,
        assignee: Option<UserId>,
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
        account: AccountId,
        id: ConversationId,
        priority: Priority,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update conversations set priority = ?, updated_at = ? where account_id = ? and id = ?",
            args![priority, now, account, id],
        )
        .await
        .map(drop)
    }

    pub async fn mark_read(
        tx: &mut Tx<'_>,
        account: AccountId,
        id: ConversationId,
        now: i64,
    ) -> Result<(), StoreError> {
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
        account: AccountId,
        id: ConversationId,
        preview: &str,
        kind: MessageKind,
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
    pub async fn due_snoozes(&self, now: i64, limit: i64) -> Result<Vec<(AccountId, ConversationId)>, StoreError> {
        self.db
            .fetch_all(
                "select account_id, id from conversations where status = 'snoozed' and snoozed_until <= ? \
                 order by snoozed_until limit ?",
                args![now, limit],
            )
            .await
    }
}
