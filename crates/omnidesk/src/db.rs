//! `omnidesk db`: administering the database servers the namespaces live on.

use std::path::Path;

use anyhow::Context as _;
use kernel::config::Config;
use kernel::store::namespace_name;

/// `omnidesk db provision`: a namespace and a login per service; the configuration that uses them is
/// printed, or written to `out` (mode 0600: it holds passwords).
pub async fn provision(
    config: &Config,
    admin_url: &str,
    services: &[String],
    out: Option<&Path>,
    reset_passwords: bool,
) -> anyhow::Result<()> {
    let chosen = omnidesk::chosen_services(services.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    let mut toml = String::from(
        "# Written by `omnidesk db provision`: each service on its own login, which reaches only its own\n\
         # namespace. Keep this file secret.\n[data]\nmode = \"distributed\"\n",
    );
    for service in chosen {
        let name =
            namespace_name(&config.data.namespace, service).map_err(|e| anyhow::anyhow!("data.namespace: {e}"))?;
        let provisioned = kernel::store::provision(admin_url, &name, reset_passwords)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("provisioning `{service}`"))?;
        let what = match (provisioned.created, provisioned.password_set) {
            (true, _) => "login and namespace created",
            (false, true) => "login existed; new password set",
            (false, false) => "login existed; password kept (the URL below has none: add it, or --reset-passwords)",
        };
        eprintln!("{service}: {name} ({what})");
        toml.push_str(&format!("\n[services.{service}]\ndatabase_url = {:?}\n", provisioned.url));
    }
    match out {
        None => print!("{toml}"),
        Some(path) => {
            kernel::locations::write_private(path, &toml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} (start with --config {0} or merge it into your configuration)", path.display());
        }
    }
    Ok(())
}
