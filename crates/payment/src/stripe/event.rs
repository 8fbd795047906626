//! Stripe's webhook events, parsed from the raw body after its signature was verified, and the typed
//! views of the few event types the payment service acts on.
//!
//! Each view keeps only the fields we need. Stripe reshaped invoices and subscriptions in API version
//! 2025-03-31 (basil): an invoice's subscription and its metadata snapshot moved under
//! `parent.subscription_details`, and a subscription's `current_period_end` moved onto its items. Webhook
//! bodies follow the API version of the endpoint, which is set in Stripe's dashboard and can lag behind or
//! run ahead of this code, so every view reads both shapes.

use std::collections::BTreeMap;

use contracts::AccountId;
use serde::Deserialize;
use serde_json::Value;

/// The metadata key holding the plan code (`starter`, `pro`, …) the customer subscribed to.
pub const PLAN_KEY: &str = "plan";
/// The metadata key holding the OmniDesk account the subscription pays for.
pub const ACCOUNT_KEY: &str = "account_id";

/// Why a webhook body could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The body is not a Stripe event: not JSON, or without `id`, `type`, `created` or `data.object`.
    #[error("the webhook body is not a Stripe event: {0}")]
    Body(#[source] serde_json::Error),
    /// The event's `data.object` lacks a field this event type must have, or has it in another type.
    #[error("the {kind} event's data.object is not in the expected shape: {source}")]
    Object {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A webhook event as Stripe delivers it, with its object left untyped until [`WebhookEvent::typed`].
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Stripe's event id (`evt_…`), the key for ignoring redeliveries.
    pub id: String,
    /// The event type, e.g. `invoice.paid` (Stripe's `type`).
    pub kind: String,
    /// When Stripe created the event, in unix seconds. Deliveries can arrive out of order; this orders them.
    pub created: i64,
    /// The object the event is about (`data.object`): always a JSON object.
    pub object: Value,
}

/// The events the payment service acts on, each with the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedEvent {
    /// `checkout.session.completed`: a customer finished paying in Checkout.
    CheckoutSessionCompleted(CheckoutSessionCompleted),
    /// `invoice.paid`: an invoice was paid, which for a subscription extends the paid period.
    InvoicePaid(Invoice),
    /// `invoice.payment_failed`: collecting an invoice failed; Stripe retries by its own schedule.
    InvoicePaymentFailed(Invoice),
    /// `customer.subscription.updated`: status, period or plan of a subscription changed.
    SubscriptionUpdated(Subscription),
    /// `customer.subscription.deleted`: a subscription ended.
    SubscriptionDeleted(Subscription),
    /// Any other type, named. The caller acknowledges it and does nothing, so that Stripe stops resending.
    Unhandled(String),
}

/// What we need from a completed Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionCompleted {
    /// The session's id (`cs_…`).
    pub id: String,
    /// The Stripe customer (`cus_…`) Checkout created or reused.
    pub customer: Option<String>,
    /// The subscription (`sub_…`) Checkout started, for sessions in subscription mode.
    pub subscription: Option<String>,
    /// The reference we set when creating the session: our account id, as text.
    pub client_reference_id: Option<String>,
    /// The account the session was for: `client_reference_id`, else `metadata.account_id`, when either is
    /// one of our ids. `None` for sessions created by something else on the same Stripe account.
    pub account: Option<AccountId>,
    /// The plan code from the session's metadata.
    pub plan: Option<String>,
}

/// What we need from an invoice (`invoice.paid`, `invoice.payment_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The invoice's id (`in_…`).
    pub id: String,
    /// The Stripe customer (`cus_…`) billed.
    pub customer: Option<String>,
    /// The subscription that generated the invoice, if one did.
    pub subscription: Option<String>,
    /// What was paid, in the currency's smallest unit.
    pub amount_paid: i64,
    /// What was due, in the currency's smallest unit.
    pub amount_due: i64,
    /// Three-letter ISO code, lower-case.
    pub currency: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// The end of the period the first line bills for (`lines.data[0].period.end`), in unix seconds.
    /// The invoice's own `period_end` is not used: for subscription invoices it is the end of the
    /// *previous* period, which is not what a payment extends.
    pub period_end: Option<i64>,
    /// The plan code: from the invoice's metadata, else the subscription's metadata snapshot, else the
    /// first line's metadata.
    pub plan: Option<String>,
    /// The account, resolved from the same metadata as `plan`.
    pub account: Option<AccountId>,
}

