-- The user service's namespace: who can sign in, which accounts (workspaces) exist, who belongs to which,
-- and the refresh tokens that keep sessions alive. Nothing outside this service reads these tables.
--
-- Portable on purpose (the same shape will be written for PostgreSQL and MariaDB): ids are UUID text,
-- instants are Unix milliseconds in a bigint, enums are checked text.

-- An account is the tenant: every other service scopes its data by account id.
create table accounts (
    id text primary key,
    name text not null,
    created_at bigint not null
);

-- E-mail addresses are stored lowercased, so the unique index makes them case-insensitively unique.
create table users (
    id text primary key,
    email text not null unique,
    password_hash text not null,
    name text not null,
    language text not null check (language in ('ja', 'en')),
    created_at bigint not null,
    updated_at bigint not null
);

create table memberships (
    account_id text not null references accounts (id),
    user_id text not null references users (id),
    role text not null check (role in ('owner', 'admin', 'agent')),
    created_at bigint not null,
    primary key (account_id, user_id)
);

-- Login picks the user's account; the primary key leads with the account, so look-ups by user need this.
create index memberships_by_user on memberships (user_id);

-- Only a SHA-256 of each refresh token is kept: a copy of this table does not let anyone sign in.
-- Tokens rotate on every use; all tokens descended from one login share a family, so presenting an
-- already-used token (a sign of theft) revokes the whole family.
create table refresh_tokens (
    id text primary key,
    family_id text not null,
    user_id text not null references users (id),
    account_id text not null references accounts (id),
    token_hash text not null unique,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    revoked_at bigint
);

create index refresh_tokens_by_family on refresh_tokens (family_id);
create index refresh_tokens_by_user on refresh_tokens (user_id);
