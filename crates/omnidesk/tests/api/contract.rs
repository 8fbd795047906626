//! The contract test: Schemathesis (PyPI) over the whole OpenAPI document of a monolith, as an owner with
//! data — generated valid and invalid requests for every operation (examples, coverage, fuzzing) and
//! stateful sequences. It fails on any 5xx and on any answer whose status, content type, headers or body
//! the document does not describe. The payment provider is the local fake, so that billing answers as
//! it does when configured. `scripts/test` installs Schemathesis; `SCHEMATHESIS_MAX_EXAMPLES` (default
//! 25) bounds the requests generated per operation and phase.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, monolith_config};

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let fake = payment::stripe::fake::FakeStripe::start("sk_test_omnidesk").await.expect("fake provider");
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = monolith_config(data.path());
    let payment = &mut config.services.entry("payment".to_owned()).or_default().settings;
    payment.insert("stripe_api_base".to_owned(), fake.base_url().to_owned());
    payment.insert("stripe_secret_key".to_owned(), "sk_test_omnidesk".to_owned());
    for plan in ["starter", "pro", "business"] {
        payment.insert(format!("price_{plan}"), format!("price_{plan}_monthly"));
    }
    // The hooks log the owner in again whenever generated requests sign it out.
    config.auth.login_attempts_per_email_per_client_per_minute = 10_000;
    config.auth.login_attempts_per_ip_per_minute = 10_000;
    let app = TestApp::monolith_with(config, data).await;

    let (owner, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    // A plan with room (inboxes, canned responses, seats), so that generated creations reach the handlers'
    // own checks rather than the free plan's limits.
    app.move_to_plan(&owner, token, "business").await;
    let inbox =
        app.request(Method::POST, "/api/inboxes", Some(token), Some(json!({"name": "Website", "channel": "api"})));
    let inbox = inbox.await;
    assert_eq!(inbox.status, StatusCode::CREATED, "{inbox:?}");
    let label = json!({"name": "billing", "colour": "#336699"});
    assert_eq!(app.request(Method::POST, "/api/labels", Some(token), Some(label)).await.status, StatusCode::CREATED);
    let identifier = inbox.body["identifier"].as_str().expect("identifier");
    let contact = app.post(&format!("/public/api/v1/inboxes/{identifier}/contacts"), json!({"name": "山田"})).await;
    assert_eq!(contact.status, StatusCode::CREATED, "{contact:?}");
    let source_id = contact.body["source_id"].as_str().expect("source id");
    let path = format!("/public/api/v1/inboxes/{identifier}/contacts/{source_id}/messages");
    assert_eq!(app.post(&path, json!({"content": "返品したいです"})).await.status, StatusCode::ACCEPTED);

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let work = tempfile::tempdir().expect("tempdir");
    let max_examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "25".to_owned());
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance";
    let run = tokio::process::Command::new("schemathesis")
        .current_dir(work.path())
        .env("PYTHONPATH", &hooks)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("OMNIDESK_ST_URL", &app.base_url)
        .env("OMNIDESK_ST_EMAIL", &owner.email)
        .env("OMNIDESK_ST_PASSWORD", &owner.password)
        .args(["--no-color", "run", &format!("{}/api/openapi.json", app.base_url)])
        .args(["--checks", checks, "--phases", "examples,coverage,fuzzing,stateful"])
        // One worker: Python 3.11's `ast.parse`, which Hypothesis calls to describe its filters, is not safe
        // across threads ("AST constructor recursion depth mismatch", seen in CI with two).
        .args(["--max-examples", &max_examples, "--workers", "1", "--request-timeout", "10"])
        .args(["--suppress-health-check", "all", "--generation-database", "none"])
        .output()
        .await
        .expect("schemathesis runs (scripts/test installs it: pip install schemathesis)");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "Schemathesis failed:\n{report}\n{}", String::from_utf8_lossy(&run.stderr));
    println!("{report}");
}
