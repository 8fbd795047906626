use axum::http::StatusCode as AxumStatus;

use super::*;
use crate::stripe::fake::FakeStripe;

const KEY: &str = "sk_test_51OmniDeskFakeKey000000000000000001234";
const ACCOUNT: &str = "0190a8c4-7b1e-7c3a-9f2d-3e4b5c6d7e8f";
const SUCCESS_URL: &str = "https://omnidesk.example/billing/done?session_id={CHECKOUT_SESSION_ID}";
const CANCEL_URL: &str = "https://omnidesk.example/billing";

fn account() -> AccountId {
    AccountId(uuid::Uuid::parse_str(ACCOUNT).unwrap_or_default())
}

/// Retries without the production delays, so that retry tests take milliseconds.
fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_retries: 2, initial_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5) }
}

async fn fake_and_client(key: &str) -> (FakeStripe, StripeClient) {
    let fake = FakeStripe::start(KEY).await.expect("the fake starts");
    let client = StripeClient::new(fake.base_url(), key).expect("a client builds").with_retry_policy(quick_retries());
    (fake, client)
}

async fn create(client: &StripeClient) -> Result<CheckoutSession, ClientError> {
    client.create_checkout_session(account(), "pro", "price_1PqPro", SUCCESS_URL, CANCEL_URL).await
}

#[tokio::test]
async fn creating_a_checkout_session_returns_its_id_and_hosted_url() {
    let (fake, client) = fake_and_client(KEY).await;

    let session = create(&client).await.expect("the session is created");

    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.url, format!("https://checkout.stripe.com/c/pay/{}", session.id));
    let stored = fake.session(&session.id).expect("the fake stored the session");
    assert_eq!(stored["client_reference_id"], ACCOUNT);
    assert_eq!(stored["metadata"]["plan"], "pro");
    assert_eq!(stored["metadata"]["account_id"], ACCOUNT);
    assert_eq!(stored["mode"], "subscription");
}

