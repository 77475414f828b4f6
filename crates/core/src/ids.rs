//! Identifiers and timestamps. Ids are UUIDv7 (time ordered); timestamps are UTC RFC 3339
//! strings with a fixed microsecond width, so text order equals time order on both databases.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Parse a client-supplied id; only canonical UUIDs are ids here.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

pub fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now() -> String {
    format_ts(Utc::now())
}

/// Now plus (or minus) a duration, in the stored format.
pub fn now_plus(d: Duration) -> String {
    format_ts(Utc::now() + d)
}

/// Parse an RFC 3339 timestamp from a client and normalise it to the stored format.
pub fn normalise_ts(raw: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| format_ts(t.with_timezone(&Utc)))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        let a = normalise_ts("2026-01-01T10:00:00+02:00").unwrap_or_default();
        let b = normalise_ts("2026-01-01T09:00:00.5Z").unwrap_or_default();
        assert_eq!(a, "2026-01-01T08:00:00.000000Z");
        assert!(a < b);
    }

    #[test]
    fn ids_are_canonical_uuids() {
        let id = new_id();
        assert_eq!(parse_id(&id.to_uppercase()), Some(id));
        assert_eq!(parse_id("nope"), None);
    }
}
