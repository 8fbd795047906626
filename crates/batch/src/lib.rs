//! The batch service runs scheduled jobs (auto-resolve, reopen snoozed, usage aggregation, retention) and
//! owns their run history. It has no public routes; its jobs arrive in later issues.

use kernel::ServiceSpec;

/// The batch service, as the kernel sees it.
pub const SERVICE: ServiceSpec =
    ServiceSpec::without_features(contracts::services::BATCH, "scheduled jobs and their runs", &[]);
