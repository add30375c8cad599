//! Which client a request comes from: the TCP peer, or, behind trusted
//! proxies, what they report in `X-Forwarded-For`.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The standard right-most-untrusted algorithm. `X-Forwarded-For` is read
/// only when the peer is trusted; entries (over all the header's lines, in
/// order) are walked from the right, skipping trusted proxies; the first
/// untrusted one is the client. If every entry is trusted, the left-most is
/// the client. An entry that is not an address (e.g. `unknown`) stops the walk
/// and the last address verified so far (the trusted hop that reported it) is
/// used: nothing to its left can be believed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return client;
        };
        for entry in line.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue; // "a,,b" or a trailing comma: no hop there
            }
            let Some(ip) = parse_forwarded_entry(entry) else {
                return client;
            };
            client = ip;
            if !is_trusted(&ip) {
                return ip;
            }
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`) or in brackets.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<IpAddr>().ok())
        })?;
    Some(ip.to_canonical())
}

/// `::ffff:a.b.c.d/(96+n)` → `a.b.c.d/n`, so a trusted proxy written either
/// way matches the canonical (IPv4) form of a peer on a dual-stack socket.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(v4net) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(v4net);
            }
        }
    }
    net
}
