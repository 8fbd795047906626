//! An account's change signal, shared by everything that writes to the account and everything that shows
//! it: when a transaction that wrote to the account's feed commits, its realtime sockets wake and its
//! cached conversation lists are dropped.

use std::sync::Arc;

use contracts::AccountId;
use tokio::sync::broadcast;

use crate::lists::ListCache;

/// An account's change signal: when a transaction that wrote to its feed commits, its sockets wake and
/// its cached conversation lists are dropped.
#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<AccountId>,
    pub lists: Arc<ListCache>,
}

impl Default for Feed {
    fn default() -> Self {
        Self { sender: broadcast::channel(4096).0, lists: Arc::default() }
    }
}

impl Feed {
    pub fn notify(&self, account: AccountId) {
        self.lists.invalidate(account);
        // No receivers simply means no agent is connected.
        let _ = self.sender.send(account);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AccountId> {
        self.sender.subscribe()
    }
}
