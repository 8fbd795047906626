//! The API channel (input service) end to end: signed server-to-server posts and widget-style clients
//! write into an API inbox, the inbox service turns them into conversations, and agents' replies come back
//! to the contact's transcript and to the inbox's callback URL — in every topology (in microservices the
//! events cross processes through RabbitMQ).
//!
//! "Nothing stored" is shown from the outside: a refused post never appears in the contact's transcript,
//! and after a batch of refused posts and one good one, the account has exactly one conversation holding
//! exactly one message.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp};
use crate::in_every_topology;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// An API inbox as its owner sees it after creating it.
struct ApiInbox {
    id: String,
    identifier: String,
    secret: String,
}

async fn create_api_inbox(app: &TestApp, token: &str, callback_url: Option<&str>) -> ApiInbox {
    let mut body = json!({ "name": "Website API", "channel": "api" });
    if let Some(url) = callback_url {
        body["callback_url"] = json!(url);
    }
    let reply = app.request(Method::POST, "/api/inboxes", Some(token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["channel"], "api");
    ApiInbox {
        id: reply.body["id"].as_str().expect("id").to_owned(),
        identifier: reply.body["identifier"].as_str().expect("identifier").to_owned(),
        secret: reply.body["secret"].as_str().expect("secret").to_owned(),
    }
}

fn messages_path(identifier: &str) -> String {
    format!("/public/api/v1/inboxes/{identifier}/messages")
}

/// POSTs raw `body` to `path` with the given extra headers.
async fn post_raw(app: &TestApp, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut request =
        app.http.post(format!("{}{path}", app.base_url)).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_default();
    Reply { status, content_type, headers, body }
}

/// A server-to-server post, signed now with the inbox's secret.
async fn post_signed(app: &TestApp, inbox: &ApiInbox, key: &str, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).expect("json");
    let signature = input::channel_signature::sign(&bytes, &inbox.secret, now());
    post_raw(
        app,
        &messages_path(&inbox.identifier),
        &[("x-omnidesk-signature", signature), ("idempotency-key", key.to_owned())],
        bytes,
    )
    .await
}

fn message_body(source_id: &str, content: &str) -> Value {
    json!({ "contact": { "source_id": source_id, "name": "Hanako Yamada", "email": "hanako@example.jp" }, "content": content })
}

