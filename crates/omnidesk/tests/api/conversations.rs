//! The help desk end to end: customers write through the API channel, agents work the conversations, and
//! a connected WebSocket sees every change — in every topology.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::desk::{Feed, Receiver, unix_now};
use crate::helpers::TestApp;
use crate::in_every_topology;

async fn api_posts_create_exactly_one_conversation_per_contact(app: TestApp) {
    // Arrange
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;

    // Act: two customers write, one three times and one twice.
    for (i, (source, content)) in
        [("cust-a", "一通目"), ("cust-b", "hello"), ("cust-a", "二通目"), ("cust-a", "三通目"), ("cust-b", "again")]
            .into_iter()
            .enumerate()
    {
        let reply = app.post_signed(&inbox, &format!("key-{i}"), source, "Customer", content).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    }

    // Assert
    let rows = app
        .conversations_until(token, |rows| {
            rows.len() == 2 && rows.iter().map(|r| r["unread_count"].as_i64().unwrap_or(0)).sum::<i64>() == 5
        })
        .await;
    let numbers: BTreeSet<i64> = rows.iter().map(|r| r["display_id"].as_i64().expect("display id")).collect();
    assert_eq!(numbers, BTreeSet::from([1, 2]));
    let a = rows.iter().find(|r| r["unread_count"] == 3).expect("customer a's conversation");
    assert_eq!(a["last_message"]["preview"], "三通目");
    assert_eq!(a["status"], "open");
    let contents: Vec<Value> =
        app.messages_of(token, a["id"].as_str().expect("id")).await.into_iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("一通目"), json!("二通目"), json!("三通目")]);
}

/// A burst of posts reaches the inbox as batches of events, stored together: each message is still stored
/// once, counted once, and pushed with the conversation as it stood right after that message.
async fn a_burst_of_posts_is_stored_once_each_and_pushed_in_order(app: TestApp) {
    // Arrange: four customers with a conversation each.
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let customers = ["c0", "c1", "c2", "c3"];
    for customer in customers {
        let reply = app.post_signed(&inbox, &format!("{customer}-first"), customer, "Customer", "最初").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    }
    app.conversations_until(token, |rows| rows.len() == 4).await;
    let mut feed = Feed::connect(&app, token, None).await;

    // Act: 15 more messages from each, all at once.
    let posts: Vec<(String, &str)> =
        (1..=15).flat_map(|n| customers.map(|customer| (format!("{customer}-{n}"), customer))).collect();
    let replies = futures_util::future::join_all(
        posts.iter().map(|(content, customer)| app.post_signed(&inbox, content, customer, "Customer", content)),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::ACCEPTED), "{replies:?}");

    // Assert: each push shows its conversation one unread message further, with itself as the last.
    let mut unread_seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut last_pushed: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for _ in 0..posts.len() {
        let event = feed.expect("message.created", |data| data["message"]["kind"] == "incoming").await;
        let (message, conversation) = (&event["data"]["message"], &event["data"]["conversation"]);
        let id = conversation["id"].as_str().expect("conversation id").to_owned();
        let unread = conversation["unread_count"].as_i64().expect("unread count");
        assert_eq!(unread, unread_seen.get(&id).map_or(2, |before| before + 1), "{event}");
        assert_eq!(conversation["last_message"]["preview"], message["content"], "{event}");
        unread_seen.insert(id.clone(), unread);
        last_pushed.insert(id, message["content"].as_str().expect("content").to_owned());
    }
    let rows = app.conversations_until(token, |rows| rows.iter().all(|r| r["unread_count"] == 16)).await;
    assert_eq!(rows.len(), 4);
    for row in rows {
        let id = row["id"].as_str().expect("id");
        assert_eq!(row["last_message"]["preview"], last_pushed[id].as_str(), "{row}");
        assert_eq!(app.messages_of(token, id).await.len(), 16);
    }
}

