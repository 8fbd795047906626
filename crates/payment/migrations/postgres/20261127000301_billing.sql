-- The payment service's namespace: what the payment provider told us, and what we derived from it.

-- One row per account that has started paying: the provider's customer and subscription, and where the
-- subscription stands. Updated from webhooks; the provider is the source of truth.
create table billing_profiles (
    account_id text primary key,
    provider_customer_id text,
    provider_subscription_id text,
    plan_code text,
    status text not null,
    current_period_end bigint,
    updated_at bigint not null
);

create index billing_profiles_by_customer on billing_profiles (provider_customer_id);

-- Payments and failed attempts, one per provider invoice and outcome. Amounts are in the currency's
-- smallest unit (yen have no minor unit).
create table payments (
    id text primary key,
    account_id text not null,
    provider_invoice_id text not null,
    status text not null check (status in ('paid', 'failed')),
    amount bigint not null,
    currency text not null,
    plan_code text,
    period_end bigint,
    created_at bigint not null,
    unique (provider_invoice_id, status)
);

create index payments_by_account on payments (account_id, created_at);

-- Every provider event id we have processed, written in the same transaction as its effect: Stripe
-- delivers at least once, and a redelivery must change nothing.
create table provider_events (
    event_id text primary key,
    kind text not null,
    received_at bigint not null
);
