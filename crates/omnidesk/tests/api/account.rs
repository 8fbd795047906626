//! The account domain — plans, billing, the payment provider's webhook and the events between them — in
//! every topology (in microservices the events cross processes through RabbitMQ).

use payment::stripe::fake::{SubscriptionFixture, WebhookDelivery};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, WEBHOOK_SECRET};
use crate::in_every_topology;

in_every_topology!(
    a_new_account_is_put_on_the_free_plan_by_its_creation_event,
    the_plan_catalogue_is_public_and_priced_in_yen,
    a_signed_invoice_paid_webhook_records_the_payment_and_upgrades_the_plan,
    a_redelivered_webhook_changes_nothing_twice,
    bad_signatures_stale_timestamps_and_malformed_bodies_are_rejected_and_store_nothing,
    a_failed_payment_is_recorded_and_leaves_the_plan_alone,
    a_deleted_subscription_takes_the_account_back_to_free,
    an_oversize_webhook_is_refused_before_it_is_read,
    a_plan_token_is_single_use,
    an_expired_plan_token_is_refused,
    another_accounts_plan_token_is_not_found,
    the_catalogue_advertises_only_what_exists,
    redeeming_a_plan_token_answers_the_stored_plan_and_usage,
    canned_responses_need_a_plan_that_includes_them,
    an_inbox_on_a_channel_that_does_not_exist_yet_is_refused,
);

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Delivers a signed payment-provider webhook to `/hooks/stripe`.
pub async fn deliver(app: &TestApp, delivery: &WebhookDelivery) -> Reply {
    let response = app
        .http
        .post(format!("{}/hooks/stripe", app.base_url))
        .header("content-type", "application/json")
        .header("stripe-signature", &delivery.signature)
        .body(delivery.body.clone())
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or_default();
    Reply { status, content_type, headers, body }
}

/// A Stripe subscription to `plan` for the user's account, billed in yen.
fn subscription(account_id: &str, plan: &str) -> SubscriptionFixture {
    let mut fixture = SubscriptionFixture::new(account_id.parse().expect("account id"), plan, now());
    fixture.currency = "jpy".to_owned();
    fixture.amount = 9_800;
    fixture
}

async fn payments(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get("/api/billing/payments", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body.as_array().expect("list").clone()
}

async fn a_new_account_is_put_on_the_free_plan_by_its_creation_event(app: TestApp) {
    let (_, session) = app.signed_in().await;

    let reply = app.eventually("/api/plan", &session.access_token, |body| !body["since"].is_null()).await;

    assert_eq!(reply.body["plan"]["code"], "free");
    assert_eq!(reply.body["usage"]["conversations"], 0);
}

async fn the_plan_catalogue_is_public_and_priced_in_yen(app: TestApp) {
    let reply = app.request(Method::GET, "/api/plans", None, None).await;

    assert_eq!(reply.status, StatusCode::OK);
    let codes: Vec<&str> =
        reply.body.as_array().expect("plans").iter().map(|p| p["code"].as_str().expect("code")).collect();
    assert_eq!(codes, ["free", "starter", "pro", "business"]);
    assert_eq!(reply.body[2]["price_jpy_per_month"], 9_800);
}

async fn a_signed_invoice_paid_webhook_records_the_payment_and_upgrades_the_plan(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let fixture = subscription(&user.account_id, "pro");

    let reply = deliver(&app, &WebhookDelivery::signed(&fixture.invoice_paid(), WEBHOOK_SECRET, now())).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let paid = payments(&app, &session.access_token).await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["status"], "paid");
    assert_eq!(paid[0]["amount"], 9_800);
    let plan = app.eventually("/api/plan", &session.access_token, |body| body["plan"]["code"] == "pro").await;
    assert_eq!(plan.body["plan"]["name"], "Pro");
    let billing = app.get("/api/billing", &session.access_token).await;
    assert_eq!(billing.body["status"], "active");
    assert_eq!(billing.body["plan"], "pro");
    assert_eq!(billing.body["last_payments"].as_array().map(Vec::len), Some(1));
}

async fn a_redelivered_webhook_changes_nothing_twice(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let delivery =
        WebhookDelivery::signed(&subscription(&user.account_id, "starter").invoice_paid(), WEBHOOK_SECRET, now());

    let first = deliver(&app, &delivery).await;
    let again = deliver(&app, &delivery).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(payments(&app, &session.access_token).await.len(), 1);
    app.eventually("/api/plan", &session.access_token, |body| body["plan"]["code"] == "starter").await;
}

