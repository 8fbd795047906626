//! The pieces together, as the webhook handler will use them: deliveries built by the fake provider are
//! verified, parsed and typed into what the service acts on.

use contracts::AccountId;

use super::fake::{FakeStripe, SubscriptionFixture, WebhookDelivery};
use super::*;

const WEBHOOK_SECRET: &str = "whsec_omnidesk_test_0123456789abcdefghijklmnop";
const START: i64 = 1_722_000_000;

fn fixture() -> SubscriptionFixture {
    SubscriptionFixture::new(AccountId(uuid::Uuid::new_v4()), "pro", START)
}

/// What the webhook handler does with a delivery: verify the raw bytes, then parse and type them.
fn receive(delivery: &WebhookDelivery, now: i64) -> TypedEvent {
    verify(&delivery.signature, &delivery.body, WEBHOOK_SECRET, now, DEFAULT_TOLERANCE_SECS)
        .expect("the delivery verifies");
    WebhookEvent::parse(&delivery.body).and_then(|event| event.typed()).expect("the delivery parses")
}

#[test]
fn a_completed_checkout_delivery_names_the_account_plan_customer_and_subscription() {
    let billing = fixture();
    let delivery =
        WebhookDelivery::signed(&billing.checkout_session_completed("cs_test_123"), WEBHOOK_SECRET, START + 5);

    let event = receive(&delivery, START + 10);

    assert_eq!(
        event,
        TypedEvent::CheckoutSessionCompleted(CheckoutSessionCompleted {
            id: "cs_test_123".to_owned(),
            customer: Some(billing.customer.clone()),
            subscription: Some(billing.subscription.clone()),
            client_reference_id: Some(billing.account.to_string()),
            account: Some(billing.account),
            plan: Some("pro".to_owned()),
        })
    );
}

#[test]
fn a_paid_invoice_delivery_extends_to_the_lines_period_end() {
    let billing = fixture();
    let delivery = WebhookDelivery::signed(&billing.invoice_paid(), WEBHOOK_SECRET, START);

    let TypedEvent::InvoicePaid(invoice) = receive(&delivery, START) else {
        panic!("not a paid invoice");
    };

    assert_eq!(invoice.account, Some(billing.account));
    assert_eq!(invoice.plan.as_deref(), Some("pro"));
    assert_eq!(invoice.subscription.as_deref(), Some(&*billing.subscription));
    assert_eq!(invoice.customer.as_deref(), Some(&*billing.customer));
    assert_eq!(invoice.amount_paid, billing.amount);
    assert_eq!(invoice.status.as_deref(), Some("paid"));
    assert_eq!(invoice.period_end, Some(billing.period_end));
}

#[test]
fn a_failed_invoice_delivery_shows_nothing_paid() {
    let billing = fixture();
    let delivery = WebhookDelivery::signed(&billing.invoice_payment_failed(), WEBHOOK_SECRET, START);

    let TypedEvent::InvoicePaymentFailed(invoice) = receive(&delivery, START) else {
        panic!("not a failed invoice");
    };

    assert_eq!(invoice.amount_paid, 0);
    assert_eq!(invoice.amount_due, billing.amount);
    assert_eq!(invoice.status.as_deref(), Some("open"));
    assert_eq!(invoice.account, Some(billing.account));
}

#[test]
fn subscription_deliveries_carry_status_period_and_account() {
    let billing = fixture();
    let updated = WebhookDelivery::signed(&billing.subscription_updated("past_due"), WEBHOOK_SECRET, START);
    let deleted = WebhookDelivery::signed(&billing.subscription_deleted(), WEBHOOK_SECRET, START);

    let expected = |status: &str| Subscription {
        id: billing.subscription.clone(),
        customer: billing.customer.clone(),
        status: status.to_owned(),
        current_period_end: Some(billing.period_end),
        plan: Some("pro".to_owned()),
        account: Some(billing.account),
    };
    assert_eq!(receive(&updated, START), TypedEvent::SubscriptionUpdated(expected("past_due")));
    assert_eq!(receive(&deleted, START), TypedEvent::SubscriptionDeleted(expected("canceled")));
}

