//! Address classes, for the checks that keep outside input (an announced engine URL, a
//! registry's redirect) from aiming the platform at its own network.

use std::net::{IpAddr, Ipv4Addr};

/// Private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local, unspecified,
/// broadcast, multicast, shared (100.64/10, carrier-grade NAT), "this network" (0/8),
/// benchmarking (198.18/15) or reserved (240/4) — anything that is not a public address of the
/// internet. IPv6 addresses that stand for an IPv4 one (mapped, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by it.
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |v4: Ipv4Addr| is_private(&IpAddr::V4(v4));
            let v4_of = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated)
                || v6.to_ipv4_mapped().is_some_and(embedded)
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(v4_of(s[6], s[7])))
                || (s[0] == 0x2002 && embedded(v4_of(s[1], s[2])))
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
        for private in ["224.0.0.1", "198.18.0.1", "240.0.0.1", "0.1.2.3", "255.255.255.255"] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for private in ["fe80::1", "fd00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::", "ff02::1", "fec0::1"] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for private in ["64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:c0a8:1::"] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for public in
            ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1", "64:ff9b::5db8:d822", "2002:5db8:d822::"]
        {
            assert!(!is_private(&public.parse().unwrap()), "{public}");
        }
    }
}