async fn redelivering_every_post_changes_nothing(app: TestApp) {
    // Arrange
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let mut first = Vec::new();
    for i in 0..3 {
        let reply = app.post_signed(&inbox, &format!("order-{i}"), "cust-1", "Ken", &format!("message {i}")).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        first.push(reply.body["id"].clone());
    }
    let rows = app.conversations_until(token, |rows| rows.len() == 1 && rows[0]["unread_count"] == 3).await;
    let conversation = rows[0]["id"].as_str().expect("id").to_owned();

    // Act: every post is delivered again, with the same keys.
    for (i, id) in first.iter().enumerate() {
        let reply = app.post_signed(&inbox, &format!("order-{i}"), "cust-1", "Ken", &format!("message {i}")).await;
        assert!(reply.status.is_success(), "{reply:?}");
        assert_eq!(&reply.body["id"], id, "a replay answers with the original id");
        assert_eq!(reply.headers.get("idempotent-replayed").map(|v| v.to_str().expect("ascii")), Some("true"));
    }
    // A marker post shows when everything before it has been processed.
    app.post_signed(&inbox, "marker", "cust-1", "Ken", "marker").await;
    app.conversations_until(token, |rows| rows.len() == 1 && rows[0]["last_message"]["preview"] == "marker").await;

    // Assert
    let messages = app.messages_of(token, &conversation).await;
    assert_eq!(messages.len(), 4, "{messages:?}");
    let rows = app.conversations_until(token, |_| true).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["unread_count"], 4);
}

