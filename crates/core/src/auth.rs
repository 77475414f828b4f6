//! Authentication primitives: argon2 passwords, HS256 access tokens (algorithm pinned),
//! opaque refresh tokens and API keys stored as SHA-256 digests, and the `Principal`
//! extractor every protected handler takes.

use crate::access::{self, Permission, Role};
use crate::db::DbConn;
use crate::error::ApiError;
use crate::schema::{api_keys, users};
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use diesel::prelude::*;
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const API_KEY_PREFIX: &str = "crm_";
pub const REFRESH_TOKEN_PREFIX: &str = "crt_";

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Verify against a fixed hash so that an unknown email costs as much as a wrong password.
pub fn burn_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("timing-equaliser").unwrap_or_default());
    let _ = verify_password(password, hash);
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_token(n: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// Digest of a high-entropy secret (API key, refresh token). A fast hash is right here:
/// the secrets are 256-bit random, so there is nothing to brute-force.
pub fn secret_digest(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of access tokens: the current one signs (its `kid` in the header), and the
/// ones it replaced still verify tokens they signed until those expire, so a secret can be
/// rotated without logging everyone out. Every token carries and is checked for `iss`
/// and `aud`.
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Vec<(String, DecodingKey)>,
    issuer: String,
    audience: String,
}

/// A key's id: a digest prefix, so the header names the key without revealing it.
fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self::rotated(secret, &[], "crm", "crm-api")
    }

    pub fn rotated(secret: &[u8], previous: &[&[u8]], issuer: &str, audience: &str) -> Self {
        JwtKeys {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            previous: previous
                .iter()
                .map(|p| (key_id(p), DecodingKey::from_secret(p)))
                .collect(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        }
    }

    fn decoding_key(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match kid {
            None => Some(&self.decoding),
            Some(k) if k == self.kid => Some(&self.decoding),
            Some(k) => self.previous.iter().find(|(id, _)| id == k).map(|(_, d)| d),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: String,
    pub iss: String,
    pub aud: String,
    /// The user's session epoch when the token was issued (see `revoke_sessions`).
    #[serde(default)]
    pub epoch: i32,
}

pub fn issue_access_token(
    keys: &JwtKeys,
    user_id: &str,
    role: Role,
    epoch: i32,
    ttl_secs: i64,
) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let claims = AccessClaims {
        sub: user_id.to_string(),
        role: role.as_str().to_string(),
        iat: now,
        exp: now + ttl_secs,
        jti: crate::ids::new_id(),
        typ: "access".into(),
        iss: keys.issuer.clone(),
        aud: keys.audience.clone(),
        epoch,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.kid.clone());
    jsonwebtoken::encode(&header, &claims, &keys.encoding).map_err(ApiError::internal)
}

/// Decode an access token. Only HS256 is accepted (`alg: none` and other algorithms
/// fail), signed by the current key or a previous one named by `kid`, for this issuer
/// and audience.
pub fn decode_access_token(keys: &JwtKeys, token: &str) -> Result<AccessClaims, ApiError> {
    let invalid = || ApiError::Unauthorized("the access token is not valid".into());
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    let key = keys.decoding_key(header.kid.as_deref()).ok_or_else(|| {
        ApiError::Unauthorized(
            "the access token was signed by a key this server no longer accepts; log in again"
                .into(),
        )
    })?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.set_issuer(&[&keys.issuer]);
    validation.set_audience(&[&keys.audience]);
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Unauthorized(
                    "the access token has expired; refresh it or log in".into(),
                ),
                _ => invalid(),
            }
        })?;
    if data.claims.typ != "access" {
        return Err(ApiError::Unauthorized("not an access token".into()));
    }
    Ok(data.claims)
}

/// Who is calling: resolved from a JWT or an API key on every request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
    /// Set when the caller authenticated with an API key.
    pub api_key_id: Option<String>,
}

