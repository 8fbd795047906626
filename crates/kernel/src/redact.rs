//! Secrets kept out of what is printed and logged.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `scheme://user:secret@host` becomes `scheme://user:<redacted>@host`.
pub fn redact_url_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:{REDACTED}{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
