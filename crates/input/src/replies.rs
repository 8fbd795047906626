//! Delivering agents' replies to API channels' callback URLs.
//!
//! Each reply is a row in `reply_deliveries`, queued by the `message.created` consumer. One worker task
//! per process takes the due rows, POSTs each payload to the channel's current callback URL, signed like
//! inbound posts (`X-OmniDesk-Signature`, with the channel's secret) and named by `X-OmniDesk-Delivery`
//! (the same on every attempt, so receivers can deduplicate). A 2xx answer is `sent`; anything else is
//! retried with exponential backoff, and after the last attempt the reply is `failed` with the reason.
//! Each outcome updates the transcript and publishes `input.delivery_updated` in one transaction.
//!
//! Because the queue is in the database, a restart loses nothing: pending rows are picked up again, and an
//! attempt cut off mid-flight is retried once its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use contracts::channel::{DeliveryStatus, DeliveryUpdated};
use kernel::clock::now_ms;
use tokio::sync::Notify;

use crate::channel_signature;
use crate::store::{DeliveryRow, Store};
use crate::{InputError, Settings};

/// The header naming one delivery (constant across its attempts).
pub const DELIVERY_HEADER: &str = "x-omnidesk-delivery";

/// How many due deliveries are attempted at once.
const BATCH: i64 = 16;

/// The longest wait between two attempts, however many have failed.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The reply-delivery worker.
pub struct Worker {
    store: Store,
    http: reqwest::Client,
    max_attempts: u32,
    retry_base: Duration,
    timeout: Duration,
    poll: Duration,
    wake: Arc<Notify>,
    /// Whether callbacks may reach private addresses (see `callbacks.rs`).
    allow_private: bool,
}

/// Why an attempt did not deliver.
enum Failure {
    /// Worth retrying (the receiver may recover).
    Retry(String),
    /// Not worth retrying (the channel is gone).
    Final(String),
}

