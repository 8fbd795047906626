-- The input service's namespace: the public endpoints of inboxes (channels), the contacts as channels know
-- them, every accepted inbound post (for dedupe and audit), each contact's transcript, and the replies
-- waiting to be delivered to callback URLs. It never reads the inbox service's tables: what it needs of
-- conversations arrives as events and is kept here.

-- One row per inbox with a public endpoint, registered by the inbox service through InputPort. The
-- identifier is public (it is in the endpoint's URL and a widget's page) and unguessable. The secret is
-- stored in clear, unlike tokens elsewhere, because we need it to sign the callbacks we send, not only to
-- check what we receive; protect backups of this schema like the secret itself. A removed channel keeps its
-- row (removed_at), so its identifier is never handed to another inbox and a re-registration gets it back.
create table channels (
    inbox_id text primary key,
    account_id text not null,
    identifier text not null unique,
    secret text not null,
    kind text not null,
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
    inbox_id text not null,
    source_id text not null,
    origin text not null,
    name text,
    email text,
    phone text,
    created_at bigint not null,
    first_message_at bigint,
    primary key (inbox_id, source_id)
);

-- Every accepted post, raw, for dedupe and audit. The unique key makes a retried post with the same
-- Idempotency-Key a replay, even when two copies race; body_sha256 tells a true retry from a key reused
-- for another body. message_id is the id chosen for the message, which the inbox service stores it under,
-- so a replay can answer with it. Widget posts may come without a key (null keys never collide).
create table inbound_events (
    id text primary key,
    inbox_id text not null,
    idempotency_key text,
    body_sha256 text not null,
    payload text not null,
    source_id text not null,
    message_id text not null,
    received_at bigint not null,
    unique (inbox_id, idempotency_key)
);

-- What a contact sees: their messages and agents' replies, never private notes. Fed by accepted posts and
-- by `message.created` (outgoing) events, because the inbox service's tables are not ours to read.
-- delivery_status is set for replies only.
create table transcript_entries (
    message_id text primary key,
    inbox_id text not null,
    source_id text not null,
    direction text not null,
    content text not null,
    conversation_id text,
    created_at bigint not null,
    delivery_status text,
    delivery_reason text
);

create index transcript_entries_by_contact on transcript_entries (inbox_id, source_id, created_at);

-- Replies to POST to the channel's callback URL. Rows, not memory, so a restart loses none: the worker
-- picks up every pending row whose next_attempt_at has come. An attempt first pushes next_attempt_at past
-- its own timeout (a lease), so a crash mid-attempt retries later rather than never, and two workers
-- cannot send the same attempt. payload is built once, so every attempt sends the same body.
create table reply_deliveries (
    id text primary key,
    message_id text not null unique,
    inbox_id text not null,
    account_id text not null,
    payload text not null,
    status text not null,
    attempts bigint not null,
    next_attempt_at bigint not null,
    last_error text,
    created_at bigint not null,
    updated_at bigint not null
);

create index reply_deliveries_due on reply_deliveries (status, next_attempt_at);
