//! The producing side of the bus: [`Tx::publish`] writes events into the namespace's `_outbox` in the
//! transaction of the change they report, and a relay per namespace ([`relay`]) publishes them in order
//! through the process's [`Transport`], stamping each row once the transport has accepted it.
//!
//! [`Tx::publish_all`] writes any number of events with one statement, and the relay publishes up to 100
//! outbox rows at once (RabbitMQ: all sent, then confirmed in order), so a burst of events costs a few
//! round trips, not one per event.

use std::sync::Arc;
use std::time::Duration;

use super::{Envelope, Event, Transport};
use crate::args;
use crate::clock::now_ms;
use crate::store::{Engine, Namespace, StoreError, Tx};

impl Tx<'_> {
    /// Records `event` in this namespace's outbox, atomically with the rest of the transaction.
    pub async fn publish<E: Event>(&mut self, event: &E) -> Result<(), StoreError> {
        self.publish_all(std::slice::from_ref(event)).await
    }

    /// Records `events` in this namespace's outbox, in order, with one statement however many there are
    /// (a consumer applying a batch of events publishes what they caused together).
    pub async fn publish_all<E: Event>(&mut self, events: &[E]) -> Result<(), StoreError> {
        let trace = crate::http::current_request_id().and_then(|id| id.to_str().ok().map(str::to_owned));
        self.publish_traced(events.iter().map(|event| (event, trace.clone()))).await
    }

    /// [`Tx::publish_all`] for events caused by different requests, each with its request id (a task
    /// recording many requests' work in one transaction).
    pub async fn publish_traced<'e, E: Event>(
        &mut self,
        events: impl IntoIterator<Item = (&'e E, Option<String>)>,
    ) -> Result<(), StoreError> {
        let rows = events
            .into_iter()
            .map(|(event, trace)| {
                let envelope = Envelope::wrap(event, self.service(), trace)?;
                Ok((
                    envelope.id,
                    envelope.kind,
                    envelope.topic,
                    envelope.version,
                    envelope.occurred_at,
                    envelope.producer,
                    envelope.account,
                    envelope.key,
                    String::from(Box::<str>::from(envelope.payload)),
                    envelope.trace,
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let rows = crate::store::json_rows(&rows)?;
        // `order by key` keeps the array's order in the outbox's sequence, which is the publishing order.
        self.kernel_execute(
            "insert into _outbox (id, kind, topic, version, occurred_at, producer, account_id, event_key, payload, \
             trace) select value ->> 0, value ->> 1, value ->> 2, cast(value ->> 3 as bigint), \
             cast(value ->> 4 as bigint), value ->> 5, \
             value ->> 6, value ->> 7, value ->> 8, value ->> 9 from jsonb_each(?) order by key",
            crate::args![rows],
        )
        .await?;
        self.mark_published();
        Ok(())
    }
}

/// Publishes `namespace`'s outbox through `transport`, in order, until `stop` fires. Wakes when a
/// transaction that published commits, and at least every `poll` (for rows left by a crash or a failure).
pub async fn relay(
    namespace: Namespace,
    transport: Arc<dyn Transport>,
    poll: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    relay_metered(namespace, transport, poll, stop, None).await;
}

/// [`relay`], keeping `events_published_total` and the `events_outbox_backlog` gauge in `metrics`.
pub async fn relay_metered(
    namespace: Namespace,
    transport: Arc<dyn Transport>,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    metrics: Option<crate::metrics::Metrics>,
) {
    let wake = namespace.outbox_signal();
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_batch(&namespace, transport.as_ref()).await {
            Ok(0) => {
                backoff = Duration::from_millis(100);
                if let Some(metrics) = &metrics {
                    metrics.set_outbox_backlog(namespace.service(), 0);
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                }
            }
            Ok(published) => {
                if let Some(metrics) = &metrics {
                    metrics.observe_events_published(namespace.service(), transport.name(), published);
                }
            }
            Err(error) => {
                if let (Some(metrics), Ok(backlog)) = (&metrics, outbox_backlog(&namespace).await) {
                    metrics.set_outbox_backlog(namespace.service(), backlog);
                }
                tracing::warn!(producer = namespace.service(), transport = transport.name(), error = %error, retry_ms = backoff.as_millis(), "publishing the outbox failed; retrying");
                // New commits do not cut the backoff short: the transport is what is failing.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes what is left in `namespace`'s outbox now (at shutdown); returns how many were published.
pub async fn flush(namespace: &Namespace, transport: &dyn Transport) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        match relay_batch(namespace, transport).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    id: String,
    kind: String,
    topic: Option<String>,
    version: i64,
    occurred_at: i64,
    producer: String,
    account_id: Option<String>,
    event_key: String,
    payload: String,
    trace: Option<String>,
}

/// Publishes up to one batch of unpublished events; returns how many were published.
pub(super) async fn relay_batch(namespace: &Namespace, transport: &dyn Transport) -> anyhow::Result<usize> {
    // While a move copies the namespace its outbox stays as it is: what is unpublished is copied and
    // published from the new location (`omnidesk data move`).
    if !namespace.gate().admits(crate::store::Writer::Kernel) {
        return Ok(0);
    }
    let rows: Vec<OutboxRow> = namespace
        .kernel_fetch_all(
            "select seq, id, kind, topic, version, occurred_at, producer, account_id, event_key, payload, trace \
             from _outbox where published_at is null order by seq limit 100",
            args![],
        )
        .await?;
    // Rows are stamped once per batch, not once per event: each stamp is a write to a namespace whose
    // producers are writing too. An event published but not yet stamped when the process dies is published
    // again after restart, and consumers ignore it (they deduplicate by id).
    let mut seqs = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        seqs.push(row.seq);
        envelopes.push(Envelope {
            id: row.id.parse()?,
            kind: row.kind,
            topic: row.topic,
            version: u32::try_from(row.version)?,
            occurred_at: row.occurred_at,
            producer: row.producer,
            account: row.account_id.as_deref().map(str::parse).transpose()?,
            key: row.event_key,
            payload: serde_json::value::RawValue::from_string(row.payload)?,
            trace: row.trace,
        });
    }
    if envelopes.is_empty() {
        return Ok(0);
    }
    let (sent, error) = transport.publish_batch(&envelopes).await;
    let published = match (seqs.first(), sent.checked_sub(1).and_then(|last| seqs.get(last))) {
        (Some(&first), Some(&last)) => Some((first, last)),
        _ => None,
    };
    // The first event not published is the one whose failure is recorded.
    let failure = error.map(|error| (seqs.get(sent).or(seqs.last()).copied().unwrap_or_default(), error));
    let count = match published {
        Some((first, last)) => {
            let stamped = namespace
                .kernel_execute(
                    "update _outbox set published_at = ? where seq between ? and ? and published_at is null",
                    args![now_ms(), first, last],
                )
                .await?;
            usize::try_from(stamped).unwrap_or(0)
        }
        None => 0,
    };
    if let Some((seq, error)) = failure {
        namespace
            .kernel_execute(
                "update _outbox set attempts = attempts + 1, last_error = ? where seq = ?",
                args![error.to_string(), seq],
            )
            .await?;
        return Err(error.into());
    }
    Ok(count)
}

/// Deletes what the event bus no longer needs from `namespace`: outbox rows published before `before`
/// (Unix milliseconds) and the ids of events processed before it. An unpublished event is never deleted.
/// Dropping a processed id ends its deduplication, so `before` must be older than any redelivery can be
/// (the configured retention is days; redeliveries come within minutes). Returns how many rows went; in
/// slices, so that producers and consumers of the namespace never wait long behind it.
pub async fn trim(namespace: &Namespace, before: i64) -> Result<u64, StoreError> {
    let mut deleted = namespace
        .kernel_delete_in_slices(
            "delete from _outbox where seq in (select seq from _outbox \
             where published_at is not null and published_at < ? order by published_at limit ?)",
            args![before],
        )
        .await?;
    deleted += match namespace.engine() {
        // Ids are recorded in time order, so the old ones are those before the first recent one; finding it
        // walks only the old rows, without an index on the time that every claim would have to maintain.
        Engine::Sqlite => {
            let first_kept: Vec<(i64,)> = namespace
                .kernel_fetch_all(
                    "select rowid from _processed_events where processed_at >= ? order by rowid limit 1",
                    args![before],
                )
                .await?;
            let first_kept = first_kept.first().map_or(i64::MAX, |(rowid,)| *rowid);
            namespace
                .kernel_delete_in_slices(
                    "delete from _processed_events where rowid in (select rowid from _processed_events \
                     where rowid < ? and processed_at < ? order by rowid limit ?)",
                    args![first_kept, before],
                )
                .await?
        }
        // PostgreSQL has no row order to walk; a slice is any old rows, by their physical address.
        Engine::Postgres => {
            namespace
                .kernel_delete_in_slices(
                    "delete from _processed_events where ctid = any(array(select ctid from _processed_events \
                     where processed_at < ? limit ?))",
                    args![before],
                )
                .await?
        }
        Engine::MySql => {
            namespace
                .kernel_delete_in_slices("delete from _processed_events where processed_at < ? limit ?", args![before])
                .await?
        }
    };
    Ok(deleted)
}

/// How many events wait in `namespace`'s outbox.
pub async fn outbox_backlog(namespace: &Namespace) -> Result<i64, StoreError> {
    let (count,): (i64,) =
        namespace.kernel_fetch_one("select count(*) from _outbox where published_at is null", args![]).await?;
    Ok(count)
}