impl Worker {
    pub fn new(store: Store, settings: &Settings) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(settings.delivery_timeout)
            // A redirect would send a signed reply somewhere the channel's owner did not register.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("OmniDesk/", env!("CARGO_PKG_VERSION")));
        if !settings.callback_allow_private {
            http = http.dns_resolver(crate::callbacks::PublicOnly);
        }
        let http = http.build()?;
        Ok(Self {
            store,
            http,
            max_attempts: settings.delivery_max_attempts,
            retry_base: settings.delivery_retry_base,
            timeout: settings.delivery_timeout,
            poll: settings.delivery_poll,
            wake: Arc::new(Notify::new()),
            allow_private: settings.callback_allow_private,
        })
    }

    /// What wakes the worker when a reply is queued.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs the worker until the namespace closes (the process is stopping).
    pub fn spawn(self) {
        tokio::spawn(Arc::new(self).run());
    }

    async fn run(self: Arc<Self>) {
        loop {
            let pause = match self.clone().run_due().await {
                Ok(Some(next_due_ms)) => {
                    let wait = u64::try_from(next_due_ms.saturating_sub(now_ms())).unwrap_or(0);
                    Duration::from_millis(wait).min(self.poll)
                }
                Ok(None) => self.poll,
                Err(InputError::Store(error)) if error.is_closed() => return,
                Err(error) => {
                    tracing::warn!(error = %error, "reply delivery failed to run; retrying");
                    self.poll
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Attempts every due delivery; returns when the next pending one is due (Unix ms), if any.
    pub async fn run_due(self: Arc<Self>) -> Result<Option<i64>, InputError> {
        loop {
            let due = self.store.due_deliveries(now_ms(), BATCH).await?;
            if due.is_empty() {
                break;
            }
            let mut attempts = tokio::task::JoinSet::new();
            for row in due {
                let worker = self.clone();
                attempts.spawn(async move { worker.attempt(row).await });
            }
            while let Some(done) = attempts.join_next().await {
                match done {
                    Ok(result) => result?,
                    Err(error) => tracing::error!(error = %error, "a delivery attempt panicked"),
                }
            }
        }
        Ok(self.store.next_delivery_due().await?)
    }

    async fn attempt(&self, row: DeliveryRow) -> Result<(), InputError> {
        let started = now_ms();
        // Lease the attempt past its own timeout: if we die mid-attempt, it becomes due again after this.
        let lease_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX / 4).saturating_mul(2) + 5_000;
        if !self.store.claim_delivery(row.id, row.attempts, started.saturating_add(lease_ms), started).await? {
            return Ok(());
        }
        let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let outcome = match self.store.channel_of_inbox(row.inbox_id).await? {
            Some(channel) if channel.removed_at.is_none() => match channel.callback_url {
                Some(url) => self.post(&url, &channel.secret, &row).await,
                None => Err(Failure::Final("the channel no longer has a callback URL".to_owned())),
            },
            _ => Err(Failure::Final("the channel was removed".to_owned())),
        };
        let (status, reason, next_attempt_at) = match outcome {
            Ok(()) => (DeliveryStatus::Sent, None, started),
            Err(Failure::Final(reason)) => (DeliveryStatus::Failed, Some(reason), started),
            Err(Failure::Retry(reason)) if attempts >= self.max_attempts => {
                (DeliveryStatus::Failed, Some(reason), started)
            }
            Err(Failure::Retry(reason)) => {
                let wait = i64::try_from(backoff(self.retry_base, attempts).as_millis()).unwrap_or(i64::MAX);
                (DeliveryStatus::Pending, Some(reason), now_ms().saturating_add(wait))
            }
        };
        self.record(&row, status, reason.as_deref(), attempts, next_attempt_at).await
    }

    /// Records an attempt's outcome, the transcript's status and the event in one transaction.
    async fn record(
        &self,
        row: &DeliveryRow,
        status: DeliveryStatus,
        reason: Option<&str>,
        attempts: u32,
        next_attempt_at: i64,
    ) -> Result<(), InputError> {
        let event = DeliveryUpdated {
            account: row.account_id,
            inbox: row.inbox_id,
            message: row.message_id,
            status,
            reason: reason.map(str::to_owned),
            attempts,
        };
        let mut tx = self.store.begin().await?;
        Store::finish_attempt(&mut tx, row.id, status, reason, next_attempt_at, now_ms()).await?;
        Store::set_delivery_status(&mut tx, row.message_id, status, reason).await?;
        tx.publish(&event).await?;
        tx.commit().await?;
        match status {
            DeliveryStatus::Sent => {
                tracing::info!(delivery.id = %row.id, message.id = %row.message_id, delivery.attempts = attempts, "reply delivered");
            }
            DeliveryStatus::Pending => {
                tracing::warn!(delivery.id = %row.id, message.id = %row.message_id, delivery.attempts = attempts, reason, "reply delivery failed; will retry");
            }
            DeliveryStatus::Failed => {
                tracing::warn!(delivery.id = %row.id, message.id = %row.message_id, delivery.attempts = attempts, reason, "reply delivery failed; giving up");
            }
        }
        Ok(())
    }

    async fn post(&self, url: &str, secret: &str, row: &DeliveryRow) -> Result<(), Failure> {
        // A name is checked as it resolves (`PublicOnly`); an address in the URL itself is not resolved.
        if !self.allow_private
            && reqwest::Url::parse(url).is_ok_and(|parsed| crate::callbacks::names_a_private_address(&parsed))
        {
            return Err(Failure::Final(
                "the callback URL names a private address (services.input.settings.callback_allow_private)".to_owned(),
            ));
        }
        let signed = channel_signature::sign(row.payload.as_bytes(), secret, now_ms() / 1000);
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(channel_signature::HEADER, signed)
            .header(DELIVERY_HEADER, row.id.to_string())
            .body(row.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(Failure::Retry(format!("HTTP {}", response.status().as_u16()))),
            Err(error) if error.is_timeout() => {
                Err(Failure::Retry(format!("no answer within {} ms", self.timeout.as_millis())))
            }
            Err(error) => Err(Failure::Retry(describe(&error.without_url()))),
        }
    }
}

/// The wait after `attempts` failed attempts: base × 2^(attempts − 1), at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF)
}

/// An error and its causes on one line ("error sending request: connection refused"); the URL is left out,
/// since it may carry the receiver's own credentials.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_with_each_failed_attempt() {
        let base = Duration::from_millis(1000);
        let waits: Vec<u128> = (1..=4).map(|n| backoff(base, n).as_millis()).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000]);
    }

    #[test]
    fn the_wait_is_capped_at_an_hour() {
        assert_eq!(backoff(Duration::from_millis(1000), 40), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(3000), 3), MAX_BACKOFF);
    }
}
