//! The agents' realtime feed: a WebSocket at `/api/realtime` that pushes every change of the caller's
//! account (messages, conversation updates, status and assignment changes) in order.
//!
//! Changes are rows of `realtime_feed`, written in the same transaction as the change itself, so the feed
//! is exactly as durable as the data. A socket sends the rows after its cursor whenever a transaction of
//! its account commits (an in-process wake-up) and, as a safety net, every few seconds. Each event carries
//! its `seq`; a client that reconnects (after a network blip, a broker restart or a restart of this
//! process) passes the last seq it saw as `?cursor=` and receives everything after it. Nothing depends on
//! a broker or on memory surviving, which is where peers lose updates.
//!
//! An agent (not an owner or admin) is sent only changes of the inboxes they are a member of at the time,
//! and the account's contacts: what they can see over HTTP.
//!
//! Protocol: connect to `GET /api/realtime[?cursor=N]` with `Authorization: Bearer <access token>`, or
//! without it and send `{"type":"auth","token":"…"}` as the first frame (browsers cannot set headers on a
//! WebSocket). The server sends `{"type":"ready","cursor":N,"expires_at":T,"resync":false}`, then
//! `{"type":"event","seq":N,"kind":"…","data":{…}}` frames.
//!
//! `resync` in `ready` is true when the client's cursor is older than what the feed keeps (see the
//! service's `feed_retention_days`): it should reload what it shows, and is sent changes from `cursor` on.
//! A cursor past the feed's end (one the server never gave) is refused: before the upgrade with 400
//! `invalid_cursor` when the token is in the header, with close code 4400 after a first-frame `auth`.
//!
//! A socket lives no longer than its token: at `expires_at` (Unix seconds) the server closes it with code
//! 4401, and as soon as the token is revoked (the member removed from the account, their sessions signed
//! out: within a second, as everywhere else in the API) with 4401 too. A client keeps its socket by sending `{"type":"auth","token":"…"}` with a
//! fresh token of the same user and account before then (answered `{"type":"auth","expires_at":T}`), or
//! reconnects with its cursor and misses nothing. A token of another user or account closes it (4403).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;
use contracts::AccountId;
use futures_util::SinkExt;
use kernel::auth::{Caller, TokenVerifier};
use kernel::http::bearer_token;
use kernel::http::{Problem, Query};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::desk::Desk;
use crate::feed::Feed;
use crate::store::Store;

/// How many feed rows one query sends.
const PAGE: i64 = 500;
/// How often a socket looks for rows it was not woken for (written by another replica).
const POLL: Duration = Duration::from_secs(5);
/// How long a client that did not send a token in the header has to send it.
const AUTH_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RealtimeQuery {
    /// The last seq the client saw; events after it are sent first.
    #[param(minimum = 0)]
    cursor: Option<i64>,
}

#[derive(Deserialize)]
struct AuthFrame {
    #[serde(rename = "type")]
    kind: String,
    token: String,
}

/// The realtime feed: upgrades to a WebSocket that pushes every change the caller can see, in order.
///
/// Authenticate with `Authorization: Bearer <access token>`, or (browsers) send
/// `{"type":"auth","token":"…"}` as the first frame. The server sends
/// `{"type":"ready","cursor":N,"expires_at":T,"resync":false}`, then `{"type":"event","seq":N,"kind":"…","data":{…}}`
/// frames. Reconnect with `?cursor=` the last `seq` seen to miss nothing. Close codes: 4400 a cursor past the
/// feed's end, 4401 the token expired or was revoked (send a fresh one as an `auth` frame before
/// `expires_at` to stay connected), 4403 a token of another user or account.
#[utoipa::path(get, path = "/api/realtime", security((), ("bearer" = [])), params(RealtimeQuery), responses(
    (status = 101, description = "Switching to the WebSocket protocol", headers(
        ("connection" = String, description = "`upgrade`"),
        ("upgrade" = String, description = "`websocket`"),
        ("sec-websocket-accept" = String, description = "Confirms the request's `sec-websocket-key` (RFC 6455)"),
    )),
    (status = 400, description = "`bad_request`: not a WebSocket handshake (RFC 6455: `connection: upgrade`, \
        `upgrade: websocket`, `sec-websocket-version: 13`, `sec-websocket-key`); `invalid_cursor`: negative, or past the feed's end (with a token in the header)", body = Problem),
))]
pub async fn connect_realtime(
    State(desk): State<Arc<Desk>>,
    Extension(verifier): Extension<Arc<TokenVerifier>>,
    headers: HeaderMap,
    Query(query): Query<RealtimeQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Problem> {
    if query.cursor.is_some_and(|c| c < 0) {
        return Err(Problem::bad_request("invalid_cursor", "`cursor` is a feed seq: a non-negative integer."));
    }
    // A token in the header is checked before upgrading, so a bad one is a plain 401.
    let caller = bearer_token(&headers)
        .map(|token| {
            let token = token?;
            verifier.verify_until(token).map(|(caller, exp)| Authenticated { caller, exp, token: token.to_owned() })
        })
        .transpose()?;
    // A cursor past the feed's end was never given to anyone; resyncing silently would hide a client bug.
    // Checked for an authenticated caller only: the end of the feed is nobody else's business.
    if caller.is_some()
        && let Some(end) = cursor_past_the_end(&desk.store, query.cursor).await?
    {
        return Err(Problem::bad_request(
            "invalid_cursor",
            format!("`cursor` is past the end of the feed ({end}); reconnect without it to start at the head."),
        ));
    }
    let store = desk.store.clone();
    let feed = desk.feed.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        serve(socket, caller, verifier, store, feed, query.cursor).await;
    }))
}

