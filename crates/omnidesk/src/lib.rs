//! The OmniDesk binary's library half: the catalogue of every service this build contains, shared by
//! `main.rs`, the black-box API suite and the benchmarks.

use kernel::ServiceSpec;

/// Every service, in the order `omnidesk routes` lists them.
pub const CATALOGUE: &[ServiceSpec] = &[
    user::SERVICE,
    plan::SERVICE,
    payment::SERVICE,
    inbox::SERVICE,
    input::SERVICE,
    integration::SERVICE,
    batch::SERVICE,
];

/// The names of every service in the catalogue.
pub fn service_names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|s| s.name).collect()
}

/// The services a command's `--service`/`--services` names (every service when it names none); an
/// unknown name is an error that lists the known ones.
pub fn chosen_services<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<&'static str>, String> {
    let known = service_names();
    let mut chosen = Vec::new();
    for name in names {
        match known.iter().find(|service| **service == name) {
            Some(service) => chosen.push(*service),
            None => return Err(format!("unknown service `{name}`; known: {}", known.join(", "))),
        }
    }
    Ok(if chosen.is_empty() { known } else { chosen })
}

/// The colocation used by `--topology groups` when `topology.groups` is not configured: the account
/// services together, the conversation pipeline together, and the outward-facing workers together.
pub const DEFAULT_GROUPS: &[&[&str]] = &[&["user", "plan", "payment"], &["inbox", "input"], &["integration", "batch"]];
