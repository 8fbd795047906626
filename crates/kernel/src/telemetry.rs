//! Logging: human-readable in development, one JSON object per line in production (`ENVIRONMENT`).
//! The filter comes from `OMNIDESK_LOG` (or `RUST_LOG`), default `info`.

use tracing_subscriber::EnvFilter;

use crate::config::Environment;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(environment: Environment) {
    let filter = std::env::var("OMNIDESK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".to_owned());
    let builder = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter)).with_writer(std::io::stderr);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).with_current_span(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
}
