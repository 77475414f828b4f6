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
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many callers' buckets are kept before the idle ones are dropped.
const MAX_TRACKED_KEYS: usize = 50_000;

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
        // Keep memory bounded: forget buckets that are full again (idle callers) once
        // too many keys are tracked; a forgotten bucket is the same as a full one.
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
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
    let trusted = req
        .app_data::<web::Data<crate::AppState>>()
        .map(|s| s.config.trusted_proxies.clone())
        .unwrap_or_default();
    let (key, authenticated) = match principal {
        Some(p) => (
            p.api_key_id
                .map(|k| format!("key:{k}"))
                .unwrap_or(format!("user:{}", p.user_id)),
            true,
        ),
        None => (format!("ip:{}", client_ip(req.request(), &trusted)), false),
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

/// The address of the client: the peer, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy. A client that is not
/// behind a trusted proxy cannot choose its address by sending the header.
pub fn client_ip(req: &actix_web::HttpRequest, trusted: &[IpAddr]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return String::new();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
        .to_string()
}

/// Failed logins per account and per address. After `max_failures` in a row a key is locked
/// for `lockout`; a success clears the account's count. Kept in memory (per replica) and
/// bounded: expired entries are dropped when the map grows.
pub struct LoginThrottle {
    max_failures: u32,
    lockout: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        LoginThrottle {
            max_failures: max_failures.max(1),
            lockout,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds the first locked key still has to wait, if any is locked.
    pub fn locked(&self, keys: &[String]) -> Option<u64> {
        let table = self.table();
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| table.get(k))
            .filter(|(n, _)| *n >= self.max_failures)
            .filter_map(|(_, at)| (*at + self.lockout).checked_duration_since(now))
            .map(|left| left.as_secs().max(1))
            .max()
    }

    pub fn failed(&self, keys: &[String]) {
        let mut table = self.table();
        let now = Instant::now();
        if table.len() > MAX_TRACKED_KEYS {
            let lockout = self.lockout;
            table.retain(|_, (_, at)| now.duration_since(*at) < lockout);
        }
        for key in keys {
            let entry = table.entry(key.clone()).or_insert((0, now));
            // A count older than the lockout starts again.
            if now.duration_since(entry.1) >= self.lockout {
                *entry = (0, now);
            }
            entry.0 += 1;
            entry.1 = now;
        }
    }

    pub fn succeeded(&self, key: &str) {
        self.table().remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn logins_lock_after_the_failures_and_a_success_clears_the_account() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let keys = vec!["acct:a".to_string(), "ip:1".to_string()];
        for _ in 0..2 {
            t.failed(&keys);
        }
        assert_eq!(t.locked(&keys), None);
        t.failed(&keys);
        assert!(t.locked(&keys).is_some_and(|s| s > 0 && s <= 60));
        assert!(t.locked(&["acct:b".to_string()]).is_none());
        t.succeeded("acct:a");
        assert!(t.locked(&["acct:a".to_string()]).is_none());
        assert!(
            t.locked(&["ip:1".to_string()]).is_some(),
            "the address stays locked"
        );
    }

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
