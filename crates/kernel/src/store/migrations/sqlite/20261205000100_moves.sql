-- Moves of this namespace to another location (`omnidesk data move`), which is also how the processes
-- serving it learn of one: they read the newest row every few hundred milliseconds. `draining`: the
-- service's writes are refused (503) while the relay publishes the outbox; `copying`: every write is
-- refused while the rows are copied and compared; `switched`: the namespace lives at `target` now and
-- nothing may write here again; `aborted`: the move was given up and this namespace stays authoritative.
-- A draining or copying move whose `lease_until` (Unix ms, renewed by the running command) has passed was
-- interrupted, and writes resume.
create table _kernel_moves (
    id text not null primary key,
    target text not null,
    state text not null,
    lease_until bigint not null,
    started_at bigint not null,
    updated_at bigint not null
);
