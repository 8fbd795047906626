//! An account's members as other services see them ([`UserPort`]), and the rules of invitations: how long
//! one lasts, what its token looks like, and when it can still be accepted. A token is accepted once and
//! only its digest is stored; a pending invitation takes a seat like a member, against the plan's agent
//! limit.

use std::time::Duration;

use contracts::user::{Member, UserPort};
use contracts::{AccountId, UserId};
use kernel::ports::PortError;
use kernel::store::StoreError;

use crate::store::{InvitationRow, MemberRow, Store};

/// How long an invitation can be accepted after it was made (or last replaced).
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A new opaque invitation token; only its digest is stored.
pub fn new_invitation_token() -> String {
    kernel::auth::opaque_token("inv_")
}

/// Whether an invitation can still be accepted at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    /// Accepted already; a token is good for one acceptance.
    Used,
    Expired,
}

impl InvitationState {
    /// The state of `invitation` at `now_ms`. A used invitation reads as used even after it would have
    /// expired, so the person who accepted it hears the more useful answer.
    pub fn of(invitation: &InvitationRow, now_ms: i64) -> Self {
        if invitation.used_at.is_some() {
            InvitationState::Used
        } else if invitation.expires_at <= now_ms {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// The user service's answers to [`UserPort`].
pub struct Directory {
    pub store: Store,
}

#[async_trait::async_trait]
impl UserPort for Directory {
    async fn member(&self, account: AccountId, user: UserId) -> Result<Option<Member>, PortError> {
        Ok(self.store.member(user, account).await.map_err(unavailable)?.map(member))
    }

    async fn members(&self, account: AccountId) -> Result<Vec<Member>, PortError> {
        Ok(self.store.members(account).await.map_err(unavailable)?.into_iter().map(member).collect())
    }
}

fn member(row: MemberRow) -> Member {
    Member { user: row.user.id, name: row.user.name, email: row.user.email, role: row.membership.role }
}

pub(crate) fn unavailable(error: StoreError) -> PortError {
    tracing::error!(error = %error, "user store failed");
    PortError::Failed { callee: "user".to_owned(), status: 500, reason: "the user store failed".to_owned() }
}

#[cfg(test)]
mod tests {
    use contracts::Role;

    use super::*;
    use crate::domain::InvitationId;

    fn invitation(expires_at: i64, used_at: Option<i64>) -> InvitationRow {
        InvitationRow {
            id: InvitationId::new(),
            account_id: AccountId::new(),
            email: "kenji@example.jp".to_owned(),
            name: None,
            role: Role::Agent,
            created_at: 0,
            expires_at,
            used_at,
        }
    }

    #[test]
    fn an_invitation_is_pending_until_the_instant_it_expires() {
        assert_eq!(InvitationState::of(&invitation(1_000, None), 999), InvitationState::Pending);
        assert_eq!(InvitationState::of(&invitation(1_000, None), 1_000), InvitationState::Expired);
    }

    #[test]
    fn a_used_invitation_reads_as_used_even_once_expired() {
        assert_eq!(InvitationState::of(&invitation(1_000, Some(500)), 600), InvitationState::Used);
        assert_eq!(InvitationState::of(&invitation(1_000, Some(500)), 5_000), InvitationState::Used);
    }

    #[test]
    fn invitation_tokens_are_unique_opaque_and_say_what_they_are() {
        let (a, b) = (new_invitation_token(), new_invitation_token());
        assert_ne!(a, b);
        assert!(a.starts_with("inv_"));
        assert_eq!(INVITATION_TTL.as_secs(), 604_800);
    }
}