/// What we need from a subscription (`customer.subscription.updated`, `.deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription's id (`sub_…`).
    pub id: String,
    /// The Stripe customer (`cus_…`) paying.
    pub customer: String,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`, `past_due`, `canceled`, `unpaid` or `paused`.
    pub status: String,
    /// When the current period ends, in unix seconds: the subscription's own field in API versions before
    /// basil, the latest of its items' since.
    pub current_period_end: Option<i64>,
    /// The plan code from the subscription's metadata.
    pub plan: Option<String>,
    /// The account from the subscription's metadata.
    pub account: Option<AccountId>,
}

impl WebhookEvent {
    /// Parses a webhook body (the raw bytes whose signature was verified).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let raw: RawEvent = kernel::http::from_json_text(body).map_err(EventError::Body)?;
        Ok(Self { id: raw.id, kind: raw.kind, created: raw.created, object: Value::Object(raw.data.object) })
    }

    /// The event's typed view, or [`TypedEvent::Unhandled`] for a type we do not act on.
    pub fn typed(&self) -> Result<TypedEvent, EventError> {
        Ok(match self.kind.as_str() {
            "checkout.session.completed" => {
                TypedEvent::CheckoutSessionCompleted(self.object_as::<RawCheckoutSession>()?.into())
            }
            "invoice.paid" => TypedEvent::InvoicePaid(self.object_as::<RawInvoice>()?.into()),
            "invoice.payment_failed" => TypedEvent::InvoicePaymentFailed(self.object_as::<RawInvoice>()?.into()),
            "customer.subscription.updated" => {
                TypedEvent::SubscriptionUpdated(self.object_as::<RawSubscription>()?.into())
            }
            "customer.subscription.deleted" => {
                TypedEvent::SubscriptionDeleted(self.object_as::<RawSubscription>()?.into())
            }
            other => TypedEvent::Unhandled(other.to_owned()),
        })
    }

    fn object_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, EventError> {
        T::deserialize(&self.object).map_err(|source| EventError::Object { kind: self.kind.clone(), source })
    }
}

/// Parses an account id we put into Stripe. Anything else is someone else's reference, not an error.
fn account_id(raw: Option<&str>) -> Option<AccountId> {
    raw.and_then(|raw| uuid::Uuid::parse_str(raw).ok()).map(AccountId)
}

/// Stripe metadata: string keys to string values; `null` on some objects when empty.
type Metadata = Option<BTreeMap<String, String>>;

/// The first of several metadata maps that has `key`, in order of preference.
fn first_value(key: &str, sources: &[Option<&BTreeMap<String, String>>]) -> Option<String> {
    sources.iter().flatten().find_map(|metadata| metadata.get(key)).cloned()
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: RawEventData,
}

#[derive(Deserialize)]
struct RawEventData {
    object: serde_json::Map<String, Value>,
}

/// A reference to another object: its id, or the whole object when the request expanded it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn into_id(self) -> String {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

/// A Stripe list (`{"object":"list","data":[…]}`).
#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct RawCheckoutSession {
    id: String,
    customer: Option<Expandable>,
    subscription: Option<Expandable>,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

impl From<RawCheckoutSession> for CheckoutSessionCompleted {
    fn from(raw: RawCheckoutSession) -> Self {
        let metadata = raw.metadata.as_ref();
        let reference = raw.client_reference_id.as_deref();
        let account =
            account_id(reference).or_else(|| account_id(metadata.and_then(|m| m.get(ACCOUNT_KEY)).map(String::as_str)));
        Self {
            plan: first_value(PLAN_KEY, &[metadata]),
            account,
            id: raw.id,
            customer: raw.customer.map(Expandable::into_id),
            subscription: raw.subscription.map(Expandable::into_id),
            client_reference_id: raw.client_reference_id,
        }
    }
}

#[derive(Deserialize)]
struct RawInvoice {
    id: String,
    customer: Option<Expandable>,
    /// Before basil.
    #[serde(default)]
    subscription: Option<Expandable>,
    amount_paid: i64,
    amount_due: i64,
    currency: String,
    status: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    /// Before basil (snapshots exist for invoices created on or after 2023-06-29).
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
    /// Since basil.
    #[serde(default)]
    parent: Option<RawInvoiceParent>,
    #[serde(default)]
    lines: Option<List<RawInvoiceLine>>,
}

#[derive(Deserialize)]
struct RawInvoiceParent {
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionDetails {
    #[serde(default)]
    metadata: Metadata,
    /// Present only under `parent` (basil and later).
    #[serde(default)]
    subscription: Option<Expandable>,
}

#[derive(Deserialize)]
struct RawInvoiceLine {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    period: Option<RawPeriod>,
    #[serde(default)]
    subscription: Option<Expandable>,
    #[serde(default)]
    parent: Option<RawLineParent>,
}

#[derive(Deserialize)]
struct RawPeriod {
    end: i64,
}

#[derive(Deserialize)]
struct RawLineParent {
    #[serde(default)]
    subscription_item_details: Option<RawSubscriptionItemDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionItemDetails {
    #[serde(default)]
    subscription: Option<String>,
}

impl From<RawInvoice> for Invoice {
    fn from(raw: RawInvoice) -> Self {
        let parent_details = raw.parent.and_then(|parent| parent.subscription_details);
        let first_line = raw.lines.and_then(|lines| lines.data.into_iter().next());
        let metadata_sources = [
            raw.metadata.as_ref(),
            parent_details.as_ref().and_then(|d| d.metadata.as_ref()),
            raw.subscription_details.as_ref().and_then(|d| d.metadata.as_ref()),
            first_line.as_ref().and_then(|line| line.metadata.as_ref()),
        ];
        let plan = first_value(PLAN_KEY, &metadata_sources);
        let account = first_value(ACCOUNT_KEY, &metadata_sources);
        let period_end = first_line.as_ref().and_then(|line| line.period.as_ref()).map(|period| period.end);
        let subscription =
            raw.subscription.or_else(|| parent_details.and_then(|d| d.subscription)).map(Expandable::into_id).or_else(
                || {
                    let line = first_line?;
                    line.subscription
                        .map(Expandable::into_id)
                        .or_else(|| line.parent?.subscription_item_details?.subscription)
                },
            );
        Self {
            id: raw.id,
            customer: raw.customer.map(Expandable::into_id),
            subscription,
            amount_paid: raw.amount_paid,
            amount_due: raw.amount_due,
            currency: raw.currency,
            status: raw.status,
            period_end,
            plan,
            account: account_id(account.as_deref()),
        }
    }
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    customer: Expandable,
    status: String,
    /// Before basil.
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    items: Option<List<RawSubscriptionItem>>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize)]
struct RawSubscriptionItem {
    #[serde(default)]
    current_period_end: Option<i64>,
}

impl From<RawSubscription> for Subscription {
    fn from(raw: RawSubscription) -> Self {
        let metadata = raw.metadata.as_ref();
        // Items of one subscription can have different periods since basil; the subscription is paid
        // through the latest of them.
        let items_period_end =
            raw.items.iter().flat_map(|items| &items.data).filter_map(|item| item.current_period_end).max();
        Self {
            plan: first_value(PLAN_KEY, &[metadata]),
            account: account_id(metadata.and_then(|m| m.get(ACCOUNT_KEY)).map(String::as_str)),
            id: raw.id,
            customer: raw.customer.into_id(),
            status: raw.status,
            current_period_end: raw.current_period_end.or(items_period_end),
        }
    }
}

#[cfg(test)]
mod tests;
