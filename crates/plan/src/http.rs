//! The plan service's public routes — the seed's `GET /api/plan` and `POST /api/plan/register/:plan_token`
//! — plus the catalogue.

use std::sync::Arc;

use axum::extract::State;
use contracts::Role;
use kernel::auth::Caller;
use kernel::http::{Path, Problem};
use kernel::routes::Routes;
use serde::Serialize;
use time::OffsetDateTime;

use crate::catalogue::{self, PLANS, Plan};
use crate::plans::{Plans, RedeemError, period};

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
    line_pushes: i64,
}

/// `GET /api/plan`: the caller's account's plan, its limits and month-to-date usage.
async fn get_plan(State(plans): State<AppState>, caller: Caller) -> Result<axum::Json<CurrentPlan>, Problem> {
    let subscription = plans.store.subscription(caller.account).await.map_err(|e| Problem::internal(&e))?;
    let plan = catalogue::plan_or_free(subscription.as_ref().map_or(catalogue::FREE, |s| s.plan_code.as_str()));
    let period = period(OffsetDateTime::now_utc());
    let mut usage = Usage::default();
    for (counter, value) in plans.store.usage(caller.account, &period).await.map_err(|e| Problem::internal(&e))? {
        match counter.as_str() {
            "conversations" => usage.conversations = value,
            "line_pushes" => usage.line_pushes = value,
            _ => {}
        }
    }
    Ok(axum::Json(CurrentPlan { plan, since: subscription.map(|s| s.changed_at), usage, period }))
}

/// `GET /api/plans`: the catalogue, public.
async fn list_plans() -> axum::Json<&'static [Plan]> {
    axum::Json(PLANS)
}

/// `POST /api/plan/register/:plan_token`: moves the caller's account to the token's plan. Owners and
/// admins only; the token is single-use, expiring and bound to one account.
async fn register_plan(
    State(plans): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<axum::Json<CurrentPlan>, Problem> {
    if caller.role == Role::Agent {
        return Err(Problem::forbidden("forbidden", "Only owners and admins may change the plan."));
    }
    let namespace = plans.store.namespace().clone();
    let mut tx = namespace.begin().await.map_err(|e| Problem::internal(&e))?;
    let plan = Plans::redeem(&mut tx, caller.account, &token).await.map_err(|error| match error {
        RedeemError::NotFound => Problem::not_found("plan_token_not_found", "No such plan token for your account."),
        RedeemError::Used => Problem::conflict("plan_token_used", "This plan token has already been used."),
        RedeemError::Expired => {
            Problem::new(axum::http::StatusCode::GONE, "plan_token_expired", "This plan token has expired.")
        }
        RedeemError::Store(e) => Problem::internal(&e),
    })?;
    tx.commit().await.map_err(|e| Problem::internal(&e))?;
    Ok(axum::Json(CurrentPlan {
        plan,
        since: Some(crate::plans::now_ms()),
        usage: Usage::default(),
        period: period(OffsetDateTime::now_utc()),
    }))
}
