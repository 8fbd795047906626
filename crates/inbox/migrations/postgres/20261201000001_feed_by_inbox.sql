-- Which inbox a feed row is about (none: the whole account, such as a contact's details), so that an agent's
-- socket sends only what the agent may see over HTTP: the conversations of their inboxes. Rows written
-- before are attributed to their conversation's inbox where they name one.
alter table realtime_feed add column inbox_id text;

update realtime_feed
set inbox_id = (
    select conversations.inbox_id from conversations
    where conversations.id = coalesce(realtime_feed.payload::jsonb #>> '{conversation,id}',
                                      realtime_feed.payload::jsonb #>> '{message,conversation_id}')
);
