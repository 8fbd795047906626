//! The plan service's public routes — the seed's `GET /api/plan` and `POST /api/plan/register/:plan_token`
//! — plus the catalogue.

use std::sync::Arc;

use axum::extract::State;
use contracts::AccountId;
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::{Json, Path, Problem};
use kernel::routes::Routes;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::PlanError;
use crate::catalogue::{self, PLANS, Plan};
use crate::plans::{Plans, period};

type AppState = Arc<Plans>;

pub fn routes() -> Routes<AppState> {
    Routes::new().route(routes!(get_plan)).route(routes!(list_plans)).route(routes!(register_plan))
}

/// An account's plan as stored, with its month-to-date usage.
#[derive(Serialize, ToSchema)]
struct CurrentPlan {
    plan: &'static Plan,
    /// When the account moved to this plan (Unix ms); `None` until its subscription is recorded.
    since: Option<i64>,
    /// Month-to-date usage of the monthly-limited things.
    usage: Usage,
    period: String,
}

#[derive(Serialize, Default, ToSchema)]
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

/// The caller's account's plan, its limits and month-to-date usage.
#[utoipa::path(get, path = "/api/plan", security(("bearer" = [])), responses(
    (status = 200, description = "The account's plan", body = CurrentPlan),
))]
async fn get_plan(State(plans): State<AppState>, caller: Caller) -> Result<Json<CurrentPlan>, PlanError> {
    Ok(Json(current_plan(&plans, caller.account).await?))
}

/// The catalogue: every plan, its price, limits and features. Public.
#[utoipa::path(get, path = "/api/plans", responses(
    (status = 200, description = "The plans, least expensive first", body = [Plan]),
))]
async fn list_plans() -> Json<&'static [Plan]> {
    Json(PLANS)
}

/// Moves the caller's account to the token's plan. Owners and admins only; the token is single-use,
/// expiring and bound to one account. Answers the plan as stored after the change, as `GET /api/plan` would.
#[utoipa::path(post, path = "/api/plan/register/{plan_token}", security(("bearer" = [])),
    params(("plan_token" = String, Path, description = "The plan token the operator minted for this account")),
    responses(
        (status = 200, description = "The account's plan after the change", body = CurrentPlan),
        (status = 403, description = "`forbidden`: agents cannot change the plan", body = Problem),
        (status = 404, description = "`plan_token_not_found`: no such token for this account", body = Problem),
        (status = 409, description = "`plan_token_used`", body = Problem),
        (status = 410, description = "`plan_token_expired`", body = Problem),
))]
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