/// Who a socket serves, with the token that says so and when it expires (Unix seconds).
struct Authenticated {
    caller: Caller,
    exp: u64,
    token: String,
}

async fn serve(
    mut socket: WebSocket,
    caller: Option<Authenticated>,
    verifier: Arc<TokenVerifier>,
    store: Store,
    feed: Feed,
    cursor: Option<i64>,
) {
    let authenticated = match caller {
        Some(authenticated) => authenticated,
        None => match authenticate(&mut socket, &verifier).await {
            Some(authenticated) => authenticated,
            None => return close(socket, 4401, "authentication required").await,
        },
    };
    let Authenticated { mut caller, exp: mut expires_at, mut token } = authenticated;
    let mut revocations = verifier.revocation_changes();
    // A revocation learnt between the token's check and the subscription above would not wake us.
    if verifier.verify(&token).is_err() {
        return close(socket, 4401, "token revoked").await;
    }
    // A caller that authenticated with its first frame has its cursor checked now (see connect_realtime).
    match cursor_past_the_end(&store, cursor).await {
        Ok(None) => {}
        Ok(Some(_)) => return close(socket, 4400, "cursor past the end of the feed").await,
        Err(_) => return close(socket, 1011, "retry").await,
    }
    // Subscribe before reading the head, so that nothing committed in between is missed.
    let mut wake = feed.subscribe();
    let account = caller.account;
    let (mut cursor, resync) = match start_at(&store, account, cursor).await {
        Ok(start) => start,
        Err(error) => {
            tracing::warn!(error = %error, "reading the realtime feed failed");
            return close(socket, 1011, "retry").await;
        }
    };
    let ready = serde_json::json!({ "type": "ready", "cursor": cursor, "expires_at": expires_at, "resync": resync })
        .to_string();
    if socket.send(Message::Text(ready.into())).await.is_err() {
        return;
    }
    loop {
        match send_after(&mut socket, &store, &caller, &mut cursor).await {
            Ok(()) => {}
            Err(SendError::Closed) => return,
            Err(SendError::Store(error)) => {
                tracing::warn!(error = %error, account.id = %account, "reading the realtime feed failed");
                return close(socket, 1011, "retry").await;
            }
        }
        tokio::select! {
            woken = wait_for(&mut wake, account) => if !woken { return },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<AuthFrame>(text.as_str()) {
                    // A fresh token keeps the socket open past the old one's expiry.
                    Ok(auth) if auth.kind == "auth" => match verifier.verify_until(&auth.token) {
                        Ok((renewed, until)) if (renewed.user, renewed.account) == (caller.user, account) => {
                            // The fresh token's role counts from now on (an agent made admin, say).
                            (caller, expires_at, token) = (renewed, until, auth.token);
                            let frame = serde_json::json!({ "type": "auth", "expires_at": until }).to_string();
                            if socket.send(Message::Text(frame.into())).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => return close(socket, 4403, "a token of another user or account").await,
                        Err(_) => return close(socket, 4401, "invalid token").await,
                    },
                    _ => {}
                },
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep(POLL) => {}
            () = tokio::time::sleep(until_unix(expires_at)) => return close(socket, 4401, "token expired").await,
            learnt = revocations.changed() => if learnt.is_err() || verifier.verify(&token).is_err() {
                return close(socket, 4401, "token revoked").await;
            },
        }
    }
}

/// The feed's last seq when `cursor` is past it (a cursor the server never gave), else `None`.
async fn cursor_past_the_end(store: &Store, cursor: Option<i64>) -> Result<Option<i64>, Problem> {
    let Some(cursor) = cursor else { return Ok(None) };
    let end = store.feed_end().await.map_err(|e| Problem::from_store(&e))?.unwrap_or(0);
    Ok((cursor > end).then_some(end))
}

/// Where a socket starts: after the client's cursor, or at the account's head when it has none, or when
/// rows after it have been trimmed since (then `true`: the client reloads what it shows).
async fn start_at(
    store: &Store,
    account: AccountId,
    cursor: Option<i64>,
) -> Result<(i64, bool), kernel::store::StoreError> {
    if let Some(cursor) = cursor {
        let trimmed = store.feed_start().await?.is_some_and(|start| missed_rows(cursor, start));
        if !trimmed {
            return Ok((cursor, false));
        }
        return Ok((store.feed_head(account).await?, true));
    }
    Ok((store.feed_head(account).await?, false))
}

/// Whether a client that saw up to `cursor` missed rows of a feed that now starts at `start`: seqs are
/// consecutive, so those between the two existed and were trimmed.
fn missed_rows(cursor: i64, start: i64) -> bool {
    cursor + 1 < start
}

/// Sends a close frame with `code`, as the end of the socket.
async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}

