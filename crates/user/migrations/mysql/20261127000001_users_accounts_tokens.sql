-- The user service's namespace: who can sign in, which accounts (workspaces) exist, who belongs to which,
-- and the refresh tokens that keep sessions alive. Nothing outside this service reads these tables.
--
-- Portable on purpose (the same shape is written for SQLite and PostgreSQL): ids are UUID text, instants
-- are Unix milliseconds in a bigint, enums are checked text.
--
-- MySQL/MariaDB: the database is created utf8mb4 / utf8mb4_bin, so comparisons are binary as in SQLite.
-- Keys and indexed strings are bounded varchars (at 4 bytes a character every index stays under InnoDB's
-- 3072-byte limit); every integer is a bigint. Foreign keys are written as table constraints: MySQL 8
-- parses and silently ignores a `references` clause on a column (MariaDB 10.5+ and MySQL 9 honour it).
-- InnoDB indexes every foreign-key column; where no index of this file leads with the column, it adds one
-- named after the column (here refresh_tokens.account_id), which SQLite does not have.

-- An account is the tenant: every other service scopes its data by account id.
create table accounts (
    id varchar(36) not null primary key,
    name varchar(255) not null,
    created_at bigint not null
);

-- E-mail addresses are stored lowercased, so the unique index makes them case-insensitively unique.
create table users (
    id varchar(36) not null primary key,
    email varchar(320) not null unique,
    password_hash varchar(255) not null,
    name varchar(255) not null,
    language varchar(32) not null check (language in ('ja', 'en')),
    created_at bigint not null,
    updated_at bigint not null
);

create table memberships (
    account_id varchar(36) not null,
    user_id varchar(36) not null,
    role varchar(32) not null check (role in ('owner', 'admin', 'agent')),
    created_at bigint not null,
    primary key (account_id, user_id),
    foreign key (account_id) references accounts (id),
    foreign key (user_id) references users (id)
);

-- Login picks the user's account; the primary key leads with the account, so look-ups by user need this.
-- (It also replaces the index InnoDB made for the user_id foreign key.)
create index memberships_by_user on memberships (user_id);

-- Only a SHA-256 of each refresh token is kept: a copy of this table does not let anyone sign in.
-- Tokens rotate on every use; all tokens descended from one login share a family, so presenting an
-- already-used token (a sign of theft) revokes the whole family.
create table refresh_tokens (
    id varchar(36) not null primary key,
    family_id varchar(36) not null,
    user_id varchar(36) not null,
    account_id varchar(36) not null,
    token_hash varchar(64) not null unique,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    revoked_at bigint,
    foreign key (user_id) references users (id),
    foreign key (account_id) references accounts (id)
);

create index refresh_tokens_by_family on refresh_tokens (family_id);
create index refresh_tokens_by_user on refresh_tokens (user_id);
