//! OpenAPI descriptions of the parameters every endpoint of a kind shares, written once:
//! the page parameters of lists, `Idempotency-Key` on creates, `If-Match` on updates.
//! Handlers read them through `list::parse`, the idempotency middleware and `if_match`.

use serde::Deserialize;
use utoipa::IntoParams;

/// `limit` and `cursor` of every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1–200 (default 50).
    #[param(nullable = false, minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(nullable = false, min_length = 1)]
    pub cursor: Option<String>,
}

/// `Idempotency-Key` on a POST that creates.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyParams {
    /// Replay protection: a repeat with the same key replays the first response.
    #[serde(rename = "Idempotency-Key")]
    #[param(
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}

/// `If-Match` on a PATCH.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchParams {
    /// ETag from a read; a stale one is a 412.
    #[serde(rename = "If-Match")]
    #[param(nullable = false, pattern = r#"^"v[1-9][0-9]{0,8}"$"#)]
    pub if_match: Option<String>,
}
