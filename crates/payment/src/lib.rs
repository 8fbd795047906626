//! The payment service owns billing profiles, invoices and payments, and the payment provider's webhook
//! (`/api/billing`, `/hooks/stripe`). Its features arrive with the account-domain issue; until then it
//! claims its paths and serves nothing under them.

use kernel::ServiceSpec;

/// The payment service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec::without_features(
    contracts::services::PAYMENT,
    "billing profiles, invoices, payments, provider webhook",
    &["/api/billing", "/hooks/stripe"],
);
