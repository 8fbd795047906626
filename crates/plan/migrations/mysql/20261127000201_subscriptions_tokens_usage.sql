-- The plan service's namespace. The catalogue itself (plans, prices, limits) is product definition and lives
-- in code (catalogue.rs), versioned with the binary; what is stored is each account's state.
--
-- MySQL/MariaDB port of the SQLite file of the same name (database utf8mb4 / utf8mb4_bin; ids varchar(36),
-- hashes varchar(64), codes varchar(255), every integer a bigint).

-- One row per account: its current plan. Created when `account.created` arrives; every change goes through
-- a plan token, so `changed_by_token` says which token (and so which payment or admin) made the change.
create table subscriptions (
    account_id varchar(36) not null primary key,
    plan_code varchar(255) not null,
    started_at bigint not null,
    changed_at bigint not null,
    changed_by_token varchar(64)
);

-- Single-use, expiring, account-bound tokens that move an account to a plan (the seed's "rebase to new
-- plan"). Minted by the payment flow or an administrator; only a hash is stored, like a password.
create table plan_tokens (
    token_hash varchar(64) not null primary key,
    account_id varchar(36) not null,
    plan_code varchar(255) not null,
    source varchar(255) not null,
    created_at bigint not null,
    expires_at bigint not null,
    redeemed_at bigint
);

create index plan_tokens_by_account on plan_tokens (account_id);

-- Month-to-date counters for monthly limits; `period` is the calendar month in UTC, e.g. '2026-11'.
create table usage_counters (
    account_id varchar(36) not null,
    counter varchar(255) not null,
    period varchar(32) not null,
    value bigint not null,
    primary key (account_id, counter, period)
);
