//! Channels: the public endpoints of inboxes, registered by the inbox service through
//! [`InputPort`]. An inbox keeps its identifier and secret for life; registering again only changes its
//! settings (and reopens a removed endpoint).
//!
//! Every post looks its channel up by identifier, so open channels are kept in memory for a moment
//! ([`OpenChannels`]): a change this process makes (register, update, remove) drops them at once, and a
//! change another replica makes is seen within [`CHANNEL_TTL`]. Only open channels are kept, so a channel
//! registered anywhere is found at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use contracts::AccountId;
use contracts::channel::{ChannelCredentials, ChannelKind, ChannelRegistration, InputPort, RegistrationError};
use contracts::inbox::InboxId;
use kernel::auth::opaque_token;
use kernel::ports::PortError;
use kernel::store::StoreError;

use crate::store::{ChannelRow, NewChannel, Store};
use crate::{Input, InputError};
use kernel::clock::now_ms;

/// An open channel, parsed from its row.
#[derive(Debug, Clone)]
pub struct Channel {
    pub inbox: InboxId,
    pub account: AccountId,
    pub identifier: String,
    pub secret: String,
    pub kind: ChannelKind,
    pub callback_url: Option<String>,
}

impl From<ChannelRow> for Channel {
    fn from(row: ChannelRow) -> Self {
        Self {
            inbox: row.inbox_id,
            account: row.account_id,
            kind: row.kind,
            identifier: row.identifier,
            secret: row.secret,
            callback_url: row.callback_url,
        }
    }
}

/// How long an open channel is kept before it is read again: how long another replica's removal of a
/// channel may go unseen here.
pub const CHANNEL_TTL: Duration = Duration::from_secs(1);

/// Past this many kept channels, expired ones are dropped when another is kept.
const MAX_KEPT: usize = 10_000;

/// Open channels by identifier, each with when it was read.
#[derive(Default)]
pub struct OpenChannels {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// Advanced by every change, so that a read begun before a change does not keep what it read.
    generation: u64,
    channels: HashMap<String, (Instant, Channel)>,
}

impl OpenChannels {
    /// The kept channel with `identifier`, unless expired; else the generation to [`keep`](Self::keep)
    /// the channel read now under.
    fn get(&self, identifier: &str) -> Result<Channel, u64> {
        let kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept.channels.get(identifier) {
            Some((read_at, channel)) if read_at.elapsed() < CHANNEL_TTL => Ok(channel.clone()),
            _ => Err(kept.generation),
        }
    }

    /// Keeps `channel`, read at `generation`, unless a change came since.
    fn keep(&self, generation: u64, channel: &Channel) {
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.generation != generation {
            return;
        }
        if kept.channels.len() >= MAX_KEPT {
            kept.channels.retain(|_, (read_at, _)| read_at.elapsed() < CHANNEL_TTL);
        }
        kept.channels.insert(channel.identifier.clone(), (Instant::now(), channel.clone()));
    }

    /// Forgets every kept channel: one changed.
    fn forget(&self) {
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.generation += 1;
        kept.channels.clear();
    }
}

/// Checks a callback URL: absolute, http or https, with a host, and unless `allow_private`, not naming a
/// private address. Blank means none.
pub fn callback_url(url: Option<&str>, allow_private: bool) -> Result<Option<String>, RegistrationError> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else { return Ok(None) };
    let invalid = || RegistrationError::InvalidCallbackUrl(url.to_owned());
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid());
    }
    if !allow_private && crate::callbacks::names_a_private_address(&parsed) {
        return Err(RegistrationError::PrivateCallbackUrl(url.to_owned()));
    }
    Ok(Some(url.to_owned()))
}

impl Input {
    /// The open channel whose public identifier is `identifier`.
    pub async fn open_channel(&self, identifier: &str) -> Result<Channel, InputError> {
        // Identifiers we issue are short; a long one cannot exist, and is not worth a query.
        if identifier.len() > 128 {
            return Err(InputError::InboxNotFound);
        }
        let generation = match self.channels.get(identifier) {
            Ok(channel) => return Ok(channel),
            Err(generation) => generation,
        };
        let channel: Channel =
            self.store.channel_by_identifier(identifier).await?.ok_or(InputError::InboxNotFound)?.into();
        self.channels.keep(generation, &channel);
        Ok(channel)
    }

