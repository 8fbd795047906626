//! Typed helpers for the help desk: API inboxes, signed channel posts, the realtime feed, a callback
//! receiver. Shared by the API suite and the fault tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Reply, TestApp};

/// An API inbox created by a test, with what customers' servers need to post to it.
pub struct ApiInbox {
    pub id: String,
    pub identifier: String,
    pub secret: String,
}

/// The `X-OmniDesk-Signature` value for `body`: HMAC-SHA256 over `"<t>.<body>"` with the inbox secret,
/// computed here independently of the server's code.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

pub fn unix_now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs())
        .expect("fits")
}

impl TestApp {
    /// Sends `method path` with a bearer token and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        self.request(method, path, Some(token), body).await
    }

    /// Creates an API inbox (optionally delivering replies to `callback_url`); asserts it worked.
    pub async fn create_api_inbox(&self, token: &str, callback_url: Option<&str>) -> ApiInbox {
        let reply = self
            .call(
                Method::POST,
                "/api/inboxes",
                token,
                Some(json!({ "name": "Website API", "channel": "api", "callback_url": callback_url })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        ApiInbox {
            id: reply.body["id"].as_str().expect("id").to_owned(),
            identifier: reply.body["identifier"].as_str().expect("identifier").to_owned(),
            secret: reply.body["secret"].as_str().expect("secret").to_owned(),
        }
    }

    /// A server-to-server post, signed with the inbox secret, with an idempotency key.
    pub async fn post_signed(&self, inbox: &ApiInbox, key: &str, source_id: &str, name: &str, content: &str) -> Reply {
        let body =
            serde_json::to_vec(&json!({ "contact": { "source_id": source_id, "name": name }, "content": content }))
                .expect("json");
        let request = self
            .http
            .post(format!("{}/public/api/v1/inboxes/{}/messages", self.base_url, inbox.identifier))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .header("x-omnidesk-signature", sign(&body, &inbox.secret, unix_now()))
            .body(body);
        let response = request.send().await.expect("sent");
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Reply { status, content_type: String::new(), headers, body }
    }

    /// Snoozes the conversation at `path` (`/api/conversations/{id}`) until `until` (Unix milliseconds).
    pub async fn snooze(&self, path: &str, token: &str, until: i64) -> Reply {
        let body = json!({ "status": "snoozed", "snoozed_until": until });
        self.call(Method::POST, &format!("{path}/status"), token, Some(body)).await
    }

    /// Waits until the account's conversation list (all statuses) satisfies `done`.
    pub async fn conversations_until(&self, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let reply = self
            .eventually("/api/conversations?status=all&limit=100", token, |body| {
                body["data"].as_array().is_some_and(|rows| done(rows))
            })
            .await;
        reply.body["data"].as_array().expect("rows").clone()
    }

    /// The messages of a conversation, oldest first (one page of up to 100).
    pub async fn messages_of(&self, token: &str, conversation: &str) -> Vec<Value> {
        let reply = self.get(&format!("/api/conversations/{conversation}/messages?limit=100"), token).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.body["data"].as_array().expect("messages").clone()
    }
}

/// A WebSocket client of `/api/realtime`.
pub struct Feed {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub cursor: i64,
}

impl Feed {
    pub async fn connect(app: &TestApp, token: &str, cursor: Option<i64>) -> Self {
        Self::try_connect(app, token, cursor).await.expect("websocket connects")
    }

    /// Connects, or says why it could not (the process behind it may be restarting).
    pub async fn try_connect(app: &TestApp, token: &str, cursor: Option<i64>) -> Result<Self, String> {
        let url = format!(
            "{}/api/realtime{}",
            app.base_url.replacen("http", "ws", 1),
            cursor.map(|c| format!("?cursor={c}")).unwrap_or_default()
        );
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
        let mut feed = Self { socket, cursor: 0 };
        let ready = feed.next_frame().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        feed.cursor = ready["cursor"].as_i64().expect("cursor");
        Ok(feed)
    }

    /// Connects without an Authorization header and authenticates with the first frame, as browsers do.
    pub async fn connect_by_first_frame(app: &TestApp, token: &str) -> Self {
        let url = format!("{}/api/realtime", app.base_url.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        let mut feed = Self { socket, cursor: 0 };
        let auth = json!({ "type": "auth", "token": token }).to_string();
        futures_util::SinkExt::send(&mut feed.socket, Message::Text(auth.into())).await.expect("auth frame sent");
        let ready = feed.next_frame().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        feed.cursor = ready["cursor"].as_i64().expect("cursor");
        feed
    }

    /// Sends `frame` first and returns the close code the server answers with.
    pub async fn close_code_after(app: &TestApp, frame: &str) -> u16 {
        let url = format!("{}/api/realtime", app.base_url.replacen("http", "ws", 1));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        futures_util::SinkExt::send(&mut socket, Message::Text(frame.to_owned().into())).await.expect("sent");
        loop {
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("an answer") {
                Some(Ok(Message::Close(Some(close)))) => return u16::from(close.code),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Sends one text frame.
    pub async fn send(&mut self, frame: &Value) {
        futures_util::SinkExt::send(&mut self.socket, Message::Text(frame.to_string().into())).await.expect("sent");
    }

    /// Reads until the server closes the socket; its close code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await.expect("closed within 30 s") {
                Some(Ok(Message::Close(Some(close)))) => return u16::from(close.code),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn next_frame(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("a frame within 30 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).expect("json frame");
            }
        }
    }

    /// The next event; its seq must follow the last one.
    pub async fn next_event(&mut self) -> Value {
        let event = self.next_frame().await;
        assert_eq!(event["type"], "event", "{event}");
        let seq = event["seq"].as_i64().expect("seq");
        assert!(seq > self.cursor, "seq {seq} after {}", self.cursor);
        self.cursor = seq;
        event
    }

    /// Reads events until one of `kind` satisfies `matches`; returns it.
    pub async fn expect(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let event = self.next_event().await;
            if event["kind"] == kind && matches(&event["data"]) {
                return event;
            }
        }
    }
}

/// A callback receiver: records every delivery, with whether its signature verified.
#[derive(Clone, Default)]
pub struct Receiver {
    pub deliveries: Arc<Mutex<Vec<(bool, Value)>>>,
}

impl Receiver {
    /// Starts the receiver on a free port; returns its URL.
    pub async fn start(&self, secret: Arc<Mutex<String>>) -> String {
        let deliveries = self.deliveries.clone();
        let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let deliveries = deliveries.clone();
            let secret = secret.clone();
            async move {
                let header = headers.get("x-omnidesk-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                let timestamp: i64 = header
                    .split(',')
                    .find_map(|part| part.strip_prefix("t="))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let expected = sign(&body, &secret.lock().expect("lock"), timestamp);
                let verified = header == expected && (unix_now() - timestamp).abs() < 300;
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                deliveries.lock().expect("lock").push((verified, json));
                StatusCode::OK
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/omnidesk-callback", listener.local_addr().expect("addr"));
        let router = axum::Router::new().route("/omnidesk-callback", axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }
}
