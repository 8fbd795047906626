//! The user service's public routes — the seed's, verbatim — plus refresh and logout, and (in
//! [`members`]) the account's member list, invitations and removal.

mod members;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::plan::{PlanPort, PlanSummary};
use contracts::{AccountId, Role, UserId};
use kernel::auth::{Caller, Revoker, TokenSigner};
use kernel::http::{ClientIp, FieldError, Json, Path, Problem};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::UserError;
use crate::credentials::{hash_password, new_refresh_token, refresh_token_hash, verify_password};
use crate::domain::{DisplayName, Email, Fields, Language, Password};
use crate::limits::LoginLimits;
use crate::registration;
use crate::store::{MembershipRow, NewRefreshToken, Store, UserChanges, UserRow};
use kernel::clock::now_ms;

/// What every handler shares.
pub struct Users {
    pub store: Store,
    /// Makes this process refuse the access tokens a change revokes as soon as it commits (other
    /// processes learn it from the revocation log within a second).
    pub revoker: Revoker,
    pub plans: Arc<dyn PlanPort>,
    pub signer: TokenSigner,
    pub limits: Arc<LoginLimits>,
    pub refresh_ttl: Duration,
}

type AppState = Arc<Users>;

/// The routes, declared once for the router and for the route table.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(routes!(register_user))
        .route(routes!(login_user))
        .route(routes!(refresh_session))
        .route(routes!(logout_user))
        .route(routes!(logout_everywhere))
        .route(routes!(update_language))
        .route(routes!(members::list_members))
        // Static segments win over `{id}` in the router, so these never reach the per-user routes below.
        .route(routes!(members::list_invitations, members::invite_member))
        .route(routes!(members::accept_invitation))
        .route(routes!(members::revoke_invitation))
        .route(routes!(get_user, update_user, members::remove_member))
        .route(routes!(members::change_role))
}

// ---- Request and response bodies -------------------------------------------------------------------

