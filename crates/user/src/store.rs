//! All of the user service's SQL. Lowercase, portable, bound parameters only; instants are Unix ms.

use contracts::{AccountId, Role, UserId};
use kernel::args;
use kernel::auth::Revocation;
use kernel::store::{StoreError, Tx};

use crate::domain::{InvitationId, Language};

/// A user as stored, including the password hash (which never leaves this service).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    #[sqlx(try_from = "String")]
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub language: Language,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's membership in one account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    #[sqlx(try_from = "String")]
    pub account_id: AccountId,
    pub account_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// A user together with their membership in one account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    #[sqlx(flatten)]
    pub membership: MembershipRow,
}

/// A stored refresh token (by hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub id: String,
    pub family_id: String,
    #[sqlx(try_from = "String")]
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub account_id: AccountId,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A stored access-token revocation.
#[derive(Debug, Clone, sqlx::FromRow)]
struct RevocationRow {
    #[sqlx(try_from = "String")]
    user_id: UserId,
    account_id: Option<String>,
    revoked_before: i64,
}

/// A new refresh token to store.
pub struct NewRefreshToken<'a> {
    pub family_id: &'a str,
    pub user_id: UserId,
    pub account_id: AccountId,
    pub token_hash: &'a str,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// An invitation as stored (without its token's hash, which is only ever looked up by).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    #[sqlx(try_from = "String")]
    pub id: InvitationId,
    #[sqlx(try_from = "String")]
    pub account_id: AccountId,
    pub email: String,
    pub name: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A new invitation to store.
pub struct NewInvitation<'a> {
    pub id: InvitationId,
    pub account_id: AccountId,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: UserId,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// How removing a member ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed; their tokens in the account are refused from the revocation's instant on.
    Removed(Revocation),
    NotAMember,
    /// The member is the account's only owner; an account always keeps one.
    LastOwner,
}

/// What changing a member's role did.
#[derive(Debug)]
pub enum RoleChange {
    /// Changed; their access tokens in the account issued before the revocation's instant are refused, so
    /// that the next one (renewed with their refresh token) carries the new role.
    Changed(Revocation),
    /// They have that role already.
    Unchanged,
    NotAMember,
    /// The member is an owner, or would become one, and the caller is not an owner.
    OwnersOnly,
    /// The member is the account's only owner; an account always keeps one.
    LastOwner,
}

/// Applies `changes` to user `id` inside `tx`; whether the user exists.
async fn update_user_in(tx: &mut Tx<'_>, id: UserId, changes: &UserChanges, now_ms: i64) -> Result<bool, StoreError> {
    let affected = tx
        .execute(
            "update users set name = coalesce(?, name), email = coalesce(?, email), \
             password_hash = coalesce(?, password_hash), language = coalesce(?, language), updated_at = ? \
             where id = ?",
            args![
                changes.name.as_deref(),
                changes.email.as_deref(),
                changes.password_hash.as_deref(),
                changes.language.map(Language::as_str),
                now_ms,
                id.to_string()
            ],
        )
        .await?;
    Ok(affected == 1)
}

/// Revokes every refresh token of `user` and refuses their access tokens from `now_ms` on, inside `tx`.
async fn end_sessions_in(tx: &mut Tx<'_>, user: UserId, now_ms: i64) -> Result<Revocation, StoreError> {
    tx.execute(
        "update refresh_tokens set revoked_at = ? where user_id = ? and revoked_at is null",
        args![now_ms, user.to_string()],
    )
    .await?;
    let revocation = Revocation { user, account: None, before_ms: now_ms };
    record_revocation(tx, revocation).await?;
    Ok(revocation)
}

/// Records `revocation` inside `tx`, with the change it follows from.
async fn record_revocation(tx: &mut Tx<'_>, revocation: Revocation) -> Result<(), StoreError> {
    tx.execute(
        "insert into access_revocations (user_id, account_id, revoked_before) values (?, ?, ?)",
        args![revocation.user.to_string(), revocation.account.map(|a| a.to_string()), revocation.before_ms],
    )
    .await
    .map(drop)
}

/// How many owners `account` has, read inside `tx`.
async fn owners(tx: &mut Tx<'_>, account: AccountId) -> Result<i64, StoreError> {
    let owners: Option<(i64,)> = tx
        .fetch_optional(
            "select count(*) from memberships where account_id = ? and role = 'owner'",
            args![account.to_string()],
        )
        .await?;
    Ok(owners.map_or(0, |(n,)| n))
}

/// Changes to a user; `None` leaves a column as it is.
#[derive(Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub language: Option<Language>,
}

kernel::service_store!(Store);

