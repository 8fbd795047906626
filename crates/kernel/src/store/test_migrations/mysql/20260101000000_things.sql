-- A fixture namespace for the kernel's own storage tests.
create table things (
    id varchar(255) primary key,
    name varchar(255) not null unique
);
