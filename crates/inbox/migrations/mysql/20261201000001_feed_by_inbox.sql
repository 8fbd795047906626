-- Which inbox a feed row is about (none: the whole account, such as a contact's details), so that an agent's
-- socket sends only what the agent may see over HTTP: the conversations of their inboxes. Rows written
-- before are attributed to their conversation's inbox where they name one.
-- MySQL/MariaDB: SQLite's `payload ->> '$.path'` is `json_value(payload, '$.path')`. MariaDB has no `->>`
-- operator (MySQL has); json_value exists in both (MariaDB 10.2.3+, MySQL 8.0.21+) and, like `->>` in
-- SQLite, gives SQL null for a JSON null or a missing key (json_unquote(json_extract()) would give the
-- string 'null' for a JSON null, and coalesce would not fall through to the message's conversation).
alter table realtime_feed add column inbox_id varchar(36);

update realtime_feed
set inbox_id = (
    select conversations.inbox_id from conversations
    where conversations.id = coalesce(json_value(realtime_feed.payload, '$.conversation.id'),
                                      json_value(realtime_feed.payload, '$.message.conversation_id'))
);