/// How long from now until the Unix time `at` (seconds); zero if it has passed.
fn until_unix(at: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(at).saturating_sub(now)
}

/// Waits for the first frame to be `{"type":"auth","token":"…"}` with a valid token.
async fn authenticate(socket: &mut WebSocket, verifier: &TokenVerifier) -> Option<Authenticated> {
    let frame = tokio::time::timeout(AUTH_WINDOW, socket.recv()).await.ok()??.ok()?;
    let Message::Text(text) = frame else { return None };
    let auth: AuthFrame = serde_json::from_str(text.as_str()).ok()?;
    if auth.kind != "auth" {
        return None;
    }
    let (caller, exp) = verifier.verify_until(&auth.token).ok()?;
    Some(Authenticated { caller, exp, token: auth.token })
}

/// Waits until a transaction of `account` commits; false when the feed is gone (shutdown).
async fn wait_for(wake: &mut broadcast::Receiver<AccountId>, account: AccountId) -> bool {
    loop {
        match wake.recv().await {
            Ok(woken) if woken == account => return true,
            Ok(_) => {}
            // Missed wake-ups may include ours: look.
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

enum SendError {
    Closed,
    Store(kernel::store::StoreError),
}

/// Sends every feed row after `cursor` that `caller` may see, advancing it past those they may not. A
/// page's frames are written together, with one flush (one write to the socket, not one per change).
async fn send_after(socket: &mut WebSocket, store: &Store, caller: &Caller, cursor: &mut i64) -> Result<(), SendError> {
    let member = (!caller.role.manages_members()).then_some(caller.user);
    loop {
        let rows = store.feed_after(caller.account, *cursor, PAGE, member).await.map_err(SendError::Store)?;
        let full = i64::try_from(rows.len()).unwrap_or(0) == PAGE;
        for row in rows {
            if let Some(payload) = row.payload {
                let frame = format!(
                    r#"{{"type":"event","seq":{},"kind":{},"data":{}}}"#,
                    row.seq,
                    serde_json::Value::String(row.kind.as_str().to_owned()),
                    payload
                );
                socket.feed(Message::Text(frame.into())).await.map_err(|_| SendError::Closed)?;
            }
            *cursor = row.seq;
        }
        socket.flush().await.map_err(|_| SendError::Closed)?;
        if !full {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use kernel::args;
    use kernel::clock::now_ms;
    use kernel::store::{Location, Namespace};

    use super::*;
    use crate::domain::FeedKind;
    use crate::store::FeedEntry;

    async fn store(dir: &std::path::Path) -> Store {
        let location = Location::SqliteFile(dir.join("inbox.db"));
        let namespace = Namespace::open("inbox", &location, crate::SERVICE.migrations).await.expect("opens");
        namespace.migrate().await.expect("migrates");
        Store::new(namespace)
    }

    /// Feed rows written before feed rows named their inbox get their conversation's inbox from the
    /// migration that added the column; the rows of the whole account (a contact's) get none.
    #[tokio::test]
    async fn the_migration_that_names_each_feed_rows_inbox_attributes_the_rows_written_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("inbox.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
        let before = sqlx::migrate::Migrator::with_migrations(
            crate::MIGRATIONS.sqlite.iter().filter(|m| m.version < 20261201000001).cloned().collect(),
        );
        before.run(&pool).await.expect("migrates to the version before");
        for sql in [
            "insert into inboxes (id, account_id, name, channel, created_at, updated_at) \
             values ('inbox-a', 'acct', 'Support', 'api', 0, 0), ('inbox-b', 'acct', 'Sales', 'api', 0, 0)",
            "insert into contacts (id, account_id, created_at, updated_at) values ('contact', 'acct', 0, 0)",
            "insert into conversations (id, account_id, inbox_id, contact_id, display_id, status, last_message_at, \
             created_at, updated_at) values ('conv-a', 'acct', 'inbox-a', 'contact', 1, 'open', 0, 0, 0), \
             ('conv-b', 'acct', 'inbox-b', 'contact', 2, 'open', 0, 0, 0)",
            r#"insert into realtime_feed (account_id, kind, payload, created_at) values
             ('acct', 'message.created',
              '{"message":{"id":"m1","conversation_id":"conv-a"},"conversation":{"id":"conv-a"}}', 0),
             ('acct', 'message.created', '{"message":{"id":"m2","conversation_id":"conv-b"}}', 0),
             ('acct', 'conversation.updated', '{"conversation":{"id":"conv-b","status":"resolved"}}', 0),
             ('acct', 'contact.updated', '{"contact":{"id":"contact","name":"Hanako"}}', 0),
             ('acct', 'conversation.updated', '{"conversation":{"id":"gone"}}', 0)"#,
        ] {
            sqlx::query(sql).execute(&pool).await.expect("writes the old rows");
        }

        crate::MIGRATIONS.sqlite.run(&pool).await.expect("migrates to the latest version");

        let rows: Vec<(i64, Option<String>)> = sqlx::query_as("select seq, inbox_id from realtime_feed order by seq")
            .fetch_all(&pool)
            .await
            .expect("rows");
        let inbox = |s: &str| Some(s.to_owned());
        assert_eq!(
            rows,
            [(1, inbox("inbox-a")), (2, inbox("inbox-b")), (3, inbox("inbox-b")), (4, None), (5, None)],
            "by the conversation, else by the message's conversation; a contact's row, and one whose \
             conversation is gone, name no inbox"
        );
    }

    async fn write_feed(store: &Store, account: AccountId, rows: usize, at: i64) {
        let mut tx = store.namespace().begin().await.expect("begin");
        let entries: Vec<_> = (0..rows)
            .map(|_| FeedEntry { kind: FeedKind::ConversationUpdated, inbox: None, payload: "{}".to_owned() })
            .collect();
        Store::append_feed(&mut tx, account, &entries, at).await.expect("appended");
        tx.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn a_cursor_from_before_the_trimmed_rows_starts_over_at_the_head_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path()).await;
        let account = AccountId::new();
        let now = now_ms();
        write_feed(&store, account, 3, now - 30 * 24 * 3600 * 1000).await; // seqs 1-3, a month old
        write_feed(&store, account, 2, now).await; // 4-5

        assert_eq!(start_at(&store, account, Some(0)).await.expect("start"), (0, false), "nothing trimmed yet");
        assert_eq!(store.trim_feed(now - 7 * 24 * 3600 * 1000).await.expect("trims"), 3);

        assert_eq!(store.feed_start().await.expect("start"), Some(4));
        assert_eq!(start_at(&store, account, Some(1)).await.expect("start"), (5, true), "2 and 3 were missed");
        assert_eq!(start_at(&store, account, Some(3)).await.expect("start"), (3, false), "saw all that went");
        assert_eq!(start_at(&store, account, None).await.expect("start"), (5, false));
        let rows = store.feed_after(account, 3, 100, None).await.expect("rows");
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    }

    #[tokio::test]
    async fn trimming_an_old_feed_keeps_its_newest_row_to_show_how_far_it_went() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path()).await;
        let account = AccountId::new();
        let month_ago = now_ms() - 30 * 24 * 3600 * 1000;
        assert_eq!(store.trim_feed(month_ago).await.expect("an empty feed trims"), 0);
        write_feed(&store, account, 2_500, month_ago - 1).await;

        assert_eq!(store.trim_feed(month_ago).await.expect("trims"), 2_499, "in slices, all but the newest");
        assert_eq!(store.feed_start().await.expect("start"), Some(2_500));
        let (left,): (i64,) = store
            .namespace()
            .fetch_optional("select count(*) from realtime_feed", args![])
            .await
            .expect("count")
            .expect("a row");
        assert_eq!(left, 1);
        assert_eq!(start_at(&store, account, Some(2_000)).await.expect("start"), (2_500, true));
    }
}
