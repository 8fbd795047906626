//! Where agents' replies may be posted.
//!
//! A callback URL is chosen by an account's admin, and the delivery worker posts to it from inside the
//! deployment. Unchecked, a URL naming a loopback, private or link-local address — the cloud's metadata
//! service at 169.254.169.254, an admin port on the same host — would let any account reach into the
//! network OmniDesk runs in (server-side request forgery). So unless `callback_allow_private` is set (for a
//! desk whose receivers are on its own network), such addresses are refused: when the URL is set, if it
//! names an address or `localhost`; and on every attempt, after DNS resolution, so that a public name
//! pointed at an internal address later (DNS rebinding) is refused too.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address on the public internet: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast or documentation, in IPv4 or IPv6 (IPv4-mapped included).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

/// Whether `url` names a non-public address itself (an IP literal, or `localhost`), which can be told
/// without resolving anything.
pub fn names_a_private_address(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    // An IPv6 host is written in brackets.
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return !is_public(ip);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A resolver that hands the HTTP client only public addresses: a name that resolves to none is an error.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves only to private addresses, which callbacks may not reach \
                     (services.input.settings.callback_allow_private)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("an address")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().expect("an address")), "{ip}");
        }
    }

    #[test]
    fn a_url_naming_an_internal_address_or_localhost_is_told_without_resolving() {
        for url in [
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/cb",
            "http://api.LOCALHOST./cb",
        ] {
            assert!(names_a_private_address(&url.parse().expect("a URL")), "{url}");
        }
        for url in ["https://example.jp/cb", "http://8.8.8.8/cb", "https://localhost.example.jp/cb"] {
            assert!(!names_a_private_address(&url.parse().expect("a URL")), "{url}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_internal_addresses_is_refused() {
        let resolved = PublicOnly.resolve("localhost".parse().expect("a name")).await;
        let error = resolved.err().expect("refused").to_string();
        assert!(error.contains("private addresses"), "{error}");
    }
}