/// The account's conversations, of every status.
async fn conversations(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get("/api/conversations?status=all", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["data"].as_array().expect("data").clone()
}

/// Waits until the account has a conversation; returns it.
async fn first_conversation(app: &TestApp, token: &str) -> Value {
    let reply = app
        .eventually("/api/conversations?status=all", token, |body| {
            body["data"].as_array().is_some_and(|list| !list.is_empty())
        })
        .await;
    reply.body["data"][0].clone()
}

async fn messages_of(app: &TestApp, token: &str, conversation: &str) -> Vec<Value> {
    let reply = app.get(&format!("/api/conversations/{conversation}/messages"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["data"].as_array().expect("data").clone()
}

/// The customer-visible messages (not activity entries) of a conversation.
fn said(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|m| m["kind"] != "activity")
        .map(|m| (m["kind"].as_str().unwrap_or("").to_owned(), m["content"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn a_signed_post_becomes_a_conversation_with_its_message(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;

    let reply = post_signed(&app, &inbox, "order-1001", &message_body("user-42", "荷物が届きません")).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["status"], "accepted");
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let conversation = first_conversation(&app, token).await;
    assert_eq!(conversation["inbox_id"], inbox.id.as_str());
    assert_eq!(conversation["contact"]["name"], "Hanako Yamada");
    let messages = messages_of(&app, token, conversation["id"].as_str().expect("id")).await;
    let incoming: Vec<&Value> = messages.iter().filter(|m| m["kind"] == "incoming").collect();
    assert_eq!(incoming.len(), 1, "{messages:?}");
    assert_eq!(incoming[0]["id"], id.as_str(), "inbox stores the message under the id input chose");
    assert_eq!(incoming[0]["content"], "荷物が届きません");
}

/// A post that must be refused: what it is, its headers and body, and the expected status and code.
type RefusedPost = (&'static str, Vec<(&'static str, String)>, Vec<u8>, StatusCode, &'static str);

async fn bad_signatures_stale_timestamps_and_malformed_posts_are_refused_and_store_nothing(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;
    let path = messages_path(&inbox.identifier);
    let body = serde_json::to_vec(&message_body("user-1", "forged")).expect("json");
    let key = ("idempotency-key", "k-bad".to_owned());
    let signed = |bytes: &[u8], secret: &str, at: i64| {
        ("x-omnidesk-signature", input::channel_signature::sign(bytes, secret, at))
    };
    let signed_now = |bytes: &[u8]| signed(bytes, &inbox.secret, now());

    let cases: Vec<RefusedPost> = vec![
        ("no signature", vec![key.clone()], body.clone(), StatusCode::UNAUTHORIZED, "invalid_signature"),
        (
            "another secret",
            vec![key.clone(), signed(&body, "chs_not_the_secret", now())],
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            vec![key.clone(), signed(&body, &inbox.secret, now() - 301)],
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "body changed after signing",
            vec![key.clone(), signed_now(&body)],
            serde_json::to_vec(&message_body("user-1", "tampered")).expect("json"),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "garbage signature header",
            vec![key.clone(), ("x-omnidesk-signature", "v1=abc".to_owned())],
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "no idempotency key",
            vec![signed_now(&body)],
            body.clone(),
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
        ),
        (
            "malformed JSON",
            vec![key.clone(), signed_now(b"{\"contact\": ")],
            b"{\"contact\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (case, headers, bytes, status, code) in cases {
        let reply = post_raw(&app, &path, &headers, bytes).await;
        assert_eq!((reply.status, reply.body["code"].as_str()), (status, Some(code)), "{case}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json", "{case}");
    }
    for (case, body, field) in [
        ("no content", json!({ "contact": { "source_id": "user-1" } }), "content"),
        ("empty content", message_body("user-1", "  "), "content"),
        ("over-long content", message_body("user-1", &"あ".repeat(10_001)), "content"),
        ("empty source id", message_body("", "hello"), "contact.source_id"),
        ("bad e-mail", json!({ "contact": { "source_id": "u", "email": "nope" }, "content": "hi" }), "contact.email"),
    ] {
        let reply = post_signed(&app, &inbox, &format!("k-{case}"), &body).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], field, "{case}: {reply:?}");
    }
    let unknown = ApiInbox { id: String::new(), identifier: "inb_nobody".to_owned(), secret: inbox.secret.clone() };
    post_signed(&app, &unknown, "k-unknown", &message_body("user-1", "hello"))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "inbox_not_found");

    // One good post afterwards: once it has become a conversation, any refused post that had been recorded
    // would have become one (or a message) too.
    let good = post_signed(&app, &inbox, "k-good", &message_body("user-1", "the real one")).await;
    assert_eq!(good.status, StatusCode::ACCEPTED, "{good:?}");
    let conversation = first_conversation(&app, token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(conversations(&app, token).await.len(), 1);
    let messages = messages_of(&app, token, conversation["id"].as_str().expect("id")).await;
    assert_eq!(said(&messages), [("incoming".to_owned(), "the real one".to_owned())]);
}

async fn an_oversize_post_is_refused_before_it_is_read(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let inbox = create_api_inbox(&app, &session.access_token, None).await;
    let mut body = br#"{"contact":{"source_id":"u"},"content":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    body.extend(br#""}"#);
    let signature = input::channel_signature::sign(&body, &inbox.secret, now());

    let reply = post_raw(
        &app,
        &messages_path(&inbox.identifier),
        &[("x-omnidesk-signature", signature), ("idempotency-key", "k-big".to_owned())],
        body,
    )
    .await;

    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(conversations(&app, &session.access_token).await.is_empty());
}

async fn a_retried_post_gets_the_same_id_and_makes_one_message(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;
    let body = message_body("user-7", "where is my order?");

    let first = post_signed(&app, &inbox, "order-7", &body).await;
    let retry = post_signed(&app, &inbox, "order-7", &body).await;
    let reused = post_signed(&app, &inbox, "order-7", &message_body("user-7", "another question")).await;

    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
    assert_eq!(retry.body["id"], first.body["id"]);
    assert_eq!(retry.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    reused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let conversation = first_conversation(&app, token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = messages_of(&app, token, conversation["id"].as_str().expect("id")).await;
    assert_eq!(said(&messages), [("incoming".to_owned(), "where is my order?".to_owned())]);
}

async fn a_captured_signed_post_replayed_under_another_key_is_refused_and_stored_once(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;
    let bytes = serde_json::to_vec(&message_body("user-8", "please refund me")).expect("json");
    let signature = input::channel_signature::sign(&bytes, &inbox.secret, now());
    let path = messages_path(&inbox.identifier);
    let headers = |key: &str| [("x-omnidesk-signature", signature.clone()), ("idempotency-key", key.to_owned())];

    let original = post_raw(&app, &path, &headers("order-8"), bytes.clone()).await;
    let replayed = post_raw(&app, &path, &headers("attacker-1"), bytes.clone()).await;
    let retried = post_raw(&app, &path, &headers("order-8"), bytes.clone()).await;

    assert_eq!(original.status, StatusCode::ACCEPTED, "{original:?}");
    replayed.assert_problem(StatusCode::CONFLICT, "signature_replayed");
    assert_eq!(retried.status, StatusCode::ACCEPTED, "a retry keeps its key: {retried:?}");
    assert_eq!(retried.body["id"], original.body["id"]);
    let conversation = first_conversation(&app, token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = messages_of(&app, token, conversation["id"].as_str().expect("id")).await;
    assert_eq!(said(&messages), [("incoming".to_owned(), "please refund me".to_owned())]);
}

async fn a_signed_body_that_is_not_json_text_in_an_ignored_field_is_a_400(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let inbox = create_api_inbox(&app, &session.access_token, None).await;
    let deep =
        format!(r#"{{"contact":{{"source_id":"u-9"}},"content":"hi","x":{}{}}}"#, "[".repeat(5_000), "]".repeat(5_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"{\"contact\":{\"source_id\":\"u-9\"},\"content\":\"hi\",\"x\":\"\xff\xfe\"}".to_vec(),
        br#"{"contact":{"source_id":"u-9"},"content":"hi","x":"\ud800"}"#.to_vec(),
        br#"{"contact":{"source_id":"u-9"},"content":"hi","x":1e99999}"#.to_vec(),
        deep.into_bytes(),
    ];
    for (n, bytes) in bodies.into_iter().enumerate() {
        let signature = input::channel_signature::sign(&bytes, &inbox.secret, now());
        let headers = [("x-omnidesk-signature", signature), ("idempotency-key", format!("bad-{n}"))];
        let reply = post_raw(&app, &messages_path(&inbox.identifier), &headers, bytes).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    }
}

/// The raw record of a post is the bytes whose signature was verified, not a re-serialisation: spacing,
/// key order, escapes and number spellings of fields the channel ignores all survive.
async fn the_recorded_post_is_exactly_the_signed_bytes(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let inbox = create_api_inbox(&app, &session.access_token, None).await;
    let bytes = br#"{ "x" : [1.0e2, -0, "\u00e9\/\ud83d\ude00"],
          "contact":{"source_id":"u-raw"}, "content":"\u8fd4\u54c1 \n", "z":{"b":1,"a":2} }"#
        .to_vec();
    let signature = input::channel_signature::sign(&bytes, &inbox.secret, now());
    let headers = [("x-omnidesk-signature", signature), ("idempotency-key", "raw-1".to_owned())];

    let reply = post_raw(&app, &messages_path(&inbox.identifier), &headers, bytes.clone()).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let recorded = recorded_payloads(&app, &inbox.id).await;
    assert_eq!(recorded, [String::from_utf8(bytes).expect("utf-8")]);
}

/// The `payload` column of every inbound event recorded for `inbox`, read from the input service's
/// namespace (the one place that shows what was kept for audit).
async fn recorded_payloads(app: &TestApp, inbox: &str) -> Vec<String> {
    let namespace = app.namespace(&input::SERVICE).await;
    let rows: Vec<(String,)> = namespace
        .fetch_all(
            "select payload from inbound_events where inbox_id = ? order by received_at",
            kernel::args![inbox.to_owned()],
        )
        .await
        .expect("inbound events");
    rows.into_iter().map(|(payload,)| payload).collect()
}

/// Creates a widget contact on `inbox`; returns its source id.
async fn create_widget_contact(app: &TestApp, inbox: &ApiInbox) -> String {
    let path = format!("/public/api/v1/inboxes/{}/contacts", inbox.identifier);
    let reply = app.post(&path, json!({ "name": "Taro", "email": "taro@example.jp" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["name"], "Taro");
    reply.body["source_id"].as_str().expect("source id").to_owned()
}

fn contact_messages_path(inbox: &ApiInbox, source_id: &str) -> String {
    format!("/public/api/v1/inboxes/{}/contacts/{source_id}/messages", inbox.identifier)
}

async fn transcript(app: &TestApp, inbox: &ApiInbox, source_id: &str) -> Reply {
    app.request(Method::GET, &contact_messages_path(inbox, source_id), None, None).await
}

async fn a_widget_contact_posts_and_reads_its_transcript(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;
    let source_id = create_widget_contact(&app, &inbox).await;

    let posted = app.post(&contact_messages_path(&inbox, &source_id), json!({ "content": "こんにちは" })).await;
    let listed = transcript(&app, &inbox, &source_id).await;

    assert_eq!(posted.status, StatusCode::ACCEPTED, "{posted:?}");
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    let messages = listed.body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], posted.body["id"]);
    assert_eq!((messages[0]["kind"].as_str(), messages[0]["content"].as_str()), (Some("incoming"), Some("こんにちは")));
    let conversation = first_conversation(&app, token).await;
    assert_eq!(conversation["contact"]["name"], "Taro");
}

async fn bad_widget_posts_are_refused_and_leave_the_transcript_alone(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let inbox = create_api_inbox(&app, &session.access_token, None).await;
    let source_id = create_widget_contact(&app, &inbox).await;
    let path = contact_messages_path(&inbox, &source_id);

    app.post(&path, json!({ "content": "" }))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(&path, json!({ "content": "x".repeat(10_001) }))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(&path, json!({})).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post_bytes(&path, "application/json", b"{\"content\":".to_vec())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    app.post(&contact_messages_path(&inbox, "src_guessed"), json!({ "content": "hi" }))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "contact_not_found");
    transcript(&app, &inbox, "src_guessed").await.assert_problem(StatusCode::NOT_FOUND, "contact_not_found");
    let nowhere = ApiInbox { id: String::new(), identifier: "inb_nowhere".to_owned(), secret: String::new() };
    app.post(&format!("/public/api/v1/inboxes/{}/contacts", nowhere.identifier), json!({}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "inbox_not_found");
    transcript(&app, &nowhere, &source_id).await.assert_problem(StatusCode::NOT_FOUND, "inbox_not_found");

    let listed = transcript(&app, &inbox, &source_id).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert_eq!(listed.body["messages"], json!([]));
    assert!(conversations(&app, &session.access_token).await.is_empty());
}

/// Posts an agent's message (a reply, or a private note) in `conversation`.
async fn agent_says(app: &TestApp, token: &str, conversation: &str, content: &str, private: bool) {
    let path = format!("/api/conversations/{conversation}/messages");
    let reply =
        app.request(Method::POST, &path, Some(token), Some(json!({ "content": content, "private": private }))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

async fn an_agents_reply_reaches_the_transcript_and_a_private_note_does_not(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = create_api_inbox(&app, token, None).await;
    let source_id = create_widget_contact(&app, &inbox).await;
    app.post(&contact_messages_path(&inbox, &source_id), json!({ "content": "help?" })).await;
    let conversation = first_conversation(&app, token).await;
    let conversation = conversation["id"].as_str().expect("id");

    agent_says(&app, token, conversation, "internal: VIP customer", true).await;
    agent_says(&app, token, conversation, "We are on it!", false).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let messages = loop {
        let listed = transcript(&app, &inbox, &source_id).await;
        let messages = listed.body["messages"].as_array().cloned().unwrap_or_default();
        if messages.len() >= 2 || std::time::Instant::now() > deadline {
            break messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines: Vec<(&str, &str)> =
        messages.iter().map(|m| (m["kind"].as_str().unwrap_or(""), m["content"].as_str().unwrap_or(""))).collect();
    assert_eq!(lines, [("incoming", "help?"), ("outgoing", "We are on it!")]);
    assert_eq!(messages[1]["delivery_status"], "sent", "without a callback URL the transcript is the delivery");
}

/// A callback receiver on a free loopback port: answers 503 to its first `failures` requests, then 204 —
/// but only to requests whose signature verifies with the secret it is given once the inbox exists.
struct Receiver {
    url: String,
    secret: Arc<Mutex<String>>,
    hits: Arc<AtomicU32>,
    bodies: Arc<Mutex<Vec<(bool, String, Value)>>>,
}

async fn start_receiver(failures: u32) -> Receiver {
    use axum::http::HeaderMap;
    let secret = Arc::new(Mutex::new(String::new()));
    let hits = Arc::new(AtomicU32::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (key, counter, kept) = (secret.clone(), hits.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/omnidesk",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (key, counter, kept) = (key.clone(), counter.clone(), kept.clone());
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let secret = key.lock().expect("lock").clone();
                let signature = header("x-omnidesk-signature");
                let verified =
                    input::channel_signature::verify(signature.as_deref(), &body, &secret, now(), 300).is_ok();
                let delivery = header("x-omnidesk-delivery").unwrap_or_default();
                kept.lock().expect("lock").push((
                    verified,
                    delivery,
                    serde_json::from_slice(&body).unwrap_or_default(),
                ));
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else if verified {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/omnidesk", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, secret, hits, bodies }
}

async fn a_reply_is_delivered_signed_to_the_callback_url_after_two_failures(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let receiver = start_receiver(2).await;
    let inbox = create_api_inbox(&app, token, Some(&receiver.url)).await;
    *receiver.secret.lock().expect("lock") = inbox.secret.clone();
    let source_id = create_widget_contact(&app, &inbox).await;
    app.post(&contact_messages_path(&inbox, &source_id), json!({ "content": "is anyone there?" })).await;
    let conversation = first_conversation(&app, token).await;
    let conversation = conversation["id"].as_str().expect("id").to_owned();

    agent_says(&app, token, &conversation, "Yes — how can we help?", false).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let reply = loop {
        let listed = transcript(&app, &inbox, &source_id).await;
        let outgoing =
            listed.body["messages"].as_array().and_then(|m| m.iter().find(|m| m["kind"] == "outgoing").cloned());
        match outgoing {
            Some(reply) if reply["delivery_status"] == "sent" => break reply,
            _ if std::time::Instant::now() > deadline => panic!("never delivered: {listed:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 3);
    let bodies = receiver.bodies.lock().expect("lock").clone();
    assert!(bodies.iter().all(|(verified, _, _)| *verified), "every attempt is signed: {bodies:?}");
    assert!(bodies.iter().all(|(_, delivery, _)| !delivery.is_empty() && *delivery == bodies[0].1), "one delivery id");
    let sent = &bodies[2].2;
    assert_eq!(sent["event"], "message.created");
    assert_eq!(sent["inbox"], inbox.identifier.as_str());
    assert_eq!(sent["message"]["id"], reply["id"]);
    assert_eq!(sent["message"]["conversation"], conversation.as_str());
    assert_eq!(sent["message"]["content"], "Yes — how can we help?");
    assert_eq!(sent["contact"]["source_id"], source_id.as_str());
    // The inbox shows the outcome on the agent's message too (from `input.delivery_updated`).
    let path = format!("/api/conversations/{conversation}/messages");
    app.eventually(&path, token, |body| {
        body["data"]
            .as_array()
            .is_some_and(|messages| messages.iter().any(|m| m["kind"] == "outgoing" && m["delivery_status"] == "sent"))
    })
    .await;
}

/// One client creating contacts in a loop (to use up the account's monthly conversations, say) is slowed
/// down to the widget limit; a signed server, which holds the secret, is not.
#[tokio::test]
async fn one_client_creating_widget_contacts_in_a_loop_is_refused_past_the_limit() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = crate::helpers::monolith_config(data.path());
    let input = &mut config.services.entry("input".to_owned()).or_default().settings;
    input.insert("widget_contacts_per_ip_per_minute".to_owned(), "3".to_owned());
    let app = TestApp::monolith_with(config, data).await;
    let (_, session) = app.signed_in().await;
    let inbox = create_api_inbox(&app, &session.access_token, None).await;

    let mut source_ids = Vec::new();
    for _ in 0..3 {
        source_ids.push(create_widget_contact(&app, &inbox).await);
    }
    let path = format!("/public/api/v1/inboxes/{}/contacts", inbox.identifier);
    let refused = app.post(&path, json!({ "name": "Bot" })).await;

    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "widget_rate_limited");
    let retry_after: u64 = refused.headers["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    let written = app.post(&contact_messages_path(&inbox, &source_ids[0]), json!({ "content": "still here" })).await;
    assert_eq!(written.status, StatusCode::ACCEPTED, "a contact that exists goes on writing: {written:?}");
    let signed =
        post_signed(&app, &inbox, "server-1", &json!({ "contact": { "source_id": "s" }, "content": "hi" })).await;
    assert_eq!(signed.status, StatusCode::ACCEPTED, "the signed route is not limited: {signed:?}");
}

in_every_topology!(
    a_signed_post_becomes_a_conversation_with_its_message,
    bad_signatures_stale_timestamps_and_malformed_posts_are_refused_and_store_nothing,
    an_oversize_post_is_refused_before_it_is_read,
    a_retried_post_gets_the_same_id_and_makes_one_message,
    a_captured_signed_post_replayed_under_another_key_is_refused_and_stored_once,
    a_signed_body_that_is_not_json_text_in_an_ignored_field_is_a_400,
    the_recorded_post_is_exactly_the_signed_bytes,
    a_widget_contact_posts_and_reads_its_transcript,
    bad_widget_posts_are_refused_and_leave_the_transcript_alone,
    an_agents_reply_reaches_the_transcript_and_a_private_note_does_not,
    a_reply_is_delivered_signed_to_the_callback_url_after_two_failures,
);

#[tokio::test]
async fn callback_urls_naming_addresses_that_are_not_globally_reachable_are_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = crate::helpers::monolith_config(data.path());
    config.services.entry("input".to_owned()).or_default().settings.remove("callback_allow_private");
    let app = TestApp::monolith_with(config, data).await;
    let (_, session) = app.signed_in().await;

    for url in [
        "http://127.0.0.1/cb",
        "http://[::127.0.0.1]/cb",
        "http://[64:ff9b::7f00:1]/cb",
        "http://[2002:7f00:1::]/cb",
        "http://[fec0::1]/cb",
        "http://198.18.0.1/cb",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let body = json!({ "name": "Website API", "channel": "api", "callback_url": url });
        let reply = app.request(Method::POST, "/api/inboxes", Some(&session.access_token), Some(body)).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], "callback_url", "{url}: {reply:?}");
    }
}
