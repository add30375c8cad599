//! Webhook signatures. One secret (`whsec_<base64>`, Standard Webhooks form)
//! serves both schemes genq sends:
//!
//! - `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed
//!   with the secret string's UTF-8 bytes — what the seed document's Node.js
//!   snippet computes with `process.env.WEBHOOK_SECRET`.
//! - Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64>`): HMAC-SHA256 of `id.timestamp.body`,
//!   keyed with the base64-decoded part after `whsec_`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The seed's `X-Webhook-Signature` value.
pub fn seed_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac(secret.as_bytes(), &[body]))
}

/// One Standard Webhooks signature (`v1,<base64>`).
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // Secrets genq makes always decode; a hand-set one that does not is used
    // as raw bytes rather than refusing to sign.
    let key = STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let signed = hmac(
        &key,
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", STANDARD.encode(signed))
}

/// Every header a delivery carries, signed with `secrets` (newest first;
/// during a rotation's overlap the previous secret signs too).
pub fn headers(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            secrets
                .iter()
                .map(|s| standard_signature(s, id, timestamp, body))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ];
    if let Some(current) = secrets.first() {
        headers.push(("x-webhook-signature", seed_signature(current, body)));
    }
    if let Some(previous) = secrets.get(1) {
        headers.push((
            "x-webhook-signature-previous",
            seed_signature(previous, body),
        ));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's test suite.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn seed_signature_is_hex_hmac_of_the_body_keyed_by_the_whole_secret() {
        // echo -n '{"a":1}' | openssl dgst -sha256 -hmac 'whsec_abc' -hex
        assert_eq!(
            seed_signature("whsec_abc", br#"{"a":1}"#),
            "359ab2775fc376b1a8dee20a432572581b7d5b4e2c3a4e3ff657ed6713fa7eeb"
        );
    }

    #[test]
    fn overlap_signs_with_both_secrets() {
        let h = headers(&["whsec_bmV3", "whsec_b2xk"], "msg_1", 1, b"{}");
        let sig = &h.iter().find(|(k, _)| *k == "webhook-signature").unwrap().1;
        assert_eq!(sig.split(' ').count(), 2);
        assert!(h.iter().any(|(k, _)| *k == "x-webhook-signature-previous"));
    }
}
