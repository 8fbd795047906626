//! The inbox service owns inboxes, contacts, conversations, messages, labels, canned responses, search and
//! the agents' realtime feed. Its features arrive with the helpdesk-core issue; until then it claims its
//! paths and serves nothing under them.

use kernel::ServiceSpec;

/// The inbox service, as the kernel sees it.
pub const SERVICE: ServiceSpec = ServiceSpec::without_features(
    contracts::services::INBOX,
    "inboxes, contacts, conversations, messages, labels, canned responses, search, realtime",
    &[
        "/api/inboxes",
        "/api/conversations",
        "/api/contacts",
        "/api/labels",
        "/api/canned-responses",
        "/api/search",
        "/api/realtime",
    ],
);
