//! An account's people: the member list, invitations (made by owners and admins, accepted by the invitee
//! with a single-use token), changing a member's role and removing a member.
//!
//! Ids from other accounts are always "not found", never "forbidden", so they cannot be probed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::plan::Limited;
use contracts::{Role, UserId};
use kernel::auth::Caller;
use kernel::http::{Json, Path, Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{AppState, Session, from_ms, start_session};
use crate::UserError;
use crate::credentials::hash_password;
use crate::domain::{DisplayName, Email, Fields, InvitationId, InvitedRole, Language, Password};
use crate::members::{INVITATION_TTL, InvitationState, new_invitation_token};
use crate::registration;
use crate::store::{InvitationRow, MemberRow, NewInvitation, Removal, RoleChange, UserRow};
use kernel::clock::now_ms;

/// Whom to invite, and as what.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InviteRequest {
    /// The invitee's address (at most 254 characters; trimmed and lowercased); nobody may already have it.
    #[schema(example = "kenji@example.jp")]
    email: String,
    /// `admin` or `agent` (owners are not invited).
    #[schema(value_type = InvitedRole, example = "agent")]
    role: String,
    /// The invitee's name, to show with the invitation: 1 to 100 characters after trimming.
    #[serde(default)]
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$")]
    name: Option<String>,
}

/// An invitee accepts: the invitation's token and the new user's details.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptRequest {
    /// The invitation's secret token, as `POST /api/users/invitations` answered it.
    token: String,
    /// The new user's display name: 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$", example = "佐藤 健二")]
    name: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    /// The interface language, `ja` (the default) or `en`.
    #[serde(default)]
    #[schema(value_type = Option<Language>)]
    language: Option<String>,
}

/// A member of the account.
#[derive(Serialize, ToSchema)]
pub(super) struct MemberView {
    id: UserId,
    name: String,
    email: String,
    role: Role,
    language: Language,
    /// When the user was created.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// A pending invitation.
#[derive(Serialize, ToSchema)]
pub(super) struct InvitationView {
    id: InvitationId,
    /// The address the invitee will sign in with.
    email: String,
    /// The invitee's name, when the inviter gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    /// The role accepting grants: `admin` or `agent`.
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// After this the token no longer works.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// A new invitation and its token.
#[derive(Serialize, ToSchema)]
pub(super) struct Invited {
    invitation: InvitationView,
    /// The secret to hand to the invitee; it is not stored and cannot be shown again.
    token: String,
}

/// The account's members.
///
/// The members of the caller's account, in the order they joined. Every member may read it.
#[utoipa::path(get, path = "/api/users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The members, in the order they joined", body = [MemberView]),
    ),
)]
pub(super) async fn list_members(
    State(users): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<MemberView>>, UserError> {
    let members = users.store.members(caller.account).await?;
    Ok(Json(members.into_iter().map(member_view).collect()))
}

/// Invites a member.
///
/// An owner or admin invites an e-mail address as an admin or an agent. The invitation takes a seat of the
/// plan's agent limit until it is accepted, revoked or expires; inviting an address again replaces its
/// pending invitation. The answer holds the invitation's token, which is shown only once.
#[utoipa::path(post, path = "/api/users/invitations", security(("bearer" = [])),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invitation and its token", body = Invited),
        (status = 403, description = "`forbidden`: owners and admins only; `plan_limit_reached`: the plan's agent limit", body = Problem),
        (status = 409, description = "`email_taken`: a user with this e-mail address exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors` (email, role, name, unknown fields)", body = Problem),
    ),
)]
pub(super) async fn invite_member(
    State(users): State<AppState>,
    caller: Caller,
    Json(body): Json<InviteRequest>,
) -> Result<Response, UserError> {
    require_manager(&caller, "Only owners and admins may invite members.")?;
    let mut fields = Fields::default();
    let email = fields.check(Email::parse(&body.email));
    let role = fields.check(InvitedRole::parse(&body.role));
    let name = body.name.as_deref().and_then(|n| fields.check(DisplayName::parse("name", n)));
    fields.finish()?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(UserError::Internal(anyhow::anyhow!("validated fields missing")));
    };

    if users.store.user_by_email(email.as_str()).await?.is_some() {
        return Err(UserError::EmailTaken);
    }
    let now = now_ms();
    let seats = users.store.seats_taken(caller.account, now, email.as_str()).await?;
    let allowance = users.plans.allowance(caller.account, Limited::Agents, seats).await?;
    if !allowance.allowed {
        return Err(UserError::PlanLimit(Box::new(allowance)));
    }

    let token = new_invitation_token();
    let ttl_ms = i64::try_from(INVITATION_TTL.as_millis()).unwrap_or(i64::MAX);
    let id = InvitationId::new();
    let expires_at = now.saturating_add(ttl_ms);
    users
        .store
        .replace_invitation(NewInvitation {
            id,
            account_id: caller.account,
            email: email.as_str(),
            name: name.as_ref().map(DisplayName::as_str),
            role: role.role(),
            token_hash: &kernel::auth::token_digest(&token),
            invited_by: caller.user,
            now_ms: now,
            expires_at_ms: expires_at,
        })
        .await?;
    tracing::info!(invitation.id = %id, account.id = %caller.account, user.id = %caller.user, "member invited");

    let invitation = InvitationView {
        id,
        email: email.as_str().to_owned(),
        name: name.map(|n| n.as_str().to_owned()),
        role: role.role(),
        created_at: from_ms(now),
        expires_at: from_ms(expires_at),
    };
    Ok((StatusCode::CREATED, Json(Invited { invitation, token })).into_response())
}

