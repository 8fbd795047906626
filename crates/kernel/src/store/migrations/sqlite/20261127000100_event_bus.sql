-- The kernel's event-bus tables, created in every service's namespace next to the service's own tables and
-- tracked in their own history (`_kernel_migrations`). Only the kernel reads or writes them; the namespace
-- audit refuses service SQL that names them.

-- The transactional outbox: an event is inserted in the same transaction as the state change it reports,
-- so an event exists if and only if the change committed. The relay publishes rows in `seq` order and
-- stamps `published_at` once the transport has confirmed them.
create table _outbox (
    seq integer primary key autoincrement,
    id text not null unique,
    kind text not null,
    version integer not null,
    occurred_at bigint not null,
    producer text not null,
    account_id text,
    event_key text not null,
    payload text not null,
    trace text,
    published_at bigint,
    attempts integer not null default 0,
    last_error text
);

create index _outbox_unpublished on _outbox (published_at, seq);

-- The events this service has applied, recorded in the same transaction as their effect: a redelivered
-- event finds its id here and changes nothing (effectively-once processing over at-least-once delivery).
create table _processed_events (
    event_id text not null,
    consumer text not null,
    processed_at bigint not null,
    primary key (event_id, consumer)
);

-- Events a consumer gave up on after its retries, kept whole so they can be inspected and replayed
-- (`omnidesk events failed`, `omnidesk events replay`).
create table _dead_letters (
    event_id text not null,
    consumer text not null,
    envelope text not null,
    error text not null,
    attempts integer not null,
    failed_at bigint not null,
    replay_requested_at bigint,
    primary key (event_id, consumer)
);