async fn bad_signatures_stale_timestamps_and_malformed_bodies_are_rejected_and_store_nothing(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let event = subscription(&user.account_id, "pro").invoice_paid();

    let forged = deliver(&app, &WebhookDelivery::signed(&event, "whsec_not_ours", now())).await;
    let stale = deliver(&app, &WebhookDelivery::signed(&event, WEBHOOK_SECRET, now() - 600)).await;
    let mut tampered = WebhookDelivery::signed(&event, WEBHOOK_SECRET, now());
    tampered.body = String::from_utf8(tampered.body).expect("utf-8").replace("9800", "1").into_bytes();
    let tampered = deliver(&app, &tampered).await;
    let malformed =
        deliver(&app, &WebhookDelivery::signed(&serde_json::json!({"id": "evt_1"}), WEBHOOK_SECRET, now())).await;
    let unsigned = app.post("/hooks/stripe", event.clone()).await;

    forged.assert_problem(StatusCode::BAD_REQUEST, "invalid_signature");
    stale.assert_problem(StatusCode::BAD_REQUEST, "stale_signature");
    tampered.assert_problem(StatusCode::BAD_REQUEST, "invalid_signature");
    malformed.assert_problem(StatusCode::BAD_REQUEST, "malformed_event");
    unsigned.assert_problem(StatusCode::BAD_REQUEST, "missing_signature");
    assert!(payments(&app, &session.access_token).await.is_empty());
    // The genuine delivery is still accepted afterwards: nothing above recorded its event id.
    let genuine = deliver(&app, &WebhookDelivery::signed(&event, WEBHOOK_SECRET, now())).await;
    assert_eq!(genuine.status, StatusCode::OK);
    assert!(genuine.body.get("duplicate").is_none(), "{genuine:?}");
}

async fn a_failed_payment_is_recorded_and_leaves_the_plan_alone(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let fixture = subscription(&user.account_id, "pro");

    let reply = deliver(&app, &WebhookDelivery::signed(&fixture.invoice_payment_failed(), WEBHOOK_SECRET, now())).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let recorded = payments(&app, &session.access_token).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["status"], "failed");
    assert_eq!(app.get("/api/billing", &session.access_token).await.body["status"], "past_due");
    let plan = app.eventually("/api/plan", &session.access_token, |body| !body["since"].is_null()).await;
    assert_eq!(plan.body["plan"]["code"], "free");
}

async fn a_deleted_subscription_takes_the_account_back_to_free(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let fixture = subscription(&user.account_id, "pro");
    deliver(&app, &WebhookDelivery::signed(&fixture.invoice_paid(), WEBHOOK_SECRET, now())).await;
    app.eventually("/api/plan", &session.access_token, |body| body["plan"]["code"] == "pro").await;

    let reply = deliver(&app, &WebhookDelivery::signed(&fixture.subscription_deleted(), WEBHOOK_SECRET, now())).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    app.eventually("/api/plan", &session.access_token, |body| body["plan"]["code"] == "free").await;
    assert_eq!(app.get("/api/billing", &session.access_token).await.body["status"], "canceled");
}

async fn an_oversize_webhook_is_refused_before_it_is_read(app: TestApp) {
    let body = vec![b' '; 2 * 1024 * 1024];
    let delivery = WebhookDelivery { signature: payment::stripe::sign(&body, WEBHOOK_SECRET, now()), body };

    let reply = deliver(&app, &delivery).await;

    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn a_plan_token_is_single_use(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let token = app.omnidesk(&["plan-token", "--account", &user.account_id, "--plan", "business"]);
    let path = format!("/api/plan/register/{token}");

    let first = app.request(Method::POST, &path, Some(&session.access_token), None).await;
    let second = app.request(Method::POST, &path, Some(&session.access_token), None).await;

    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["plan"]["code"], "business");
    second.assert_problem(StatusCode::CONFLICT, "plan_token_used");
    let plan = app.get("/api/plan", &session.access_token).await;
    assert_eq!(plan.body["plan"]["code"], "business");
}

async fn an_expired_plan_token_is_refused(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let token = app.omnidesk(&["plan-token", "--account", &user.account_id, "--plan", "pro", "--ttl-secs", "1"]);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;

    let reply =
        app.request(Method::POST, &format!("/api/plan/register/{token}"), Some(&session.access_token), None).await;

    reply.assert_problem(StatusCode::GONE, "plan_token_expired");
}

async fn another_accounts_plan_token_is_not_found(app: TestApp) {
    let theirs = app.register().await;
    let (_, mine) = app.signed_in().await;
    let token = app.omnidesk(&["plan-token", "--account", &theirs.account_id, "--plan", "pro"]);

    let reply = app.request(Method::POST, &format!("/api/plan/register/{token}"), Some(&mine.access_token), None).await;
    let unknown =
        app.request(Method::POST, "/api/plan/register/pt_does_not_exist", Some(&mine.access_token), None).await;

    reply.assert_problem(StatusCode::NOT_FOUND, "plan_token_not_found");
    unknown.assert_problem(StatusCode::NOT_FOUND, "plan_token_not_found");
}