impl Principal {
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        access::require(self.role, permission)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// id, email, name, role, team, session epoch.
type UserRow = (String, String, String, String, Option<String>, i32);

fn active_user(conn: &mut DbConn, user_id: &str) -> Result<Option<UserRow>, ApiError> {
    Ok(users::table
        .filter(users::id.eq(user_id))
        .filter(users::active.eq(true))
        .filter(users::archived_at.is_null())
        .select((
            users::id,
            users::email,
            users::name,
            users::role,
            users::team_id,
            users::session_epoch,
        ))
        .first::<UserRow>(conn)
        .optional()?)
}

fn principal_from(row: UserRow, api_key_id: Option<String>) -> Result<Principal, ApiError> {
    let role = Role::parse(&row.3).ok_or_else(|| ApiError::internal("unknown role stored"))?;
    Ok(Principal {
        user_id: row.0,
        email: row.1,
        name: row.2,
        role,
        team_id: row.4,
        api_key_id,
    })
}

/// The principal of an active user, for work done on a user's behalf outside a request
/// (an import job runs as the user who started it). `None` once the user is deactivated.
pub fn principal_of_user(conn: &mut DbConn, user_id: &str) -> Result<Option<Principal>, ApiError> {
    active_user(conn, user_id)?
        .map(|row| principal_from(row, None))
        .transpose()
}

/// Resolve a bearer credential to a principal: API keys by digest, anything else as a JWT.
pub fn authenticate(conn: &mut DbConn, keys: &JwtKeys, token: &str) -> Result<Principal, ApiError> {
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(conn, token);
    }
    let claims = decode_access_token(keys, token)?;
    let row = active_user(conn, &claims.sub)?
        .ok_or_else(|| ApiError::Unauthorized("the user is no longer active".into()))?;
    if claims.epoch != row.5 {
        return Err(ApiError::Unauthorized(
            "the session was ended (the password, role or status changed); log in again".into(),
        ));
    }
    principal_from(row, None)
}

fn authenticate_api_key(conn: &mut DbConn, token: &str) -> Result<Principal, ApiError> {
    let rejected = || ApiError::Unauthorized("the API key is not valid or was revoked".into());
    let (key_id, user_id, expires_at, last_used_at) = api_keys::table
        .filter(api_keys::key_hash.eq(secret_digest(token)))
        .filter(api_keys::revoked_at.is_null())
        .select((
            api_keys::id,
            api_keys::user_id,
            api_keys::expires_at,
            api_keys::last_used_at,
        ))
        .first::<(String, String, Option<String>, Option<String>)>(conn)
        .optional()?
        .ok_or_else(rejected)?;
    let now = crate::ids::now();
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::Unauthorized("the API key has expired".into()));
    }
    let row = active_user(conn, &user_id)?.ok_or_else(rejected)?;
    // Record use at most once a minute, so reads do not turn into writes on every call.
    let stale = crate::ids::now_plus(chrono::Duration::seconds(-60));
    if last_used_at.is_none_or(|t| t < stale) {
        diesel::update(api_keys::table.find(&key_id))
            .set(api_keys::last_used_at.eq(&now))
            .execute(conn)?;
    }
    principal_from(row, Some(key_id))
}

pub(crate) fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("use Authorization: Bearer <token>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "use Authorization: Bearer <token>".into(),
        ));
    }
    Ok(token.trim().to_string())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(p) = req.extensions().get::<Principal>() {
            let p = p.clone();
            let checked = check_matched_route(req);
            return Box::pin(async move { checked.map(|()| p) });
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let req = req.clone();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::internal("app state missing"))?;
            let keys = state.jwt.clone();
            let principal = state
                .db(move |conn| authenticate(conn, &keys, &token))
                .await?;
            req.extensions_mut().insert(principal.clone());
            Ok(principal)
        })
    }
}

/// Whether the principal's role holds a permission (for visibility decisions in queries).
pub fn role_may(p: &Principal, permission: Permission) -> bool {
    access::role_allows(p.role, permission)
}

/// `Deprecation` and `Sunset` on every answer of an operation being phased out.
fn announce_deprecation<B>(
    mut res: actix_web::dev::ServiceResponse<B>,
    operation: &access::Operation,
) -> actix_web::dev::ServiceResponse<B> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let Some((deprecation, sunset)) = operation.deprecation.and_then(|d| d.headers()) else {
        return res;
    };
    for (name, value) in [("deprecation", deprecation), ("sunset", sunset)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            res.headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    res
}

