//! Canned responses.

use super::*;

impl Store {
    pub async fn canned_responses(
        &self,
        account: AccountId,
        prefix: Option<&str>,
    ) -> Result<Vec<CannedRow>, StoreError> {
        let pattern = prefix.map(|p| format!("{}%", p.replace(['%', '_'], "")));
        self.db
            .fetch_all(
                "select id, short_code, content, created_at, updated_at from canned_responses where account_id = ? \
                 and (? is null or lower(short_code) like lower(?)) order by short_code",
                args![account, pattern.clone(), pattern],
            )
            .await
    }

    pub async fn canned_response(
        &self,
        account: AccountId,
        id: CannedResponseId,
    ) -> Result<Option<CannedRow>, StoreError> {
        self.db
            .fetch_optional(
                "select id, short_code, content, created_at, updated_at from canned_responses \
                 where account_id = ? and id = ?",
                args![account, id],
            )
            .await
    }

    pub async fn insert_canned_response(&self, account: AccountId, row: &CannedRow) -> Result<(), StoreError> {
        self.db
            .execute(
                "insert into canned_responses (id, account_id, short_code, content, created_at, updated_at) \
                 values (?, ?, ?, ?, ?, ?)",
                args![row.id, account, row.short_code.clone(), row.content.clone(), row.created_at, row.updated_at],
            )
            .await
            .map(drop)
    }

    pub async fn update_canned_response(&self, account: AccountId, row: &CannedRow) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                "update canned_responses set short_code = ?, content = ?, updated_at = ? where account_id = ? and id = ?",
                args![row.short_code.clone(), row.content.clone(), row.updated_at, account, row.id],
            )
            .await?;
        Ok(changed == 1)
    }

    pub async fn delete_canned_response(&self, account: AccountId, id: CannedResponseId) -> Result<bool, StoreError> {
        let deleted =
            self.db.execute("delete from canned_responses where account_id = ? and id = ?", args![account, id]).await?;
        Ok(deleted == 1)
    }
}
