//! Who the client is behind reverse proxies (`TOKENKEEPER_TRUSTED_PROXIES`), and how client addresses are
//! grouped for counting.
//!
//! Proxies *append* to `X-Forwarded-For` the address they received the request from, so only the entries
//! on the right were written by proxies; everything to their left came with the request and is the
//! client's to choose. The client is therefore found by walking from the socket's peer leftwards: while
//! the address at hand is a trusted proxy, the entry it appended is the next address; the first address
//! that is not a trusted proxy is the client. A peer that is not a trusted proxy is the client itself,
//! whatever the header says.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

/// The networks whose hosts are reverse proxies in front of Tokenkeeper. Empty: no proxy is trusted and
/// the client is always the socket's peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of CIDRs (a bare address is a network of one).
    pub fn parse(list: &str) -> Result<Self, String> {
        super::parse_networks(list).map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the `X-Forwarded-For` header lines in the order received
    /// (several lines read as one list). An entry that is not an address ends the walk: the client is
    /// then the trusted proxy that passed it on.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let lines: Vec<&str> = forwarded_for.into_iter().collect();
        for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            match entry.parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => return client,
            }
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// The key a client address is counted under in rate limits: IPv6 addresses by their /64 (one
/// subscriber's usual allocation: a client owns all of it), everything else as it is.
pub fn address_group(addr: &str) -> String {
    match addr.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => Ipv6Net::new(v6, 64).map_or_else(|_| addr.to_string(), |n| n.trunc().to_string()),
        Ok(ip) => ip.to_string(),
        Err(_) => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn parses_cidrs_and_bare_addresses_and_refuses_the_rest() {
        let p = proxies(" 10.0.0.0/8, 192.0.2.1 ,fd00::/8,");
        assert!(p.trusts(ip("10.255.0.1")) && p.trusts(ip("192.0.2.1")) && p.trusts(ip("fd12::1")));
        assert!(!p.trusts(ip("192.0.2.2")) && !p.trusts(ip("11.0.0.1")));
        assert!(proxies("").is_empty());
        for bad in ["10.0.0.0/33", "proxy.example.com", "10.0.0.0/8;"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains("CIDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_entry_that_is_not_a_trusted_proxy() {
        let p = proxies("127.0.0.1, 10.0.0.0/8");
        let walk = |peer: &str, lines: &[&str]| p.client(ip(peer), lines.iter().copied());
        // The entry the trusted peer appended is the client; what the client wrote to its left is not.
        assert_eq!(walk("127.0.0.1", &["6.6.6.6, 198.51.100.7"]), ip("198.51.100.7"));
        // Through two trusted proxies, and across header lines.
        assert_eq!(
            walk("10.0.0.2", &["6.6.6.6, 198.51.100.7", "10.0.0.1"]),
            ip("198.51.100.7")
        );
        // An untrusted peer is the client, whatever it sends.
        assert_eq!(walk("198.51.100.9", &["6.6.6.6"]), ip("198.51.100.9"));
        // No header, or only trusted entries: the last trusted address reached.
        assert_eq!(walk("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(walk("127.0.0.1", &["10.0.0.5"]), ip("10.0.0.5"));
        // Garbage ends the walk at the proxy that passed it on.
        assert_eq!(walk("127.0.0.1", &["6.6.6.6, not-an-ip, 10.0.0.3"]), ip("10.0.0.3"));
        // IPv4-mapped peers and entries count as their IPv4 address.
        assert_eq!(walk("::ffff:127.0.0.1", &["::ffff:198.51.100.7"]), ip("198.51.100.7"));
        // Nothing trusted: the peer.
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), ["6.6.6.6"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_64() {
        assert_eq!(address_group("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(address_group("2001:db8:1:2::ffff"), address_group("2001:db8:1:2::1"));
        assert_ne!(address_group("2001:db8:1:3::1"), address_group("2001:db8:1:2::1"));
        assert_eq!(address_group("198.51.100.7"), "198.51.100.7");
        assert_eq!(address_group("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(address_group("unknown"), "unknown");
    }
}
