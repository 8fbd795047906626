-- The inbox service's namespace: where agents work. Inboxes, contacts, conversations, messages, labels,
-- canned responses, the search index and the realtime feed. Nothing outside this service reads these tables.
--
-- Portable shape (ids are UUID text, instants Unix milliseconds in bigints, enums checked text); only the
-- search index differs from SQLite's (FTS5 there; portable tables of tokens here).
--
-- Every table carries account_id, and every query filters by it: tenancy is enforced by the queries, not
-- by trusting ids from clients.

-- One inbox per channel endpoint. The channel's public identifier and secret belong to the input service;
-- the identifier is kept here only to show it.
create table inboxes (
    id text primary key,
    account_id text not null,
    name text not null,
    channel text not null check (channel in ('api', 'web_widget', 'line', 'email')),
    identifier text,
    callback_url text,
    created_at bigint not null,
    updated_at bigint not null
);

create index inboxes_by_account on inboxes (account_id, created_at);

-- Agents who answer an inbox. Agents see only their inboxes' conversations; owners and admins see all.
create table inbox_members (
    inbox_id text not null references inboxes (id) on delete cascade,
    user_id text not null,
    account_id text not null,
    created_at bigint not null,
    primary key (inbox_id, user_id)
);

create index inbox_members_by_user on inbox_members (account_id, user_id);

create table contacts (
    id text primary key,
    account_id text not null,
    name text,
    email text,
    phone text,
    created_at bigint not null,
    updated_at bigint not null
);

create index contacts_by_account on contacts (account_id, created_at);

-- How channels identify a contact. The same identity on one inbox is the same contact, whatever name or
-- e-mail it arrives with.
create table contact_identities (
    inbox_id text not null,
    source_id text not null,
    account_id text not null,
    contact_id text not null references contacts (id),
    created_at bigint not null,
    primary key (inbox_id, source_id)
);

create index contact_identities_by_contact on contact_identities (contact_id);

-- One conversation per contact per inbox: a contact who writes again after it was resolved reopens it.
-- display_id is the per-account number agents say aloud ("#42"). The last-message columns and
-- unread_count are kept here so that the conversation list is one indexed read, however long the page.
create table conversations (
    id text primary key,
    account_id text not null,
    inbox_id text not null references inboxes (id),
    contact_id text not null references contacts (id),
    display_id bigint not null,
    status text not null check (status in ('open', 'pending', 'resolved', 'snoozed')),
    snoozed_until bigint,
    priority text not null default 'none' check (priority in ('none', 'low', 'medium', 'high', 'urgent')),
    assignee_id text,
    unread_count bigint not null default 0,
    last_message_at bigint not null,
    last_message_preview text,
    last_message_kind text,
    created_at bigint not null,
    updated_at bigint not null,
    unique (account_id, display_id),
    unique (inbox_id, contact_id)
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

-- Labels are listed by name and canned responses by short code (which is also matched by prefix, `like
-- 'abc%'`): `collate "C"` orders them by their bytes, as SQLite's default (binary) collation does, rather
-- than by the database's locale, and lets the unique indexes serve the prefix match.
create table labels (
    id text primary key,
    account_id text not null,
    name text collate "C" not null,
    colour text not null,
    description text,
    created_at bigint not null,
    unique (account_id, name)
);

create table conversation_labels (
    conversation_id text not null references conversations (id) on delete cascade,
    label_id text not null references labels (id) on delete cascade,
    account_id text not null,
    created_at bigint not null,
    primary key (conversation_id, label_id)
);

create index conversation_labels_by_label on conversation_labels (label_id, conversation_id);

-- Incoming and outgoing messages, private notes (kind 'note', never sent) and activity entries (kind
-- 'activity': status changed, assigned, labelled). An incoming message's id is the one the input service
-- chose when it accepted the post, so a redelivered event finds the row already there.
create table messages (
    id text primary key,
    account_id text not null,
    conversation_id text not null references conversations (id),
    kind text not null check (kind in ('incoming', 'outgoing', 'note', 'activity')),
    content text not null,
    sender_id text,
    -- What an activity entry records, as JSON ({"action": "status_changed", "from": …, "to": …}), so that
    -- the UI can render it in the agent's language.
    attributes text,
    delivery_status text check (delivery_status in ('pending', 'sent', 'failed')),
    delivery_error text,
    created_at bigint not null
);

create index messages_by_conversation on messages (conversation_id, created_at, id);

create table canned_responses (
    id text primary key,
    account_id text not null,
    short_code text collate "C" not null,
    content text not null,
    created_at bigint not null,
    updated_at bigint not null,
    unique (account_id, short_code)
);

-- What agents' browsers are told, in order, per account. Written in the same transaction as the change it
-- reports, so a client that reconnects with the last seq it saw misses nothing, whatever restarted.
create table realtime_feed (
    seq bigint generated by default as identity primary key,
    account_id text not null,
    kind text not null,
    payload text not null,
    created_at bigint not null
);

create index realtime_feed_by_account on realtime_feed (account_id, seq);

-- Search over contacts, conversations and messages. SQLite's FTS5 table (`search_index`) has no
-- counterpart here, and PostgreSQL's own full-text search (tsvector) is not used either: its parsers split
-- words at spaces and punctuation, so Japanese, written without spaces, would be one word per sentence and a
-- two-character query such as 返品 would match nothing; and its results depend on server settings (the text
-- search configuration, dictionaries, the locale), which the service does not control. Instead the service
-- cuts text into tokens itself, the same way on every engine (inbox/src/search.rs), and stores them in these
-- two plain tables; MariaDB has the same two tables.

-- A searchable document: a contact, a conversation or a message of an account. doc_kind/doc_id/
-- conversation_id say what matched, as FTS5's unindexed columns did.
create table search_documents (
    seq bigint generated by default as identity primary key,
    account_id text not null,
    doc_kind text not null check (doc_kind in ('contact', 'conversation', 'message')),
    doc_id text not null,
    conversation_id text
);

create index search_documents_by_doc on search_documents (account_id, doc_kind, doc_id);

-- The document's tokens (words lowercased, CJK bigrams; see inbox/src/search.rs) with their position,
-- so that a phrase is tokens at consecutive positions. The primary key leads with the account, so a search
-- never leaves its tenant (FTS5's `scope`). `collate "C"` lets the primary key serve prefix matches
-- (`term like 'abc%'`, or the range from the prefix to the prefix followed by U+10FFFF) whatever the
-- database's locale: terms compare by their bytes, which in UTF-8 is code-point order.
create table search_terms (
    account_id text not null,
    term text collate "C" not null,
    doc_seq bigint not null references search_documents (seq) on delete cascade,
    position bigint not null,
    primary key (account_id, term, doc_seq, position)
);

-- Deleting a document cascades to its terms through this index.
create index search_terms_by_document on search_terms (doc_seq);

-- A conversation as agents see it in lists and details: with its contact and its label names (joined by
-- the unit separator, U+001F). PostgreSQL inlines the view into each query, so the conversations indexes
-- still serve the filters.
create view conversation_cards as
select c.id, c.account_id, c.inbox_id, c.display_id, c.status, c.snoozed_until, c.priority, c.assignee_id,
       c.unread_count, c.last_message_at, c.last_message_preview, c.last_message_kind, c.created_at,
       c.updated_at, c.contact_id, k.name as contact_name, k.email as contact_email, k.phone as contact_phone,
       (select string_agg(l.name, chr(31)) from conversation_labels cl join labels l on l.id = cl.label_id
        where cl.conversation_id = c.id) as labels
from conversations c join contacts k on k.id = c.contact_id;
