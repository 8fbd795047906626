-- The payment service's namespace: what the payment provider told us, and what we derived from it.
--
-- MySQL/MariaDB port of the SQLite file of the same name (database utf8mb4 / utf8mb4_bin; ids varchar(36),
-- provider ids varchar(255), enum-like text varchar(32), every integer a bigint).

-- One row per account that has started paying: the provider's customer and subscription, and where the
-- subscription stands. Updated from webhooks; the provider is the source of truth.
create table billing_profiles (
    account_id varchar(36) not null primary key,
    provider_customer_id varchar(255),
    provider_subscription_id varchar(255),
    plan_code varchar(255),
    status varchar(32) not null,
    current_period_end bigint,
    updated_at bigint not null
);

create index billing_profiles_by_customer on billing_profiles (provider_customer_id);

-- Payments and failed attempts, one per provider invoice and outcome. Amounts are in the currency's
-- smallest unit (yen have no minor unit).
create table payments (
    id varchar(36) not null primary key,
    account_id varchar(36) not null,
    provider_invoice_id varchar(255) not null,
    status varchar(32) not null check (status in ('paid', 'failed')),
    amount bigint not null,
    currency varchar(32) not null,
    plan_code varchar(255),
    period_end bigint,
    created_at bigint not null,
    unique (provider_invoice_id, status)
);

create index payments_by_account on payments (account_id, created_at);

-- Every provider event id we have processed, written in the same transaction as its effect: Stripe
-- delivers at least once, and a redelivery must change nothing.
create table provider_events (
    event_id varchar(255) not null primary key,
    kind varchar(255) not null,
    received_at bigint not null
);
