//! `omnidesk data move` against a running monolith: the inbox's data goes to PostgreSQL and back while
//! clients keep working. The move picks its own engines (the machine's PostgreSQL, `TEST_POSTGRES_URL`),
//! so this runs in the suite's SQLite pass only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::helpers::{ServerNamespaces, TestApp, test_database};

pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `omnidesk data ARGS` for `app`, as a child process whose standard error is read line by line.
fn data_command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnidesk"));
    command
        .arg("data")
        .args(args)
        .arg("--data-dir")
        .arg(&app.data_dir)
        .env_remove("OMNIDESK_CONFIG")
        .env("OMNIDESK_LOG", "warn")
        .current_dir(&app.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

pub async fn run_data(app: &TestApp, args: &[&str]) -> String {
    let output = data_command(app, args).output().await.expect("omnidesk data runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "omnidesk data {args:?} failed:\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

/// What the clients running during the move saw.
#[derive(Default)]
struct Seen {
    posted: Vec<String>,
    /// Status codes by what was asked.
    answers: HashMap<&'static str, HashMap<u16, u32>>,
    /// 503s of inbox writes, which must be `service_moving` with Retry-After.
    held_writes: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbox_data_moves_to_postgres_and_back_while_every_client_keeps_working() {
    if test_database().is_some() {
        return;
    }
    let app = Arc::new(TestApp::monolith().await);
    let (user, session) = app.signed_in().await;
    let token = session.access_token.clone();
    let inbox = app.create_api_inbox(&token, None).await;
    for contact in 0..5 {
        let reply = app
            .post_signed(&inbox, &format!("before-{contact}"), &format!("c{contact}"), "山田", "返品したいです")
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    }
    app.conversations_until(&token, |rows| rows.len() == 5).await;

    let namespaces = ServerNamespaces::new(&postgres_url());
    let target = kernel::store::Location::on_server(namespaces.url(), &namespaces.template(), "inbox")
        .expect("a PostgreSQL location")
        .url();

    // Clients: customers posting to the API channel, an agent reading the inbox and writing labels, the
    // user and plan services' endpoints.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = tokio::spawn({
        let (app, stop, token, user_id) = (app.clone(), stop.clone(), token.clone(), user.id.clone());
        async move {
            let mut seen = Seen::default();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 400 {
                n += 1;
                let content = format!("移動中のお問い合わせ {n}");
                let posted =
                    app.post_signed(&inbox, &format!("during-{n}"), &format!("c{}", n % 5), "山田", &content).await;
                let mut count = |what: &'static str, status: StatusCode| {
                    *seen.answers.entry(what).or_default().entry(status.as_u16()).or_default() += 1;
                };
                count("post", posted.status);
                if posted.status == StatusCode::ACCEPTED {
                    seen.posted.push(content);
                }
                count("user", app.get(&format!("/api/users/{user_id}"), &token).await.status);
                count("plan", app.get("/api/plan", &token).await.status);
                count("inbox read", app.get("/api/conversations?status=all", &token).await.status);
                let label = json!({ "name": format!("label-{n}"), "colour": "#E11D48" });
                let written = app.call(Method::POST, "/api/labels", &token, Some(label)).await;
                count("inbox write", written.status);
                if written.status == StatusCode::SERVICE_UNAVAILABLE {
                    written.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_moving");
                    assert!(written.headers.contains_key("retry-after"), "{written:?}");
                    seen.held_writes += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A first move is killed (kill -9) while it holds the inbox's writes; the same command run again
    // finishes the job.
    let mut killed = data_command(&app, &["move", "--service", "inbox", "--to", &target]).spawn().expect("starts");
    let mut lines = tokio::io::BufReader::new(killed.stderr.take().expect("stderr")).lines();
    while let Some(line) = lines.next_line().await.expect("reads") {
        if line.contains("draining") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    killed.start_kill().expect("kill -9");
    killed.wait().await.expect("reaped");

    let moved = run_data(&app, &["move", "--service", "inbox", "--to", &target]).await;
    assert!(moved.contains("inbox: moved to postgres://"), "{moved}");
    assert!(moved.contains("verified"), "{moved}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = clients.await.expect("the clients ran");

    for what in ["post", "user", "plan", "inbox read"] {
        let answers = &seen.answers[what];
        assert!(answers.keys().all(|status| (200..300).contains(status)), "{what} answered {answers:?}");
    }
    let writes = &seen.answers["inbox write"];
    assert!(writes.keys().all(|status| *status == 201 || *status == 503), "inbox writes answered {writes:?}");
    assert!(seen.held_writes > 0, "the move held the inbox's writes for a while: {writes:?}");

    // Every message posted meanwhile is in its conversation, once.
    let expected = seen.posted.len() + 5;
    let mut contents: Vec<String> = Vec::new();
    for _ in 0..200 {
        contents.clear();
        let conversations = app.conversations_until(&token, |rows| rows.len() == 5).await;
        for conversation in &conversations {
            let id = conversation["id"].as_str().expect("id");
            for message in app.messages_of(&token, id).await {
                if message["kind"] == "incoming" {
                    contents.push(message["content"].as_str().expect("content").to_owned());
                }
            }
        }
        if contents.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(contents.len(), expected, "every accepted message stored, once");
    for content in &seen.posted {
        assert_eq!(contents.iter().filter(|c| *c == content).count(), 1, "{content} stored once");
    }

    // The in-process monolith writes to PostgreSQL now, Japanese search included (rebuilt there).
    let label = json!({ "name": "after the move", "colour": "#000000" });
    let written = app.call(Method::POST, "/api/labels", &token, Some(label)).await;
    assert_eq!(written.status, StatusCode::CREATED, "{written:?}");
    let found = app.get("/api/search?q=%E8%BF%94%E5%93%81", &token).await;
    assert_eq!(found.body["messages"].as_array().map(Vec::len), Some(5), "{found:?}");
    let status = run_data(&app, &["status"]).await;
    assert!(status.contains("inbox: postgres://") && status.contains("recorded in locations.toml"), "{status}");

    // And back to its SQLite file (the copy it left, fenced, is emptied and refilled).
    let home = format!("sqlite://{}", app.data_dir.join("inbox.db").display());
    let back = run_data(&app, &["move", "--service", "inbox", "--to", &home]).await;
    assert!(back.contains("inbox: moved to sqlite://"), "{back}");
    let verified = run_data(&app, &["verify", "--service", "inbox", "--from", &home, "--to", &target]).await;
    assert!(verified.contains("tables identical"), "{verified}");
    let mut label = None;
    for _ in 0..40 {
        let body = json!({ "name": "home again", "colour": "#000000" });
        let written = app.call(Method::POST, "/api/labels", &token, Some(body)).await;
        if written.status == StatusCode::CREATED {
            label = Some(written);
            break;
        }
        written.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_moving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(label.is_some(), "writes resumed at the SQLite file");
    let status = run_data(&app, &["status"]).await;
    assert!(status.contains("inbox: sqlite://") && !status.contains("recorded"), "{status}");
    drop(namespaces);
}