async fn an_agent_works_a_conversation_and_the_websocket_sees_every_change(app: TestApp) {
    // Arrange: an owner with an API inbox that delivers replies to a receiver of the test's own.
    let (owner, session) = app.signed_in().await;
    let token = &session.access_token;
    let secret = Arc::new(Mutex::new(String::new()));
    let receiver = Receiver::default();
    let callback = receiver.start(secret.clone()).await;
    let inbox = app.create_api_inbox(token, Some(&callback)).await;
    *secret.lock().expect("lock") = inbox.secret.clone();
    let label =
        app.call(Method::POST, "/api/labels", token, Some(json!({ "name": "返品", "colour": "#E11D48" }))).await;
    assert_eq!(label.status, StatusCode::CREATED, "{label:?}");
    let mut feed = Feed::connect(&app, token, None).await;

    // Act + assert, step by step.
    app.post_signed(&inbox, "k1", "cust-9", "佐藤", "注文した靴を返品したいです").await;
    let created = feed.expect("message.created", |d| d["message"]["kind"] == "incoming").await;
    let conversation = created["data"]["conversation"]["id"].as_str().expect("conversation id").to_owned();
    let path = format!("/api/conversations/{conversation}");

    // Filters: it is open and unassigned, and in the inbox.
    let open =
        app.get(&format!("/api/conversations?status=open&inbox_id={}&assignee=unassigned", inbox.id), token).await;
    assert_eq!(open.body["data"].as_array().map(Vec::len), Some(1), "{open:?}");
    assert_eq!(open.body["meta"]["counts"]["unassigned"], 1);
    assert_eq!(open.body["meta"]["counts"]["mine"], 0);
    let resolved = app.get("/api/conversations?status=resolved", token).await;
    assert_eq!(resolved.body["data"].as_array().map(Vec::len), Some(0), "{resolved:?}");

    // Assign to myself.
    let assigned =
        app.call(Method::POST, &format!("{path}/assignee"), token, Some(json!({ "assignee_id": owner.id }))).await;
    assert_eq!(assigned.status, StatusCode::OK, "{assigned:?}");
    assert_eq!(assigned.body["assignee_id"], owner.id.as_str());
    feed.expect("conversation.assigned", |d| d["assignee_id"] == owner.id.as_str()).await;
    let mine = app.get("/api/conversations?assignee=me", token).await;
    assert_eq!(mine.body["data"].as_array().map(Vec::len), Some(1), "{mine:?}");
    assert_eq!(mine.body["meta"]["counts"]["mine"], 1);

    // Label.
    let labelled = app.call(Method::PUT, &format!("{path}/labels"), token, Some(json!({ "labels": ["返品"] }))).await;
    assert_eq!(labelled.body["labels"], json!(["返品"]), "{labelled:?}");
    feed.expect("conversation.updated", |d| d["conversation"]["labels"] == json!(["返品"])).await;
    let by_label = app.get("/api/conversations?label=%E8%BF%94%E5%93%81", token).await;
    assert_eq!(by_label.body["data"].as_array().map(Vec::len), Some(1), "{by_label:?}");

    // A private note: stored, pushed, never delivered.
    let note = app
        .call(
            Method::POST,
            &format!("{path}/messages"),
            token,
            Some(json!({ "content": "在庫を確認", "private": true })),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{note:?}");
    assert_eq!(note.body["kind"], "note");
    feed.expect("message.created", |d| d["message"]["kind"] == "note").await;

    // A reply: pushed, delivered to the callback signed, and shown as sent.
    let reply = app
        .call(
            Method::POST,
            &format!("{path}/messages"),
            token,
            Some(json!({ "content": "承知しました。返品を受け付けます。" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["delivery_status"], "pending");
    let reply_id = reply.body["id"].as_str().expect("id").to_owned();
    feed.expect("message.created", |d| d["message"]["kind"] == "outgoing").await;
    feed.expect("message.updated", |d| {
        d["message"]["id"] == reply_id.as_str() && d["message"]["delivery_status"] == "sent"
    })
    .await;
    {
        let deliveries = receiver.deliveries.lock().expect("lock");
        assert_eq!(deliveries.len(), 1, "exactly one delivery, and no note: {deliveries:?}");
        let (verified, body) = &deliveries[0];
        assert!(verified, "the callback is signed with the inbox secret: {body}");
        assert_eq!(body["message"]["content"], "承知しました。返品を受け付けます。");
        assert_eq!(body["contact"]["source_id"], "cust-9");
    }

    // Snooze, then resolve.
    let until = (unix_now() + 3600) * 1000;
    let snoozed = app.snooze(&path, token, until).await;
    assert_eq!(snoozed.body["status"], "snoozed", "{snoozed:?}");
    assert_eq!(snoozed.body["snoozed_until"], until);
    feed.expect("conversation.status_changed", |d| d["to"] == "snoozed").await;
    let resolved =
        app.call(Method::POST, &format!("{path}/status"), token, Some(json!({ "status": "resolved" }))).await;
    assert_eq!(resolved.body["status"], "resolved", "{resolved:?}");
    feed.expect("conversation.status_changed", |d| d["from"] == "snoozed" && d["to"] == "resolved").await;

    // The conversation's history has every activity.
    let messages = app.messages_of(token, &conversation).await;
    let actions: Vec<&str> = messages
        .iter()
        .filter(|m| m["kind"] == "activity")
        .filter_map(|m| m["attributes"]["action"].as_str())
        .collect();
    assert_eq!(actions, ["assigned", "labelled", "status_changed", "status_changed"], "{messages:?}");

    // The customer writes again: the same conversation reopens.
    app.post_signed(&inbox, "k2", "cust-9", "佐藤", "ありがとうございます").await;
    feed.expect("conversation.status_changed", |d| d["to"] == "open" && d["by"].is_null()).await;
    let rows = app.conversations_until(token, |rows| rows.len() == 1 && rows[0]["status"] == "open").await;
    assert_eq!(rows[0]["id"], conversation.as_str());
}

async fn a_realtime_cursor_past_the_end_of_the_feed_is_a_400(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let feed = Feed::connect(&app, token, None).await;
    let head = feed.cursor;
    drop(feed);

    for cursor in [i64::MAX, head + 1_000_000_000] {
        let refused = Feed::try_connect(&app, token, Some(cursor)).await.err().expect("refused");
        assert!(refused.contains("400"), "cursor {cursor}: {refused}");
    }
    assert!(Feed::try_connect(&app, token, Some(head)).await.is_ok(), "the head itself is a fine cursor");
}

async fn a_client_that_reconnects_with_its_cursor_misses_nothing(app: TestApp) {
    // Arrange: a client sees the first message, then goes away.
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let mut feed = Feed::connect(&app, token, None).await;
    app.post_signed(&inbox, "r0", "cust-r", "R", "first").await;
    feed.expect("message.created", |d| d["message"]["content"] == "first").await;
    let cursor = feed.cursor;
    drop(feed);

    // Act: changes happen while it is away; it reconnects with its cursor.
    for i in 1..=3 {
        app.post_signed(&inbox, &format!("r{i}"), "cust-r", "R", &format!("while away {i}")).await;
    }
    app.conversations_until(token, |rows| rows.first().is_some_and(|r| r["last_message"]["preview"] == "while away 3"))
        .await;
    let mut feed = Feed::connect(&app, token, Some(cursor)).await;

    // Assert: every missed message arrives, in order.
    for i in 1..=3 {
        let content = format!("while away {i}");
        feed.expect("message.created", |d| d["message"]["content"] == content.as_str()).await;
    }
}

async fn search_finds_japanese_by_two_characters_and_english_by_prefix(app: TestApp) {
    // Arrange: real Japanese customer messages (no spaces between words) and an English one.
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let samples = [
        ("jp-1", "山田太郎", "先週購入したスニーカーのサイズが合わなかったので、返品をお願いできますか。"),
        ("jp-2", "鈴木花子", "配送状況を確認したいです。注文番号は12345です。"),
        ("en-1", "John Smith", "I would like a refund for my order, please."),
    ];
    for (i, (source, name, content)) in samples.iter().enumerate() {
        app.post_signed(&inbox, &format!("s{i}"), source, name, content).await;
    }
    app.conversations_until(token, |rows| rows.len() == 3).await;
    let (_, stranger) = app.signed_in().await;

    // Act + assert: 返品 (two characters, inside a sentence) finds the first message only.
    let found = app.get("/api/search?q=%E8%BF%94%E5%93%81", token).await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    let messages = found.body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{found:?}");
    assert!(messages[0]["content"].as_str().expect("content").contains("返品"));
    assert_eq!(found.body["conversations"].as_array().map(Vec::len), Some(1));

    // A longer phrase must appear as written; 配送状況 matches, 状況配送 does not.
    let phrase = app.get(&format!("/api/search?q={}", encode("配送状況")), token).await;
    assert_eq!(phrase.body["messages"].as_array().map(Vec::len), Some(1), "{phrase:?}");
    let scrambled = app.get(&format!("/api/search?q={}", encode("状況配送")), token).await;
    assert_eq!(scrambled.body["messages"].as_array().map(Vec::len), Some(0), "{scrambled:?}");

    // Contacts by Japanese name, English by word prefix.
    let by_name = app.get(&format!("/api/search?q={}", encode("花子")), token).await;
    assert_eq!(by_name.body["contacts"][0]["name"], "鈴木花子", "{by_name:?}");
    let english = app.get("/api/search?q=refu", token).await;
    assert_eq!(english.body["messages"].as_array().map(Vec::len), Some(1), "{english:?}");

    // Another account finds nothing of these.
    let other = app.get("/api/search?q=%E8%BF%94%E5%93%81", &stranger.access_token).await;
    assert_eq!(other.body["messages"].as_array().map(Vec::len), Some(0), "{other:?}");
    assert_eq!(other.body["contacts"].as_array().map(Vec::len), Some(0), "{other:?}");
}

fn encode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn every_inbox_route_answers_404_for_another_accounts_ids(app: TestApp) {
    // Arrange: account B has an inbox, a conversation with a contact, a label and a canned response (both
    // accounts on a plan with canned responses, so that what refuses A is the tenancy).
    let (b_user, b) = app.signed_in().await;
    let b_token = &b.access_token;
    app.move_to_plan(&b_user, b_token, "pro").await;
    let b_inbox = app.create_api_inbox(b_token, None).await;
    app.post_signed(&b_inbox, "x1", "cust-x", "X", "secret business").await;
    let rows = app.conversations_until(b_token, |rows| rows.len() == 1).await;
    let conversation = rows[0]["id"].as_str().expect("id").to_owned();
    let contact = rows[0]["contact"]["id"].as_str().expect("contact").to_owned();
    let label =
        app.call(Method::POST, "/api/labels", b_token, Some(json!({ "name": "vip", "colour": "#000000" }))).await;
    let label = label.body["id"].as_str().expect("label id").to_owned();
    let canned = app
        .call(Method::POST, "/api/canned-responses", b_token, Some(json!({ "short_code": "hi", "content": "Hello" })))
        .await;
    let canned = canned.body["id"].as_str().expect("canned id").to_owned();
    // Account A, an owner of its own account.
    let (a_user, a) = app.signed_in().await;
    let a_token = &a.access_token;
    app.move_to_plan(&a_user, a_token, "pro").await;
    let inbox = &b_inbox.id;

    // Act + assert: every route that takes an id.
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/inboxes/{inbox}"), None),
        (Method::PUT, format!("/api/inboxes/{inbox}"), Some(json!({ "name": "mine now" }))),
        (Method::DELETE, format!("/api/inboxes/{inbox}"), None),
        (Method::GET, format!("/api/inboxes/{inbox}/members"), None),
        (Method::PUT, format!("/api/inboxes/{inbox}/members"), Some(json!({ "user_ids": [] }))),
        (Method::GET, format!("/api/contacts/{contact}"), None),
        (Method::PUT, format!("/api/contacts/{contact}"), Some(json!({ "name": "changed" }))),
        (Method::GET, format!("/api/contacts/{contact}/conversations"), None),
        (Method::GET, format!("/api/conversations/{conversation}"), None),
        (Method::GET, format!("/api/conversations/{conversation}/messages"), None),
        (Method::POST, format!("/api/conversations/{conversation}/messages"), Some(json!({ "content": "hi" }))),
        (Method::POST, format!("/api/conversations/{conversation}/status"), Some(json!({ "status": "resolved" }))),
        (Method::POST, format!("/api/conversations/{conversation}/assignee"), Some(json!({ "assignee_id": null }))),
        (Method::POST, format!("/api/conversations/{conversation}/priority"), Some(json!({ "priority": "high" }))),
        (Method::PUT, format!("/api/conversations/{conversation}/labels"), Some(json!({ "labels": [] }))),
        (Method::POST, format!("/api/conversations/{conversation}/read"), None),
        (Method::PUT, format!("/api/labels/{label}"), Some(json!({ "name": "x", "colour": "#111111" }))),
        (Method::DELETE, format!("/api/labels/{label}"), None),
        (Method::PUT, format!("/api/canned-responses/{canned}"), Some(json!({ "short_code": "x", "content": "y" }))),
        (Method::DELETE, format!("/api/canned-responses/{canned}"), None),
    ];
    for (method, path, body) in attempts {
        let reply = app.call(method.clone(), &path, a_token, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {reply:?}");
        assert!(reply.body["code"].as_str().is_some_and(|c| c.ends_with("not_found")), "{method} {path}: {reply:?}");
    }
    // Lists and search show nothing of B's.
    for path in ["/api/inboxes", "/api/labels", "/api/canned-responses"] {
        let reply = app.get(path, a_token).await;
        assert_eq!(reply.body, json!([]), "{path}: {reply:?}");
    }
    for path in ["/api/conversations?status=all", "/api/contacts"] {
        let reply = app.get(path, a_token).await;
        assert_eq!(reply.body["data"], json!([]), "{path}: {reply:?}");
    }

    // And B's data is untouched.
    let still = app.get(&format!("/api/conversations/{conversation}"), b_token).await;
    assert_eq!(still.body["status"], "open");
    assert_eq!(still.body["priority"], "none");
}

async fn the_free_plan_allows_one_inbox_and_says_which_limit_refused(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    app.create_api_inbox(token, None).await;

    let second =
        app.call(Method::POST, "/api/inboxes", token, Some(json!({ "name": "Second", "channel": "api" }))).await;

    second.assert_problem(StatusCode::FORBIDDEN, "plan_limit_reached");
    assert_eq!(second.body["limit"], "inboxes");
    assert_eq!(second.body["plan"], "free");
    assert_eq!(second.body["max"], 1);
}

async fn bad_agent_input_is_a_422_that_names_the_field(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    app.post_signed(&inbox, "v1", "cust-v", "V", "hello").await;
    let rows = app.conversations_until(token, |rows| rows.len() == 1).await;
    let path = format!("/api/conversations/{}", rows[0]["id"].as_str().expect("id"));

    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, format!("{path}/status"), json!({ "status": "closed" }), "status"),
        (Method::POST, format!("{path}/status"), json!({ "status": "snoozed" }), "snoozed_until"),
        (Method::POST, format!("{path}/priority"), json!({ "priority": "asap" }), "priority"),
        (Method::POST, format!("{path}/messages"), json!({ "content": "   " }), "content"),
        (Method::POST, format!("{path}/messages"), json!({ "content": "x".repeat(10_001) }), "content"),
        (Method::PUT, format!("{path}/labels"), json!({ "labels": ["no-such-label"] }), "labels"),
        (Method::POST, format!("{path}/assignee"), json!({ "assignee_id": uuid::Uuid::new_v4() }), "user_id"),
        (Method::POST, "/api/labels".to_owned(), json!({ "name": "red", "colour": "red" }), "colour"),
        (Method::POST, "/api/inboxes".to_owned(), json!({ "name": "x", "channel": "fax" }), "channel"),
    ];
    for (method, path, body, field) in cases {
        let reply = app.call(method.clone(), &path, token, Some(body)).await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], field, "{method} {path}: {reply:?}");
    }
    let bad_cursor = app.get("/api/conversations?cursor=nonsense", token).await;
    bad_cursor.assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let bad_id = app.get("/api/conversations/not-a-uuid", token).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{bad_id:?}");
    let unauthenticated = app.request(Method::GET, "/api/conversations", None, None).await;
    unauthenticated.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
}

