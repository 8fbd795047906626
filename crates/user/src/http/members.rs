//! An account's people: the member list, invitations (made by owners and admins, accepted by the invitee
//! with a single-use token) and removing a member.
//!
//! Ids from other accounts are always "not found", never "forbidden", so they cannot be probed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::plan::Limited;
use contracts::{Role, UserId};
use kernel::auth::Caller;
use kernel::http::{Json, Path};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AppState, from_ms, start_session};
use crate::UserError;
use crate::credentials::hash_password;
use crate::domain::{DisplayName, Email, Fields, InvitationId, InvitedRole, Language, Password};
use crate::members::{INVITATION_TTL, InvitationState, new_invitation_token};
use crate::registration;
use crate::store::{InvitationRow, MemberRow, NewInvitation, Removal, UserRow};
use kernel::clock::now_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InviteRequest {
    email: String,
    role: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptRequest {
    token: String,
    name: String,
    password: String,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Serialize)]
pub(super) struct MemberView {
    id: UserId,
    name: String,
    email: String,
    role: Role,
    language: Language,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Serialize)]
pub(super) struct InvitationView {
    id: InvitationId,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize)]
pub(super) struct Invited {
    invitation: InvitationView,
    /// The secret to hand to the invitee; it is not stored and cannot be shown again.
    token: String,
}

/// `GET /api/users`: the members of the caller's account, in the order they joined. Every member may read it.
pub(super) async fn list_members(
    State(users): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<MemberView>>, UserError> {
    let members = users.store.members(caller.account).await?;
    Ok(Json(members.into_iter().map(member_view).collect()))
}

/// `POST /api/users/invitations`: an owner or admin invites an e-mail address as an admin or an agent. The
/// invitation takes a seat of the plan's agent limit until it is accepted, revoked or expires; inviting an
/// address again replaces its pending invitation.
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

/// `GET /api/users/invitations`: the account's pending invitations (owners and admins).
pub(super) async fn list_invitations(
    State(users): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<InvitationView>>, UserError> {
    require_manager(&caller, "Only owners and admins may see invitations.")?;
    let pending = users.store.pending_invitations(caller.account, now_ms()).await?;
    Ok(Json(pending.into_iter().map(invitation_view).collect()))
}

/// `DELETE /api/users/invitations/{id}`: revokes a pending invitation (owners and admins); its token stops
/// working.
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

/// `POST /api/users/invitations/accept`: public. Whoever holds the token becomes a member of the inviting
/// account with the invited role, under the invited e-mail address, and is signed in (the login body).
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

/// `DELETE /api/users/{id}`: an owner or admin removes a member from the account and ends their sessions
/// in it: refresh tokens are revoked, and access tokens already issued are refused in every process within
/// a second (their open realtime sockets close). Only an owner removes an owner, nobody removes
/// themselves, and the last owner stays.
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