/// A new user and the account (workspace) they own.
#[derive(Deserialize, ToSchema)]
struct RegisterRequest {
    /// The sign-in address (at most 254 characters); trimmed and lowercased, unique across users.
    #[schema(example = "aiko@example.jp")]
    email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    /// The user's display name: 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$", example = "山田 愛子")]
    name: String,
    /// The interface language, `ja` (the default) or `en`.
    #[serde(default)]
    #[schema(value_type = Option<Language>, example = "ja")]
    language: Option<String>,
    /// The new account's (workspace's) name, 1 to 100 characters after trimming; defaults to the user's name.
    #[serde(default)]
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$")]
    account_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
struct RefreshRequest {
    /// The refresh token the last login or refresh answered.
    refresh_token: String,
}

/// The fields to change; at least one of `name`, `email`, `password`, `language`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserRequest {
    /// 1 to 100 characters after trimming.
    #[serde(default)]
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$")]
    name: Option<String>,
    /// Only the user themselves may change it; trimmed and lowercased, at most 254 characters.
    #[serde(default)]
    email: Option<String>,
    /// The new password, 8 to 128 characters; only the user themselves may change it, sending
    /// `current_password` too. Changing it ends every session of the user, this one included.
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    password: Option<String>,
    /// The user's current password; required with `password`.
    #[serde(default)]
    current_password: Option<String>,
    /// `ja` or `en`.
    #[serde(default)]
    #[schema(value_type = Option<Language>)]
    language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct UpdateLanguageRequest {
    /// `ja` or `en`.
    #[schema(value_type = Language, example = "en")]
    language: String,
}

/// A user.
#[derive(Serialize, ToSchema)]
struct UserView {
    id: UserId,
    email: String,
    name: String,
    language: Language,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// An account (workspace) as one of its members sees it.
#[derive(Serialize, ToSchema)]
struct AccountView {
    id: AccountId,
    name: String,
    /// The user's role in this account.
    role: Role,
    /// The account's plan; left out of the login, refresh and register answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    plan: Option<PlanSummary>,
}

/// A user (their fields at the top level) with the account the caller shares with them.
#[derive(Serialize, ToSchema)]
struct UserWithAccount {
    #[serde(flatten)]
    user: UserView,
    account: AccountView,
}

#[derive(Serialize, ToSchema)]
struct Registered {
    user: UserView,
    account: AccountView,
}

/// A signed-in session: an access token for `authorization: Bearer …` and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
struct Session {
    /// The access token (a JWT).
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// The single-use token `POST /api/users/refresh` exchanges for a new session.
    refresh_token: String,
    /// Seconds until the refresh token expires.
    refresh_expires_in: u64,
    user: UserView,
    /// The account the session is signed in to.
    account: AccountView,
}

// ---- Handlers ---------------------------------------------------------------------------------------

/// Registers a user and their account.
///
/// Creates the user and their account (workspace), with the user as its owner. Public; the answer does not
/// sign the user in (`POST /api/users/login` does).
#[utoipa::path(post, path = "/api/users/register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The user and their account", body = Registered,
            headers(("location" = String, description = "The new user's URL, `/api/users/{id}`"))),
        (status = 409, description = "`email_taken`: a user with this e-mail address exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors` (email, password, name, language, account_name)", body = Problem),
    ),
)]
async fn register_user(
    State(users): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<Response, UserError> {
    let mut fields = Fields::default();
    let email = fields.check(Email::parse(&body.email));
    let password = fields.check(Password::parse("password", &body.password));
    let name = fields.check(DisplayName::parse("name", &body.name));
    let language = fields.check(body.language.as_deref().map_or(Ok(Language::default()), Language::parse));
    let account_name =
        fields.check(DisplayName::parse("account_name", body.account_name.as_deref().unwrap_or(&body.name)));
    fields.finish()?;
    let (Some(email), Some(password), Some(name), Some(language), Some(account_name)) =
        (email, password, name, language, account_name)
    else {
        return Err(UserError::Internal(anyhow::anyhow!("validated fields missing")));
    };

    let now = now_ms();
    let user = UserRow {
        id: UserId::new(),
        email: email.as_str().to_owned(),
        password_hash: hash_password(password.expose().to_owned()).await?,
        name: name.as_str().to_owned(),
        language,
        created_at: now,
        updated_at: now,
    };
    let account = AccountId::new();
    registration::register(&users.store, &user, account, account_name.as_str()).await.map_err(email_taken)?;
    tracing::info!(user.id = %user.id, account.id = %account, "user registered");

    let location = format!("/api/users/{}", user.id);
    let body = Registered {
        user: view(&user),
        account: AccountView { id: account, name: account_name.as_str().to_owned(), role: Role::Owner, plan: None },
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Signs in.
///
/// Exchanges e-mail and password for an access token and a refresh token, in the user's home account
/// (the one they joined first). Attempts are limited per client and per address.
#[utoipa::path(post, path = "/api/users/login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The new session", body = Session),
        (status = 401, description = "`invalid_credentials`: wrong e-mail or password; `session_ended`: the user's sessions were ended while this one was being opened", body = Problem),
        (status = 422, description = "`validation_failed`: `email` or `password` is missing or not a string", body = Problem),
        (status = 429, description = "`login_rate_limited`: too many attempts", body = Problem,
            headers(("retry-after" = u64, description = "Seconds to wait before trying again"))),
    ),
)]
async fn login_user(
    State(users): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<Json<Session>, UserError> {
    let started = now_ms();
    // Limit by what the client typed (normalised when possible), before any expensive work.
    let email = Email::parse(&body.email);
    let limit_key = email.as_ref().map_or_else(|_| body.email.trim().to_lowercase(), |e| e.as_str().to_owned());
    users.limits.check(&limit_key, ip).map_err(UserError::RateLimited)?;

    let user = match &email {
        Ok(email) => users.store.user_by_email(email.as_str()).await?,
        Err(_) => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !verify_password(body.password, hash).await? {
        users.limits.failed(&limit_key, ip);
        return Err(UserError::InvalidCredentials);
    }
    let user = user.ok_or(UserError::InvalidCredentials)?;
    let membership = users.store.home_membership(user.id).await?.ok_or(UserError::InvalidCredentials)?;
    users.limits.succeeded(&limit_key, ip);
    let family = uuid::Uuid::now_v7().to_string();
    tracing::info!(user.id = %user.id, account.id = %membership.account_id, "user logged in");
    Ok(Json(start_session(&users, user, membership, &family, started).await?))
}

/// Renews a session.
///
/// Rotates a refresh token into a new session (a new access token and a new refresh token; the one sent
/// stops working). Presenting a token that was already rotated means it leaked: the whole family is revoked.
#[utoipa::path(post, path = "/api/users/refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The renewed session", body = Session),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired, revoked or already used; `session_ended`: the user's sessions were ended while this one was being opened", body = Problem),
        (status = 422, description = "`validation_failed`: `refresh_token` is missing or not a string", body = Problem),
    ),
)]
async fn refresh_session(
    State(users): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<Session>, UserError> {
    let now = now_ms();
    let token = users
        .store
        .refresh_token_by_hash(&refresh_token_hash(&body.refresh_token))
        .await?
        .ok_or(UserError::InvalidRefreshToken)?;
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(UserError::InvalidRefreshToken);
    }
    if token.used_at.is_some() || !users.store.mark_refresh_token_used(&token.id, now).await? {
        users.store.revoke_refresh_family(&token.family_id, now).await?;
        tracing::warn!(user.id = %token.user_id, "a rotated refresh token was presented again; session family revoked");
        return Err(UserError::InvalidRefreshToken);
    }
    let user = users.store.user_by_id(token.user_id).await?.ok_or(UserError::InvalidRefreshToken)?;
    let membership = users.store.membership(user.id, token.account_id).await?.ok_or(UserError::InvalidRefreshToken)?;
    Ok(Json(start_session(&users, user, membership, &token.family_id, now).await?))
}

