-- Rows of every kind a copy between engines must carry unchanged (`transfer` tests): a generated
-- integer key, reals, booleans, bytes, nulls, Japanese text, and a child table with a composite key.
create table samples (
    seq integer primary key,
    label text not null,
    amount real,
    flag boolean not null,
    payload blob
);

create table sample_tags (
    sample_seq bigint not null references samples (seq),
    tag text not null,
    primary key (sample_seq, tag)
);
