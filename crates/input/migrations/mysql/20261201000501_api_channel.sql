-- The input service's namespace: the public endpoints of inboxes (channels), the contacts as channels know
-- them, every accepted inbound post (for dedupe and audit), each contact's transcript, and the replies
-- waiting to be delivered to callback URLs. It never reads the inbox service's tables: what it needs of
-- conversations arrives as events and is kept here.
--
-- MySQL/MariaDB port of the SQLite file of the same name: the database is created utf8mb4 / utf8mb4_bin
-- (binary comparisons, as in SQLite); ids are varchar(36); caller-chosen keys (source ids, Idempotency-Key)
-- are varchar(255), the most the service accepts; SHA-256 hex varchar(64); raw posts, message content and
-- reply bodies mediumtext; every integer a bigint. Every index stays under InnoDB's 3072-byte key limit.

-- One row per inbox with a public endpoint, registered by the inbox service through InputPort. The
-- identifier is public (it is in the endpoint's URL and a widget's page) and unguessable. The secret is
-- stored in clear, unlike tokens elsewhere, because we need it to sign the callbacks we send, not only to
-- check what we receive; protect backups of this database like the secret itself. A removed channel keeps
-- its row (removed_at), so its identifier is never handed to another inbox and a re-registration gets it
-- back.
create table channels (
    inbox_id varchar(36) not null primary key,
    account_id varchar(36) not null,
    identifier varchar(255) not null unique,
    secret varchar(255) not null,
    kind varchar(32) not null,
    callback_url text,
    created_at bigint not null,
    updated_at bigint not null,
    removed_at bigint
);

-- A customer as one channel knows them. source_id is chosen by the caller on the signed route (their own
-- user id) or by us on the widget route, where it is random and acts as the contact's capability: origin
-- says which, because only widget contacts may use the unsigned contact routes (a caller-chosen id like
-- `user-42` could be guessed). first_message_at is set by the first accepted message, which starts the
-- contact's conversation and so counts against the plan's monthly conversations.
create table channel_contacts (
    inbox_id varchar(36) not null,
    source_id varchar(255) not null,
    origin varchar(32) not null,
    name varchar(255),
    email varchar(320),
    phone varchar(255),
    created_at bigint not null,
    first_message_at bigint,
    primary key (inbox_id, source_id)
);

-- Every accepted post, raw, for dedupe and audit. The unique key makes a retried post with the same
-- Idempotency-Key a replay, even when two copies race; body_sha256 tells a true retry from a key reused
-- for another body. message_id is the id chosen for the message, which the inbox service stores it under,
-- so a replay can answer with it. Widget posts may come without a key (null keys never collide, in
-- MySQL/MariaDB unique indexes as in SQLite's).
create table inbound_events (
    id varchar(36) not null primary key,
    inbox_id varchar(36) not null,
    idempotency_key varchar(255),
    body_sha256 varchar(64) not null,
    payload mediumtext not null,
    source_id varchar(255) not null,
    message_id varchar(36) not null,
    received_at bigint not null,
    unique (inbox_id, idempotency_key)
);

-- What a contact sees: their messages and agents' replies, never private notes. Fed by accepted posts and
-- by `message.created` (outgoing) events, because the inbox service's tables are not ours to read.
-- delivery_status is set for replies only.
create table transcript_entries (
    message_id varchar(36) not null primary key,
    inbox_id varchar(36) not null,
    source_id varchar(255) not null,
    direction varchar(32) not null,
    content mediumtext not null,
    conversation_id varchar(36),
    created_at bigint not null,
    delivery_status varchar(32),
    delivery_reason text
);

create index transcript_entries_by_contact on transcript_entries (inbox_id, source_id, created_at);

-- Replies to POST to the channel's callback URL. Rows, not memory, so a restart loses none: the worker
-- picks up every pending row whose next_attempt_at has come. An attempt first pushes next_attempt_at past
-- its own timeout (a lease), so a crash mid-attempt retries later rather than never, and two workers
-- cannot send the same attempt. payload is built once, so every attempt sends the same body.
create table reply_deliveries (
    id varchar(36) not null primary key,
    message_id varchar(36) not null unique,
    inbox_id varchar(36) not null,
    account_id varchar(36) not null,
    payload mediumtext not null,
    status varchar(32) not null,
    attempts bigint not null,
    next_attempt_at bigint not null,
    last_error text,
    created_at bigint not null,
    updated_at bigint not null
);

create index reply_deliveries_due on reply_deliveries (status, next_attempt_at);
