-- Invitations: how a user joins an existing account (as an admin or an agent) instead of registering one
-- of their own. An owner or admin invites an e-mail address; whoever holds the token can accept it once,
-- choosing their name and password, and becomes a member with the invited role.

-- Like refresh tokens, only a SHA-256 of the token is kept, so a copy of this table lets nobody join.
-- Owners are never invited (an account's owner is whoever registered it), hence the narrower check.
-- A pending invitation (used_at is null, expires_at in the future) holds a seat: the plan's agent limit
-- counts members plus pending invitations, so an account cannot invite past its plan and accept later.
-- Re-inviting an address replaces its pending invitation (the old token stops working); revoking deletes
-- the row. Used invitations stay, so presenting a used token is answered "already used", not "unknown".
-- There is no unique index on (account_id, email) for pending rows: the replacement deletes and inserts in
-- one transaction, and a portable partial unique index does not exist (MariaDB has none).
create table invitations (
    id text primary key,
    account_id text not null references accounts (id),
    email text not null,
    name text,
    role text not null check (role in ('admin', 'agent')),
    token_hash text not null unique,
    invited_by text not null references users (id),
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    -- The user the invitation created, once accepted (for the audit trail).
    accepted_by text references users (id)
);

-- Listing, counting and replacing go by account (and e-mail); the token look-up uses the unique index.
create index invitations_by_account on invitations (account_id, email);
