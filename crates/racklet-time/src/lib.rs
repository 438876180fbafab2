//! Time on the wire: RFC 3339 in UTC (as Redfish and Kubernetes write it) and Unix
//! milliseconds (as the state stores keep it). One place for it, so that every crate
//! prints and parses time the same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 in UTC, whole seconds (`2026-12-01T00:00:00Z`), as Kubernetes' `Time`.
pub fn rfc3339(unix_ms: u64) -> String {
    let seconds = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".into())
}

/// RFC 3339 in UTC with exactly three fractional digits (`…T00:00:00.123Z`), as
/// Kubernetes' `MicroTime` but in milliseconds. Fixed width, so strings sort as times.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let millis = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(millis)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".into())
}

/// Milliseconds since the epoch of an RFC 3339 time, if it is one.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(t.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_in_whole_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn millisecond_times_have_a_fixed_width_and_read_back() {
        assert_eq!(rfc3339_ms(1_700_000_000_009), "2023-11-14T22:13:20.009Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.009Z"),
            Some(1_700_000_000_009)
        );
        assert!(rfc3339_ms(999) < rfc3339_ms(1_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