/// Enforce the permission table on every request before any handler extracts its
/// body: a caller without valid credentials always gets a 401 and a role without the
/// permission a 403 (never a 422 that leaks the shape of the endpoint). The row is found
/// by the percent-decoded path the router matches, and a request that matches no row is
/// refused here (fail closed). The principal and the authorized row are left in the
/// request for the handler's extractor, which checks the row against the matched route.
pub async fn middleware(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::ResponseError;
    let Some(table) = req.app_data::<web::Data<access::AccessTable>>().cloned() else {
        let e = ApiError::internal("the permission table is not installed");
        return Ok(req.into_response(e.error_response()));
    };
    // `match_info()` holds the path after actix's percent-decoding: what routing sees.
    let routed_path = req.match_info().as_str().to_string();
    let method = req.method().as_str().to_string();
    let Some(operation) = table.find(&method, &routed_path).copied() else {
        let e = table.refusal(&method, &routed_path);
        return Ok(req.into_response(e.error_response()));
    };
    req.extensions_mut()
        .insert(access::AuthorizedOperation(operation));
    if operation.access == access::Access::Public {
        let res = next.call(req).await?.map_into_boxed_body();
        return Ok(announce_deprecation(res, &operation));
    }
    let (http_req, mut payload) = req.into_parts();
    let principal = Principal::from_request(&http_req, &mut payload).await;
    let req = actix_web::dev::ServiceRequest::from_parts(http_req, payload);
    let allowed = principal.and_then(|p| match operation.access {
        access::Access::Needs(permission) => p.require(permission),
        _ => Ok(()),
    });
    match allowed {
        Ok(()) => {
            let res = next.call(req).await?.map_into_boxed_body();
            Ok(announce_deprecation(res, &operation))
        }
        Err(e @ ApiError::Unauthorized(_)) => {
            let e = charge_failed_authentication(&req).unwrap_or(e);
            Ok(req.into_response(e.error_response()))
        }
        Err(e) => Ok(req.into_response(e.error_response())),
    }
}

/// A rejected credential costs the sender's address a token of the anonymous rate limit,
/// so guessing keys or tokens is as slow as guessing passwords. A 429 once it is spent.
fn charge_failed_authentication(req: &actix_web::dev::ServiceRequest) -> Option<ApiError> {
    let limits = req.app_data::<web::Data<crate::ratelimit::RateLimits>>()?;
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.trusted_proxies.clone())
        .unwrap_or_default();
    let ip = crate::ratelimit::client_ip(req.request(), &trusted);
    let wait = limits.take(&format!("ip:{ip}"), false).retry_after?;
    Some(ApiError::TooManyRequests {
        detail: format!("too many rejected credentials from this address; retry in {wait} s"),
        retry_after: wait,
    })
}

/// After routing: the route that matched must be the row the middleware authorized.
fn check_matched_route(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(access::AuthorizedOperation(op)) = req
        .extensions()
        .get::<access::AuthorizedOperation>()
        .copied()
    else {
        // Outside the API scope (no middleware ran): nothing was authorized.
        return Err(ApiError::Forbidden(
            "this operation is not in the permission table".into(),
        ));
    };
    let matched = req.match_pattern();
    if matched.as_deref() == Some(op.route) && req.method().as_str() == op.method {
        return Ok(());
    }
    tracing::error!(authorized = op.route, matched = ?matched, "route and permission row disagree");
    Err(ApiError::Forbidden(
        "this operation is not in the permission table".into(),
    ))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_when_right() {
        let h = hash_password("correct horse").unwrap_or_default();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_from_another_secret_or_alg_none_are_rejected() {
        let keys = JwtKeys::new(b"one");
        let token = issue_access_token(&keys, "u1", Role::Agent, 0, 60).unwrap_or_default();
        assert!(decode_access_token(&keys, &token).is_ok());
        assert!(decode_access_token(&JwtKeys::new(b"two"), &token).is_err());
        let parts: Vec<&str> = token.split('.').collect();
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none}.{}.", parts[1]);
        assert!(decode_access_token(&keys, &forged).is_err());
    }

    #[test]
    fn a_rotated_key_still_verifies_its_tokens_and_iss_aud_are_checked() {
        let old = JwtKeys::new(b"old-secret");
        let token = issue_access_token(&old, "u1", Role::Agent, 0, 60).unwrap_or_default();
        let rotated = JwtKeys::rotated(b"new-secret", &[b"old-secret"], "crm", "crm-api");
        assert!(
            decode_access_token(&rotated, &token).is_ok(),
            "grace period"
        );
        let dropped = JwtKeys::new(b"new-secret");
        assert!(decode_access_token(&dropped, &token).is_err());
        let other_audience = JwtKeys::rotated(b"old-secret", &[], "crm", "someone-else");
        assert!(decode_access_token(&other_audience, &token).is_err());
        let other_issuer = JwtKeys::rotated(b"old-secret", &[], "not-crm", "crm-api");
        assert!(decode_access_token(&other_issuer, &token).is_err());
    }
}

