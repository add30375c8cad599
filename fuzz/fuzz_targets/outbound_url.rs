//! The outbound address policy (`genq-outbound`): `forbidden_reason` on
//! the input's first 4 and 16 bytes as IPv4 and IPv6 addresses, against
//! the ranges the crate documents (and IPv4 in its IPv6 forms alike);
//! then the input as URL text: `OutboundPolicy::check_url` (a URL it lets
//! through with a literal address has an allowed one, and the URL's own
//! serialisation parses to the same host and verdict), the Video API's
//! `validate_webhook_url` (idempotent), and a `data:` URL decoded to a file
//! under a size limit by `Fetcher::fetch_to` (no network: only `data:`
//! URLs are fetched here).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use genq_outbound::fetch::{shorten, Fetcher};
use genq_outbound::{forbidden_reason, OutboundPolicy};
use libfuzzer_sys::fuzz_target;

const DATA_LIMIT: u64 = 4096;

/// The IPv4 ranges the crate's comment names: loopback, private,
/// link-local, unspecified (0/8), multicast, broadcast and reserved
/// (240/4), shared (100.64/10), IETF protocol assignments (192.0.0/24),
/// benchmarking (198.18/15) and the three documentation /24s.
fn refused_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224
}

/// IPv6: loopback, unspecified, multicast, link-local, site-local,
/// unique-local, discard-only (100::/64), documentation (2001:db8::/32),
/// Teredo (2001::/32), local-use NAT64 (64:ff9b:1::/48); and an IPv4
/// address carried by the mapped, compatible, NAT64 or 6to4 forms is
/// judged as that IPv4 address.
fn refused_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let v4 = |h: u16, l: u16| Ipv4Addr::new((h >> 8) as u8, h as u8, (l >> 8) as u8, l as u8);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // ::1 and :: are 0.0.0.1 and 0.0.0.0 here: both refused as 0/8.
        return refused_v4(v4(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return refused_v4(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return refused_v4(v4(s[1], s[2]));
    }
    (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
        || (s[0] == 0x2001 && (s[1] == 0 || s[1] == 0xdb8))
        || s[..4] == [0x100, 0, 0, 0]
        || s[0] >> 8 == 0xff
        || s[0] & 0xffc0 == 0xfe80
        || s[0] & 0xffc0 == 0xfec0
        || s[0] & 0xfe00 == 0xfc00
}

fn refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

struct Fetching {
    runtime: tokio::runtime::Runtime,
    fetcher: Fetcher,
    dst: PathBuf,
}

fn fetching() -> &'static Fetching {
    static FETCHING: OnceLock<Fetching> = OnceLock::new();
    FETCHING.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let fetcher = {
            let _guard = runtime.enter();
            Fetcher::new(
                &OutboundPolicy::default(),
                DATA_LIMIT,
                Duration::from_secs(1),
            )
            .unwrap()
        };
        let dir = std::env::temp_dir().join(format!("genq-fuzz-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Fetching {
            runtime,
            fetcher,
            dst: dir.join("fetched"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(&[a, b, c, d]) = data.get(..4) {
        let v4 = Ipv4Addr::new(a, b, c, d);
        let reason = forbidden_reason(IpAddr::V4(v4));
        assert_eq!(reason.is_some(), refused_v4(v4), "{v4}: {reason:?}");
        assert_eq!(
            forbidden_reason(IpAddr::V6(v4.to_ipv6_mapped())),
            reason,
            "{v4}"
        );
        let [x, y] = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
        let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, x, y);
        assert_eq!(forbidden_reason(IpAddr::V6(nat64)), reason, "{nat64}");
        let six_to_four = Ipv6Addr::new(0x2002, x, y, 0, 0, 0, 0, 1);
        assert_eq!(
            forbidden_reason(IpAddr::V6(six_to_four)),
            reason,
            "{six_to_four}"
        );
        // ::0.0.0.1 is ::1, loopback in its own right: only the verdict
        // must agree for the compatible form.
        let compatible = v4.to_ipv6_compatible();
        assert_eq!(
            forbidden_reason(IpAddr::V6(compatible)).is_some(),
            reason.is_some(),
            "{compatible}"
        );
    }
    if let Some(bytes) = data.get(..16) {
        let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap());
        let reason = forbidden_reason(IpAddr::V6(v6));
        assert_eq!(reason.is_some(), refused_v6(v6), "{v6}: {reason:?}");
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let shown = shorten(text);
    assert!(shown.len() <= text.len() + 40);

    let policy = OutboundPolicy::default();
    if let Ok(url) = url::Url::parse(text) {
        let verdict = policy.check_url(&url, &["http", "https"]);
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let (Ok(()), Some(ip)) = (&verdict, literal) {
            assert!(!refused(ip), "{url} let through to {ip}");
        }
        // What is stored is the URL's text; read again it must mean the
        // same place.
        let again = url::Url::parse(url.as_str()).expect("a URL's own text parses");
        assert_eq!(again.host(), url.host(), "{url}");
        assert_eq!(
            again.port_or_known_default(),
            url.port_or_known_default(),
            "{url}"
        );
        let verdict_again = policy.check_url(&again, &["http", "https"]);
        assert_eq!(verdict_again.is_ok(), verdict.is_ok(), "{url}");
    }

    if let Ok(valid) = genq_dialects::shared::validate_webhook_url(text) {
        assert_eq!(
            genq_dialects::shared::validate_webhook_url(&valid).as_deref(),
            Ok(valid.as_str())
        );
    }

    if text.len() >= 5 && text.as_bytes()[..5].eq_ignore_ascii_case(b"data:") {
        let f = fetching();
        if let Ok(fetched) = f.runtime.block_on(f.fetcher.fetch_to(text, &f.dst)) {
            assert!(fetched.size <= DATA_LIMIT);
            assert_eq!(std::fs::metadata(&f.dst).unwrap().len(), fetched.size);
        }
    }
});
