//! Moving a namespace to another location while its service keeps serving (`omnidesk data move`).
//!
//! The command and the processes serving the namespace never talk to each other directly: they meet in
//! the namespace being moved, whose `_kernel_moves` table every such process reads every [`POLL`]
//! ([`follow`]). Whatever the topology, the processes that can write to a namespace are exactly those
//! that have it open, so they are the ones that hear of the move.
//!
//! 1. `draining`: the service's own writes (requests, event consumers) are refused with
//!    [`StoreError::Moving`] (503 with `Retry-After`; events wait in their queue or the producer's
//!    outbox), while the relay still publishes what the outbox holds.
//! 2. `copying`: every write is refused; the rows are copied ([`super::transfer`]), under a lease the
//!    command renews. A command that dies lets its lease lapse, and writes resume on the source.
//! 3. The command takes the namespace's write lock, so nothing can write even in a process that has not
//!    heard yet, compares both copies, and in the same transaction records `switched`, which fences the
//!    source for good: every write transaction checks it after taking the lock (SQLite's
//!    [`FENCE`](super::sqlite::FENCE), PostgreSQL's `_kernel_write_fence()`, MariaDB's deleted
//!    `_write_lock` row). Processes then switch to the target ([`Namespace::switch_to`]) and writes resume
//!    there; a process that starts later follows the record too ([`settle`]).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::{Location, Namespace, StoreError, Writer};
use crate::args;
use crate::clock::now_ms;

/// How often a serving process reads its namespaces' move records.
pub const POLL: Duration = Duration::from_millis(250);

/// How long a lease lasts when the command renews it while copying (every [`RENEW_EVERY`]).
pub const LEASE: Duration = Duration::from_secs(15);
/// How often the command renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);

/// What writes a namespace admits while a move is under way.
#[derive(Debug, Default)]
pub struct Gate(AtomicU8);

const OPEN: u8 = 0;
const DRAINING: u8 = 1;
const COPYING: u8 = 2;

impl Gate {
    pub(crate) fn admits(&self, writer: Writer) -> bool {
        match self.0.load(Ordering::Acquire) {
            OPEN => true,
            DRAINING => writer == Writer::Kernel,
            _ => false,
        }
    }

    fn set(&self, state: u8) -> bool {
        self.0.swap(state, Ordering::AcqRel) != state
    }
}

/// The stages of a move, as `_kernel_moves.state` records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Draining,
    Copying,
    Switched,
    Aborted,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Draining => "draining",
            Stage::Copying => "copying",
            Stage::Switched => "switched",
            Stage::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Stage::Draining, Stage::Copying, Stage::Switched, Stage::Aborted].into_iter().find(|s| s.as_str() == text)
    }
}

/// A move as its namespace records it.
#[derive(Debug, Clone)]
pub struct MoveRecord {
    pub id: String,
    /// The target's full URL (with its password: the namespace's processes connect with it).
    pub target: String,
    pub stage: Stage,
    pub lease_until: i64,
    pub started_at: i64,
}

impl MoveRecord {
    /// Whether the move holds writes back now: under way and its command alive.
    pub fn holds_writes(&self) -> bool {
        matches!(self.stage, Stage::Draining | Stage::Copying) && self.lease_until > now_ms()
    }

    /// Where the namespace went, for a switched move.
    pub fn target_location(&self) -> Result<Location, StoreError> {
        Location::parse(&self.target, "unused")
            .map_err(|e| StoreError::Unsupported(format!("a recorded move names an unusable target: {e}")))
    }
}

/// The newest move of `namespace` not given up, if any.
pub async fn current(namespace: &Namespace) -> Result<Option<MoveRecord>, StoreError> {
    let row: Option<(String, String, String, i64, i64)> = namespace
        .kernel_fetch_all(
            "select id, target, state, lease_until, started_at from _kernel_moves where state <> 'aborted' \
             order by started_at desc limit 1",
            args![],
        )
        .await?
        .into_iter()
        .next();
    row.map(|(id, target, state, lease_until, started_at)| {
        let stage = Stage::parse(&state)
            .ok_or_else(|| StoreError::Unsupported(format!("a move recorded in an unknown state `{state}`")))?;
        Ok(MoveRecord { id, target, stage, lease_until, started_at })
    })
    .transpose()
}

/// Follows a switch recorded in `namespace` before it serves (a process starting after a move, with a
/// configuration that still names the old location): returns where the namespace lives now.
pub async fn settle(namespace: &Namespace) -> Result<Location, StoreError> {
    // A namespace moved on from its target again is followed hop by hop, a few at most.
    for _ in 0..8 {
        match current(namespace).await? {
            Some(record) if record.stage == Stage::Switched => {
                let target = record.target_location()?;
                tracing::warn!(
                    service = namespace.service(),
                    from = %namespace.location(),
                    to = %target,
                    "this namespace was moved (omnidesk data move); following it — record the new location in the \
                     configuration"
                );
                namespace.switch_to(&target).await?;
            }
            _ => break,
        }
    }
    Ok(namespace.location())
}

