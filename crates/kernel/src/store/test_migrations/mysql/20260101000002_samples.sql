-- Rows of every kind a copy between engines must carry unchanged (`transfer` tests): a generated
-- integer key, reals, booleans, bytes, nulls, Japanese text, and a child table with a composite key.
create table samples (
    seq bigint not null auto_increment primary key,
    label text not null,
    amount double,
    flag boolean not null,
    payload longblob
);

create table sample_tags (
    sample_seq bigint not null references samples (seq),
    tag varchar(100) not null,
    primary key (sample_seq, tag)
);
