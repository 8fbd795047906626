//! All of the input service's SQL.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use contracts::AccountId;
use contracts::channel::{ChannelKind, DeliveryStatus};
use contracts::inbox::{ConversationId, InboxId, MessageId};
use kernel::args;
use kernel::store::{StoreError, Tx, json_rows};

use crate::domain::{DeliveryId, Direction, Origin};

/// A channel: an inbox's public endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRow {
    pub inbox_id: InboxId,
    pub account_id: AccountId,
    pub identifier: String,
    pub secret: String,
    pub kind: ChannelKind,
    pub callback_url: Option<String>,
    pub removed_at: Option<i64>,
}

/// A contact as a channel knows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub source_id: String,
    pub origin: Origin,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_message_at: Option<i64>,
}

/// What an earlier post with the same idempotency key was, to replay its answer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundRow {
    pub body_sha256: String,
    pub message_id: MessageId,
}

/// An earlier post found by its inbox and idempotency key, for a batch ([`Store::inbound_by_keys`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyedInboundRow {
    pub inbox_id: InboxId,
    pub idempotency_key: String,
    pub body_sha256: String,
    pub message_id: MessageId,
}

/// A signature (inbox, body hash, timestamp) accepted before, for a batch ([`Store::signatures_used`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct UsedSignatureRow {
    pub inbox_id: InboxId,
    pub body_sha256: String,
    pub signed_at: i64,
}

/// A contact found by channel identity (inbox, source id), for a batch ([`Store::contacts_by_identity`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentifiedContactRow {
    pub inbox_id: InboxId,
    pub source_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_message_at: Option<i64>,
}

/// One line of a contact's transcript.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TranscriptRow {
    pub message_id: MessageId,
    pub direction: Direction,
    pub content: String,
    pub created_at: i64,
    pub delivery_status: Option<DeliveryStatus>,
    pub delivery_reason: Option<String>,
}

/// A reply waiting to be delivered.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub message_id: MessageId,
    pub inbox_id: InboxId,
    pub account_id: AccountId,
    pub payload: String,
    pub attempts: i64,
}

/// A new channel to store.
pub struct NewChannel<'a> {
    pub inbox: InboxId,
    pub account: AccountId,
    pub identifier: &'a str,
    pub secret: &'a str,
    pub kind: ChannelKind,
    pub callback_url: Option<&'a str>,
    pub now_ms: i64,
}

/// A contact's details to store.
pub struct ContactDetails<'a> {
    pub inbox: InboxId,
    pub source_id: &'a str,
    pub origin: Origin,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub now_ms: i64,
}

/// An accepted post to record.
pub struct NewInbound<'a> {
    pub inbox: InboxId,
    pub idempotency_key: Option<&'a str>,
    pub body_sha256: &'a str,
    pub payload: &'a str,
    pub source_id: &'a str,
    pub message_id: MessageId,
    /// The signature's timestamp (signed route); with the body it identifies the signature, which is
    /// accepted once per inbox.
    pub signed_at: Option<i64>,
    pub now_ms: i64,
}

/// A transcript line to append.
pub struct NewEntry<'a> {
    pub message_id: MessageId,
    pub inbox: InboxId,
    pub source_id: &'a str,
    pub direction: Direction,
    pub content: &'a str,
    pub conversation_id: Option<ConversationId>,
    pub created_at: i64,
    pub delivery_status: Option<DeliveryStatus>,
}

/// A reply to deliver.
pub struct NewDelivery<'a> {
    pub id: DeliveryId,
    pub message_id: MessageId,
    pub inbox: InboxId,
    pub account: AccountId,
    pub payload: &'a str,
    pub now_ms: i64,
}

/// The posts recorded under (inbox, idempotency key) pairs: read before a batch and, for keys that raced,
/// inside its transaction.
const INBOUND_BY_KEYS: &str = "select e.inbox_id, e.idempotency_key, e.body_sha256, e.message_id \
     from jsonb_each(?) as k \
     join inbound_events e on e.inbox_id = k.value ->> 0 and e.idempotency_key = k.value ->> 1";

/// The signatures of a batch that were accepted before: what identifies a signature is the inbox, the
/// body and the signature's timestamp.
const SIGNATURES_USED: &str = "select e.inbox_id, e.body_sha256, e.signed_at from jsonb_each(?) as s \
     join inbound_events e on e.inbox_id = s.value ->> 0 and e.body_sha256 = s.value ->> 1 \
     and e.signed_at = cast(s.value ->> 2 as bigint)";

