//! Secrets the server has to use again, such as a webhook's signing secret, cannot be
//! hashed like passwords and API keys; they are sealed at rest with XChaCha20-Poly1305
//! under a key derived from `CRM_SECRETS_KEY`, so a copy of the database (a backup, a
//! replica, a dump) does not hold them in plaintext.

use crate::config::Config;
use crate::error::ApiError;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

pub struct Sealer(XChaCha20Poly1305);

impl Sealer {
    /// The sealer of this server's configuration (`secrets_key`, which start-up always
    /// sets; the JWT secret stands in where a test builds its configuration by hand).
    pub fn from_config(config: &Config) -> Result<Self, ApiError> {
        let material = config
            .secrets_key
            .as_ref()
            .or(config.jwt_secret.as_ref())
            .ok_or_else(|| ApiError::internal("no CRM_SECRETS_KEY to seal secrets with"))?;
        Ok(Self::new(material.expose().as_bytes()))
    }

    pub fn new(material: &[u8]) -> Self {
        // The cipher key is derived, so the configured key may be any long random string.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(material)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"crm sealed secrets v1");
        let key = mac.finalize().into_bytes();
        Self(XChaCha20Poly1305::new(&key))
    }

    pub fn seal(&self, plaintext: &str) -> Result<String, ApiError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(ApiError::internal)?;
        let sealed = self
            .0
            .encrypt(&XNonce::from(nonce), plaintext.as_bytes())
            .map_err(|_| ApiError::internal("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plaintext of a stored value. A value stored before sealing existed is returned
    /// as it is (start-up seals those).
    pub fn open(&self, stored: &str) -> Result<String, ApiError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let broken = || {
            ApiError::internal(
                "a sealed secret does not open: CRM_SECRETS_KEY is not the key it was sealed with",
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| broken())?;
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN).ok_or_else(broken)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| broken())?;
        let plain = self
            .0
            .decrypt(&XNonce::from(nonce), sealed)
            .map_err(|_| broken())?;
        String::from_utf8(plain).map_err(|_| broken())
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows_the_plaintext() {
        let sealer = Sealer::new(b"a long random key of the deployment, 32+ chars");
        let sealed = sealer.seal("whsec_abc").unwrap_or_default();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            sealer.seal("whsec_abc").unwrap_or_default(),
            "fresh nonce"
        );
        assert_eq!(sealer.open(&sealed).ok().as_deref(), Some("whsec_abc"));
        assert!(Sealer::new(b"another key").open(&sealed).is_err());
        assert_eq!(
            sealer.open("legacy-plain").ok().as_deref(),
            Some("legacy-plain")
        );
    }
}
