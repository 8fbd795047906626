-- The inbox service's namespace: where agents work. Inboxes, contacts, conversations, messages, labels,
-- canned responses, the search index and the realtime feed. Nothing outside this service reads these tables.
--
-- Portable shape (ids are UUID text, instants Unix milliseconds in bigints, enums checked text). SQLite's
-- engine-specific FTS5 search index is replaced here (as in PostgreSQL) by two plain tables the service
-- fills itself: search_documents and search_terms.
--
-- Every table carries account_id, and every query filters by it: tenancy is enforced by the queries, not
-- by trusting ids from clients.
--
-- MySQL/MariaDB: the database is created utf8mb4 / utf8mb4_bin, so comparisons are binary as in SQLite.
-- Ids are varchar(36); keys and indexed strings are bounded varchars (every index under InnoDB's 3072-byte
-- limit at 4 bytes a character); message content and JSON are mediumtext; every integer is a bigint.
-- Foreign keys are table constraints: MySQL 8 parses and ignores `references` on a column. InnoDB indexes
-- each foreign-key column; every one here is the leading column of an index below, so it adds none.

-- One inbox per channel endpoint. The channel's public identifier and secret belong to the input service;
-- the identifier is kept here only to show it.
create table inboxes (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    name varchar(255) not null,
    channel varchar(32) not null check (channel in ('api', 'web_widget', 'line', 'email')),
    identifier varchar(255),
    callback_url text,
    created_at bigint not null,
    updated_at bigint not null
);

create index inboxes_by_account on inboxes (account_id, created_at);

-- Agents who answer an inbox. Agents see only their inboxes' conversations; owners and admins see all.
create table inbox_members (
    inbox_id varchar(36) not null,
    user_id varchar(36) not null,
    account_id varchar(36) not null,
    created_at bigint not null,
    primary key (inbox_id, user_id),
    foreign key (inbox_id) references inboxes (id) on delete cascade
);

create index inbox_members_by_user on inbox_members (account_id, user_id);

create table contacts (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    name varchar(255),
    email varchar(320),
    phone varchar(255),
    created_at bigint not null,
    updated_at bigint not null
);

create index contacts_by_account on contacts (account_id, created_at);

-- How channels identify a contact. The same identity on one inbox is the same contact, whatever name or
-- e-mail it arrives with.
create table contact_identities (
    inbox_id varchar(36) not null,
    source_id varchar(255) not null,
    account_id varchar(36) not null,
    contact_id varchar(36) not null,
    created_at bigint not null,
    primary key (inbox_id, source_id),
    foreign key (contact_id) references contacts (id)
);

create index contact_identities_by_contact on contact_identities (contact_id);

-- One conversation per contact per inbox: a contact who writes again after it was resolved reopens it.
-- display_id is the per-account number agents say aloud ("#42"). The last-message columns and
-- unread_count are kept here so that the conversation list is one indexed read, however long the page.
create table conversations (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    inbox_id varchar(36) not null,
    contact_id varchar(36) not null,
    display_id bigint not null,
    status varchar(32) not null check (status in ('open', 'pending', 'resolved', 'snoozed')),
    snoozed_until bigint,
    priority varchar(32) not null default 'none' check (priority in ('none', 'low', 'medium', 'high', 'urgent')),
    assignee_id varchar(36),
    unread_count bigint not null default 0,
    last_message_at bigint not null,
    last_message_preview text,
    last_message_kind varchar(32),
    created_at bigint not null,
    updated_at bigint not null,
    unique (account_id, display_id),
    unique (inbox_id, contact_id),
    foreign key (inbox_id) references inboxes (id),
    foreign key (contact_id) references contacts (id)
);

-- The list is ordered by latest activity: walking this index in order, a page stops after its last row
-- instead of sorting the whole account. Status, assignee and inbox narrow it further.
create index conversations_by_activity on conversations (account_id, last_message_at, id);
create index conversations_by_status on conversations (account_id, status, last_message_at, id);
-- The tab counts read only this index.
create index conversations_by_tabs on conversations (account_id, status, inbox_id, assignee_id);
create index conversations_by_assignee on conversations (account_id, assignee_id, status, last_message_at);
create index conversations_by_inbox on conversations (inbox_id, status, last_message_at);
create index conversations_by_contact on conversations (contact_id);

create table labels (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    name varchar(255) not null,
    colour varchar(32) not null,
    description text,
    created_at bigint not null,
    unique (account_id, name)
);

create table conversation_labels (
    conversation_id varchar(36) not null,
    label_id varchar(36) not null,
    account_id varchar(36) not null,
    created_at bigint not null,
    primary key (conversation_id, label_id),
    foreign key (conversation_id) references conversations (id) on delete cascade,
    foreign key (label_id) references labels (id) on delete cascade
);

create index conversation_labels_by_label on conversation_labels (label_id, conversation_id);

