//! Which addresses a request on a user's behalf may reach: public ones, plus the networks an operator
//! allows (`TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::special::is_public_ip;

/// The addresses a [`super::SafeFetcher`] may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Special-purpose networks allowed anyway (an operator's private Grafana at 10.1.2.3, say).
    allowed: Vec<IpNet>,
    /// Every address allowed: for tests against local stand-ins (`TOKENKEEPER_ALLOW_PRIVATE_URLS`) and for
    /// endpoints an operator configured (they are trusted like the rest of the configuration).
    any: bool,
}

impl AddressPolicy {
    /// Public addresses only: the production default.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public addresses and those inside `networks`.
    pub fn allowing(networks: Vec<IpNet>) -> Self {
        Self {
            allowed: networks,
            any: false,
        }
    }

    /// Every address.
    pub fn any() -> Self {
        Self {
            allowed: Vec::new(),
            any: true,
        }
    }

    /// The networks allowed beside the public addresses.
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether every address is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether `ip` may be connected to. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is the IPv4 address
    /// it maps, so an allowed IPv4 network covers it; no other IPv6 form is unwrapped for the allow list.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.any || is_public_ip(ip) {
            return true;
        }
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&canonical))
    }
}

/// Parse a comma-separated list of networks (`10.0.0.0/8, fd00::/8, 192.168.1.10`; a bare address is a
/// network of one). The error names the entry that is not a network.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{entry:?} is not a network in CIDR notation (e.g. 10.0.0.0/8)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_only_refuses_special_addresses() {
        let p = AddressPolicy::public_only();
        assert!(p.permits(ip("8.8.8.8")));
        for special in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
        ] {
            assert!(!p.permits(ip(special)), "{special}");
        }
        assert!(AddressPolicy::any().permits(ip("127.0.0.1")));
    }

    #[test]
    fn allowed_networks_open_only_themselves() {
        let p = AddressPolicy::allowing(parse_networks("10.1.0.0/16, 127.0.0.1").unwrap());
        assert!(p.permits(ip("10.1.2.3")));
        assert!(
            p.permits(ip("::ffff:10.1.2.3")),
            "the mapped form of an allowed address"
        );
        assert!(p.permits(ip("127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")), "a bare address is a network of one");
        assert!(!p.permits(ip("10.2.0.1")));
        assert!(!p.permits(ip("169.254.169.254")));
        assert!(!p.permits(ip("::1")));
    }

    #[test]
    fn network_lists() {
        assert_eq!(parse_networks("").unwrap(), Vec::<IpNet>::new());
        let nets = parse_networks(" 10.0.0.5/8 ,fd00::/8,,::1 ").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "::1/128"]);
        for bad in ["10.0.0.0/33", "localhost", "10.0.0/8", "10.0.0.0/8/1"] {
            let err = parse_networks(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