/// Keeps `namespace`'s gate and location in step with its move records until `stop` fires: refuses writes
/// while a move drains or copies, switches to the target once the move is done.
pub async fn follow(namespace: Namespace, mut stop: tokio::sync::watch::Receiver<bool>) {
    let service = namespace.service();
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
        let record = match current(&namespace).await {
            Ok(record) => record,
            Err(error) if error.is_closed() => return,
            Err(error) => {
                tracing::debug!(service, error = %error, "reading the namespace's move records failed");
                continue;
            }
        };
        let gate = namespace.gate();
        match record {
            Some(record) if record.stage == Stage::Switched => {
                gate.set(COPYING);
                let switched = match record.target_location() {
                    Ok(target) => namespace.switch_to(&target).await.map(|()| target),
                    Err(error) => Err(error),
                };
                match switched {
                    Ok(target) => {
                        gate.set(OPEN);
                        tracing::info!(service, to = %target, "namespace moved; writing to its new location");
                    }
                    Err(error) => {
                        tracing::error!(service, error = %error, "the namespace moved but its new location cannot be opened; writes wait")
                    }
                }
            }
            Some(record) if record.holds_writes() => {
                let state = if record.stage == Stage::Draining { DRAINING } else { COPYING };
                if gate.set(state) {
                    tracing::info!(
                        service,
                        stage = record.stage.as_str(),
                        "a move of this namespace is under way; writes wait"
                    );
                }
            }
            _ => {
                if gate.set(OPEN) {
                    tracing::info!(service, "no move under way; writes resume");
                }
            }
        }
    }
}

/// Records a new move of `namespace` to `target` (its full URL), or takes up the interrupted one to the
/// same target. Refuses while another is under way.
pub async fn start(namespace: &Namespace, target: &str) -> Result<MoveRecord, StoreError> {
    let now = now_ms();
    if let Some(record) = current(namespace).await? {
        match record.stage {
            Stage::Switched => {
                return Err(StoreError::Unsupported(format!(
                    "this copy of `{}` was already moved (to {}); move from where it lives now",
                    namespace.service(),
                    redacted(&record.target)
                )));
            }
            _ if record.target == target => {
                set_stage(namespace, &record.id, Stage::Draining, now + millis(LEASE)).await?;
                return Ok(MoveRecord { stage: Stage::Draining, lease_until: now + millis(LEASE), ..record });
            }
            _ if record.holds_writes() => {
                return Err(StoreError::Unsupported(format!(
                    "another move of `{}` (to {}) is under way; wait for it or give it up with --abort",
                    namespace.service(),
                    redacted(&record.target)
                )));
            }
            _ => {
                abort(namespace).await?;
            }
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let lease_until = now + millis(LEASE);
    namespace
        .kernel_execute(
            "insert into _kernel_moves (id, target, state, lease_until, started_at, updated_at) values (?, ?, ?, ?, ?, ?)",
            args![id.clone(), target, Stage::Draining.as_str(), lease_until, now, now],
        )
        .await?;
    Ok(MoveRecord { id, target: target.to_owned(), stage: Stage::Draining, lease_until, started_at: now })
}

/// Moves the record of a move under way on to `stage`, leased until `lease_until` (Unix ms). Refused
/// once the move was given up (`--abort`, from another command) or done.
pub async fn set_stage(namespace: &Namespace, id: &str, stage: Stage, lease_until: i64) -> Result<(), StoreError> {
    let updated = namespace
        .kernel_execute(
            "update _kernel_moves set state = ?, lease_until = ?, updated_at = ? where id = ? \
             and state in ('draining', 'copying')",
            args![stage.as_str(), lease_until, now_ms(), id],
        )
        .await?;
    if updated == 0 {
        return Err(StoreError::Unsupported("the move was given up meanwhile (omnidesk data move --abort)".to_owned()));
    }
    Ok(())
}

/// Gives up the move under way, if any: writes resume on the source. Returns the record given up.
pub async fn abort(namespace: &Namespace) -> Result<Option<MoveRecord>, StoreError> {
    match current(namespace).await? {
        Some(record) if record.stage != Stage::Switched => {
            namespace
                .kernel_execute(
                    "update _kernel_moves set state = 'aborted', lease_until = ?, updated_at = ? where id = ?",
                    args![now_ms(), now_ms(), record.id.clone()],
                )
                .await?;
            Ok(Some(record))
        }
        _ => Ok(None),
    }
}

/// A held write lock on the source, under which the command compares both copies and records the switch.
pub struct SwitchLock<'a> {
    tx: super::Tx<'a>,
}

/// Takes `namespace`'s write lock (waiting for the writes under way to end) for [`SwitchLock::switch`].
pub async fn lock_for_switch(namespace: &Namespace) -> Result<SwitchLock<'_>, StoreError> {
    Ok(SwitchLock { tx: namespace.begin_as(Writer::Kernel).await? })
}

impl SwitchLock<'_> {
    /// Records the move `id` as done and fences this copy, in one commit that also releases the lock.
    pub async fn switch(mut self, id: &str) -> Result<(), StoreError> {
        self.tx
            .kernel_execute(
                "update _kernel_moves set state = 'switched', updated_at = ? where id = ?",
                args![now_ms(), id],
            )
            .await?;
        if self.tx.engine() == super::Engine::MySql {
            self.tx.kernel_execute("delete from _write_lock", args![]).await?;
        }
        self.tx.commit().await
    }
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn redacted(url: &str) -> String {
    crate::redact::redact_url_password(url)
}

/// Lets the test suites hold a namespace's writes as a move would, without one.
#[cfg(test)]
pub(crate) fn hold_writes(namespace: &Namespace, draining: bool) {
    namespace.gate().set(if draining { DRAINING } else { COPYING });
}

/// Lets the test suites open the gate as [`follow`] does when no move is under way.
#[cfg(test)]
pub(crate) fn open_gate(namespace: &Namespace) {
    namespace.gate().set(OPEN);
}
