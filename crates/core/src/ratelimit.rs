//! Rate limits: a token bucket (GCRA, from `governor`) per API key or user, and per client
//! address for calls without credentials. Every API response carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset`; a spent bucket gets 429 + `Retry-After`.
//! Buckets live in the process: with several replicas each one counts on its own.

use crate::auth::Principal;
use crate::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub struct RateLimits {
    callers: Limiter,
    anonymous: Limiter,
    caller_limit: u32,
    anonymous_limit: u32,
    clock: DefaultClock,
}

fn limiter(per_minute: u32) -> Limiter {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>()
}

/// The outcome of taking one token: the limit, what is left, seconds until the bucket is
/// full again, and, when refused, seconds to wait.
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    pub retry_after: Option<u64>,
}

impl RateLimits {
    pub fn new(per_minute: u32, anonymous_per_minute: u32) -> Self {
        RateLimits {
            callers: limiter(per_minute),
            anonymous: limiter(anonymous_per_minute),
            caller_limit: per_minute.max(1),
            anonymous_limit: anonymous_per_minute.max(1),
            clock: DefaultClock::default(),
        }
    }

    pub fn take(&self, key: &str, authenticated: bool) -> Decision {
        let (limiter, limit) = if authenticated {
            (&self.callers, self.caller_limit)
        } else {
            (&self.anonymous, self.anonymous_limit)
        };
        let refill = |missing: u32| (u64::from(missing) * 60).div_ceil(u64::from(limit));
        match limiter.check_key(&key.to_string()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    limit,
                    remaining,
                    reset_secs: refill(limit - remaining.min(limit)),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
                Decision {
                    limit,
                    remaining: 0,
                    reset_secs: refill(limit),
                    retry_after: Some(wait),
                }
            }
        }
    }
}

fn set(res: &mut actix_web::HttpResponse<BoxBody>, name: &'static str, value: u64) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        res.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Runs inside the auth middleware, so an authenticated caller is counted by API key or
/// user, and anyone else (the public login routes) by client address.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<RateLimits>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let principal = req.extensions().get::<Principal>().cloned();
    let (key, authenticated) = match principal {
        Some(p) => (
            p.api_key_id
                .map(|k| format!("key:{k}"))
                .unwrap_or(format!("user:{}", p.user_id)),
            true,
        ),
        None => (
            format!(
                "ip:{}",
                req.peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default()
            ),
            false,
        ),
    };
    let decision = limits.take(&key, authenticated);
    let mut res = match decision.retry_after {
        Some(wait) => {
            let e = ApiError::TooManyRequests {
                detail: format!(
                    "rate limit of {} requests a minute reached; retry in {wait} s",
                    decision.limit
                ),
                retry_after: wait,
            };
            req.into_response(e.error_response())
        }
        None => next.call(req).await?.map_into_boxed_body(),
    };
    let r = res.response_mut();
    set(r, "ratelimit-limit", u64::from(decision.limit));
    set(r, "ratelimit-remaining", u64::from(decision.remaining));
    set(r, "ratelimit-reset", decision.reset_secs);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_once_spent_and_keys_are_separate() {
        let limits = RateLimits::new(3, 1);
        let seen: Vec<u32> = (0..3).map(|_| limits.take("a", true).remaining).collect();
        assert_eq!(seen, vec![2, 1, 0]);
        let refused = limits.take("a", true);
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        assert!(limits.take("b", true).retry_after.is_none());
        assert!(limits.take("ip", false).retry_after.is_none());
        assert!(limits.take("ip", false).retry_after.is_some());
    }
}
