//! The user service owns who can sign in and where: users, accounts (workspaces), memberships and
//! refresh tokens, under `/api/users` (the seed's routes, verbatim, plus refresh and logout).
//!
//! Owners and admins invite people into their account (as admins or agents); an invitation's token, accepted
//! once, creates the user and their membership and signs them in. Other services ask who belongs to an
//! account through [`UserPort`], which this service provides.
//!
//! It is also the token issuer: it signs the short-lived access tokens every other service verifies on its
//! own (DESIGN §4). It asks the plan service, through [`PlanPort`], which plan
//! an account is on.

mod credentials;
mod domain;
mod http;
mod limits;
mod members;
mod registration;
mod revocations;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use contracts::plan::{Allowance, PlanPort};
use contracts::user::UserPort;
use kernel::http::{FieldError, Problem};
use kernel::ports::PortError;
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

/// The service's tables, per engine.
const MIGRATIONS: Migrations = kernel::migrations!();

/// The user service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::USER,
    summary: "users, accounts, memberships, sessions; issues access tokens",
    prefixes: &["/api/users"],
    depends_on: &[contracts::services::PLAN],
    issues_tokens: true,
    migrations: Some(MIGRATIONS),
    derived: None,
    routes: || http::routes().table(),
    openapi: || http::routes().openapi(),
    start: |context| Box::pin(start(context)),
};

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let auth = &context.config().auth;
    let store = store::Store::new(context.namespace());
    context.provide::<dyn UserPort>(Arc::new(members::Directory { store: store.clone() }))?;
    let revoker = context.keep_revocations(Arc::new(revocations::Log { store: store.clone() }))?;
    // A revocation is needed while tokens issued before it can be valid, plus the verifiers' leeway.
    let keep = Duration::from_secs(auth.access_token_ttl_secs) + Duration::from_secs(60);
    let trimmed = store.clone();
    tokio::spawn(kernel::store::trim_periodically(
        contracts::services::USER,
        "access-token revocations",
        keep,
        revocations::TRIM_EVERY,
        move |before| {
            let store = trimmed.clone();
            async move { store.trim_revocations(before).await }
        },
    ));
    let users = http::Users {
        store,
        revoker,
        plans: context.port::<dyn PlanPort>()?,
        signer: context.token_signer()?,
        limits: limits::LoginLimits::new(limits::LoginLimitSettings {
            per_client: auth.login_attempts_per_ip_per_minute,
            per_address_and_client: auth.login_attempts_per_email_per_client_per_minute,
            failures_per_address: auth.login_failures_per_email_per_minute,
        }),
        refresh_ttl: Duration::from_secs(auth.refresh_token_ttl_secs),
    };
    Ok(http::routes().into_router(Arc::new(users)))
}

/// Everything a user-service request can fail with, and how each is answered.
#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("e-mail already registered")]
    EmailTaken,
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("the sessions were ended while this one was being opened")]
    SessionEnded,
    #[error("too many login attempts")]
    RateLimited(u64),
    #[error("user not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("refused by the account's plan")]
    PlanLimit(Box<Allowance>),
    #[error("invitation not found")]
    InvitationNotFound,
    #[error("invitation already used")]
    InvitationUsed,
    #[error("invitation expired")]
    InvitationExpired,
    #[error("members cannot remove themselves")]
    CannotRemoveSelf,
    #[error("members cannot change their own role")]
    CannotChangeOwnRole,
    #[error("the account's last owner")]
    LastOwner,
    #[error(transparent)]
    Dependency(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<UserError> for Problem {
    fn from(error: UserError) -> Self {
        match error {
            UserError::Invalid(errors) => Problem::validation(errors),
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
            UserError::PlanLimit(allowance) => allowance.refusal(),
            UserError::InvitationNotFound => {
                Problem::not_found("invitation_not_found", "No such invitation; it may have been revoked or replaced.")
            }
            UserError::InvitationUsed => {
                Problem::conflict("invitation_used", "This invitation has been accepted already; log in instead.")
            }
            UserError::InvitationExpired => {
                Problem::new(StatusCode::GONE, "invitation_expired", "This invitation has expired; ask for a new one.")
            }
            UserError::CannotRemoveSelf => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot_remove_self",
                "Members cannot remove themselves from their account.",
            ),
            UserError::CannotChangeOwnRole => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot_change_own_role",
                "Members cannot change their own role; another owner or admin can.",
            ),
            UserError::LastOwner => {
                Problem::conflict("last_owner", "An account keeps at least one owner; this is its last.")
            }
            UserError::Dependency(error) => error.into(),
            UserError::Store(error) => Problem::from_store(&error),
            UserError::SessionEnded => Problem::unauthorized(
                "session_ended",
                "The user's sessions were ended while this one was being opened; sign in again.",
            ),
            UserError::Internal(error) if error.is::<credentials::Busy>() => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "password_hashing_busy",
                "Too many sign-ins are being checked at once; retry in a second.",
            )
            .with_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1")),
            UserError::Internal(error) => Problem::internal(&error),
        }
    }
}

kernel::answered_as_problem!(UserError);