    async fn register(
        &self,
        registration: ChannelRegistration,
    ) -> Result<Result<ChannelCredentials, RegistrationError>, StoreError> {
        let callback = match callback_url(registration.callback_url.as_deref(), self.allow_private_callbacks) {
            Ok(url) => url,
            Err(error) => return Ok(Err(error)),
        };
        let (account, inbox) = (registration.account, registration.inbox);
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let kind = registration.kind;
        if !Store::update_channel(&mut tx, account, inbox, kind, callback.as_deref(), now).await? {
            let identifier = opaque_token("inb_");
            let secret = opaque_token("chs_");
            Store::insert_channel(
                &mut tx,
                NewChannel {
                    inbox,
                    account,
                    identifier: &identifier,
                    secret: &secret,
                    kind,
                    callback_url: callback.as_deref(),
                    now_ms: now,
                },
            )
            .await?;
        }
        let row = Store::channel_of_inbox_in(&mut tx, inbox).await?;
        tx.commit().await?;
        self.channels.forget();
        match row {
            Some(row) if row.account_id == account => {
                tracing::info!(inbox.id = %inbox, account.id = %account, channel.kind = kind.as_str(), "channel registered");
                Ok(Ok(ChannelCredentials { identifier: row.identifier, secret: row.secret }))
            }
            // The inbox id belongs to another account's channel: inbox ids are random, so this is a bug in the
            // caller, and answering with the other account's secret would be a leak.
            _ => Err(StoreError::Unparsable(format!("inbox {inbox} has a channel in another account"))),
        }
    }
}

#[async_trait]
impl InputPort for Input {
    async fn register_channel(
        &self,
        registration: ChannelRegistration,
    ) -> Result<Result<ChannelCredentials, RegistrationError>, PortError> {
        self.register(registration).await.map_err(unavailable)
    }

    async fn channel(&self, account: AccountId, inbox: InboxId) -> Result<Option<ChannelCredentials>, PortError> {
        let row = self.store.channel_of(account, inbox).await.map_err(unavailable)?;
        Ok(row.map(|row| ChannelCredentials { identifier: row.identifier, secret: row.secret }))
    }

    async fn remove_channel(&self, account: AccountId, inbox: InboxId) -> Result<bool, PortError> {
        let removed = self.store.remove_channel(account, inbox, now_ms()).await;
        self.channels.forget();
        let removed = removed.map_err(unavailable)?;
        if removed {
            tracing::info!(inbox.id = %inbox, account.id = %account, "channel removed");
        }
        Ok(removed)
    }
}

fn unavailable(error: StoreError) -> PortError {
    tracing::error!(error = %error, "input store failed");
    PortError::Failed { callee: "input".to_owned(), status: 500, reason: "the input store failed".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_and_https_urls_are_callback_urls() {
        for url in ["https://example.jp/hooks/omnidesk", "http://127.0.0.1:8080/cb?x=1"] {
            assert_eq!(callback_url(Some(url), true), Ok(Some(url.to_owned())), "{url}");
        }
    }

    #[test]
    fn a_private_address_is_refused_unless_the_deployment_allows_it() {
        for url in ["http://127.0.0.1:8080/cb", "http://169.254.169.254/latest/meta-data", "http://localhost/cb"] {
            assert_eq!(callback_url(Some(url), false), Err(RegistrationError::PrivateCallbackUrl(url.to_owned())));
        }
        assert_eq!(callback_url(Some("https://example.jp/cb"), false), Ok(Some("https://example.jp/cb".to_owned())));
    }

    #[test]
    fn a_blank_callback_url_means_none() {
        assert_eq!(callback_url(Some("  "), false), Ok(None));
        assert_eq!(callback_url(None, false), Ok(None));
    }

    #[test]
    fn relative_and_non_http_urls_are_refused() {
        for url in [
            "/hooks",
            "example.jp/hooks",
            "ftp://example.jp/x",
            "mailto:a@example.jp",
            "http://",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                callback_url(Some(url), true),
                Err(RegistrationError::InvalidCallbackUrl(url.to_owned())),
                "{url}"
            );
        }
    }
}
