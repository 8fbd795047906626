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
use kernel::http::{ClientIp, FieldError, Json, Path};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
        .post("/api/users/register", register_user)
        .post("/api/users/login", login_user)
        .post("/api/users/refresh", refresh_session)
        .post("/api/users/logout", logout_user)
        .post("/api/users/logout-all", logout_everywhere)
        .put("/api/users/update-language", update_language)
        .get("/api/users", members::list_members)
        // Static segments win over `{id}` in the router, so these never reach the per-user routes below.
        .get("/api/users/invitations", members::list_invitations)
        .post("/api/users/invitations", members::invite_member)
        .post("/api/users/invitations/accept", members::accept_invitation)
        .delete("/api/users/invitations/{id}", members::revoke_invitation)
        .get("/api/users/{id}", get_user)
        .put("/api/users/{id}", update_user)
        .delete("/api/users/{id}", members::remove_member)
}

// ---- Request and response bodies -------------------------------------------------------------------

#[derive(Deserialize)]
struct RegisterRequest {
    email: String,
    password: String,
    name: String,
    #[serde(default)]
    language: Option<String>,
    /// The new account's (workspace's) name; defaults to the user's name.
    #[serde(default)]
    account_name: Option<String>,
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    current_password: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Deserialize)]
struct UpdateLanguageRequest {
    language: String,
}

#[derive(Serialize)]
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

#[derive(Serialize)]
struct AccountView {
    id: AccountId,
    name: String,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<PlanSummary>,
}

#[derive(Serialize)]
struct UserWithAccount {
    #[serde(flatten)]
    user: UserView,
    account: AccountView,
}

#[derive(Serialize)]
struct Registered {
    user: UserView,
    account: AccountView,
}

#[derive(Serialize)]
struct Session {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    refresh_expires_in: u64,
    user: UserView,
    account: AccountView,
}

// ---- Handlers ---------------------------------------------------------------------------------------

/// `POST /api/users/register`: creates the user and their account, with the user as its owner.
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

/// `POST /api/users/login`: exchanges e-mail and password for an access token and a refresh token.
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

/// `POST /api/users/refresh`: rotates a refresh token into a new session. Presenting a token that was
/// already rotated means it leaked: the whole family is revoked.
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

/// `POST /api/users/logout`: revokes the session the refresh token belongs to. Always 204, so the
/// endpoint says nothing about which tokens exist.
async fn logout_user(State(users): State<AppState>, Json(body): Json<RefreshRequest>) -> Result<StatusCode, UserError> {
    if let Some(token) = users.store.refresh_token_by_hash(&refresh_token_hash(&body.refresh_token)).await? {
        users.store.revoke_refresh_family(&token.family_id, now_ms()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users/logout-all`: ends every session of the caller, in every account: refresh tokens are
/// revoked, and access tokens (this one included) are refused everywhere within a second.
async fn logout_everywhere(State(users): State<AppState>, caller: Caller) -> Result<StatusCode, UserError> {
    let revocation = users.store.end_sessions_of_user(caller.user, now_ms()).await?;
    users.revoker.revoked(&[revocation]);
    tracing::info!(user.id = %caller.user, "every session signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/:id`: the caller, or a member of the caller's account, with the account's plan.
async fn get_user(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> Result<Json<UserWithAccount>, UserError> {
    let (user, membership) = visible_member(&users, &caller, id).await?;
    let plan = users.plans.plan_of(membership.account_id).await?;
    Ok(Json(UserWithAccount { user: view(&user), account: account_view(membership, Some(plan)) }))
}

/// `PUT /api/users/:id`: a user changes their own name, e-mail, password (with the current one) and
/// language; an account's owner or admin may change a member's name and language.
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

/// `PUT /api/users/update-language`: the caller's interface language (`ja` or `en`).
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
