//! Where agents' replies may be posted.
//!
//! A callback URL is chosen by an account's admin, and the delivery worker posts to it from inside the
//! deployment. Unchecked, a URL naming a loopback, private or link-local address — the cloud's metadata
//! service at 169.254.169.254, an admin port on the same host — would let any account reach into the
//! network OmniDesk runs in (server-side request forgery). So unless `callback_allow_private` is set (for a
//! desk whose receivers are on its own network), such addresses are refused: when the URL is set, if it
//! names an address or `localhost`; and on every attempt, after DNS resolution, so that a public name
//! pointed at an internal address later (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ip_network::{Ipv4Network, Ipv6Network};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is globally reachable, so that a callback may be posted to it.
///
/// IPv4: the `ip_network` crate's classification of the IANA IPv4 special-purpose registry (private,
/// shared, loopback, link-local, IETF assignments, documentation, benchmarking, reserved, broadcast), not
/// a list kept here; multicast is refused too.
///
/// IPv6: an address that carries an IPv4 address is judged by the IPv4 address it carries, since that is
/// where its packets end up: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated),
/// NAT64's well-known prefix (`64:ff9b::/96`) and 6to4 (`2002::/16`). Forms whose embedded address cannot
/// be judged are refused: the local-use NAT64 prefix (`64:ff9b:1::/48`, not globally reachable, and its
/// IPv4 address sits where a prefix length puts it), Teredo and the rest of the IETF protocol block
/// (`2001::/23`). Anything else must be global unicast (`2000::/3`, RFC 4291) and not one of the blocks
/// `ip_network` classifies as local or documentation (nor the newer documentation block `3fff::/20`):
/// `ip_network` alone reads everything outside its few local blocks as global.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Embedded::Ipv4(v4) => is_global_v4(v4),
            Embedded::Opaque => false,
            Embedded::None => is_global_unicast_v6(v6),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    // A /32 is always a valid network; a multicast group is never a callback's receiver.
    !ip.is_multicast() && Ipv4Network::new(ip, 32).is_ok_and(|network| network.is_global())
}

fn is_global_unicast_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    let global_unicast = first & 0xe000 == 0x2000;
    let protocol_block = first == 0x2001 && second < 0x0200;
    let documentation = first & 0xfff0 == 0x3ff0;
    global_unicast
        && !protocol_block
        && !documentation
        && !ip.is_multicast()
        && Ipv6Network::new(ip, 128).is_ok_and(|network| network.is_global())
}

/// What an IPv6 address says about an IPv4 address inside it.
enum Embedded {
    None,
    Ipv4(Ipv4Addr),
    /// It carries IPv4 addresses in a form that cannot be judged (Teredo).
    Opaque,
}

fn embedded_ipv4(ip: Ipv6Addr) -> Embedded {
    let segments = ip.segments();
    // The low 32 bits, where the IPv4-carrying forms below put it.
    let last_32 = Ipv4Addr::from(ip.to_bits() as u32);
    match segments {
        // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (except :: and ::1, which the registry covers).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Embedded::Ipv4(last_32),
        [0, 0, 0, 0, 0, 0, _, _] if u32::from(last_32) > 1 => Embedded::Ipv4(last_32),
        // NAT64: the well-known prefix and the local-use one (RFC 6052, RFC 8215).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::Ipv4(last_32),
        [0x64, 0xff9b, 1, ..] => Embedded::Opaque,
        // 6to4: the IPv4 address follows the prefix (RFC 3056).
        [0x2002, high, low, ..] => Embedded::Ipv4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))),
        // Teredo (RFC 4380).
        [0x2001, 0, ..] => Embedded::Opaque,
        _ => Embedded::None,
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
            // The probe's finds: IPv4-compatible, NAT64, 6to4, site-local, benchmarking.
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "198.18.0.1",
            "198.19.255.255",
            // Reserved, IETF protocol assignments, documentation in both families, Teredo.
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "2001:db8::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            // Outside global unicast, or special blocks ip_network reads as global.
            "100::1",
            "2001:2::1",
            "3fff::1",
            "5f00::1",
            "ff0e::1",
            "::ffff:0:a00:1",
        ] {
            assert!(!is_public(ip.parse().expect("an address")), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
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
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[fec0::1]/",
            "http://198.18.0.1/",
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
