//! The plan service owns the plan catalogue (free / starter / pro / business, in `catalogue.rs`), each
//! account's subscription, plan tokens and monthly usage counters, under `/api/plan` and `/api/plans`.
//!
//! Other services ask it through [`PlanPort`] (limits, "may this account do X",
//! usage). It learns of new accounts from `account.created`, of payments from `payment.succeeded` and of
//! ended subscriptions from `subscription.ended` (in `events.rs`), and publishes `plan.changed`.

mod catalogue;
mod events;
mod http;
mod plans;
mod store;

use std::sync::Arc;

use axum::http::StatusCode;
use contracts::account::{AccountCreated, PaymentSucceeded, SubscriptionEnded};
use contracts::plan::PlanPort;
use kernel::http::Problem;
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

/// The service's tables, per engine.
const MIGRATIONS: Migrations = kernel::migrations!();

/// The plan service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::PLAN,
    summary: "plans, subscriptions, plan tokens, usage",
    prefixes: &["/api/plan", "/api/plans"],
    depends_on: &[],
    issues_tokens: false,
    migrations: Some(MIGRATIONS),
    derived: None,
    routes: || http::routes().table(),
    openapi: || http::routes().openapi(),
    start: |context| Box::pin(start(context)),
};

/// The codes of the catalogue's plans, least expensive first.
pub fn plan_codes() -> Vec<&'static str> {
    catalogue::PLANS.iter().map(|plan| plan.code).collect()
}

/// Mints a plan token for `account` directly in the plan namespace at `namespace` (the administrator's
/// `omnidesk plan-token`); returns the token to hand to the account's owner.
pub async fn mint_admin_token(
    namespace: kernel::store::Namespace,
    account: contracts::AccountId,
    plan: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    if catalogue::find(plan).is_none() {
        anyhow::bail!("unknown plan `{plan}`; plans: {}", plan_codes().join(", "));
    }
    let mut tx = namespace.begin().await?;
    let token = plans::Plans::mint_token_for(&mut tx, account, plan, "admin", ttl).await?;
    tx.commit().await?;
    Ok(token)
}

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let plans = Arc::new(plans::Plans { store: store::Store::new(context.namespace()) });
    context.provide::<dyn PlanPort>(plans.clone())?;
    context.subscribe::<AccountCreated, _>(Arc::new(events::StartOnFree))?;
    context.subscribe::<PaymentSucceeded, _>(Arc::new(events::UpgradeOnPayment))?;
    context.subscribe::<SubscriptionEnded, _>(Arc::new(events::DowngradeOnEnd))?;
    Ok(http::routes().into_router(plans))
}

/// Everything a plan-service request can fail with, and how each is answered.
#[derive(Debug, thiserror::Error)]
enum PlanError {
    #[error("only owners and admins may change the plan")]
    NotAllowed,
    #[error("no such plan token for this account")]
    TokenNotFound,
    #[error("the plan token was already used")]
    TokenUsed,
    #[error("the plan token has expired")]
    TokenExpired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PlanError> for Problem {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::NotAllowed => Problem::forbidden("forbidden", "Only owners and admins may change the plan."),
            PlanError::TokenNotFound => {
                Problem::not_found("plan_token_not_found", "No such plan token for your account.")
            }
            PlanError::TokenUsed => Problem::conflict("plan_token_used", "This plan token has already been used."),
            PlanError::TokenExpired => {
                Problem::new(StatusCode::GONE, "plan_token_expired", "This plan token has expired.")
            }
            PlanError::Store(error) => Problem::from_store(&error),
        }
    }
}

kernel::answered_as_problem!(PlanError);
