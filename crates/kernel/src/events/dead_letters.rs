//! Events a consumer gave up on: kept in `_dead_letters`, listed by `omnidesk events failed` and marked for
//! replay by `omnidesk events replay` (the running consumer re-delivers them).

use serde::Serialize;

use crate::args;
use crate::clock::now_ms;
use crate::store::{Namespace, StoreError};

/// One dead letter, as `omnidesk events failed` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub event_id: String,
    pub consumer: String,
    pub error: String,
    pub attempts: i64,
    pub failed_at: i64,
    pub replay_requested_at: Option<i64>,
}

/// The dead letters in `namespace`.
pub async fn dead_letters(namespace: &Namespace) -> Result<Vec<DeadLetter>, StoreError> {
    namespace
        .kernel_fetch_all(
            "select event_id, consumer, error, attempts, failed_at, replay_requested_at from _dead_letters \
             order by failed_at",
            args![],
        )
        .await
}

/// Marks dead letters in `namespace` for replay (all, or one event); the running consumer re-delivers them.
pub async fn request_replay(namespace: &Namespace, event_id: Option<&str>) -> Result<u64, StoreError> {
    match event_id {
        Some(id) => {
            namespace
                .kernel_execute(
                    "update _dead_letters set replay_requested_at = ? where event_id = ?",
                    args![now_ms(), id],
                )
                .await
        }
        None => namespace.kernel_execute("update _dead_letters set replay_requested_at = ?", args![now_ms()]).await,
    }
}