/// Signs out of one session.
///
/// Revokes the session (the refresh token family) the refresh token belongs to. Always 204 for a
/// well-formed body, so the endpoint says nothing about which tokens exist.
#[utoipa::path(post, path = "/api/users/logout",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out (or there was no such session)"),
        (status = 422, description = "`validation_failed`: `refresh_token` is missing or not a string", body = Problem),
    ),
)]
async fn logout_user(State(users): State<AppState>, Json(body): Json<RefreshRequest>) -> Result<StatusCode, UserError> {
    if let Some(token) = users.store.refresh_token_by_hash(&refresh_token_hash(&body.refresh_token)).await? {
        users.store.revoke_refresh_family(&token.family_id, now_ms()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out everywhere.
///
/// Ends every session of the caller, in every account: refresh tokens are revoked, and access tokens
/// (this one included) are refused everywhere within a second.
#[utoipa::path(post, path = "/api/users/logout-all", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
    ),
)]
async fn logout_everywhere(State(users): State<AppState>, caller: Caller) -> Result<StatusCode, UserError> {
    let revocation = users.store.end_sessions_of_user(caller.user, now_ms()).await?;
    users.revoker.revoked(&[revocation]);
    tracing::info!(user.id = %caller.user, "every session signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// A user of the caller's account.
///
/// The caller, or a member of the caller's account, with the account (and its plan). Users of other
/// accounts are not found.
#[utoipa::path(get, path = "/api/users/{id}", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    responses(
        (status = 200, description = "The user and the account", body = UserWithAccount),
        (status = 404, description = "`user_not_found`: no such user in your account", body = Problem),
    ),
)]
async fn get_user(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> Result<Json<UserWithAccount>, UserError> {
    let (user, membership) = visible_member(&users, &caller, id).await?;
    let plan = users.plans.plan_of(membership.account_id).await?;
    Ok(Json(UserWithAccount { user: view(&user), account: account_view(membership, Some(plan)) }))
}

/// Changes a user.
///
/// A user changes their own name, e-mail, password (with the current one) and language; an account's
/// owner or admin may change a member's name and language. A new password ends every session of the
/// user, the caller's included.
#[utoipa::path(put, path = "/api/users/{id}", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The user as stored, and the account", body = UserWithAccount),
        (status = 403, description = "`forbidden`: only owners and admins change other members, and only the user their own e-mail or password", body = Problem),
        (status = 404, description = "`user_not_found`: no such user in your account", body = Problem),
        (status = 409, description = "`email_taken`: another user has this e-mail address", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors` (name, email, password, current_password missing or incorrect, language, an empty body, unknown fields)", body = Problem),
    ),
)]
async fn update_user(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
    Json(body): Json<UpdateUserRequest>,
) -> Result<Json<UserWithAccount>, UserError> {
    let (user, membership) = visible_member(&users, &caller, id).await?;
    let is_self = caller.user == id;
    if !is_self && !caller.role.manages_members() {
        return Err(UserError::Forbidden("Only owners and admins may change other members."));
    }
    if !is_self && (body.email.is_some() || body.password.is_some()) {
        return Err(UserError::Forbidden("Only the user may change their own e-mail or password."));
    }

    let mut fields = Fields::default();
    let mut changes = UserChanges {
        name: body
            .name
            .as_deref()
            .and_then(|n| fields.check(DisplayName::parse("name", n)))
            .map(|n| n.as_str().to_owned()),
        email: body.email.as_deref().and_then(|e| fields.check(Email::parse(e))).map(|e| e.as_str().to_owned()),
        password_hash: None,
        language: body.language.as_deref().and_then(|l| fields.check(Language::parse(l))),
    };
    let new_password = body.password.as_deref().and_then(|p| fields.check(Password::parse("password", p)));
    if body.password.is_some() && body.current_password.is_none() {
        fields.check::<()>(Err(FieldError::new(
            "current_password",
            "required",
            "Changing the password needs the current one.",
        )));
    }
    if body.name.is_none() && body.email.is_none() && body.password.is_none() && body.language.is_none() {
        fields.check::<()>(Err(FieldError::new(
            "body",
            "empty",
            "Send at least one of name, email, password, language.",
        )));
    }
    fields.finish()?;

    let changed_password = if let Some(password) = new_password {
        let current = body.current_password.unwrap_or_default();
        if !verify_password(current, Some(user.password_hash.clone())).await? {
            return Err(UserError::Invalid(vec![FieldError::new(
                "current_password",
                "incorrect",
                "The current password is not correct.",
            )]));
        }
        changes.password_hash = Some(hash_password(password.expose().to_owned()).await?);
        true
    } else {
        false
    };

    let now = now_ms();
    if changed_password {
        // A new password ends every session, this one included: whoever else knew the old password may
        // hold a token.
        let revocation = users.store.update_user_ending_sessions(id, changes, now).await.map_err(email_taken)?;
        users.revoker.revoked(&[revocation]);
    } else {
        users.store.update_user(id, changes, now).await.map_err(email_taken)?;
    }
    let updated = users.store.user_by_id(id).await?.ok_or(UserError::NotFound)?;
    let plan = users.plans.plan_of(membership.account_id).await?;
    Ok(Json(UserWithAccount { user: view(&updated), account: account_view(membership, Some(plan)) }))
}

/// Changes the caller's language.
///
/// Sets the caller's interface language (`ja` or `en`).
#[utoipa::path(put, path = "/api/users/update-language", security(("bearer" = [])),
    request_body = UpdateLanguageRequest,
    responses(
        (status = 200, description = "The caller as stored", body = UserView),
        (status = 404, description = "`user_not_found`: the caller's user no longer exists", body = Problem),
        (status = 422, description = "`validation_failed`: `language` is missing or not `ja` or `en`", body = Problem),
    ),
)]
async fn update_language(
    State(users): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateLanguageRequest>,
) -> Result<Json<UserView>, UserError> {
    let language = Language::parse(&body.language).map_err(|e| UserError::Invalid(vec![e]))?;
    let changes = UserChanges { language: Some(language), ..UserChanges::default() };
    if !users.store.update_user(caller.user, changes, now_ms()).await? {
        return Err(UserError::NotFound);
    }
    let user = users.store.user_by_id(caller.user).await?.ok_or(UserError::NotFound)?;
    Ok(Json(view(&user)))
}

// ---- Helpers ----------------------------------------------------------------------------------------

/// The user `id` as seen from the caller's account: themselves, or a member of the same account.
/// Anyone else is reported as not found, so ids of other tenants' users cannot be probed.
async fn visible_member(users: &Users, caller: &Caller, id: UserId) -> Result<(UserRow, MembershipRow), UserError> {
    let member = users.store.member(id, caller.account).await?.ok_or(UserError::NotFound)?;
    Ok((member.user, member.membership))
}

/// Opens a session for `user` in `membership`'s account: a refresh token in `family` and an access token.
/// `started_ms` is when the request opening it began; both tokens count from then, so that a revocation
/// committed while the request ran (its password or membership checked before it) refuses them too.
async fn start_session(
    users: &Users,
    user: UserRow,
    membership: MembershipRow,
    family: &str,
    started_ms: i64,
) -> Result<Session, UserError> {
    let caller = Caller { user: user.id, account: membership.account_id, role: membership.role };
    let access = users.signer.sign_issued_at(caller, started_ms).map_err(|e| UserError::Internal(e.into()))?;
    let refresh_token = new_refresh_token();
    let now = now_ms();
    let ttl_ms = i64::try_from(users.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
    let stored = users
        .store
        .insert_refresh_token(
            NewRefreshToken {
                family_id: family,
                user_id: user.id,
                account_id: membership.account_id,
                token_hash: &refresh_token_hash(&refresh_token),
                now_ms: now,
                expires_at_ms: now.saturating_add(ttl_ms),
            },
            started_ms,
        )
        .await?;
    if !stored {
        return Err(UserError::SessionEnded);
    }
    Ok(Session {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in.as_secs(),
        refresh_token,
        refresh_expires_in: users.refresh_ttl.as_secs(),
        user: view(&user),
        account: account_view(membership, None),
    })
}

fn view(user: &UserRow) -> UserView {
    UserView {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        language: user.language,
        created_at: from_ms(user.created_at),
        updated_at: from_ms(user.updated_at),
    }
}

fn account_view(membership: MembershipRow, plan: Option<PlanSummary>) -> AccountView {
    AccountView { id: membership.account_id, name: membership.account_name, role: membership.role, plan }
}

fn email_taken(error: kernel::store::StoreError) -> UserError {
    match error {
        kernel::store::StoreError::UniqueViolation { .. } => UserError::EmailTaken,
        other => other.into(),
    }
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
