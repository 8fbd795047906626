-- Access tokens revoked before they expire. Access tokens are verified in every process without asking
-- this service, so taking one back means telling every process: a row here says "tokens of this user,
-- in this account (or, with no account, in all of them), issued before revoked_before are refused", and
-- every process reads the rows of the last access-token lifetime twice a second (kernel::auth::revocation).
-- A row is written in the same transaction as what it follows from (a member removed, every session
-- signed out, a password changed), and deleted once every token it concerns has expired.
-- (SQLite's `integer primary key` is the rowid, assigned when the insert gives none: auto_increment here.)
create table access_revocations (
    id bigint not null auto_increment primary key,
    user_id varchar(36) not null,
    -- Null: every account of the user.
    account_id varchar(36),
    revoked_before bigint not null
);

-- Processes read the recent rows; trimming deletes the old ones.
create index access_revocations_by_time on access_revocations (revoked_before);