/// The contacts with (inbox, source id) identities: read before a batch (for the plan) and inside its
/// transaction (the state the upsert starts from).
const CONTACTS_BY_IDENTITY: &str = "select c.inbox_id, c.source_id, c.name, c.email, c.phone, \
     c.first_message_at from jsonb_each(?) as i \
     join channel_contacts c on c.inbox_id = i.value ->> 0 and c.source_id = i.value ->> 1";

kernel::service_store!(Store);

impl Store {
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        self.db.begin().await
    }

    /// The open channel with this public identifier.
    pub async fn channel_by_identifier(&self, identifier: &str) -> Result<Option<ChannelRow>, StoreError> {
        self.db
            .fetch_optional(
                "select inbox_id, account_id, identifier, secret, kind, callback_url, removed_at from channels \
                 where identifier = ? and removed_at is null",
                args![identifier],
            )
            .await
    }

    /// The open channel of `inbox` in `account`.
    pub async fn channel_of(&self, account: AccountId, inbox: InboxId) -> Result<Option<ChannelRow>, StoreError> {
        self.db
            .fetch_optional(
                "select inbox_id, account_id, identifier, secret, kind, callback_url, removed_at from channels \
                 where inbox_id = ? and account_id = ? and removed_at is null",
                args![inbox, account],
            )
            .await
    }

    /// The channel of `inbox`, open or removed, by inbox id alone (events and the delivery worker).
    pub async fn channel_of_inbox(&self, inbox: InboxId) -> Result<Option<ChannelRow>, StoreError> {
        self.db
            .fetch_optional(
                "select inbox_id, account_id, identifier, secret, kind, callback_url, removed_at from channels \
                 where inbox_id = ?",
                args![inbox],
            )
            .await
    }

    /// [`Store::channel_of_inbox`] inside a transaction.
    pub async fn channel_of_inbox_in(tx: &mut Tx<'_>, inbox: InboxId) -> Result<Option<ChannelRow>, StoreError> {
        tx.fetch_optional(
            "select inbox_id, account_id, identifier, secret, kind, callback_url, removed_at from channels \
             where inbox_id = ?",
            args![inbox],
        )
        .await
    }

    /// Creates the channel unless `inbox` has one already (whose identifier and secret then stay).
    pub async fn insert_channel(tx: &mut Tx<'_>, channel: NewChannel<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into channels (inbox_id, account_id, identifier, secret, kind, callback_url, created_at, \
             updated_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (inbox_id) do nothing",
            args![
                channel.inbox,
                channel.account,
                channel.identifier,
                channel.secret,
                channel.kind,
                channel.callback_url,
                channel.now_ms,
                channel.now_ms
            ],
        )
        .await
        .map(drop)
    }

    /// Updates the settings of `inbox`'s channel and reopens it if it was removed; false if `inbox` has no
    /// channel in `account`.
    pub async fn update_channel(
        tx: &mut Tx<'_>,
        account: AccountId,
        inbox: InboxId,
        kind: ChannelKind,
        callback_url: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = tx
            .execute(
                "update channels set kind = ?, callback_url = ?, updated_at = ?, removed_at = null \
                 where inbox_id = ? and account_id = ?",
                args![kind, callback_url, now_ms, inbox, account],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Closes `inbox`'s channel (keeping the first removal time); true if it exists, removed or not, so
    /// that a retried call answers the same.
    pub async fn remove_channel(&self, account: AccountId, inbox: InboxId, now_ms: i64) -> Result<bool, StoreError> {
        let updated = self
            .db
            .execute(
                "update channels set removed_at = coalesce(removed_at, ?), updated_at = ? \
                 where inbox_id = ? and account_id = ?",
                args![now_ms, now_ms, inbox, account],
            )
            .await?;
        Ok(updated == 1)
    }

    pub async fn contact(&self, inbox: InboxId, source_id: &str) -> Result<Option<ContactRow>, StoreError> {
        self.db
            .fetch_optional(
                "select source_id, origin, name, email, phone, first_message_at from channel_contacts \
                 where inbox_id = ? and source_id = ?",
                args![inbox, source_id],
            )
            .await
    }

    pub async fn contact_in(
        tx: &mut Tx<'_>,
        inbox: InboxId,
        source_id: &str,
    ) -> Result<Option<ContactRow>, StoreError> {
        tx.fetch_optional(
            "select source_id, origin, name, email, phone, first_message_at from channel_contacts \
             where inbox_id = ? and source_id = ?",
            args![inbox, source_id],
        )
        .await
    }

    /// Creates a contact, or completes the details of an existing one: fields the post leaves out keep
    /// what an earlier post said.
    pub async fn upsert_contact(tx: &mut Tx<'_>, contact: ContactDetails<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into channel_contacts (inbox_id, source_id, origin, name, email, phone, created_at) \
             values (?, ?, ?, ?, ?, ?, ?) on conflict (inbox_id, source_id) do update set \
             name = coalesce(excluded.name, channel_contacts.name), \
             email = coalesce(excluded.email, channel_contacts.email), \
             phone = coalesce(excluded.phone, channel_contacts.phone)",
            args![
                contact.inbox,
                contact.source_id,
                contact.origin,
                contact.name,
                contact.email,
                contact.phone,
                contact.now_ms
            ],
        )
        .await
        .map(drop)
    }

    /// Marks the contact's first message; true if this call did, i.e. this message starts their conversation.
    pub async fn start_conversation(
        tx: &mut Tx<'_>,
        inbox: InboxId,
        source_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = tx
            .execute(
                "update channel_contacts set first_message_at = ? \
                 where inbox_id = ? and source_id = ? and first_message_at is null",
                args![now_ms, inbox, source_id],
            )
            .await?;
        Ok(updated == 1)
    }

    pub async fn inbound_by_key(&self, inbox: InboxId, key: &str) -> Result<Option<InboundRow>, StoreError> {
        self.db
            .fetch_optional(
                "select body_sha256, message_id from inbound_events where inbox_id = ? and idempotency_key = ?",
                args![inbox, key],
            )
            .await
    }

    /// Records an accepted post; a `UniqueViolation` means its idempotency key, or its signature, was used
    /// meanwhile.
    pub async fn insert_inbound(tx: &mut Tx<'_>, inbound: NewInbound<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into inbound_events (id, inbox_id, idempotency_key, body_sha256, payload, source_id, \
             message_id, received_at, signed_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            args![
                uuid::Uuid::now_v7(),
                inbound.inbox,
                inbound.idempotency_key,
                inbound.body_sha256,
                inbound.payload,
                inbound.source_id,
                inbound.message_id,
                inbound.now_ms,
                inbound.signed_at
            ],
        )
        .await
        .map(drop)
    }

    /// Appends a line to a transcript; a line already there (a redelivered event) is left alone.
    pub async fn append_transcript(tx: &mut Tx<'_>, entry: NewEntry<'_>) -> Result<bool, StoreError> {
        let inserted = tx
            .execute(
                "insert into transcript_entries (message_id, inbox_id, source_id, direction, content, \
                 conversation_id, created_at, delivery_status) values (?, ?, ?, ?, ?, ?, ?, ?) \
                 on conflict (message_id) do nothing",
                args![
                    entry.message_id,
                    entry.inbox,
                    entry.source_id,
                    entry.direction,
                    entry.content,
                    entry.conversation_id,
                    entry.created_at,
                    entry.delivery_status
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    // Set-based statements for a batch of posts (`recorder.rs`): one statement each, whatever the batch's size.

    /// The posts recorded before under these (inbox, idempotency key) pairs.
    pub async fn inbound_by_keys(&self, keys: &[(InboxId, &str)]) -> Result<Vec<KeyedInboundRow>, StoreError> {
        self.db.fetch_all(INBOUND_BY_KEYS, args![json_rows(keys)?]).await
    }

    /// [`Store::inbound_by_keys`] inside a transaction.
    pub async fn inbound_by_keys_in(
        tx: &mut Tx<'_>,
        keys: &[(InboxId, &str)],
    ) -> Result<Vec<KeyedInboundRow>, StoreError> {
        tx.fetch_all(INBOUND_BY_KEYS, args![json_rows(keys)?]).await
    }

    /// Which of these signatures (inbox, body hash, timestamp) were accepted before.
    pub async fn signatures_used(
        &self,
        signatures: &[(InboxId, &str, i64)],
    ) -> Result<Vec<UsedSignatureRow>, StoreError> {
        self.db.fetch_all(SIGNATURES_USED, args![json_rows(signatures)?]).await
    }

    /// The contacts with these channel identities (inbox, source id) that exist.
    pub async fn contacts_by_identity(
        &self,
        identities: &[(InboxId, &str)],
    ) -> Result<Vec<IdentifiedContactRow>, StoreError> {
        self.db.fetch_all(CONTACTS_BY_IDENTITY, args![json_rows(identities)?]).await
    }

    /// [`Store::contacts_by_identity`] inside a transaction.
    pub async fn contacts_by_identity_in(
        tx: &mut Tx<'_>,
        identities: &[(InboxId, &str)],
    ) -> Result<Vec<IdentifiedContactRow>, StoreError> {
        tx.fetch_all(CONTACTS_BY_IDENTITY, args![json_rows(identities)?]).await
    }

    /// [`Store::insert_inbound`] for several posts; returns the message ids of those recorded. A post
    /// missing from the answer was not recorded: its idempotency key, or its signature, was used meanwhile.
    pub async fn insert_inbounds(tx: &mut Tx<'_>, inbounds: &[NewInbound<'_>]) -> Result<Vec<MessageId>, StoreError> {
        let rows: Vec<_> = inbounds
            .iter()
            .map(|inbound| {
                (
                    uuid::Uuid::now_v7(),
                    inbound.inbox,
                    inbound.idempotency_key,
                    inbound.body_sha256,
                    inbound.payload,
                    inbound.source_id,
                    inbound.message_id,
                    inbound.now_ms,
                    inbound.signed_at,
                )
            })
            .collect();
        let recorded: Vec<(MessageId,)> = tx
            .fetch_all(
                "insert into inbound_events (id, inbox_id, idempotency_key, body_sha256, payload, source_id, \
                 message_id, received_at, signed_at) select value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
                 value ->> 4, value ->> 5, value ->> 6, cast(value ->> 7 as bigint), cast(value ->> 8 as bigint) \
                 from jsonb_each(?) where true order by key on conflict do nothing returning message_id",
                args![json_rows(&rows)?],
            )
            .await?;
        Ok(recorded.into_iter().map(|(message_id,)| message_id).collect())
    }

    /// [`Store::upsert_contact`] for several posts, applied in their order: a contact named twice ends with
    /// what the later post said, and fields a post leaves out keep what an earlier one said.
    pub async fn upsert_contacts(tx: &mut Tx<'_>, contacts: &[ContactDetails<'_>]) -> Result<(), StoreError> {
        // One row per contact, as the posts leave it (PostgreSQL refuses to upsert a row twice in one
        // statement): the first post's origin and time (which only an insert writes), each field the
        // last post that gave it.
        let mut rows: Vec<_> = Vec::with_capacity(contacts.len());
        let mut at: HashMap<(InboxId, &str), usize> = HashMap::with_capacity(contacts.len());
        for contact in contacts {
            match at.entry((contact.inbox, contact.source_id)) {
                Entry::Occupied(place) => {
                    let row: &mut (_, _, _, Option<&str>, Option<&str>, Option<&str>, _) = &mut rows[*place.get()];
                    row.3 = contact.name.or(row.3);
                    row.4 = contact.email.or(row.4);
                    row.5 = contact.phone.or(row.5);
                }
                Entry::Vacant(place) => {
                    place.insert(rows.len());
                    rows.push((
                        contact.inbox,
                        contact.source_id,
                        contact.origin,
                        contact.name,
                        contact.email,
                        contact.phone,
                        contact.now_ms,
                    ));
                }
            }
        }
        tx.execute(
            "insert into channel_contacts (inbox_id, source_id, origin, name, email, phone, created_at) \
             select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
             cast(value ->> 6 as bigint) from jsonb_each(?) where true order by key on conflict (inbox_id, source_id) do update set \
             name = coalesce(excluded.name, channel_contacts.name), \
             email = coalesce(excluded.email, channel_contacts.email), \
             phone = coalesce(excluded.phone, channel_contacts.phone)",
            args![json_rows(&rows)?],
        )
        .await
        .map(drop)
    }

    /// Marks the first message of each of these contacts (each named once) who had none.
    pub async fn start_conversations(
        tx: &mut Tx<'_>,
        identities: &[(InboxId, &str)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        // The time rides in each row: MariaDB's form of this statement reads the rows ahead of the `set`.
        let rows: Vec<(InboxId, &str, i64)> =
            identities.iter().map(|&(inbox, source_id)| (inbox, source_id, now_ms)).collect();
        tx.execute(
            "update channel_contacts set first_message_at = cast(i.value ->> 2 as bigint) from jsonb_each(?) as i \
             where channel_contacts.inbox_id = i.value ->> 0 and channel_contacts.source_id = i.value ->> 1 \
             and channel_contacts.first_message_at is null",
            args![json_rows(&rows)?],
        )
        .await
        .map(drop)
    }

    /// [`Store::append_transcript`] for several lines, in their order.
    pub async fn append_transcripts(tx: &mut Tx<'_>, entries: &[NewEntry<'_>]) -> Result<(), StoreError> {
        let rows: Vec<_> = entries
            .iter()
            .map(|entry| {
                (
                    entry.message_id,
                    entry.inbox,
                    entry.source_id,
                    entry.direction,
                    entry.content,
                    entry.conversation_id,
                    entry.created_at,
                    entry.delivery_status,
                )
            })
            .collect();
        tx.execute(
            "insert into transcript_entries (message_id, inbox_id, source_id, direction, content, \
             conversation_id, created_at, delivery_status) select value ->> 0, value ->> 1, value ->> 2, \
             value ->> 3, value ->> 4, value ->> 5, cast(value ->> 6 as bigint), value ->> 7 from jsonb_each(?) \
             where true order by key on conflict (message_id) do nothing",
            args![json_rows(&rows)?],
        )
        .await
        .map(drop)
    }

    /// The latest `limit` lines of a contact's transcript, oldest first.
    pub async fn transcript(
        &self,
        inbox: InboxId,
        source_id: &str,
        limit: i64,
    ) -> Result<Vec<TranscriptRow>, StoreError> {
        self.db
            .fetch_all(
                "select message_id, direction, content, created_at, delivery_status, delivery_reason from \
                 (select message_id, direction, content, created_at, delivery_status, delivery_reason \
                 from transcript_entries where inbox_id = ? and source_id = ? \
                 order by created_at desc, message_id desc limit ?) as latest \
                 order by created_at, message_id",
                args![inbox, source_id, limit],
            )
            .await
    }

    pub async fn set_delivery_status(
        tx: &mut Tx<'_>,
        message_id: MessageId,
        status: DeliveryStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update transcript_entries set delivery_status = ?, delivery_reason = ? where message_id = ?",
            args![status, reason, message_id],
        )
        .await
        .map(drop)
    }

    pub async fn enqueue_delivery(tx: &mut Tx<'_>, delivery: NewDelivery<'_>) -> Result<(), StoreError> {
        tx.execute(
            "insert into reply_deliveries (id, message_id, inbox_id, account_id, payload, status, attempts, \
             next_attempt_at, created_at, updated_at) values (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) \
             on conflict (message_id) do nothing",
            args![
                delivery.id,
                delivery.message_id,
                delivery.inbox,
                delivery.account,
                delivery.payload,
                delivery.now_ms,
                delivery.now_ms,
                delivery.now_ms
            ],
        )
        .await
        .map(drop)
    }

    /// Pending deliveries whose next attempt is due, oldest first.
    pub async fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, message_id, inbox_id, account_id, payload, attempts from reply_deliveries \
                 where status = 'pending' and next_attempt_at <= ? order by next_attempt_at limit ?",
                args![now_ms, limit],
            )
            .await
    }

    /// When the next pending delivery is due, if any is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = self
            .db
            .fetch_optional("select min(next_attempt_at) from reply_deliveries where status = 'pending'", args![])
            .await?;
        Ok(row.and_then(|(due,)| due))
    }

    /// Takes attempt `attempts + 1` of a delivery, leasing it until `lease_until`; false if another worker
    /// took it first.
    pub async fn claim_delivery(
        &self,
        id: DeliveryId,
        attempts: i64,
        lease_until: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .db
            .execute(
                "update reply_deliveries set attempts = attempts + 1, next_attempt_at = ?, updated_at = ? \
                 where id = ? and status = 'pending' and attempts = ?",
                args![lease_until, now_ms, id, attempts],
            )
            .await?;
        Ok(claimed == 1)
    }

    /// Records an attempt's outcome: the new status, the error, and when to try again (pending only).
    pub async fn finish_attempt(
        tx: &mut Tx<'_>,
        id: DeliveryId,
        status: DeliveryStatus,
        last_error: Option<&str>,
        next_attempt_at: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "update reply_deliveries set status = ?, last_error = ?, next_attempt_at = ?, updated_at = ? \
             where id = ?",
            args![status, last_error, next_attempt_at, now_ms, id],
        )
        .await
        .map(drop)
    }
}