#[test]
fn a_delivery_replayed_after_the_tolerance_is_refused() {
    let delivery = WebhookDelivery::signed(&fixture().invoice_paid(), WEBHOOK_SECRET, START);

    let result = verify(
        &delivery.signature,
        &delivery.body,
        WEBHOOK_SECRET,
        START + DEFAULT_TOLERANCE_SECS + 1,
        DEFAULT_TOLERANCE_SECS,
    );

    assert_eq!(result, Err(SignatureError::StaleTimestamp));
}

#[tokio::test]
async fn a_session_created_through_the_client_completes_into_a_matching_delivery() {
    let fake = FakeStripe::start("sk_test_flow").await.expect("the fake starts");
    let client = StripeClient::new(fake.base_url(), "sk_test_flow").expect("a client builds");
    let billing = fixture();
    let session = client
        .create_checkout_session(
            billing.account,
            "pro",
            &billing.price,
            "https://omnidesk.example/ok",
            "https://omnidesk.example/cancel",
        )
        .await
        .expect("the session is created");
    let delivery = WebhookDelivery::signed(&billing.checkout_session_completed(&session.id), WEBHOOK_SECRET, START);

    let TypedEvent::CheckoutSessionCompleted(completed) = receive(&delivery, START) else {
        panic!("not a completed checkout");
    };

    assert_eq!(completed.id, session.id);
    assert_eq!(completed.account, Some(billing.account));
    let created = fake.session(&session.id).expect("the fake stored the session");
    assert_eq!(created["client_reference_id"].as_str(), completed.client_reference_id.as_deref());
}

/// Posts a form to the fake the way a client other than ours might, to exercise the fake's own rules.
async fn post_to_fake(fake: &FakeStripe, key: &str, form: &[(&str, &str)]) -> (u16, Option<String>, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/checkout/sessions", fake.base_url()))
        .bearer_auth("sk_test_fake")
        .header("Idempotency-Key", key)
        .form(form)
        .send()
        .await
        .expect("the fake answers");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.json().await.expect("the fake answers JSON");
    (status, replayed, body)
}

const SESSION_FORM: [(&str, &str); 4] = [
    ("mode", "subscription"),
    ("line_items[0][price]", "price_1"),
    ("line_items[0][quantity]", "1"),
    ("success_url", "https://omnidesk.example/ok"),
];

#[tokio::test]
async fn the_fake_replays_the_first_answer_for_a_reused_idempotency_key() {
    let fake = FakeStripe::start("sk_test_fake").await.expect("the fake starts");

    let (_, first_replayed, first) = post_to_fake(&fake, "key-1", &SESSION_FORM).await;
    let (status, replayed, second) = post_to_fake(&fake, "key-1", &SESSION_FORM).await;

    assert_eq!(status, 200);
    assert_eq!(first_replayed, None);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(first["id"], second["id"]);
}

#[tokio::test]
async fn the_fake_refuses_a_reused_idempotency_key_with_other_parameters() {
    let fake = FakeStripe::start("sk_test_fake").await.expect("the fake starts");
    post_to_fake(&fake, "key-1", &SESSION_FORM).await;
    let mut changed = SESSION_FORM;
    changed[1] = ("line_items[0][price]", "price_2");

    let (status, _, body) = post_to_fake(&fake, "key-1", &changed).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "idempotency_error");
}

#[tokio::test]
async fn the_fake_names_a_missing_parameter_as_stripe_does() {
    let fake = FakeStripe::start("sk_test_fake").await.expect("the fake starts");

    let (status, _, body) = post_to_fake(&fake, "key-1", &SESSION_FORM[..3]).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "parameter_missing");
    assert_eq!(body["error"]["param"], "success_url");
    assert_eq!(body["error"]["message"], "Missing required param: success_url.");
}