#[tokio::test]
async fn the_request_is_a_bearer_authenticated_form_in_stripes_bracket_notation() {
    let (fake, client) = fake_and_client(KEY).await;

    create(&client).await.expect("the session is created");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/checkout/sessions");
    assert_eq!(request.authorization.as_deref(), Some(&*format!("Bearer {KEY}")));
    assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    let expected: Vec<(String, String)> = [
        ("mode", "subscription"),
        ("line_items[0][price]", "price_1PqPro"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", ACCOUNT),
        ("metadata[plan]", "pro"),
        ("metadata[account_id]", ACCOUNT),
        ("subscription_data[metadata][plan]", "pro"),
        ("subscription_data[metadata][account_id]", ACCOUNT),
        ("success_url", SUCCESS_URL),
        ("cancel_url", CANCEL_URL),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(request.form, expected);
}

#[tokio::test]
async fn every_call_sends_an_idempotency_key_of_its_own() {
    let (fake, client) = fake_and_client(KEY).await;

    let first = create(&client).await.expect("the session is created");
    let second = create(&client).await.expect("the session is created");

    let keys: Vec<_> = fake.requests().into_iter().map(|request| request.idempotency_key).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|key| key.as_ref().is_some_and(|k| k.len() == 36)), "{keys:?}");
    assert_ne!(keys[0], keys[1]);
    assert_ne!(first.id, second.id);
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_stripes_401_error() {
    let (_fake, client) = fake_and_client("sk_test_wrongwrongwrong9999").await;

    let error = create(&client).await.expect_err("the call fails");

    match error {
        ClientError::Api { status, kind, message, .. } => {
            assert_eq!(status, 401);
            assert_eq!(kind, "invalid_request_error");
            assert_eq!(message, "Invalid API Key provided: sk_test_***************9999");
        }
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_price_is_reported_with_stripes_code_and_param() {
    let (_fake, client) = fake_and_client(KEY).await;

    let error = client
        .create_checkout_session(account(), "pro", "plan_old", SUCCESS_URL, CANCEL_URL)
        .await
        .expect_err("the call fails");

    match error {
        ClientError::Api { status, kind, code, param, message } => {
            assert_eq!(status, 400);
            assert_eq!(kind, "invalid_request_error");
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(param.as_deref(), Some("line_items[0][price]"));
            assert_eq!(message, "No such price: 'plan_old'");
        }
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (fake, client) = fake_and_client("sk_test_wrong").await;

    let _ = create(&client).await;

    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_idempotency_key() {
    let (fake, client) = fake_and_client(KEY).await;
    fake.fail_next(2, AxumStatus::SERVICE_UNAVAILABLE, None);

    let session = create(&client).await.expect("the session is created");

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].idempotency_key.is_some());
    assert!(requests.iter().all(|r| r.idempotency_key == requests[0].idempotency_key));
    assert!(fake.session(&session.id).is_some());
}

#[tokio::test]
async fn retries_stop_after_the_policys_limit() {
    let (fake, client) = fake_and_client(KEY).await;
    fake.fail_next(5, AxumStatus::INTERNAL_SERVER_ERROR, None);

    let error = create(&client).await.expect_err("the call fails");

    assert_eq!(fake.requests().len(), 3);
    assert!(matches!(&error, ClientError::Api { status: 500, kind, .. } if kind == "api_error"), "{error:?}");
}

#[tokio::test]
async fn stripe_should_retry_false_is_obeyed() {
    let (fake, client) = fake_and_client(KEY).await;
    fake.fail_next(1, AxumStatus::INTERNAL_SERVER_ERROR, Some(false));

    let error = create(&client).await.expect_err("the call fails");

    assert_eq!(fake.requests().len(), 1);
    assert!(matches!(error, ClientError::Api { status: 500, .. }), "{error:?}");
}

#[tokio::test]
async fn stripe_should_retry_true_is_obeyed_even_for_a_client_error() {
    let (fake, client) = fake_and_client(KEY).await;
    fake.fail_next(1, AxumStatus::TOO_MANY_REQUESTS, Some(true));

    create(&client).await.expect("the session is created");

    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let client = StripeClient::new(format!("http://{address}"), KEY)
        .expect("a client builds")
        .with_retry_policy(quick_retries());

    let error = create(&client).await.expect_err("the call fails");

    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn https_base_urls_are_spoken_to_in_tls_as_the_real_api_needs() {
    // Stripe's API is HTTPS only, and a reqwest built without TLS fails such URLs without connecting.
    // A listener that records the first byte it receives tells the two apart: 0x16 opens a TLS handshake.
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let first_byte = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.ok()?;
        stream.read_u8().await.ok()
    });
    let client = StripeClient::new(format!("https://{address}"), KEY)
        .expect("a client builds")
        .with_retry_policy(RetryPolicy { max_retries: 0, ..quick_retries() });

    let error = create(&client).await.expect_err("the fake listener speaks no TLS");

    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    // Without TLS nothing ever connects, so the wait is bounded rather than left to hang the suite.
    let received = tokio::time::timeout(Duration::from_secs(5), first_byte).await.ok().and_then(Result::ok).flatten();
    assert_eq!(received, Some(0x16));
}

#[tokio::test]
async fn a_non_stripe_error_body_is_an_unexpected_response() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let proxy = axum::Router::new().fallback(|| async { (AxumStatus::BAD_GATEWAY, "<html>502 Bad Gateway</html>") });
    let server = tokio::spawn(async move { axum::serve(listener, proxy).await });
    let client = StripeClient::new(base_url, KEY)
        .expect("a client builds")
        .with_retry_policy(RetryPolicy { max_retries: 0, ..quick_retries() });

    let error = create(&client).await.expect_err("the call fails");
    server.abort();

    match error {
        ClientError::UnexpectedResponse { status, detail } => {
            assert_eq!(status, 502);
            assert_eq!(detail, "<html>502 Bad Gateway</html>");
        }
        other => panic!("expected an unexpected response, got {other:?}"),
    }
}

#[test]
fn the_secret_key_never_appears_in_debug_output() {
    let client = StripeClient::new(API_BASE_URL, KEY).expect("a client builds");

    let debug = format!("{client:?}");

    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
}

#[test]
fn retry_delays_grow_exponentially_within_bounds() {
    let policy = RetryPolicy::default();

    for retry in 1..=6 {
        let delay = policy.delay(retry);
        let ceiling = Duration::from_millis(500 * 2u64.pow(retry - 1)).min(policy.max_delay);
        assert!(delay >= policy.initial_delay, "retry {retry}: {delay:?}");
        assert!(delay <= ceiling, "retry {retry}: {delay:?} > {ceiling:?}");
    }
}