#[cfg(test)]
mod fail_closed {
    use super::*;
    use crate::access::{Access, AccessTable, Operation};
    use actix_web::{test, App};

    async fn reached(who: Principal) -> String {
        format!("reached as {}", who.name)
    }

    fn someone() -> Principal {
        Principal {
            user_id: "u".into(),
            email: "u@example.com".into(),
            name: "someone".into(),
            role: Role::Admin,
            team_id: None,
            api_key_id: None,
        }
    }

    /// `/things/me` is public in the table, but the router only serves `/things/{id}`:
    /// a handler must never run under a row that is not its route's.
    const TABLE: &[Operation] = &[
        Operation::new("GET", "/api/v1/things/me", Access::Public),
        Operation::new("GET", "/api/v1/open", Access::Public),
        Operation::new("GET", "/api/v1/old", Access::Public).deprecated("2026-12-01", "2027-06-01"),
    ];

    #[actix_web::test]
    async fn a_route_without_a_row_is_unreachable_and_a_mismatched_row_is_refused() {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(AccessTable::new(&[TABLE])))
                .service(
                    web::scope("/api/v1")
                        .wrap(actix_web::middleware::from_fn(middleware))
                        // Stands in for an authenticated caller, so the handler's extractor
                        // takes the cached principal path.
                        .wrap_fn(|req, srv| {
                            req.extensions_mut().insert(someone());
                            actix_web::dev::Service::call(srv, req)
                        })
                        .route("/open", web::get().to(reached))
                        .route("/old", web::get().to(reached))
                        .route("/things/{id}", web::get().to(reached))
                        .route("/unlisted", web::get().to(reached)),
                ),
        )
        .await;
        let status = |path: &'static str| {
            let req = test::TestRequest::get().uri(path).to_request();
            let app = &app;
            async move { test::call_service(app, req).await.status().as_u16() }
        };
        assert_eq!(status("/api/v1/open").await, 200);
        assert_eq!(status("/api/v1/%6Fpen").await, 200);
        // A route nobody wrote a row for: refused before routing, like an unknown path.
        assert_eq!(status("/api/v1/unlisted").await, 404);
        assert_eq!(status("/api/v1/%75nlisted").await, 404);
        // The row says public `/things/me`, the router picked `/things/{id}`.
        assert_eq!(status("/api/v1/things/me").await, 403);
        // Another method on a known path is a 405, not a pass.
        let req = test::TestRequest::post().uri("/api/v1/open").to_request();
        assert_eq!(test::call_service(&app, req).await.status().as_u16(), 405);
        // A deprecated operation still works, and says when it goes away.
        let req = test::TestRequest::get().uri("/api/v1/old").to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 200);
        let header = |n: &str| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        assert_eq!(header("deprecation").as_deref(), Some("@1796083200"));
        assert_eq!(
            header("sunset").as_deref(),
            Some("Tue, 01 Jun 2027 00:00:00 GMT")
        );
        let req = test::TestRequest::get().uri("/api/v1/open").to_request();
        assert!(test::call_service(&app, req)
            .await
            .headers()
            .get("deprecation")
            .is_none());
    }
}
