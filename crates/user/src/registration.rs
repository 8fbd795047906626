//! Who joins: a registration creates an account with its owner, an accepted invitation adds a member. Each
//! commits together with the events that report it: `user.registered`, and `account.created` for a new
//! account (the plan service starts it on the free plan).

use contracts::AccountId;
use contracts::account::{AccountCreated, UserRegistered};
use kernel::store::{StoreError, Tx};

use crate::store::{InvitationRow, Store, UserRow};

/// Creates `user`, their account and their ownership of it.
pub async fn register(store: &Store, user: &UserRow, account: AccountId, account_name: &str) -> Result<(), StoreError> {
    let mut tx = store.namespace().begin().await?;
    Store::insert_user_with_account(&mut tx, user, account, account_name).await?;
    registered(&mut tx, user, account).await?;
    tx.publish(&AccountCreated { account, owner: user.id, name: account_name.to_owned() }).await?;
    tx.commit().await
}

/// Accepts `invitation` for the new `user`; false (and nothing written) if it was used first.
pub async fn accept_invitation(store: &Store, invitation: &InvitationRow, user: &UserRow) -> Result<bool, StoreError> {
    let mut tx = store.namespace().begin().await?;
    if !Store::accept_invitation(&mut tx, invitation, user).await? {
        return Ok(false);
    }
    registered(&mut tx, user, invitation.account_id).await?;
    tx.commit().await?;
    Ok(true)
}

async fn registered(tx: &mut Tx<'_>, user: &UserRow, account: AccountId) -> Result<(), StoreError> {
    tx.publish(&UserRegistered { user: user.id, account, language: user.language.as_str().to_owned() }).await
}
