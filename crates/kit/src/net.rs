//! Address classes, for the checks that keep outside input (an announced engine URL, a
//! registry's redirect) from aiming the platform at its own network.

use std::net::IpAddr;

/// Private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local, unspecified,
/// broadcast, or shared (100.64/10, carrier-grade NAT) — anything that is not a public address
/// of the internet, IPv4-mapped IPv6 addresses judged by their IPv4 address.
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
                // 100.64/10, shared address space (carrier-grade NAT)
                || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(&IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for private in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.5", "100.64.0.1", "0.0.0.0", "::1"] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for private in ["fe80::1", "fd00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::"] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(&public.parse().unwrap()), "{public}");
        }
    }
}