/// Inserts `user` inside `tx` (registration and accepted invitations both create users).
async fn insert_user(tx: &mut Tx<'_>, user: &UserRow) -> Result<(), StoreError> {
    tx.execute(
        "insert into users (id, email, password_hash, name, language, created_at, updated_at) \
         values (?, ?, ?, ?, ?, ?, ?)",
        args![
            user.id.to_string(),
            &user.email,
            &user.password_hash,
            &user.name,
            user.language.as_str(),
            user.created_at,
            user.updated_at
        ],
    )
    .await
    .map(drop)
}

impl Store {
    /// Creates the account, the user and the owner membership inside `tx`.
    pub async fn insert_user_with_account(
        tx: &mut Tx<'_>,
        user: &UserRow,
        account_id: AccountId,
        account_name: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into accounts (id, name, created_at) values (?, ?, ?)",
            args![account_id.to_string(), account_name, user.created_at],
        )
        .await?;
        insert_user(tx, user).await?;
        tx.execute(
            "insert into memberships (account_id, user_id, role, created_at) values (?, ?, 'owner', ?)",
            args![account_id.to_string(), user.id.to_string(), user.created_at],
        )
        .await
        .map(drop)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, email, password_hash, name, language, created_at, updated_at from users where email = ?",
                args![email],
            )
            .await
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, email, password_hash, name, language, created_at, updated_at from users where id = ?",
                args![id.to_string()],
            )
            .await
    }

    /// The user's membership in `account`, if any.
    pub async fn membership(&self, user: UserId, account: AccountId) -> Result<Option<MembershipRow>, StoreError> {
        self.db
            .fetch_optional(
                "select m.account_id, a.name as account_name, m.role from memberships m \
                 join accounts a on a.id = m.account_id where m.user_id = ? and m.account_id = ?",
                args![user.to_string(), account.to_string()],
            )
            .await
    }

    /// The user `user` as a member of `account`, in one query; `None` if they are not a member.
    pub async fn member(&self, user: UserId, account: AccountId) -> Result<Option<MemberRow>, StoreError> {
        self.db
            .fetch_optional(
                "select u.id, u.email, u.password_hash, u.name, u.language, u.created_at, u.updated_at, \
                 m.account_id, a.name as account_name, m.role from memberships m \
                 join users u on u.id = m.user_id join accounts a on a.id = m.account_id \
                 where m.user_id = ? and m.account_id = ?",
                args![user.to_string(), account.to_string()],
            )
            .await
    }

    /// The account a user signs in to: the first they joined.
    pub async fn home_membership(&self, user: UserId) -> Result<Option<MembershipRow>, StoreError> {
        self.db
            .fetch_optional(
                "select m.account_id, a.name as account_name, m.role from memberships m \
                 join accounts a on a.id = m.account_id where m.user_id = ? \
                 order by m.created_at, m.account_id limit 1",
                args![user.to_string()],
            )
            .await
    }

    /// Applies `changes`; returns whether the user exists.
    pub async fn update_user(&self, id: UserId, changes: UserChanges, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        let updated = update_user_in(&mut tx, id, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// [`Store::update_user`] and [`Store::end_sessions_of_user`] in one transaction (a new password):
    /// the change never commits without the end of the sessions the old password opened.
    pub async fn update_user_ending_sessions(
        &self,
        id: UserId,
        changes: UserChanges,
        now_ms: i64,
    ) -> Result<Revocation, StoreError> {
        let mut tx = self.db.begin().await?;
        update_user_in(&mut tx, id, &changes, now_ms).await?;
        let revocation = end_sessions_in(&mut tx, id, now_ms).await?;
        tx.commit().await?;
        Ok(revocation)
    }

    /// Stores a new refresh token, unless the user's sessions in its account were ended after
    /// `started_ms` (when the sign-in or refresh it belongs to began): a session being opened while a
    /// revocation commits must not outlive it. Returns whether it was stored.
    pub async fn insert_refresh_token(&self, token: NewRefreshToken<'_>, started_ms: i64) -> Result<bool, StoreError> {
        let inserted = self
            .db
            .execute(
                "insert into refresh_tokens (id, family_id, user_id, account_id, token_hash, created_at, expires_at) \
                 select ?, ?, ?, ?, ?, ?, ? where not exists (select 1 from access_revocations \
                 where user_id = ? and (account_id is null or account_id = ?) and revoked_before > ?)",
                args![
                    uuid::Uuid::now_v7().to_string(),
                    token.family_id,
                    token.user_id.to_string(),
                    token.account_id.to_string(),
                    token.token_hash,
                    token.now_ms,
                    token.expires_at_ms,
                    token.user_id.to_string(),
                    token.account_id.to_string(),
                    started_ms
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub async fn refresh_token_by_hash(&self, token_hash: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, family_id, user_id, account_id, expires_at, used_at, revoked_at \
                 from refresh_tokens where token_hash = ?",
                args![token_hash],
            )
            .await
    }

    /// Marks a token used; false if it was used concurrently (only one rotation may win).
    pub async fn mark_refresh_token_used(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let affected = self
            .db
            .execute(
                "update refresh_tokens set used_at = ? where id = ? and used_at is null and revoked_at is null",
                args![now_ms, id],
            )
            .await?;
        Ok(affected == 1)
    }

    pub async fn revoke_refresh_family(&self, family_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                "update refresh_tokens set revoked_at = ? where family_id = ? and revoked_at is null",
                args![now_ms, family_id],
            )
            .await
            .map(drop)
    }

    /// Ends every session of `user`, in every account: their refresh tokens are revoked and their access
    /// tokens issued before `now_ms` refused, in one transaction. Returns the revocation to apply.
    pub async fn end_sessions_of_user(&self, user: UserId, now_ms: i64) -> Result<Revocation, StoreError> {
        let mut tx = self.db.begin().await?;
        let revocation = end_sessions_in(&mut tx, user, now_ms).await?;
        tx.commit().await?;
        Ok(revocation)
    }

    /// The access-token revocations made at or after `since_ms`, oldest first.
    pub async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows: Vec<RevocationRow> = self
            .db
            .fetch_all(
                "select user_id, account_id, revoked_before from access_revocations where revoked_before >= ? \
                 order by revoked_before",
                args![since_ms],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let account = row.account_id.map(|id| id.parse::<AccountId>()).transpose();
                let account = account.map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
                Ok(Revocation { user: row.user_id, account, before_ms: row.revoked_before })
            })
            .collect()
    }

    /// Deletes the revocations made before `before_ms`, whose tokens have all expired; returns how many.
    pub async fn trim_revocations(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.db.execute("delete from access_revocations where revoked_before < ?", args![before_ms]).await
    }

    /// Every member of `account`, in the order they joined.
    pub async fn members(&self, account: AccountId) -> Result<Vec<MemberRow>, StoreError> {
        self.db
            .fetch_all(
                "select u.id, u.email, u.password_hash, u.name, u.language, u.created_at, u.updated_at, \
                 m.account_id, a.name as account_name, m.role from memberships m \
                 join users u on u.id = m.user_id join accounts a on a.id = m.account_id \
                 where m.account_id = ? order by m.created_at, u.id",
                args![account.to_string()],
            )
            .await
    }

    /// How many seats `account` has taken: its members plus its pending invitations at `now_ms`, leaving
    /// out a pending invitation to `except_email` (which a new invitation to that address replaces).
    pub async fn seats_taken(&self, account: AccountId, now_ms: i64, except_email: &str) -> Result<u64, StoreError> {
        let members: Option<(i64,)> = self
            .db
            .fetch_optional("select count(*) from memberships where account_id = ?", args![account.to_string()])
            .await?;
        let pending: Option<(i64,)> = self
            .db
            .fetch_optional(
                "select count(*) from invitations \
                 where account_id = ? and used_at is null and expires_at > ? and email <> ?",
                args![account.to_string(), now_ms, except_email],
            )
            .await?;
        let count = |row: Option<(i64,)>| row.map_or(0, |(n,)| u64::try_from(n).unwrap_or(0));
        Ok(count(members) + count(pending))
    }

    /// Stores `invitation`, replacing any pending invitation to the same address in the same account (whose
    /// token then stops working).
    pub async fn replace_invitation(&self, invitation: NewInvitation<'_>) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "delete from invitations where account_id = ? and email = ? and used_at is null",
            args![invitation.account_id.to_string(), invitation.email],
        )
        .await?;
        tx.execute(
            "insert into invitations \
             (id, account_id, email, name, role, token_hash, invited_by, created_at, expires_at) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            args![
                invitation.id.to_string(),
                invitation.account_id.to_string(),
                invitation.email,
                invitation.name,
                invitation.role.as_str(),
                invitation.token_hash,
                invitation.invited_by.to_string(),
                invitation.now_ms,
                invitation.expires_at_ms
            ],
        )
        .await?;
        tx.commit().await
    }

    /// The invitations of `account` still open at `now_ms`, oldest first.
    pub async fn pending_invitations(&self, account: AccountId, now_ms: i64) -> Result<Vec<InvitationRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, account_id, email, name, role, created_at, expires_at, used_at from invitations \
                 where account_id = ? and used_at is null and expires_at > ? order by created_at, id",
                args![account.to_string(), now_ms],
            )
            .await
    }

    pub async fn invitation_by_hash(&self, token_hash: &str) -> Result<Option<InvitationRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, account_id, email, name, role, created_at, expires_at, used_at from invitations \
                 where token_hash = ?",
                args![token_hash],
            )
            .await
    }

    /// Deletes a not yet used invitation of `account`; false if there is none with that id.
    pub async fn revoke_invitation(&self, account: AccountId, id: InvitationId) -> Result<bool, StoreError> {
        let affected = self
            .db
            .execute(
                "delete from invitations where id = ? and account_id = ? and used_at is null",
                args![id.to_string(), account.to_string()],
            )
            .await?;
        Ok(affected == 1)
    }

    /// Accepts `invitation` inside `tx`: marks it used and creates `user` with a membership in the inviting
    /// account. False (and nothing written) if the invitation was used first.
    pub async fn accept_invitation(
        tx: &mut Tx<'_>,
        invitation: &InvitationRow,
        user: &UserRow,
    ) -> Result<bool, StoreError> {
        // Claimed first, so that of two concurrent acceptances the second hears "used", not "e-mail taken".
        let claimed = tx
            .execute(
                "update invitations set used_at = ? where id = ? and used_at is null",
                args![user.created_at, invitation.id.to_string()],
            )
            .await?;
        if claimed != 1 {
            return Ok(false);
        }
        insert_user(tx, user).await?;
        tx.execute(
            "insert into memberships (account_id, user_id, role, created_at) values (?, ?, ?, ?)",
            args![invitation.account_id.to_string(), user.id.to_string(), invitation.role.as_str(), user.created_at],
        )
        .await?;
        // Only now does the user exist for the reference to point to.
        tx.execute(
            "update invitations set accepted_by = ? where id = ?",
            args![user.id.to_string(), invitation.id.to_string()],
        )
        .await?;
        Ok(true)
    }

    /// Removes `user` from `account`, revokes their refresh tokens for it and refuses their access tokens
    /// in it from `now_ms` on, in one transaction. The account's last owner cannot be removed.
    pub async fn remove_member(&self, account: AccountId, user: UserId, now_ms: i64) -> Result<Removal, StoreError> {
        let mut tx = self.db.begin().await?;
        let role: Option<(String,)> = tx
            .fetch_optional(
                "select role from memberships where account_id = ? and user_id = ?",
                args![account.to_string(), user.to_string()],
            )
            .await?;
        let Some((role,)) = role else {
            return Ok(Removal::NotAMember);
        };
        if role == Role::Owner.as_str() && owners(&mut tx, account).await? <= 1 {
            return Ok(Removal::LastOwner);
        }
        tx.execute(
            "delete from memberships where account_id = ? and user_id = ?",
            args![account.to_string(), user.to_string()],
        )
        .await?;
        tx.execute(
            "update refresh_tokens set revoked_at = ? where user_id = ? and account_id = ? and revoked_at is null",
            args![now_ms, user.to_string(), account.to_string()],
        )
        .await?;
        let revocation = Revocation { user, account: Some(account), before_ms: now_ms };
        record_revocation(&mut tx, revocation).await?;
        tx.commit().await?;
        Ok(Removal::Removed(revocation))
    }

    /// Gives `user` the role `role` in `account`, as a member whose role is `by`, and refuses their access
    /// tokens in it issued before `now_ms` (which carry the old role), in one transaction. Only an owner
    /// makes or unmakes an owner (checked here, against the role as the transaction reads it), and the
    /// account's last owner stays an owner.
    pub async fn set_role(
        &self,
        account: AccountId,
        user: UserId,
        role: Role,
        by: Role,
        now_ms: i64,
    ) -> Result<RoleChange, StoreError> {
        let mut tx = self.db.begin().await?;
        let current: Option<(String,)> = tx
            .fetch_optional(
                "select role from memberships where account_id = ? and user_id = ?",
                args![account.to_string(), user.to_string()],
            )
            .await?;
        let Some((current,)) = current else {
            return Ok(RoleChange::NotAMember);
        };
        if (current == Role::Owner.as_str() || role == Role::Owner) && by != Role::Owner {
            return Ok(RoleChange::OwnersOnly);
        }
        if current == role.as_str() {
            return Ok(RoleChange::Unchanged);
        }
        if current == Role::Owner.as_str() && owners(&mut tx, account).await? <= 1 {
            return Ok(RoleChange::LastOwner);
        }
        tx.execute(
            "update memberships set role = ? where account_id = ? and user_id = ?",
            args![role.as_str(), account.to_string(), user.to_string()],
        )
        .await?;
        let revocation = Revocation { user, account: Some(account), before_ms: now_ms };
        record_revocation(&mut tx, revocation).await?;
        tx.commit().await?;
        Ok(RoleChange::Changed(revocation))
    }
}

#[cfg(test)]
mod tests;