/// The account's pending invitations.
///
/// Invitations not yet accepted, revoked or expired. Owners and admins only.
#[utoipa::path(get, path = "/api/users/invitations", security(("bearer" = [])),
    responses(
        (status = 200, description = "The pending invitations", body = [InvitationView]),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
    ),
)]
pub(super) async fn list_invitations(
    State(users): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<InvitationView>>, UserError> {
    require_manager(&caller, "Only owners and admins may see invitations.")?;
    let pending = users.store.pending_invitations(caller.account, now_ms()).await?;
    Ok(Json(pending.into_iter().map(invitation_view).collect()))
}

/// Revokes an invitation.
///
/// Revokes a pending invitation; its token stops working. Owners and admins only.
#[utoipa::path(delete, path = "/api/users/invitations/{id}", security(("bearer" = [])),
    params(("id" = InvitationId, Path, description = "The invitation")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`invitation_not_found`: no such invitation in your account, or it was accepted already", body = Problem),
    ),
)]
pub(super) async fn revoke_invitation(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<InvitationId>,
) -> Result<StatusCode, UserError> {
    require_manager(&caller, "Only owners and admins may revoke invitations.")?;
    if !users.store.revoke_invitation(caller.account, id).await? {
        return Err(UserError::InvitationNotFound);
    }
    tracing::info!(invitation.id = %id, account.id = %caller.account, "invitation revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation.
///
/// Public: whoever holds the token becomes a member of the inviting account with the invited role, under
/// the invited e-mail address, and is signed in (the answer is the login's).
#[utoipa::path(post, path = "/api/users/invitations/accept",
    request_body = AcceptRequest,
    responses(
        (status = 201, description = "The new member's session", body = Session),
        (status = 401, description = "`session_ended`: the user's sessions were ended while this one was being opened", body = Problem),
        (status = 404, description = "`invitation_not_found`: no such invitation; it may have been revoked or replaced", body = Problem),
        (status = 409, description = "`invitation_used`: accepted already; `email_taken`: a user with the invited address exists", body = Problem),
        (status = 410, description = "`invitation_expired`", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors` (token, name, password, language, unknown fields)", body = Problem),
    ),
)]
pub(super) async fn accept_invitation(
    State(users): State<AppState>,
    Json(body): Json<AcceptRequest>,
) -> Result<Response, UserError> {
    let started = now_ms();
    let mut fields = Fields::default();
    let name = fields.check(DisplayName::parse("name", &body.name));
    let password = fields.check(Password::parse("password", &body.password));
    let language = fields.check(body.language.as_deref().map_or(Ok(Language::default()), Language::parse));
    fields.finish()?;
    let (Some(name), Some(password), Some(language)) = (name, password, language) else {
        return Err(UserError::Internal(anyhow::anyhow!("validated fields missing")));
    };

    let invitation = users
        .store
        .invitation_by_hash(&kernel::auth::token_digest(&body.token))
        .await?
        .ok_or(UserError::InvitationNotFound)?;
    check_acceptable(&invitation, now_ms())?;

    // Hashing takes a while; the invitation is claimed (or found claimed) in the transaction afterwards.
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let now = now_ms();
    let user = UserRow {
        id: UserId::new(),
        email: invitation.email.clone(),
        password_hash,
        name: name.as_str().to_owned(),
        language,
        created_at: now,
        updated_at: now,
    };
    if !registration::accept_invitation(&users.store, &invitation, &user).await.map_err(super::email_taken)? {
        return Err(UserError::InvitationUsed);
    }
    tracing::info!(
        user.id = %user.id, account.id = %invitation.account_id, invitation.id = %invitation.id,
        "invitation accepted"
    );

    let membership = users
        .store
        .membership(user.id, invitation.account_id)
        .await?
        .ok_or_else(|| UserError::Internal(anyhow::anyhow!("the accepted membership is missing")))?;
    let family = uuid::Uuid::now_v7().to_string();
    let session = start_session(&users, user, membership, &family, started).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// Removes a member.
///
/// An owner or admin removes a member from the account and ends their sessions in it: refresh tokens are
/// revoked, and access tokens already issued are refused in every process within a second (their open
/// realtime sockets close). Only an owner removes an owner, nobody removes themselves, and the last owner
/// stays.
#[utoipa::path(delete, path = "/api/users/{id}", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The member")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: owners and admins only, and only an owner removes an owner", body = Problem),
        (status = 404, description = "`user_not_found`: no such member in your account", body = Problem),
        (status = 409, description = "`last_owner`: the account's last owner stays", body = Problem),
        (status = 422, description = "`cannot_remove_self`: members cannot remove themselves", body = Problem),
    ),
)]
pub(super) async fn remove_member(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> Result<StatusCode, UserError> {
    require_manager(&caller, "Only owners and admins may remove members.")?;
    if id == caller.user {
        return Err(UserError::CannotRemoveSelf);
    }
    let member = users.store.member(id, caller.account).await?.ok_or(UserError::NotFound)?;
    if member.membership.role == Role::Owner && caller.role != Role::Owner {
        return Err(UserError::Forbidden("Only an owner may remove an owner."));
    }
    match users.store.remove_member(caller.account, id, now_ms()).await? {
        Removal::Removed(revocation) => {
            users.revoker.revoked(&[revocation]);
            tracing::info!(user.id = %id, account.id = %caller.account, "member removed");
            Ok(StatusCode::NO_CONTENT)
        }
        Removal::NotAMember => Err(UserError::NotFound),
        Removal::LastOwner => Err(UserError::LastOwner),
    }
}

/// A member's new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleRequest {
    #[schema(value_type = Role, example = "admin")]
    role: String,
}

/// Changes a member's role.
///
/// An owner or admin makes a member an admin or an agent; only an owner makes someone an owner or changes
/// an owner's role, and the account's last owner stays one. Nobody changes their own role. The member's
/// access tokens issued before the change are refused from then on, in every process within a second
/// (their open realtime sockets close), so that the next one — renewed with their refresh token, which
/// stays valid — carries the new role.
#[utoipa::path(put, path = "/api/users/{id}/role", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The member")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "The member with their new role", body = MemberView),
        (status = 403, description = "`forbidden`: owners and admins only, and only an owner grants or changes ownership", body = Problem),
        (status = 404, description = "`user_not_found`: no such member in your account", body = Problem),
        (status = 409, description = "`last_owner`: the account's last owner stays an owner", body = Problem),
        (status = 422, description = "`cannot_change_own_role`; `validation_failed`: `role` is not `owner`, `admin` or `agent`", body = Problem),
    ),
)]
pub(super) async fn change_role(
    State(users): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
    Json(body): Json<RoleRequest>,
) -> Result<Json<MemberView>, UserError> {
    require_manager(&caller, "Only owners and admins may change roles.")?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        UserError::Invalid(vec![kernel::http::FieldError::new(
            "role",
            "unsupported",
            "A role is `owner`, `admin` or `agent`.",
        )])
    })?;
    if id == caller.user {
        return Err(UserError::CannotChangeOwnRole);
    }
    match users.store.set_role(caller.account, id, role, caller.role, now_ms()).await? {
        RoleChange::Changed(revocation) => {
            users.revoker.revoked(&[revocation]);
            tracing::info!(user.id = %id, account.id = %caller.account, role = role.as_str(), "role changed");
        }
        RoleChange::Unchanged => {}
        RoleChange::NotAMember => return Err(UserError::NotFound),
        RoleChange::OwnersOnly => return Err(UserError::Forbidden("Only an owner may grant or change ownership.")),
        RoleChange::LastOwner => return Err(UserError::LastOwner),
    }
    let member = users.store.member(id, caller.account).await?.ok_or(UserError::NotFound)?;
    Ok(Json(member_view(member)))
}

fn require_manager(caller: &Caller, why: &'static str) -> Result<(), UserError> {
    if caller.role.manages_members() { Ok(()) } else { Err(UserError::Forbidden(why)) }
}

fn check_acceptable(invitation: &InvitationRow, now_ms: i64) -> Result<(), UserError> {
    match InvitationState::of(invitation, now_ms) {
        InvitationState::Pending => Ok(()),
        InvitationState::Used => Err(UserError::InvitationUsed),
        InvitationState::Expired => Err(UserError::InvitationExpired),
    }
}

fn member_view(row: MemberRow) -> MemberView {
    MemberView {
        id: row.user.id,
        name: row.user.name,
        email: row.user.email,
        role: row.membership.role,
        language: row.user.language,
        created_at: from_ms(row.user.created_at),
    }
}

fn invitation_view(row: InvitationRow) -> InvitationView {
    InvitationView {
        id: row.id,
        email: row.email,
        name: row.name,
        role: row.role,
        created_at: from_ms(row.created_at),
        expires_at: from_ms(row.expires_at),
    }
}
