//! The user service owns who can sign in and where: users, accounts (workspaces), memberships and
//! refresh tokens, under `/api/users` (the seed's routes, verbatim, plus refresh and logout).
//!
//! It is also the token issuer: it signs the short-lived access tokens every other service verifies on its
//! own (DESIGN §4). It asks the plan service, through [`PlanPort`](contracts::plan::PlanPort), which plan
//! an account is on.

mod credentials;
mod domain;
mod http;
mod limits;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::plan::PlanPort;
use kernel::http::Problem;
use kernel::ports::PortError;
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The user service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::USER,
    summary: "users, accounts, memberships, sessions; issues access tokens",
    prefixes: &["/api/users"],
    depends_on: &[contracts::services::PLAN],
    issues_tokens: true,
    migrations: Some(Migrations { sqlite: &MIGRATIONS }),
    routes: || http::routes().table(),
    start: |context| Box::pin(start(context)),
};

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let auth = &context.config().auth;
    let users = http::Users {
        store: store::Store::new(context.namespace()),
        plans: context.port::<dyn PlanPort>()?,
        signer: context.token_signer()?,
        limits: limits::LoginLimits::new(
            auth.login_attempts_per_email_per_minute,
            auth.login_attempts_per_ip_per_minute,
        ),
        refresh_ttl: Duration::from_secs(auth.refresh_token_ttl_secs),
    };
    Ok(http::routes().into_router(Arc::new(users)))
}

/// Everything a user-service request can fail with, and how each is answered.
#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error("invalid input")]
    Invalid(Problem),
    #[error("e-mail already registered")]
    EmailTaken,
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("too many login attempts")]
    RateLimited(u64),
    #[error("user not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Dependency(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Problem> for UserError {
    fn from(problem: Problem) -> Self {
        UserError::Invalid(problem)
    }
}

impl From<UserError> for Problem {
    fn from(error: UserError) -> Self {
        match error {
            UserError::Invalid(problem) => problem,
            UserError::EmailTaken => {
                Problem::conflict("email_taken", "An account with this e-mail address already exists.")
            }
            UserError::InvalidCredentials => {
                Problem::unauthorized("invalid_credentials", "The e-mail address or password is wrong.")
            }
            UserError::InvalidRefreshToken => Problem::unauthorized(
                "invalid_refresh_token",
                "The refresh token is unknown, expired, revoked or already used; log in again.",
            ),
            UserError::RateLimited(retry_after) => Problem::too_many_requests("login_rate_limited", retry_after),
            UserError::NotFound => Problem::not_found("user_not_found", "No such user in your account."),
            UserError::Forbidden(why) => Problem::new(StatusCode::FORBIDDEN, "forbidden", why),
            UserError::Dependency(error) => error.into(),
            UserError::Store(error) => Problem::internal(&error),
            UserError::Internal(error) => Problem::internal(&error),
        }
    }
}

impl IntoResponse for UserError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
