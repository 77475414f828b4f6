//! Log in, refresh, log out. Access tokens are short-lived JWTs; refresh tokens are
//! opaque, rotated on every use, and a reused (already rotated) refresh token revokes
//! its whole family, since only a thief would present it.

use crate::access::Role;
use crate::auth::{self, issue_access_token, secret_digest, verify_password, REFRESH_TOKEN_PREFIX};
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::ids;
use crate::schema::{refresh_tokens as rt, users};
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 320, message = "is required"))]
    #[schema(min_length = 1, max_length = 320)]
    pub email: String,
    #[validate(length(min = 1, max = 1024, message = "is required"))]
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 200, message = "is required"))]
    #[schema(min_length = 1, max_length = 200)]
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

fn issue_pair(
    state: &AppState,
    conn: &mut DbConn,
    user_id: &str,
    role: Role,
    family: &str,
) -> ApiResult<TokenResponse> {
    let ttl = state.config.access_token_ttl.as_secs() as i64;
    let epoch: i32 = crate::schema::users::table
        .find(user_id)
        .select(crate::schema::users::session_epoch)
        .first(conn)?;
    let access_token = issue_access_token(&state.jwt, user_id, role, epoch, ttl)?;
    let refresh_token = format!("{REFRESH_TOKEN_PREFIX}{}", auth::random_token(32)?);
    let expires = ids::now_plus(chrono::Duration::seconds(
        state.config.refresh_token_ttl.as_secs() as i64,
    ));
    diesel::insert_into(rt::table)
        .values((
            rt::id.eq(ids::new_id()),
            rt::user_id.eq(user_id),
            rt::family_id.eq(family),
            rt::token_hash.eq(secret_digest(&refresh_token)),
            rt::expires_at.eq(expires),
            rt::created_at.eq(ids::now()),
        ))
        .execute(conn)?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: ttl,
    })
}

fn bad_login() -> ApiError {
    ApiError::Unauthorized("wrong email or password".into())
}

/// Log in with email and password.
///
/// Returns a short-lived JWT access token (valid for `expires_in` seconds) and an opaque refresh
/// token, with `Cache-Control: no-store`. The email is matched case-insensitively and only active,
/// unarchived users can log in; a wrong email or password is a 401. Repeated failures for one
/// account or from one address lock further attempts for a while (429 with `Retry-After`). Public:
/// no token needed.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    body.validate()?;
    let email = body.email.trim().to_lowercase();
    let client = crate::ratelimit::client_ip(&req, &state.config.trusted_proxies);
    let account = format!("account:{email}");
    let keys = vec![account.clone(), format!("address:{client}")];
    if let Some(wait) = state.logins.locked(&keys) {
        return Err(locked_out(wait));
    }
    let lookup = email.clone();
    let row: Option<(String, String, Option<String>)> = state
        .db(move |c| {
            Ok(users::table
                .filter(users::email.eq(&lookup))
                .filter(users::active.eq(true))
                .filter(users::archived_at.is_null())
                .select((users::id, users::role, users::password_hash))
                .first(c)
                .optional()?)
        })
        .await?;
    // argon2 takes tens of milliseconds on purpose: it runs without a pooled connection.
    let password = body.into_inner().password;
    let verified = web::block(move || match row {
        Some((id, role, Some(hash))) if verify_password(&password, &hash) => Some((id, role)),
        Some((_, _, Some(_))) => None,
        _ => {
            auth::burn_password_check(&password);
            None
        }
    })
    .await
    .map_err(ApiError::internal)?;
    let Some((id, role)) = verified else {
        state.logins.failed(&keys);
        return Err(bad_login());
    };
    state.logins.succeeded(&account);
    let role = Role::parse(&role).ok_or_else(|| ApiError::internal("bad role"))?;
    let st = state.clone();
    let tokens = state
        .db(move |c| issue_pair(&st, c, &id, role, &ids::new_id()))
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(tokens))
}

fn locked_out(wait: u64) -> ApiError {
    ApiError::TooManyRequests {
        detail: format!(
            "too many failed logins for this account or from this address; retry in {wait} s"
        ),
        retry_after: wait,
    }
}

/// Responses that carry tokens must not be kept by any cache.
fn no_store(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    res
}