-- Incoming and outgoing messages, private notes (kind 'note', never sent) and activity entries (kind
-- 'activity': status changed, assigned, labelled). An incoming message's id is the one the input service
-- chose when it accepted the post, so a redelivered event finds the row already there.
create table messages (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    conversation_id varchar(36) not null,
    kind varchar(32) not null check (kind in ('incoming', 'outgoing', 'note', 'activity')),
    content mediumtext not null,
    sender_id varchar(36),
    -- What an activity entry records, as JSON ({"action": "status_changed", "from": …, "to": …}), so that
    -- the UI can render it in the agent's language. (Text, not the json type: MariaDB's json is longtext
    -- with a check, MySQL's is binary and re-serialises; text keeps the bytes as written, as SQLite does.)
    attributes mediumtext,
    delivery_status varchar(32) check (delivery_status in ('pending', 'sent', 'failed')),
    delivery_error text,
    created_at bigint not null,
    foreign key (conversation_id) references conversations (id)
);

create index messages_by_conversation on messages (conversation_id, created_at, id);

create table canned_responses (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    short_code varchar(255) not null,
    content mediumtext not null,
    created_at bigint not null,
    updated_at bigint not null,
    unique (account_id, short_code)
);

-- What agents' browsers are told, in order, per account. Written in the same transaction as the change it
-- reports, so a client that reconnects with the last seq it saw misses nothing, whatever restarted.
-- (An auto_increment value is taken at insert, not at commit: a reader can see seq 12 committed before
-- seq 11, exactly as with SQLite's single writer it cannot. The feed reader must allow for that.)
create table realtime_feed (
    seq bigint not null auto_increment primary key,
    account_id varchar(36) not null,
    kind varchar(255) not null,
    payload mediumtext not null,
    created_at bigint not null
);

create index realtime_feed_by_account on realtime_feed (account_id, seq);

-- Full-text search over contacts, conversations and messages. Japanese has no spaces between words, so
-- text is indexed as overlapping character bigrams (and whole words for scripts with spaces): a
-- two-character query such as 返品 is one term. SQLite keeps them in an FTS5 table; here (and in
-- PostgreSQL) the service writes the terms itself into two plain tables, and a search is a join on
-- (account_id, term), so it never leaves its tenant.
-- Not a FULLTEXT index: InnoDB's FULLTEXT ignores tokens shorter than innodb_ft_min_token_size (3 by
-- default, a server setting the program cannot change per database) and drops stop words, so two-character
-- Japanese queries would not match; its ngram parser exists in MySQL only, and likewise needs server
-- settings (ngram_token_size).
-- A document: which contact, conversation or message matched, and the conversation it opens.
create table search_documents (
    seq bigint not null auto_increment primary key,
    account_id varchar(36) not null,
    doc_kind varchar(16) not null check (doc_kind in ('contact', 'conversation', 'message')),
    doc_id varchar(36) not null,
    conversation_id varchar(36) null
);

-- Re-indexing or deleting a document finds its rows by what it is.
create index search_documents_by_doc on search_documents (account_id, doc_kind, doc_id);

-- One row per occurrence of a term (a bigram or a word, lowercased) in a document, with its position, so
-- that a phrase is terms at consecutive positions. Deleting a document deletes its terms.
create table search_terms (
    account_id varchar(36) not null,
    term varchar(64) not null,
    doc_seq bigint not null,
    position bigint not null,
    primary key (account_id, term, doc_seq, position),
    foreign key (doc_seq) references search_documents (seq) on delete cascade
);

create index search_terms_by_document on search_terms (doc_seq);

-- A conversation as agents see it in lists and details: with its contact and its label names (joined by
-- the unit separator, U+001F). SQLite flattens the view into each query, so the conversations indexes
-- still serve the filters.
-- MySQL/MariaDB: `group_concat(x, char(31))` becomes `group_concat(x separator x'1f')`: the separator must
-- be a literal, and a hex literal is accepted by both MariaDB and MySQL 8 (it is converted to the result's
-- character set, so the column stays utf8mb4 text). group_concat cuts its result at group_concat_max_len
-- bytes (MariaDB 10.2+ default 1 MiB, MySQL 8 default 1024): the program sets it per session.
-- `algorithm = merge`: MySQL (5.7.11 and later) materialises a view with a correlated subquery in its select
-- list unless told to merge it, which would read every account's conversations for each query; MariaDB
-- merges it either way. Merged, the conversations indexes serve the filters here too.
-- `sql security invoker`: the view runs with the rights of whoever queries it, so it does not depend on the
-- user that created it existing (a copied database, another migration user).
create algorithm = merge sql security invoker view conversation_cards as
select c.id, c.account_id, c.inbox_id, c.display_id, c.status, c.snoozed_until, c.priority, c.assignee_id,
       c.unread_count, c.last_message_at, c.last_message_preview, c.last_message_kind, c.created_at,
       c.updated_at, c.contact_id, k.name as contact_name, k.email as contact_email, k.phone as contact_phone,
       (select group_concat(l.name separator x'1f') from conversation_labels cl join labels l on l.id = cl.label_id
        where cl.conversation_id = c.id) as labels
from conversations c join contacts k on k.id = c.contact_id;
