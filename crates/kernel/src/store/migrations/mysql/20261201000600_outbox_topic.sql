-- An event's topic (`Event::topic`, e.g. a message's direction), which a broker routes by after the type:
-- consumers that want only some topics of a type are not sent the others. Events written before have none,
-- and go to every consumer of their type, as they did. (Added last, as in SQLite, so the column order is
-- the same and rows copy 1:1.)
alter table _outbox add column topic varchar(255);
