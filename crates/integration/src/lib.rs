//! The integration service owns outbound webhook subscriptions and their deliveries
//! (`/api/webhooks`, `/api/integrations`). Its features arrive in a later issue; until then it claims its
//! paths and serves nothing under them.

use kernel::ServiceSpec;

/// The integration service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec::without_features(
    contracts::services::INTEGRATION,
    "outbound webhook subscriptions and deliveries",
    &["/api/webhooks", "/api/integrations"],
);
