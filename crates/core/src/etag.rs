//! ETags carry the record version: `"v7"`. A stale `If-Match` is a 412.

use crate::error::ApiError;

pub fn format(version: i32) -> String {
    format!("\"v{version}\"")
}

pub fn parse(raw: &str) -> Option<i32> {
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    raw.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok()
}

/// Compare the version the client last saw with the stored one.
pub fn check(expected: Option<i32>, current: i32) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != current => Err(ApiError::PreconditionFailed(format!(
            "If-Match does not match the current ETag {}: the record changed since you \
             read it; fetch it again and reapply your change",
            format(current)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::parse(&super::format(3)), Some(3));
        assert_eq!(super::parse("W/\"v9\""), Some(9));
        assert_eq!(super::parse("\"9\""), None);
        assert!(super::check(Some(2), 3).is_err());
        assert!(super::check(None, 3).is_ok());
    }
}
