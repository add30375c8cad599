//! Outbound HTTP under one policy. Webhooks and fetched input URLs both go
//! through [`OutboundPolicy::client`], so what genq may connect to is decided
//! in one place.
//!
//! By default genq refuses loopback, private, link-local (which includes the
//! cloud metadata address 169.254.169.254), unique-local and site-local,
//! shared (CGNAT), multicast, unspecified, benchmarking, documentation and
//! other special-purpose addresses, and IPv6 tunnel forms that carry one
//! ([`forbidden_reason`] lists them). The check is made on the addresses the
//! connection will actually use: names are resolved by [`GuardedResolver`],
//! which hands the connector only allowed addresses, so a name that resolves
//! to 127.0.0.1 — or re-resolves there later (DNS rebinding) — is refused.
//! Literal IP hosts never reach a resolver, so [`OutboundPolicy::check_url`]
//! checks them before a request is made.

pub mod fetch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    /// Lifts the address restrictions (internal deployments, tests).
    pub allow_private: bool,
    /// Extra trusted root certificates (PEM), for receivers with a private CA.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// Why an address may not be connected to, if it may not.
///
/// An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, the
/// deprecated compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4
/// `2002::/16`) is judged by the IPv4 address it carries, since that is
/// where a translator or relay would deliver the request.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let s = v6.segments();
    let v4_in = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() {
        Some("an unspecified address")
    } else if let Some(v4) = v6.to_ipv4_mapped() {
        forbidden_v4(v4)
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, RFC 4291 2.5.5.1).
        forbidden_v4(v4_in(s[6], s[7]))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        forbidden_v4(v4_in(s[6], s[7]))
    } else if s[0] == 0x2002 {
        forbidden_v4(v4_in(s[1], s[2]))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        Some("a local-use NAT64 address")
    } else if s[0] == 0x2001 && s[1] == 0 {
        // Teredo hides the client's IPv4 address (XORed) and relays to it.
        Some("a Teredo tunnel address")
    } else if v6.is_multicast() {
        Some("a multicast address")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("a site-local (private) address")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("a unique-local (private) address")
    } else if s[..4] == [0x100, 0, 0, 0] {
        Some("a discard-only address")
    } else if s[0] == 0x2001 && s[1] == 0xdb8 {
        Some("a documentation address")
    } else {
        None
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local (or cloud metadata) address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking address")
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        Some("a documentation address")
    } else {
        None
    }
}

impl OutboundPolicy {
    /// Checks what can be checked before connecting: scheme and literal IPs.
    pub fn check_url(&self, url: &url::Url, schemes: &[&str]) -> Result<(), OutboundError> {
        if !schemes.contains(&url.scheme()) {
            return Err(OutboundError::InvalidUrl(format!(
                "scheme {} is not allowed (expected {})",
                url.scheme(),
                schemes.join(" or ")
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(OutboundError::InvalidUrl("no host".into())),
        };
        match forbidden_reason(ip) {
            Some(reason) if !self.allow_private => {
                Err(OutboundError::Refused(format!("{ip} is {reason}")))
            }
            _ => Ok(()),
        }
    }

    /// [`OutboundPolicy::check_url`], and for a host name, its addresses as
    /// they resolve now: a name whose every address is refused is refused
    /// like the literal, at once, rather than failing each attempt of a
    /// retry schedule. (The connection still resolves through
    /// [`GuardedResolver`], so a name that changes its answer is caught
    /// there.) A name that does not resolve now is not refused: that may
    /// pass.
    pub async fn check_resolved(
        &self,
        url: &url::Url,
        schemes: &[&str],
    ) -> Result<(), OutboundError> {
        self.check_url(url, schemes)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.allow_private {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let Ok(resolved) = tokio::net::lookup_host((host, port)).await else {
            return Ok(());
        };
        let mut refused = None;
        for addr in resolved {
            match forbidden_reason(addr.ip()) {
                None => return Ok(()),
                Some(reason) => {
                    refused.get_or_insert((addr.ip(), reason));
                }
            }
        }
        match refused {
            Some((ip, reason)) => Err(OutboundError::Refused(format!(
                "{host} resolves to {ip} ({reason})"
            ))),
            None => Ok(()),
        }
    }

    /// An HTTP client that resolves names through the guard, follows no
    /// redirects (a redirect could point anywhere) and gives up after
    /// `timeout`.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, OutboundError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("genq/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: self.allow_private,
            }));
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| OutboundError::Client(format!("reading {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| OutboundError::Client(format!("parsing {}: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|e| OutboundError::Client(e.to_string()))
    }
}

/// Resolves names and keeps only the addresses the policy allows.
pub struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|addr| forbidden_reason(addr.ip()).is_none());
            if allowed.is_empty() {
                let why = refused
                    .first()
                    .and_then(|addr| {
                        forbidden_reason(addr.ip())
                            .map(|r| format!("{host} resolves to {} ({r})", addr.ip()))
                    })
                    .unwrap_or_else(|| format!("{host} does not resolve"));
                return Err(Box::new(OutboundError::Refused(why))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error and its causes on one line: reqwest hides the useful part
/// (refused address, TLS problem) in its source chain.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "::7f00:1",
            "::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "100::1",
            "2001:db8::1",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
        ] {
            assert!(
                forbidden_reason(bad.parse().unwrap()).is_some(),
                "{bad} should be refused"
            );
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            "::808:808",
            "2002:808:808::1",
            "64:ff9b::808:808",
            "198.20.0.1",
            "192.0.1.1",
            "2001:4860:4860::8888",
        ] {
            assert!(
                forbidden_reason(good.parse().unwrap()).is_none(),
                "{good} should be allowed"
            );
        }
    }

    #[test]
    fn literal_hosts_and_schemes_are_checked_before_connecting() {
        let policy = OutboundPolicy::default();
        let https = ["https"];
        assert!(policy
            .check_url(&"https://example.com/x".parse().unwrap(), &https)
            .is_ok());
        assert!(policy
            .check_url(&"http://example.com/x".parse().unwrap(), &https)
            .is_err());
        assert!(matches!(
            policy.check_url(&"https://127.0.0.1/x".parse().unwrap(), &https),
            Err(OutboundError::Refused(_))
        ));
        assert!(policy
            .check_url(&"https://[::1]/x".parse().unwrap(), &https)
            .is_err());
        let open = OutboundPolicy {
            allow_private: true,
            ..Default::default()
        };
        assert!(open
            .check_url(&"https://127.0.0.1/x".parse().unwrap(), &https)
            .is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_connect_time() {
        let client = OutboundPolicy::default()
            .client(Duration::from_secs(5))
            .unwrap();
        let error = client.get("https://localhost:9/").send().await.unwrap_err();
        let text = error_chain(&error);
        assert!(
            text.contains("refused") && text.contains("loopback"),
            "{text}"
        );
    }
}