async fn the_conversation_list_pages_with_a_cursor(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    for i in 0..5 {
        app.post_signed(&inbox, &format!("p{i}"), &format!("cust-{i}"), "P", &format!("m{i}")).await;
    }
    app.conversations_until(token, |rows| rows.len() == 5).await;

    let mut seen = Vec::new();
    let mut path = "/api/conversations?limit=2".to_owned();
    loop {
        let page = app.get(&path, token).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert_eq!(page.body["meta"]["counts"]["all"], 5);
        seen.extend(page.body["data"].as_array().expect("rows").iter().map(|r| r["display_id"].as_i64().expect("n")));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/conversations?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(unique, BTreeSet::from([1, 2, 3, 4, 5]));
}

async fn an_agent_sees_only_the_inboxes_they_answer_and_cannot_configure_the_desk(app: TestApp) {
    // Arrange: an owner's inbox with one conversation, and an invited agent.
    let (_, owner) = app.signed_in().await;
    let inbox = app.create_api_inbox(&owner.access_token, None).await;
    app.post_signed(&inbox, "a1", "cust-a", "A", "こんにちは、返品について").await;
    let rows = app.conversations_until(&owner.access_token, |rows| rows.len() == 1).await;
    let conversation = rows[0]["id"].as_str().expect("id").to_owned();
    let (agent, agent_session) = crate::members::join(&app, &owner.access_token, "agent").await;
    let token = &agent_session.access_token;

    // Act + assert: not a member of the inbox, the agent sees nothing of it.
    let list = app.get("/api/conversations?status=all", token).await;
    assert_eq!(list.body["data"], json!([]), "{list:?}");
    assert_eq!(list.body["meta"]["counts"]["all"], 0, "{list:?}");
    app.get(&format!("/api/conversations/{conversation}"), token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "conversation_not_found");
    let found = app.get("/api/search?q=%E8%BF%94%E5%93%81", token).await;
    assert_eq!(found.body["messages"], json!([]), "{found:?}");
    let contact_path = format!("/api/contacts/{}/conversations", rows[0]["contact"]["id"].as_str().expect("contact"));
    let of_contact = app.get(&contact_path, token).await;
    assert_eq!(of_contact.body, json!([]), "{of_contact:?}");
    // Agents answer; owners and admins configure.
    for (path, body) in [
        ("/api/inboxes", json!({ "name": "Mine", "channel": "api" })),
        ("/api/labels", json!({ "name": "mine", "colour": "#123456" })),
        ("/api/canned-responses", json!({ "short_code": "hi", "content": "Hello" })),
    ] {
        app.call(Method::POST, path, token, Some(body)).await.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }

    // Added to the inbox, the agent sees the conversation and takes it.
    let members = make_member(&app, &owner.access_token, &inbox.id, &agent.id).await;
    assert_eq!(members.body["user_ids"], json!([agent.id]), "{members:?}");
    let list = app.get("/api/conversations?status=all", token).await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1), "{list:?}");
    assert_eq!(app.get(&contact_path, token).await.body.as_array().map(Vec::len), Some(1));
    let taken = app
        .call(
            Method::POST,
            &format!("/api/conversations/{conversation}/assignee"),
            token,
            Some(json!({ "assignee_id": agent.id })),
        )
        .await;
    assert_eq!(taken.body["assignee_id"], agent.id.as_str(), "{taken:?}");
    let by_assignee = app.get(&format!("/api/conversations?assignee={}", agent.id), &owner.access_token).await;
    assert_eq!(by_assignee.body["data"].as_array().map(Vec::len), Some(1), "{by_assignee:?}");
}

