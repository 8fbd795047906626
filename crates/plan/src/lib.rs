//! The plan service owns the plan catalogue, each account's subscription and its usage counters
//! (`/api/plan`, `/api/plans`). Its features arrive with the account-domain issue; until then it answers
//! [`PlanPort`] with the plan every new account starts on, free, and serves no public routes.

use std::sync::Arc;

use contracts::AccountId;
use contracts::plan::{PlanPort, PlanSummary};
use kernel::ports::PortError;
use kernel::{ServiceContext, ServiceSpec};

/// The plan service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    start: |context| Box::pin(start(context)),
    ..ServiceSpec::without_features(
        contracts::services::PLAN,
        "plans, subscriptions, usage",
        &["/api/plan", "/api/plans"],
    )
};

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    context.provide::<dyn PlanPort>(Arc::new(Plans))?;
    Ok(axum::Router::new())
}

/// Answers plan questions. Without subscriptions stored yet, every account is on the free plan.
struct Plans;

#[async_trait::async_trait]
impl PlanPort for Plans {
    async fn plan_of(&self, _account: AccountId) -> Result<PlanSummary, PortError> {
        Ok(PlanSummary {
            code: "free".to_owned(),
            name: "Free".to_owned(),
        })
    }
}