/// Exchange a refresh token for a new token pair.
///
/// Refresh tokens are single-use: the one sent is revoked and a new access token and refresh token
/// are returned. Presenting an already used refresh token is treated as theft: every token of that
/// login is revoked and the answer is 401, so the client must log in again. An unknown or expired
/// token, or an inactive user, is also a 401. Public: no access token needed.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, security(()),
    responses(
        (status = 200, description = "A new token pair; the old refresh token stops working", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    body.validate()?;
    let st = state.clone();
    let digest = secret_digest(body.refresh_token.trim());
    let outcome = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let row: Option<(String, String, String, Option<String>)> = rt::table
                    .filter(rt::token_hash.eq(&digest))
                    .select((rt::id, rt::user_id, rt::family_id, rt::revoked_at))
                    .first(c)
                    .optional()?;
                let Some((id, user_id, family, revoked)) = row else {
                    return Ok(Err("the refresh token is not valid"));
                };
                let now = ids::now();
                if revoked.is_some() {
                    // Reuse of a rotated token: revoke every token of the family.
                    diesel::update(
                        rt::table
                            .filter(rt::family_id.eq(&family))
                            .filter(rt::revoked_at.is_null()),
                    )
                    .set(rt::revoked_at.eq(&now))
                    .execute(c)?;
                    return Ok(Err("the refresh token was already used; log in again"));
                }
                let live: Option<String> = rt::table
                    .find(&id)
                    .filter(rt::expires_at.gt(&now))
                    .select(rt::id)
                    .first(c)
                    .optional()?;
                let user: Option<String> = users::table
                    .filter(users::id.eq(&user_id))
                    .filter(users::active.eq(true))
                    .filter(users::archived_at.is_null())
                    .select(users::role)
                    .first(c)
                    .optional()?;
                let (Some(_), Some(role)) = (live, user) else {
                    return Ok(Err("the refresh token has expired or the user is inactive"));
                };
                // Only one of two concurrent refreshes of the same token rotates it; the
                // other finds it revoked and counts as reuse.
                let rotated = diesel::update(rt::table.find(&id).filter(rt::revoked_at.is_null()))
                    .set(rt::revoked_at.eq(&now))
                    .execute(c)?;
                if rotated == 0 {
                    return Ok(Err("the refresh token was already used; log in again"));
                }
                let role = Role::parse(&role).ok_or_else(|| ApiError::internal("bad role"))?;
                issue_pair(&st, c, &user_id, role, &family).map(Ok)
            })
        })
        .await?;
    // The family revocation must commit, so the 401 is returned outside the transaction.
    let tokens = outcome.map_err(|m| ApiError::Unauthorized(m.into()))?;
    Ok(no_store(HttpResponse::Ok()).json(tokens))
}

/// Log out by revoking a refresh token.
///
/// Revokes the refresh token and every token rotated from the same login, and answers 204 even when
/// the token is unknown, so it is safe to repeat. Access tokens already issued stay valid until
/// they expire. Public: no access token needed.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest, security(()),
    responses(
        (status = 204, description = "The refresh token (and its rotations) no longer work"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    body: Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    body.validate()?;
    let digest = secret_digest(body.refresh_token.trim());
    state
        .db(move |c| {
            let family: Option<String> = rt::table
                .filter(rt::token_hash.eq(&digest))
                .select(rt::family_id)
                .first(c)
                .optional()?;
            if let Some(family) = family {
                diesel::update(
                    rt::table
                        .filter(rt::family_id.eq(&family))
                        .filter(rt::revoked_at.is_null()),
                )
                .set(rt::revoked_at.eq(ids::now()))
                .execute(c)?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End a user's sessions: every refresh token and every access token issued so far stop
/// working (the session epoch the tokens carry moves on). With `api_keys`, the user's
/// API keys are revoked too. Returns how many credentials were revoked.
pub fn revoke_sessions(conn: &mut DbConn, user_id: &str, api_keys: bool) -> ApiResult<usize> {
    use crate::schema::api_keys as ak;
    use crate::schema::users;
    let now = ids::now();
    // Access tokens of the old epoch stop working at once, open event streams included.
    diesel::update(users::table.find(user_id))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(conn)?;
    let mut n = diesel::update(
        rt::table
            .filter(rt::user_id.eq(user_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(&now))
    .execute(conn)?;
    if api_keys {
        n += diesel::update(
            ak::table
                .filter(ak::user_id.eq(user_id))
                .filter(ak::revoked_at.is_null()),
        )
        .set(ak::revoked_at.eq(&now))
        .execute(conn)?;
    }
    Ok(n)
}
