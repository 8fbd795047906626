//! Labels and the conversations they mark.

use super::*;

impl Store {
    pub async fn labels(&self, account: AccountId) -> Result<Vec<LabelRow>, StoreError> {
        self.db
            .fetch_all(
                "select id, name, colour, description, created_at from labels where account_id = ? order by name",
                args![account],
            )
            .await
    }

    pub async fn label(&self, account: AccountId, id: LabelId) -> Result<Option<LabelRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, name, colour, description, created_at from labels where account_id = ? and id = ?",
                args![account, id],
            )
            .await
    }

    pub async fn insert_label(&self, account: AccountId, label: &LabelRow) -> Result<(), StoreError> {
        self.db
            .execute(
                "insert into labels (id, account_id, name, colour, description, created_at) values (?, ?, ?, ?, ?, ?)",
                args![
                    label.id,
                    account,
                    label.name.clone(),
                    label.colour.clone(),
                    label.description.clone(),
                    label.created_at
                ],
            )
            .await
            .map(drop)
    }

    pub async fn update_label(&self, account: AccountId, label: &LabelRow) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "update labels set name = ?, colour = ?, description = ? where account_id = ? and id = ?",
                args![label.name.clone(), label.colour.clone(), label.description.clone(), account, label.id],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn delete_label(&self, account: AccountId, id: LabelId) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        tx.execute("delete from conversation_labels where account_id = ? and label_id = ?", args![account, id]).await?;
        let deleted = tx.execute("delete from labels where account_id = ? and id = ?", args![account, id]).await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Every label of the account, as (id, name).
    pub async fn label_names(tx: &mut Tx<'_>, account: AccountId) -> Result<Vec<(LabelId, String)>, StoreError> {
        tx.fetch_all("select id, name from labels where account_id = ?", args![account]).await
    }

    pub async fn replace_conversation_labels(
        tx: &mut Tx<'_>,
        account: AccountId,
        conversation: ConversationId,
        labels: &[LabelId],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "delete from conversation_labels where account_id = ? and conversation_id = ?",
            args![account, conversation],
        )
        .await?;
        for label in labels {
            tx.execute(
                "insert into conversation_labels (conversation_id, label_id, account_id, created_at) values (?, ?, ?, ?)",
                args![conversation, *label, account, now],
            )
            .await?;
        }
        Ok(())
    }
}
