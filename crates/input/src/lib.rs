//! The input service owns the public channel endpoints (API channel and website widget under
//! `/public/api`, the LINE webhook, inbound e-mail), the raw inbound events kept for dedupe and audit, and
//! channel credentials. Its features arrive with the helpdesk-core and channels issues; until then it
//! claims its paths and serves nothing under them.

use kernel::ServiceSpec;

/// The input service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec::without_features(
    contracts::services::INPUT,
    "channel endpoints, raw inbound events, channel credentials",
    &["/public/api", "/hooks/line", "/hooks/email"],
);
