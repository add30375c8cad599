//! Timestamps are integer milliseconds since the Unix epoch everywhere in the
//! engine and its stores: portable across SQLite and PostgreSQL, and exact.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Millis = i64;

pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// ISO 8601 in UTC with milliseconds, e.g. `2026-05-07T12:34:56.000Z`.
pub fn iso8601_ms(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// ISO 8601 in UTC to the second, e.g. `2026-02-18T15:30:00Z`.
pub fn iso8601_s(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(iso8601_ms(1_778_157_296_007), "2026-05-07T12:34:56.007Z");
        assert_eq!(iso8601_s(1_778_157_296_007), "2026-05-07T12:34:56Z");
    }
}
