use super::*;
use axum::http::HeaderMap;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn xff(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| canonical_net(n.parse().unwrap()))
        .collect()
}

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let trusted = nets(&["10.0.0.0/8"]);
    assert_eq!(
        client_ip(ip("203.0.113.9"), &xff(&["1.2.3.4"]), &trusted),
        ip("203.0.113.9")
    );
    assert_eq!(
        client_ip(ip("203.0.113.9"), &xff(&["1.2.3.4"]), &[]),
        ip("203.0.113.9")
    );
}

#[test]
fn forwarded_for_from_a_trusted_peer_gives_the_right_most_untrusted_entry() {
    let trusted = nets(&["10.0.0.0/8", "192.168.0.0/16"]);
    let peer = ip("10.0.0.1");
    // A client-supplied (spoofed) entry on the left is never reached.
    assert_eq!(
        client_ip(peer, &xff(&["6.6.6.6, 1.2.3.4"]), &trusted),
        ip("1.2.3.4")
    );
    // Trusted hops on the right are skipped, also across header lines.
    assert_eq!(
        client_ip(
            peer,
            &xff(&["6.6.6.6, 1.2.3.4", "192.168.1.1 ,10.9.9.9"]),
            &trusted
        ),
        ip("1.2.3.4")
    );
    // Ports, brackets, IPv6, mapped IPv4.
    assert_eq!(
        client_ip(peer, &xff(&["1.2.3.4:5678"]), &trusted),
        ip("1.2.3.4")
    );
    assert_eq!(
        client_ip(peer, &xff(&["[2001:db8::1]:443"]), &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        client_ip(peer, &xff(&["[2001:db8::1]"]), &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        client_ip(peer, &xff(&["::ffff:1.2.3.4"]), &trusted),
        ip("1.2.3.4")
    );
    // No header: the proxy itself.
    assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    // Everything trusted: the left-most.
    assert_eq!(
        client_ip(peer, &xff(&["10.1.1.1, 192.168.0.5"]), &trusted),
        ip("10.1.1.1")
    );
    // Garbage stops the walk at the last verified hop.
    assert_eq!(client_ip(peer, &xff(&["1.2.3.4, unknown"]), &trusted), peer);
    assert_eq!(
        client_ip(peer, &xff(&["unknown, 192.168.0.5"]), &trusted),
        ip("192.168.0.5")
    );
}

#[test]
fn a_mapped_ipv4_peer_matches_an_ipv4_trusted_net_and_vice_versa() {
    let peer = ip("::ffff:127.0.0.1");
    assert_eq!(
        client_ip(peer, &xff(&["1.2.3.4"]), &nets(&["127.0.0.1/32"])),
        ip("1.2.3.4")
    );
    assert_eq!(
        client_ip(
            ip("127.0.0.1"),
            &xff(&["1.2.3.4"]),
            &nets(&["::ffff:127.0.0.1/128"])
        ),
        ip("1.2.3.4")
    );
}

#[test]
fn reset_counts_whole_seconds_until_full_and_until_the_next_cell_when_empty() {
    let limit = Limit::new(Quota::per_minute(NonZeroU32::new(5).unwrap()));
    let client = ip("1.2.3.4");
    let first = limit.check(client).unwrap();
    assert_eq!((first.limit, first.remaining, first.reset), (5, 4, 12));
    let second = limit.check(client).unwrap();
    assert_eq!((second.remaining, second.reset), (3, 24));
    for _ in 0..2 {
        limit.check(client).unwrap();
    }
    let last = limit.check(client).unwrap();
    assert_eq!((last.remaining, last.reset), (0, 12));
    let refused = limit.check(client).unwrap_err();
    assert_eq!(refused.remaining, 0);
    assert!((11..=12).contains(&refused.reset), "{refused:?}");
}

#[test]
fn policy_lists_enabled_quotas_submission_first() {
    let limits = RateLimits::new(RateLimitConfig::default());
    assert_eq!(limits.inner.general_policy.as_ref().unwrap(), "600;w=60");
    assert_eq!(
        limits.inner.submission_policy.as_ref().unwrap(),
        "30;w=60, 600;w=60"
    );
    let only_submit = RateLimits::new(RateLimitConfig {
        api_per_minute: 0,
        ..RateLimitConfig::default()
    });
    assert!(only_submit.inner.general_policy.is_none());
    assert_eq!(
        only_submit.inner.submission_policy.as_ref().unwrap(),
        "30;w=60"
    );
}

#[test]
fn sweep_drops_replenished_clients_and_keeps_active_ones() {
    // Buckets that refill in 1 ms, so the test need not wait a minute.
    let fast = Quota::with_period(Duration::from_millis(1))
        .unwrap()
        .allow_burst(NonZeroU32::new(1).unwrap());
    let limits = RateLimits::with_quotas(Some(fast), None, Vec::new());
    for i in 0..2000u32 {
        let client = IpAddr::from(0x0a00_0000u32.wrapping_add(i).to_be_bytes());
        assert!(matches!(limits.check(client, false), Verdict::Allowed(_)));
    }
    assert_eq!(limits.tracked(), 2000, "one entry per distinct IP");
    std::thread::sleep(Duration::from_millis(20));
    limits.sweep();
    assert_eq!(limits.tracked(), 0, "replenished entries are dropped");

    // A client still inside its window survives the sweep (its bucket is
    // not reset by housekeeping).
    let slow = RateLimits::new(RateLimitConfig {
        api_per_minute: 1,
        ..RateLimitConfig::default()
    });
    let client = ip("1.2.3.4");
    assert!(matches!(slow.check(client, false), Verdict::Allowed(_)));
    slow.sweep();
    assert_eq!(slow.tracked(), 1);
    assert!(matches!(slow.check(client, false), Verdict::Refused(_)));
}

#[tokio::test]
async fn a_sweep_starts_at_most_once_per_interval() {
    let limits = RateLimits::new(RateLimitConfig::default());
    let interval = SWEEP_INTERVAL.as_millis() as u64;
    assert!(!limits.sweep_if_due_at(0));
    assert!(!limits.sweep_if_due_at(interval - 1));
    assert!(limits.sweep_if_due_at(interval));
    assert!(!limits.sweep_if_due_at(interval + 1));
    assert!(!limits.sweep_if_due_at(2 * interval - 1));
    assert!(limits.sweep_if_due_at(2 * interval + 5));
}
