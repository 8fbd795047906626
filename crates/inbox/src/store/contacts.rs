//! Contacts: customers, and their identities on each inbox.

use super::*;

impl Store {
    pub async fn contacts(
        &self,
        account: AccountId,
        before: Before,
        limit: i64,
    ) -> Result<Vec<ContactRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? \
                 and (created_at, id) < (?, ?) order by created_at desc, id desc limit ?",
                args![account, before.at, before.id, limit],
            )
            .await
    }

    pub async fn contact(&self, account: AccountId, id: ContactId) -> Result<Option<ContactRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? and id = ?",
                args![account, id],
            )
            .await
    }

    pub async fn contact_identities(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<(InboxId, String)>, StoreError> {
        self.db
            .fetch_all(
                "select inbox_id, source_id from contact_identities where account_id = ? and contact_id = ? \
                 order by created_at",
                args![account, contact],
            )
            .await
    }

    /// The contact a channel identity belongs to.
    pub async fn contact_by_identity(
        tx: &mut Tx<'_>,
        inbox: InboxId,
        source_id: &str,
    ) -> Result<Option<ContactRow>, StoreError> {
        tx.fetch_optional(
            "select k.id, k.name, k.email, k.phone, k.created_at, k.updated_at from contact_identities i \
             join contacts k on k.id = i.contact_id where i.inbox_id = ? and i.source_id = ?",
            args![inbox, source_id],
        )
        .await
    }

    pub async fn insert_contact(
        tx: &mut Tx<'_>,
        account: AccountId,
        contact: &ContactRow,
        inbox: InboxId,
        source_id: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into contacts (id, account_id, name, email, phone, created_at, updated_at) \
             values (?, ?, ?, ?, ?, ?, ?)",
            args![
                contact.id,
                account,
                contact.name.clone(),
                contact.email.clone(),
                contact.phone.clone(),
                contact.created_at,
                contact.updated_at
            ],
        )
        .await?;
        tx.execute(
            "insert into contact_identities (inbox_id, source_id, account_id, contact_id, created_at) \
             values (?, ?, ?, ?, ?)",
            args![inbox, source_id, account, contact.id, contact.created_at],
        )
        .await
        .map(drop)
    }

    /// The contact's identity on `inbox`, for delivering replies there.
    pub async fn source_id_in(
        tx: &mut Tx<'_>,
        inbox: InboxId,
        contact: ContactId,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = tx
            .fetch_optional(
                "select source_id from contact_identities where inbox_id = ? and contact_id = ? limit 1",
                args![inbox, contact],
            )
            .await?;
        Ok(row.map(|(source,)| source))
    }

    pub async fn update_contact(tx: &mut Tx<'_>, account: AccountId, contact: &ContactRow) -> Result<bool, StoreError> {
        let changed = tx
            .execute(
                "update contacts set name = ?, email = ?, phone = ?, updated_at = ? where account_id = ? and id = ?",
                args![
                    contact.name.clone(),
                    contact.email.clone(),
                    contact.phone.clone(),
                    contact.updated_at,
                    account,
                    contact.id
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn contact_in(
        tx: &mut Tx<'_>,
        account: AccountId,
        id: ContactId,
    ) -> Result<Option<ContactRow>, StoreError> {
        tx.fetch_optional(
            "select id, name, email, phone, created_at, updated_at from contacts where account_id = ? and id = ?",
            args![account, id],
        )
        .await
    }
}
