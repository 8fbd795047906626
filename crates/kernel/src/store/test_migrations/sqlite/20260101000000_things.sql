-- A fixture namespace for the kernel's own storage tests.
create table things (
    id text primary key,
    name text not null unique
);