#[tokio::test]
async fn checkout_starts_a_session_with_the_provider_for_the_callers_account() {
    let fake = payment::stripe::fake::FakeStripe::start("sk_test_omnidesk").await.expect("fake provider");
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = crate::helpers::monolith_config(data.path());
    let settings = &mut config.services.entry("payment".to_owned()).or_default().settings;
    settings.insert("stripe_api_base".to_owned(), fake.base_url().to_owned());
    settings.insert("stripe_secret_key".to_owned(), "sk_test_omnidesk".to_owned());
    settings.insert("price_pro".to_owned(), "price_pro_monthly".to_owned());
    let app = TestApp::monolith_with(config, data).await;
    let (user, session) = app.signed_in().await;

    let started = app
        .request(
            Method::POST,
            "/api/billing/checkout",
            Some(&session.access_token),
            Some(serde_json::json!({"plan": "pro"})),
        )
        .await;
    let unknown = app
        .request(
            Method::POST,
            "/api/billing/checkout",
            Some(&session.access_token),
            Some(serde_json::json!({"plan": "gold"})),
        )
        .await;

    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    assert!(started.body["checkout_url"].as_str().is_some_and(|url| url.starts_with("https://")), "{started:?}");
    let request = fake.requests().pop().expect("the provider was called");
    assert_eq!(request.field("client_reference_id"), Some(user.account_id.as_str()));
    assert_eq!(request.field("line_items[0][price]"), Some("price_pro_monthly"));
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn the_event_flow_is_visible_in_the_metrics() {
    let app = TestApp::monolith().await;
    let (_, session) = app.signed_in().await;
    app.eventually("/api/plan", &session.access_token, |body| !body["since"].is_null()).await;

    let scrape = app.http.get(format!("{}/metrics", app.base_url)).bearer_auth(crate::helpers::METRICS_TOKEN);
    let text = scrape.send().await.expect("sent").text().await.expect("text");

    assert!(text.contains(r#"events_published_total{producer="user",transport="in-process"} 2"#), "{text}");
    assert!(text.contains(r#"events_consumed_total{consumer="plan",outcome="applied"} 1"#), "{text}");
}

async fn the_catalogue_advertises_only_what_exists(app: TestApp) {
    let reply = app.request(Method::GET, "/api/plans", None, None).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    for plan in reply.body.as_array().expect("plans") {
        let features: Vec<&str> =
            plan["features"].as_array().expect("features").iter().map(|f| f.as_str().expect("name")).collect();
        assert!(
            features.iter().all(|f| ["api_channel", "web_widget", "canned_responses"].contains(f)),
            "{}: {features:?}",
            plan["code"]
        );
        let fields: Vec<&String> = plan.as_object().expect("plan").keys().collect();
        let expected =
            ["agents", "code", "conversations_per_month", "features", "inboxes", "name", "price_jpy_per_month"];
        assert_eq!(fields, expected, "no quota for what does not exist: {plan}");
    }
}

async fn redeeming_a_plan_token_answers_the_stored_plan_and_usage(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let inbox = app.create_api_inbox(token, None).await;
    app.post_signed(&inbox, "k-1", "cust-1", "C", "hello").await;
    let before = app.eventually("/api/plan", token, |body| body["usage"]["conversations"] == 1).await;

    let redeemed = app.move_to_plan(&user, token, "pro").await;

    let after = app.get("/api/plan", token).await;
    assert_eq!(redeemed.body["plan"]["code"], "pro");
    assert_eq!(redeemed.body["usage"]["conversations"], 1, "the month's usage is kept: {redeemed:?}");
    assert_eq!(redeemed.body, after.body, "the answer is what is stored");
    assert_ne!(redeemed.body["since"], before.body["since"]);
}

async fn canned_responses_need_a_plan_that_includes_them(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let token = session.access_token.as_str();
    let canned = json!({ "short_code": "thanks", "content": "Thank you for waiting." });

    let refused = app.call(Method::POST, "/api/canned-responses", token, Some(canned.clone())).await;
    let listed = app.get("/api/canned-responses", token).await;
    app.move_to_plan(&user, token, "pro").await;
    let created = app.call(Method::POST, "/api/canned-responses", token, Some(canned)).await;

    refused.assert_problem(StatusCode::FORBIDDEN, "plan_feature_unavailable");
    assert_eq!(refused.body["feature"], "canned_responses");
    assert_eq!(refused.body["plan"], "free");
    assert_eq!(refused.body["available_on"], "pro");
    listed.assert_problem(StatusCode::FORBIDDEN, "plan_feature_unavailable");
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let listed = app.get("/api/canned-responses?q=tha", token).await;
    assert_eq!(listed.body[0]["short_code"], "thanks", "{listed:?}");
}

async fn an_inbox_on_a_channel_that_does_not_exist_yet_is_refused(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let token = session.access_token.as_str();

    for channel in ["line", "email"] {
        let reply =
            app.call(Method::POST, "/api/inboxes", token, Some(json!({ "name": "x", "channel": channel }))).await;

        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "channel_not_available");
        assert_eq!(reply.body["channel"], channel);
    }
    let inboxes = app.get("/api/inboxes", token).await;
    assert_eq!(inboxes.body, json!([]), "nothing was created: {inboxes:?}");
}
