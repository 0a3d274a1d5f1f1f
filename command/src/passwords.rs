//! Argon2id password hashing, run on the blocking pool (a hash takes tens of milliseconds of
//! CPU and must not stall the async workers) and bounded so a login flood cannot queue
//! unbounded work.

use std::sync::Arc;

use anyhow::anyhow;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of no one's password, verified against when the username is unknown, so that
    /// an unknown name takes as long as a wrong password.
    decoy: Arc<OnceCell<String>>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            permits: Arc::new(Semaphore::new(cpus)),
            decoy: Arc::new(OnceCell::new()),
        }
    }
}

impl Passwords {
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow!("hashing a password: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown user), does the same work and
    /// answers `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let (hash, known) = match hash {
            Some(h) => (h, true),
            None => {
                let decoy = self
                    .decoy
                    .get_or_try_init(|| self.hash(uuid::Uuid::new_v4().to_string()))
                    .await?;
                (decoy.clone(), false)
            }
        };
        let _permit = self.permits.acquire().await?;
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await?;
        Ok(ok && known)
    }
}
