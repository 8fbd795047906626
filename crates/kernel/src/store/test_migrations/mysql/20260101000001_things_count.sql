-- A nullable number, for binding a typed null.
alter table things add column count bigint;
