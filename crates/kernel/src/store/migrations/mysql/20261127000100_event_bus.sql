-- The kernel's event-bus tables, created in every service's namespace next to the service's own tables and
-- tracked in their own history (`_kernel_migrations`). Only the kernel reads or writes them; the namespace
-- audit refuses service SQL that names them.
--
-- MySQL/MariaDB port of the SQLite file of the same name: the namespace is one database created with
-- utf8mb4 / utf8mb4_bin (binary comparisons, as in SQLite); ids are varchar(36) UUID text, every integer is
-- a bigint (the Rust side decodes i64), names and kinds are bounded varchars, envelopes and payloads
-- mediumtext (16 MiB), free text text (64 KiB).

-- The transactional outbox: an event is inserted in the same transaction as the state change it reports,
-- so an event exists if and only if the change committed. The relay publishes rows in `seq` order and
-- stamps `published_at` once the transport has confirmed them.
create table _outbox (
    seq bigint not null auto_increment primary key,
    id varchar(36) not null unique,
    kind varchar(255) not null,
    version bigint not null,
    occurred_at bigint not null,
    producer varchar(255) not null,
    account_id varchar(36),
    event_key varchar(255) not null,
    payload mediumtext not null,
    trace text,
    published_at bigint,
    attempts bigint not null default 0,
    last_error text
);

create index _outbox_unpublished on _outbox (published_at, seq);

-- The events this service has applied, recorded in the same transaction as their effect: a redelivered
-- event finds its id here and changes nothing (effectively-once processing over at-least-once delivery).
create table _processed_events (
    event_id varchar(36) not null,
    consumer varchar(255) not null,
    processed_at bigint not null,
    primary key (event_id, consumer)
);

-- Events a consumer gave up on after its retries, kept whole so they can be inspected and replayed
-- (`omnidesk events failed`, `omnidesk events replay`).
create table _dead_letters (
    event_id varchar(36) not null,
    consumer varchar(255) not null,
    envelope mediumtext not null,
    error text not null,
    attempts bigint not null,
    failed_at bigint not null,
    replay_requested_at bigint,
    primary key (event_id, consumer)
);

-- The namespace's write lock: every write transaction locks this one row first (`select … for update`),
-- so processes writing to one namespace wait for each other as SQLite's single writer makes them, and
-- auto_increment values are committed in the order they are taken.
create table _write_lock (
    id bigint not null primary key
);
insert into _write_lock (id) values (1);
