//! The payment service owns billing profiles, payments and the provider events it has processed, under
//! `/api/billing` and the provider's webhook `/hooks/stripe`.
//!
//! The provider (Stripe) is reached through [`stripe::StripeClient`], whose base URL is configuration, and
//! talks back through signed webhooks ([`stripe::verify`], handled in `webhooks.rs`). A paid invoice
//! publishes `payment.succeeded`, which the plan service turns into a plan change; a failed one publishes
//! `payment.failed`; a subscription the provider ends publishes `subscription.ended`.
//!
//! Settings (`services.payment.settings`, e.g. `OMNIDESK_SERVICES__PAYMENT__SETTINGS__STRIPE_WEBHOOK_SECRET`):
//! `stripe_api_base`, `stripe_secret_key`, `stripe_webhook_secret`, `price_<plan>` (the provider's price id
//! for each paid plan), `checkout_success_url`, `checkout_cancel_url`.

mod http;
mod store;
pub mod stripe;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use kernel::http::{FieldError, Problem};
use kernel::store::{Migrations, StoreError};
use kernel::{ServiceContext, ServiceSpec};

/// The service's tables, per engine.
const MIGRATIONS: Migrations = kernel::migrations!();

/// The payment service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec {
    name: contracts::services::PAYMENT,
    summary: "billing profiles, payments, provider webhook",
    prefixes: &["/api/billing", "/hooks/stripe"],
    depends_on: &[],
    issues_tokens: false,
    migrations: Some(MIGRATIONS),
    derived: None,
    routes: || http::routes().table(),
    openapi: || http::routes().openapi(),
    start: |context| Box::pin(start(context)),
};

/// The payment service's settings, from `services.payment.settings`.
pub struct Settings {
    pub api_base: String,
    pub secret_key: Option<String>,
    pub webhook_secret: Option<String>,
    pub prices: BTreeMap<String, String>,
    pub success_url: String,
    pub cancel_url: String,
}

impl Settings {
    fn from(settings: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| settings.get(key).filter(|v| !v.is_empty()).cloned();
        Self {
            api_base: get("stripe_api_base").unwrap_or_else(|| stripe::API_BASE_URL.to_owned()),
            secret_key: get("stripe_secret_key"),
            webhook_secret: get("stripe_webhook_secret"),
            prices: settings
                .iter()
                .filter_map(|(key, value)| key.strip_prefix("price_").map(|plan| (plan.to_owned(), value.clone())))
                .collect(),
            success_url: get("checkout_success_url")
                .unwrap_or_else(|| "http://localhost:8080/billing/success".to_owned()),
            cancel_url: get("checkout_cancel_url").unwrap_or_else(|| "http://localhost:8080/billing".to_owned()),
        }
    }

    pub fn price_of(&self, plan: &str) -> Option<&str> {
        self.prices.get(plan).map(String::as_str)
    }
}

/// What the payment handlers share.
pub struct Billing {
    store: store::Store,
    settings: Settings,
    client: Option<stripe::StripeClient>,
}

async fn start(context: ServiceContext) -> anyhow::Result<axum::Router> {
    let settings = Settings::from(&context.config().service(contracts::services::PAYMENT).settings);
    let client = match &settings.secret_key {
        Some(key) => Some(stripe::StripeClient::new(settings.api_base.clone(), key.clone())?),
        None => None,
    };
    let billing = Billing { store: store::Store::new(context.namespace()), settings, client };
    Ok(http::routes().into_router(Arc::new(billing)))
}

/// Everything a payment-service request can fail with, and how each is answered.
#[derive(Debug, thiserror::Error)]
enum PaymentError {
    #[error("only owners and admins may change the plan")]
    NotAllowed,
    #[error("the payment provider is not configured")]
    ProviderNotConfigured,
    #[error("no paid plan `{0}` can be bought")]
    UnknownPlan(String),
    #[error("the payment provider refused or failed")]
    ProviderFailed,
    #[error("the webhook secret is not configured")]
    WebhookNotConfigured,
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error(transparent)]
    Signature(#[from] stripe::SignatureError),
    #[error("malformed provider event: {0}")]
    MalformedEvent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PaymentError> for Problem {
    fn from(error: PaymentError) -> Self {
        use stripe::SignatureError;
        match error {
            PaymentError::NotAllowed => Problem::forbidden("forbidden", "Only owners and admins may change the plan."),
            PaymentError::ProviderNotConfigured => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "payment_provider_not_configured",
                "The payment provider is not configured.",
            ),
            PaymentError::UnknownPlan(_) => Problem::validation(vec![FieldError::new(
                "plan",
                "unsupported",
                "No paid plan with this code can be bought.",
            )]),
            PaymentError::ProviderFailed => Problem::new(
                StatusCode::BAD_GATEWAY,
                "payment_provider_error",
                "The payment provider refused or failed.",
            ),
            PaymentError::WebhookNotConfigured => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_not_configured",
                "The webhook secret is not configured.",
            ),
            PaymentError::MissingSignature => {
                Problem::bad_request("missing_signature", "The Stripe-Signature header is missing.")
            }
            PaymentError::Signature(SignatureError::StaleTimestamp) => {
                Problem::bad_request("stale_signature", "The signature's timestamp is outside the tolerance.")
            }
            PaymentError::Signature(SignatureError::NoMatchingSignature) => {
                Problem::bad_request("invalid_signature", "No signature matches the payload.")
            }
            PaymentError::Signature(other) => Problem::bad_request("malformed_signature", other.to_string()),
            PaymentError::MalformedEvent(why) => Problem::bad_request("malformed_event", why),
            PaymentError::Store(error) => Problem::from_store(&error),
        }
    }
}

kernel::answered_as_problem!(PaymentError);
