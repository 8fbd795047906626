//! Stripe, the payment provider: everything the payment service needs to speak its protocol, and
//! nothing about our own billing rules.
//!
//! - [`verify`] (and [`sign`], for tests): the `Stripe-Signature` header of webhook deliveries, which is
//!   the kernel's timestamped HMAC scheme (`kernel::signature`).
//! - [`event`]: parsing a verified delivery into a [`WebhookEvent`] and the typed views we act on.
//! - [`client`]: the API calls we make (creating Checkout Sessions), with Stripe's retry and idempotency
//!   rules.
//! - `fake` (tests and the `fake-provider` feature only): a local server speaking Stripe's wire format
//!   and builders of signed deliveries, since the real API is out of reach of tests.
//!
//! A webhook handler verifies first and parses second: the signature covers the raw bytes, so the body
//! must not be re-serialised, trimmed or decoded before [`verify`] has accepted it.

pub mod client;
pub mod event;
#[cfg(any(test, feature = "fake-provider"))]
pub mod fake;

pub use client::{API_BASE_URL, CheckoutSession, ClientError, RetryPolicy, StripeClient};
pub use event::{CheckoutSessionCompleted, EventError, Invoice, Subscription, TypedEvent, WebhookEvent};
// The provider's `Stripe-Signature` is the kernel's timestamped HMAC scheme, which input uses too.
pub use kernel::signature::{DEFAULT_TOLERANCE_SECS, SignatureError, sign, verify};

#[cfg(test)]
mod tests;