async fn a_browser_authenticates_its_socket_with_the_first_frame(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;

    let mut feed = Feed::connect_by_first_frame(&app, token).await;
    app.post_signed(&inbox, "w1", "cust-w", "W", "via the browser").await;
    feed.expect("message.created", |d| d["message"]["content"] == "via the browser").await;

    let forged = json!({ "type": "auth", "token": "not-a-token" }).to_string();
    assert_eq!(Feed::close_code_after(&app, &forged).await, 4401);
    assert_eq!(Feed::close_code_after(&app, "hello").await, 4401);
}

async fn an_agents_socket_carries_only_the_inboxes_they_answer(app: TestApp) {
    // Arrange: an owner's inbox and an agent who is not (yet) one of its members, both on the socket.
    let (_, owner) = app.signed_in().await;
    let inbox = app.create_api_inbox(&owner.access_token, None).await;
    let (agent, agent_session) = crate::members::join(&app, &owner.access_token, "agent").await;
    let mut owners = Feed::connect(&app, &owner.access_token, None).await;
    let mut agents = Feed::connect(&app, &agent_session.access_token, None).await;

    // Act: a conversation of the inbox, then a change to its contact (the account's, which every agent sees).
    app.post_signed(&inbox, "s1", "cust-s", "S", "秘密の相談です").await;
    let created = owners.expect("message.created", |d| d["message"]["content"] == "秘密の相談です").await;
    let contact = app.conversations_until(&owner.access_token, |rows| rows.len() == 1).await[0]["contact"]["id"]
        .as_str()
        .expect("contact")
        .to_owned();
    let renamed = app
        .call(Method::PUT, &format!("/api/contacts/{contact}"), &owner.access_token, Some(json!({ "name": "S." })))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");

    // Assert: the agent is told of the contact (the account's), and of nothing of the conversation.
    let mut kinds = Vec::new();
    loop {
        let event = agents.next_event().await;
        kinds.push(event["kind"].as_str().expect("kind").to_owned());
        if event["kind"] == "contact.updated" {
            assert!(event["seq"].as_i64() > created["seq"].as_i64(), "the conversation's rows were passed over");
            break;
        }
    }
    assert_eq!(kinds, ["contact.created", "contact.updated"]);

    // Added to the inbox, the agent is sent its changes from then on.
    let members = make_member(&app, &owner.access_token, &inbox.id, &agent.id).await;
    assert_eq!(members.status, StatusCode::OK, "{members:?}");
    app.post_signed(&inbox, "s2", "cust-s", "S", "追加のご相談").await;
    let next = agents.next_event().await;
    assert_eq!(next["kind"], "message.created", "{next}");
    assert_eq!(next["data"]["message"]["content"], "追加のご相談", "{next}");
}

