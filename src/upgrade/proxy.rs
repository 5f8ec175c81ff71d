//! [`TrustedProxies`] and the client's address read through them (`Forwarded`,
//! `X-Forwarded-For`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio_tungstenite::tungstenite::http::{header, HeaderMap};

/// The proxies whose forwarding header the server believes: addresses and networks in CIDR
/// notation, and the one header they write ([`ForwardedHeader`]: `X-Forwarded-For` unless
/// told otherwise). See [`UpgradeRequest::client_ip`](super::UpgradeRequest::client_ip).
///
/// ```
/// use roomwire::upgrade::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("203.0.113.9".parse().unwrap()));
/// assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
/// // A proxy that writes RFC 7239's header instead.
/// let proxies = TrustedProxies::loopback().header(ForwardedHeader::Forwarded);
/// # let _ = proxies;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    header: ForwardedHeader,
}

/// Which header the trusted proxies write the client's address in. Only that one is read:
/// a proxy passes the other on as the client sent it, so reading it would let the client
/// choose its own address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's `proxy_add_x_forwarded_for`, AWS
    /// and Google load balancers, HAProxy's `option forwardfor`). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, as a dual-stack socket reports it)
/// is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A proxy address that is not an IP address or a network in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or a network in CIDR notation (\"10.0.0.0/8\", \"fd00::/8\"): {0:?}")]
pub struct InvalidProxy(pub String);

impl TrustedProxies {
    /// Trusts the given addresses and networks (`"10.0.0.5"`, `"10.0.0.0/8"`, `"::1"`,
    /// `"fd00::/8"`).
    ///
    /// # Errors
    /// [`InvalidProxy`] naming the first entry that is neither.
    pub fn new<I>(proxies: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut networks = Vec::new();
        for entry in proxies {
            let entry = entry.as_ref();
            networks.push(parse_network(entry).ok_or_else(|| InvalidProxy(entry.to_owned()))?);
        }
        Ok(TrustedProxies {
            networks,
            header: ForwardedHeader::default(),
        })
    }

    /// Reads the client's address from `header`. Defaults to
    /// [`ForwardedHeader::XForwardedFor`].
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Trusts proxies on this machine: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> Self {
        TrustedProxies {
            networks: vec![
                Network {
                    base: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                Network {
                    base: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            header: ForwardedHeader::default(),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }
}

fn parse_network(entry: &str) -> Option<Network> {
    let (ip, prefix) = match entry.trim().split_once('/') {
        Some((ip, prefix)) => (ip.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
        None => (entry.trim().parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return None;
    }
    // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps, as the
    // addresses it is matched against are (see `canonical`).
    match ip {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => Some(Network {
                base: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            None => Some(Network { base: ip, prefix }),
        },
        _ => Some(Network { base: ip, prefix }),
    }
}

/// See [`UpgradeRequest::client_ip`](super::UpgradeRequest::client_ip).
pub(super) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let hops = forwarded_hops(headers, trusted.header)?;
    let mut client = peer;
    // From the nearest hop outwards: the first that is not a trusted proxy is the client.
    for hop in hops.iter().rev() {
        client = canonical(parse_node(hop)?);
        if !trusted.contains(client) {
            return Some(client);
        }
    }
    Some(client)
}

/// The hops `header` lists, in order, nearest hop last; `None` when one of them cannot be
/// read (a `Forwarded` element without `for=`: the client's own chain could follow).
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Option<Vec<String>> {
    let values = match header {
        ForwardedHeader::XForwardedFor => headers.get_all("x-forwarded-for"),
        ForwardedHeader::Forwarded => headers.get_all(header::FORWARDED),
    };
    let mut hops = Vec::new();
    for value in values {
        for element in value.to_str().ok()?.split(',') {
            let hop = match header {
                ForwardedHeader::XForwardedFor => element.trim().to_owned(),
                ForwardedHeader::Forwarded => element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().trim_matches('"').to_owned())
                })?,
            };
            hops.push(hop);
        }
    }
    Some(hops)
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`,
/// `[2001:db8::1]`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')?
        .strip_suffix(']')?
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}/{}", n.base, n.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), &h, &trusted),
            Some(ip("203.0.113.5"))
        );
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_nearest_hop_outwards() {
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        // The client forged the first entry; the last untrusted hop is the real client.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A proxy writing X-Forwarded-For passes the client's own Forwarded header on.
        let xff = TrustedProxies::loopback();
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &xff),
            Some(ip("198.51.100.7"))
        );
        let h = headers(&[
            ("forwarded", "for=unknown"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &xff),
            Some(ip("198.51.100.7"))
        );
        // And the other way round.
        let fwd = TrustedProxies::loopback().header(ForwardedHeader::Forwarded);
        let h = headers(&[
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &fwd),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn forwarded_reads_ports_brackets_and_case() {
        let trusted = TrustedProxies::loopback().header(ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            "for=\"[2001:db8:cafe::17]:4711\";proto=https, for=127.0.0.1",
        )]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            Some(ip("2001:db8:cafe::17"))
        );
        let h = headers(&[("forwarded", "For=192.0.2.60:1234;by=203.0.113.43")]);
        assert_eq!(client_ip(ip("::1"), &h, &trusted), Some(ip("192.0.2.60")));
    }

    #[test]
    fn an_unreadable_hop_makes_the_client_unknown() {
        let fwd = TrustedProxies::loopback().header(ForwardedHeader::Forwarded);
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &fwd), None);
        // An element without `for=` could hide a chain the client wrote.
        let h = headers(&[("forwarded", "for=6.6.6.6, proto=https")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &fwd), None);
        let h = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &TrustedProxies::loopback()),
            None
        );
    }

    #[test]
    fn a_trusted_peer_without_headers_is_the_client() {
        let trusted = TrustedProxies::loopback();
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_networks() {
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        assert!(trusted.contains(ip("::ffff:10.1.1.1")));
        assert!(!trusted.contains(ip("::ffff:11.1.1.1")));
        assert!(TrustedProxies::new(["0.0.0.0/0"])
            .unwrap()
            .contains(ip("8.8.8.8")));
        // Networks written in their IPv4-mapped form too.
        let mapped = TrustedProxies::new(["::ffff:10.0.0.0/104", "::ffff:0:0/96"]).unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
        assert!(mapped.contains(ip("::ffff:8.8.8.8")));
        let ten = TrustedProxies::new(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(!ten.contains(ip("11.0.0.1")));
    }
}
