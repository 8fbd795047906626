//! Where each service's namespace lives: where a move put it (recorded in `<data.dir>/locations.toml`),
//! else where the configuration says (`services.<name>.database_url`, `data.url`, or a SQLite file under
//! the data directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::service::ServiceSpec;
use crate::store::{Location, Namespace, namespace_name};

/// Where a service's namespace lives: where a move put it (`<data.dir>/locations.toml`), else where the
/// configuration says.
pub fn location_of(config: &Config, service: &str) -> anyhow::Result<Location> {
    if let Some(url) = recorded_location(&config.data.dir, service)? {
        let schema =
            namespace_name(&config.data.namespace, service).map_err(|e| anyhow::anyhow!("data.namespace: {e}"))?;
        return Location::parse(&url, &schema).map_err(|e| anyhow::anyhow!("{}: {service}: {e}", LOCATIONS_FILE));
    }
    configured_location_of(config, service)
}

/// Where the configuration alone puts a service's namespace.
pub fn configured_location_of(config: &Config, service: &str) -> anyhow::Result<Location> {
    if let Some(url) = &config.service(service).database_url {
        let schema =
            namespace_name(&config.data.namespace, service).map_err(|e| anyhow::anyhow!("data.namespace: {e}"))?;
        return Location::parse(url, &schema).map_err(|e| anyhow::anyhow!("services.{service}.database_url: {e}"));
    }
    match &config.data.url {
        Some(url) => {
            Location::on_server(url, &config.data.namespace, service).map_err(|e| anyhow::anyhow!("data.url: {e}"))
        }
        None => Ok(Location::default_for(&config.data.dir, service)),
    }
}

pub async fn open_namespace(config: &Config, spec: &ServiceSpec) -> anyhow::Result<Namespace> {
    let location = location_of(config, spec.name)?;
    Namespace::open(spec.name, &location, spec.migrations)
        .await
        .with_context(|| format!("opening the `{}` namespace at {location}", spec.name))
}

/// The file under the data directory that records where moves put namespaces.
pub const LOCATIONS_FILE: &str = "locations.toml";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Recorded {
    #[serde(default)]
    services: BTreeMap<String, RecordedService>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedService {
    database_url: String,
}

fn locations_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCATIONS_FILE)
}

fn read_recorded(data_dir: &Path) -> anyhow::Result<Recorded> {
    let path = locations_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Recorded::default()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The URL a move recorded for `service` under `data_dir`, if any.
pub fn recorded_location(data_dir: &Path, service: &str) -> anyhow::Result<Option<String>> {
    Ok(read_recorded(data_dir)?.services.remove(service).map(|s| s.database_url))
}

/// Every recorded location, by service (for `omnidesk config`).
pub fn recorded_locations(data_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(read_recorded(data_dir)?.services.into_iter().map(|(name, s)| (name, s.database_url)).collect())
}

/// Records that `service` lives at `location` now; forgets the record when that is where the
/// configuration alone puts it. The file holds passwords: its owner alone may read it.
pub fn record_location(config: &Config, service: &str, location: &Location) -> anyhow::Result<()> {
    let mut recorded = read_recorded(&config.data.dir)?;
    if configured_location_of(config, service)? == *location {
        recorded.services.remove(service);
    } else {
        recorded.services.insert(service.to_owned(), RecordedService { database_url: location.url() });
    }
    let text = format!(
        "# Written by `omnidesk data move`: where each moved namespace lives now. Every start reads it before\n\
         # the configuration. Keep it secret (it holds database passwords).\n{}",
        toml::to_string_pretty(&recorded)?
    );
    std::fs::create_dir_all(&config.data.dir)?;
    write_private(&locations_path(&config.data.dir), &text)
}

/// Writes `text` to a new or truncated file only its owner can read, replacing it whole.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
    // `mode` applies only to a new file.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
}
