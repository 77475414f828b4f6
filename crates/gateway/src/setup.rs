//! Start-up: database and migrations, the JWT secret, the first admin, the job registry.

use crm_core::auth::{random_token, JwtKeys};
use crm_core::config::{Config, Secret};
use crm_core::db::{self, BackendKind};
use crm_core::jobs::JobRegistry;
use crm_core::AppState;
use std::path::PathBuf;
use std::sync::Arc;

/// What start-up did that the operator should hear about.
pub struct Bootstrap {
    /// The first admin's email and, when it was generated, the password (shown once).
    pub admin: Option<(String, Option<String>)>,
}

/// Where a development secret lives: beside the SQLite file, or under ./data.
fn secret_file(config: &Config, name: &str) -> Result<PathBuf, String> {
    let (kind, target) = db::classify_url(&config.database_url).map_err(|e| e.to_string())?;
    let dir = match kind {
        BackendKind::Sqlite => PathBuf::from(target)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
        BackendKind::Postgres => PathBuf::from("data"),
    };
    Ok(dir.join(name))
}

/// A secret from its setting, or else from (or newly into) its development file.
fn persistent_secret(
    config: &Config,
    configured: Option<&Secret>,
    setting: &str,
    file: &str,
) -> Result<String, String> {
    if let Some(s) = configured {
        if s.expose().len() < 32 {
            return Err(format!("{setting} must be at least 32 characters"));
        }
        return Ok(s.expose().to_string());
    }
    let path = secret_file(config, file)?;
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().to_string());
        }
    }
    let secret = random_token(48).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, &secret).map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), "{setting} is unset: generated a development secret; set it in production (and on every replica)");
    Ok(secret)
}

/// The signing key, the keys it replaced (still verifying until their tokens expire), and
/// the issuer and audience every token carries.
fn jwt_keys(secret: &str, config: &Config) -> JwtKeys {
    let previous: Vec<&[u8]> = config
        .jwt_previous_secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .collect();
    JwtKeys::rotated(
        secret.as_bytes(),
        &previous,
        &config.jwt_issuer,
        &config.jwt_audience,
    )
}

/// Connect, migrate, and prepare everything the server needs.
pub fn build_state(
    config: Config,
    mut registry: JobRegistry,
) -> Result<(AppState, Bootstrap), String> {
    let pool = db::connect_and_migrate(
        &config.database_url,
        config.db_pool_size,
        config.pg_session_limits,
    )
    .map_err(|e| e.to_string())?;
    let secret = persistent_secret(
        &config,
        config.jwt_secret.as_ref(),
        "CRM_JWT_SECRET",
        "jwt_secret",
    )?;
    let mut config = config;
    let sealing = persistent_secret(
        &config,
        config.secrets_key.as_ref(),
        "CRM_SECRETS_KEY",
        "secrets_key",
    )?;
    config.secrets_key = Some(Secret::from(sealing.as_str()));
    {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let sealer = crm_core::sealed::Sealer::from_config(&config).map_err(|e| e.to_string())?;
        crm_core::integrations::webhooks::seal_stored_secrets(&mut conn, &sealer)
            .map_err(|e| format!("sealing webhook secrets: {e}"))?;
    }
    let admin = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        crm_core::identity::users::bootstrap_admin(
            &mut conn,
            config.admin_email.as_deref(),
            config.admin_password.as_ref().map(|p| p.expose()),
        )
        .map_err(|e| format!("creating the first admin: {e}"))?
    };
    let config = Arc::new(config);
    let objects = Arc::new(crate::objects());
    registry.lease = config.job_lease;
    crm_core::integrations::register_jobs(
        &mut registry,
        config.clone(),
        objects.clone(),
        pool.clone(),
    );
    crm_sales::register_jobs(&mut registry);
    crm_service::register_jobs(&mut registry, config.unresolved_notify_after);
    crm_marketing::register_jobs(&mut registry, config.criteria_timeout);
    crm_core::mail::register_jobs(&mut registry, &config)?;
    crm_core::sms::register_jobs(&mut registry, &config);
    crm_core::mail::templates::install(crm_service::TEMPLATES.to_vec());
    crm_core::hooks::install(&[crm_sales::LISTENERS, crm_marketing::LISTENERS]);
    crm_core::integrations::imports::install_list_target(crm_marketing::lists::IMPORT_TARGET);
    {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        crm_core::scheduler::install(&mut conn, &registry)
            .map_err(|e| format!("installing scheduled tasks: {e}"))?;
    }
    let logins = Arc::new(crm_core::ratelimit::LoginThrottle::new(
        config.login_max_failures,
        config.login_lockout,
    ));
    let jwt = Arc::new(jwt_keys(&secret, &config));
    let criteria_slots = Arc::new(crm_core::state::Slots::new(
        "segment criteria evaluations",
        config.criteria_slots(),
        config.criteria_wait,
    ));
    let state = AppState {
        pool,
        config,
        jwt,
        jobs: Arc::new(registry),
        objects,
        logins,
        criteria_slots,
    };
    Ok((state, Bootstrap { admin }))
}
