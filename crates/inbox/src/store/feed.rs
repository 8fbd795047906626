//! The realtime feed: the rows agents' sockets read (see `realtime.rs`).

use super::*;

impl Store {
    /// Appends `entries` to the account's feed, in order, with one statement.
    pub async fn append_feed(
        tx: &mut Tx<'_>,
        account: AccountId,
        entries: &[FeedEntry],
        now: i64,
    ) -> Result<(), StoreError> {
        tx.execute(
            "insert into realtime_feed (account_id, kind, inbox_id, payload, created_at) \
             select ?, value ->> 'kind', value ->> 'inbox', value ->> 'payload', ? from jsonb_each(?) order by key",
            args![account, now, json_rows(entries)?],
        )
        .await
        .map(drop)
    }

    /// The account's feed rows after `after`. For an agent (`member`: their user id), rows about an inbox
    /// they are not a member of now come without their payload: the socket skips them, but its cursor
    /// moves past them, so they are read once.
    pub async fn feed_after(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
        member: Option<UserId>,
    ) -> Result<Vec<FeedRow>, StoreError> {
        self.db
            .fetch_all(
                "select seq, kind, case when inbox_id is null or ? is null or inbox_id in \
                   (select inbox_id from inbox_members where account_id = ? and user_id = ?) then payload end \
                 as payload from realtime_feed where account_id = ? and seq > ? order by seq limit ?",
                args![member, account, member, account, after, limit],
            )
            .await
    }

    /// The oldest seq the feed still has (`None` if it is empty); rows before it were trimmed.
    pub async fn feed_start(&self) -> Result<Option<i64>, StoreError> {
        let start: Option<(Option<i64>,)> =
            self.db.fetch_optional("select min(seq) from realtime_feed", args![]).await?;
        Ok(start.and_then(|(seq,)| seq))
    }

    /// The last seq the feed has given (of any account), if any: no client can have seen a later one.
    pub async fn feed_end(&self) -> Result<Option<i64>, StoreError> {
        let end: Option<(Option<i64>,)> = self.db.fetch_optional("select max(seq) from realtime_feed", args![]).await?;
        Ok(end.and_then(|(seq,)| seq))
    }

    /// Deletes feed rows written before `before` (Unix milliseconds), in slices of short transactions; the
    /// newest row always stays, so that [`Store::feed_start`] tells how far the feed was trimmed. Returns
    /// how many rows went.
    pub async fn trim_feed(&self, before: i64) -> Result<u64, StoreError> {
        // Rows are written in time order: the old ones are those before the first recent one (found by
        // walking only the old rows), or all but the newest.
        let recent: Option<(i64,)> = self
            .db
            .fetch_optional("select seq from realtime_feed where created_at >= ? order by seq limit 1", args![before])
            .await?;
        let keep_from = match recent {
            Some((seq,)) => seq,
            None => {
                let newest: Option<(Option<i64>,)> =
                    self.db.fetch_optional("select max(seq) from realtime_feed", args![]).await?;
                match newest.and_then(|(seq,)| seq) {
                    Some(newest) => newest,
                    None => return Ok(0),
                }
            }
        };
        self.db
            .delete_in_slices(
                "delete from realtime_feed where seq in (select seq from realtime_feed where seq < ? order by seq limit ?)",
                args![keep_from],
            )
            .await
    }

    pub async fn feed_head(&self, account: AccountId) -> Result<i64, StoreError> {
        let head: Option<(Option<i64>,)> =
            self.db.fetch_optional("select max(seq) from realtime_feed where account_id = ?", args![account]).await?;
        Ok(head.and_then(|(seq,)| seq).unwrap_or(0))
    }
}
