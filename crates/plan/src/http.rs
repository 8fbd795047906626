//! The plan service's public routes — the seed's `GET /api/plan` and `POST /api/plan/register/:plan_token`
//! — plus the catalogue.

use std::sync::Arc;

use axum::extract::State;
use contracts::AccountId;
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::{Json, Path};
use kernel::routes::Routes;
use serde::Serialize;
use time::OffsetDateTime;

use crate::PlanError;
use crate::catalogue::{self, PLANS, Plan};
use crate::plans::{Plans, period};

type AppState = Arc<Plans>;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/plan", get_plan)
        .get("/api/plans", list_plans)
        .post("/api/plan/register/{plan_token}", register_plan)
}

#[derive(Serialize)]
struct CurrentPlan {
    plan: &'static Plan,
    /// When the account moved to this plan (Unix ms); `None` until its subscription is recorded.
    since: Option<i64>,
    /// Month-to-date usage of the monthly-limited things.
    usage: Usage,
    period: String,
}

#[derive(Serialize, Default)]
struct Usage {
    conversations: i64,
}

/// The account's plan, its limits and month-to-date usage, as stored.
async fn current_plan(plans: &Plans, account: AccountId) -> Result<CurrentPlan, PlanError> {
    let subscription = plans.store.subscription(account).await?;
    let plan = catalogue::plan_or_free(subscription.as_ref().map_or(catalogue::FREE, |s| s.plan_code.as_str()));
    let period = period(OffsetDateTime::now_utc());
    let mut usage = Usage::default();
    for (counter, value) in plans.store.usage(account, &period).await? {
        if counter == "conversations" {
            usage.conversations = value;
        }
    }
    Ok(CurrentPlan { plan, since: subscription.map(|s| s.changed_at), usage, period })
}

/// `GET /api/plan`: the caller's account's plan, its limits and month-to-date usage.
async fn get_plan(State(plans): State<AppState>, caller: Caller) -> Result<Json<CurrentPlan>, PlanError> {
    Ok(Json(current_plan(&plans, caller.account).await?))
}

/// `GET /api/plans`: the catalogue, public.
async fn list_plans() -> Json<&'static [Plan]> {
    Json(PLANS)
}

/// `POST /api/plan/register/:plan_token`: moves the caller's account to the token's plan. Owners and
/// admins only; the token is single-use, expiring and bound to one account. Answers the plan as stored
/// after the change, as `GET /api/plan` would.
async fn register_plan(
    State(plans): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<CurrentPlan>, PlanError> {
    if caller.role == Role::Agent {
        return Err(PlanError::NotAllowed);
    }
    let namespace = plans.store.namespace().clone();
    let mut tx = namespace.begin().await?;
    Plans::redeem(&mut tx, caller.account, &token).await?;
    tx.commit().await?;
    Ok(Json(current_plan(&plans, caller.account).await?))
}