async fn a_list_in_a_body_is_taken_without_repetitions_and_bounded(app: TestApp) {
    let (owner, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let path = format!("/api/inboxes/{}/members", inbox.id);

    // One id 26,000 times (about 1 MB): one member, and one look-up of the account's members.
    let repeated = vec![owner.id.clone(); 26_000];
    let once = app.call(Method::PUT, &path, token, Some(json!({ "user_ids": repeated }))).await;
    let many: Vec<String> = (0..501).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let too_many = app.call(Method::PUT, &path, token, Some(json!({ "user_ids": many }))).await;

    assert_eq!(once.status, StatusCode::OK, "{once:?}");
    assert_eq!(once.body["user_ids"], json!([owner.id]));
    too_many.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(too_many.body["errors"][0]["reason"], "too_many", "{too_many:?}");
}

/// Makes `agent` the one member of `inbox`.
async fn make_member(app: &TestApp, owner_token: &str, inbox: &str, agent: &str) -> crate::helpers::Reply {
    let body = json!({ "user_ids": [agent] });
    app.call(Method::PUT, &format!("/api/inboxes/{inbox}/members"), owner_token, Some(body)).await
}

/// An access token of `user` signed with the topology's key, valid for `ttl` only.
fn short_lived_token(app: &TestApp, user: &crate::helpers::TestUser, ttl: std::time::Duration) -> String {
    let signer = kernel::auth::KeyFiles::under(&app.data_dir).signer(ttl).expect("the topology's signing key");
    let caller = kernel::auth::Caller {
        user: user.id.parse().expect("user id"),
        account: user.account_id.parse().expect("account id"),
        role: kernel::auth::Role::Owner,
    };
    signer.sign(caller).expect("signed").token
}

async fn a_socket_ends_with_its_token_unless_the_client_renews_it(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    let ttl = std::time::Duration::from_secs(3);

    // Not renewed: closed as its token expires; reconnecting with a fresh token and the cursor misses nothing.
    let mut lapsing = Feed::connect(&app, &short_lived_token(&app, &user, ttl), None).await;
    app.post_signed(&inbox, "x1", "cust-x", "X", "before the token ran out").await;
    lapsing.expect("message.created", |d| d["message"]["content"] == "before the token ran out").await;
    assert_eq!(lapsing.close_code().await, 4401, "closed when the token expired");
    app.post_signed(&inbox, "x2", "cust-x", "X", "while it was away").await;
    let mut again = Feed::connect(&app, token, Some(lapsing.cursor)).await;
    again.expect("message.created", |d| d["message"]["content"] == "while it was away").await;

    // Renewed with a fresh token of the same user: open past the first token's expiry.
    let mut renewed = Feed::connect(&app, &short_lived_token(&app, &user, ttl), None).await;
    renewed.send(&json!({ "type": "auth", "token": token })).await;
    let answer = renewed.next_frame().await;
    assert_eq!(answer["type"], "auth", "{answer}");
    assert!(answer["expires_at"].as_i64().expect("expires_at") > unix_now() + 60, "{answer}");
    tokio::time::sleep(ttl + std::time::Duration::from_secs(2)).await;
    app.post_signed(&inbox, "x3", "cust-x", "X", "after the first token's expiry").await;
    renewed.expect("message.created", |d| d["message"]["content"] == "after the first token's expiry").await;

    // Renewed with someone else's token, or with a bad one: closed.
    let (_, stranger) = app.signed_in().await;
    renewed.send(&json!({ "type": "auth", "token": stranger.access_token })).await;
    assert_eq!(renewed.close_code().await, 4403);
    again.send(&json!({ "type": "auth", "token": "not-a-token" })).await;
    assert_eq!(again.close_code().await, 4401);
}

async fn a_snoozed_conversation_reopens_when_its_time_comes(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = &session.access_token;
    let inbox = app.create_api_inbox(token, None).await;
    app.post_signed(&inbox, "z1", "cust-z", "Z", "please call me back tomorrow").await;
    let rows = app.conversations_until(token, |rows| rows.len() == 1).await;
    let path = format!("/api/conversations/{}", rows[0]["id"].as_str().expect("id"));
    let until = unix_now() * 1000 + 1_500;

    let snoozed = app.snooze(&path, token, until).await;
    assert_eq!(snoozed.body["status"], "snoozed", "{snoozed:?}");

    let reopened =
        app.eventually_for(&path, token, std::time::Duration::from_secs(20), |c| c["status"] == "open").await;
    assert!(reopened.body["snoozed_until"].is_null(), "{reopened:?}");
    let messages = app.messages_of(token, &path["/api/conversations/".len()..]).await;
    let last = messages.iter().rev().find(|m| m["kind"] == "activity").expect("an activity entry");
    assert_eq!(last["attributes"]["to"], "open");
    assert!(last["attributes"]["by"].is_null(), "the system reopened it: {last}");
}

in_every_topology!(
    api_posts_create_exactly_one_conversation_per_contact,
    a_burst_of_posts_is_stored_once_each_and_pushed_in_order,
    redelivering_every_post_changes_nothing,
    an_agent_works_a_conversation_and_the_websocket_sees_every_change,
    a_client_that_reconnects_with_its_cursor_misses_nothing,
    a_realtime_cursor_past_the_end_of_the_feed_is_a_400,
    a_list_in_a_body_is_taken_without_repetitions_and_bounded,
    search_finds_japanese_by_two_characters_and_english_by_prefix,
    every_inbox_route_answers_404_for_another_accounts_ids,
    the_free_plan_allows_one_inbox_and_says_which_limit_refused,
    bad_agent_input_is_a_422_that_names_the_field,
    the_conversation_list_pages_with_a_cursor,
    an_agent_sees_only_the_inboxes_they_answer_and_cannot_configure_the_desk,
    an_agents_socket_carries_only_the_inboxes_they_answer,
    a_browser_authenticates_its_socket_with_the_first_frame,
    a_socket_ends_with_its_token_unless_the_client_renews_it,
    a_snoozed_conversation_reopens_when_its_time_comes,
);
