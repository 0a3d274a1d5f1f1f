//! What every instance knows of credentials, folded from the log through its live tail, so a
//! change made through one instance is enforced by all within moments:
//!
//! - per user, the millisecond their password last changed: a login token issued before it is
//!   refused ([`Credentials::refuses`]);
//! - every API token issued (`token.issued`: its hash, role and expiry) and revoked
//!   (`token.revoked`): [`Credentials::api_token`] accepts a token whose hash matches an
//!   issued, unrevoked, unexpired one.
//!
//! Password changes are read from one login-token lifetime back (an older token has expired
//! anyway), API tokens from the start of the log (they may live for ever). The fold is a set
//! union and a maximum, so the order in which the catch-up read and the live tail deliver
//! events does not matter, nor does an event delivered twice.
//!
//! An API token issued through another instance moments ago may not have reached this one's
//! tail yet: a well-formed token whose id is unknown here is looked up on its own subject in
//! the log before it is refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use natter_events::catalogue::{Event, TokenIssued, TokenRole};
use natter_events::store::decode_known;
use natter_events::{EventStore, LiveTail, RawMessage, Recorded, Start, SubjectKind};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Every API token starts with this, so it is told apart from a login token (a JWT) at a
/// glance, by natter and by secret scanners.
pub const API_TOKEN_PREFIX: &str = "natter_";

/// A new API token: its id, the token (shown once) and the hash stored in `token.issued`.
pub struct NewApiToken {
    pub id: Uuid,
    pub token: String,
    pub hash: String,
}

impl NewApiToken {
    /// `natter_<id as 32 hex digits>_<256 random bits, base64url>`.
    pub fn generate() -> NewApiToken {
        let id = Uuid::new_v4();
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "{API_TOKEN_PREFIX}{}_{}",
            id.simple(),
            URL_SAFE_NO_PAD.encode(secret)
        );
        let hash = token_hash(&token);
        NewApiToken { id, token, hash }
    }
}

/// The id an API token names, if `token` has the shape of one.
pub fn api_token_id(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(API_TOKEN_PREFIX)?;
    let (id, secret) = rest.split_at_checked(32)?;
    let secret = secret.strip_prefix('_')?;
    if secret.len() != 43 || URL_SAFE_NO_PAD.decode(secret).is_err() {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// SHA-256 (hex) of a token. The token carries 256 random bits, so a fast hash is enough.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `message` may be about credentials: its type travels in a header, so this is cheap
/// (an event stored without the header is decoded to find out).
fn is_credential_event(message: &RawMessage) -> bool {
    matches!(
        message.event_type.as_deref(),
        None | Some("user.credentials_set" | "token.issued" | "token.revoked")
    )
}

/// Compares two hashes in time that does not depend on where they differ.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An API token as the log describes it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub role: TokenRole,
    pub hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// Why an API token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("unknown API token")]
    Unknown,
    #[error("the API token was revoked")]
    Revoked,
    #[error("the API token expired")]
    Expired,
    #[error("the log cannot be read to check the API token")]
    Unavailable,
}

#[derive(Default)]
struct State {
    password_changed: HashMap<Uuid, i64>,
    issued: HashMap<Uuid, ApiToken>,
    /// Kept apart from `issued`: a revocation may be folded before its issue.
    revoked: HashSet<Uuid>,
}

/// See the module documentation.
#[derive(Default)]
pub struct Credentials {
    state: RwLock<State>,
    /// The log, once followed: where unknown API tokens are looked up.
    store: OnceLock<EventStore>,
}

impl Credentials {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a login token of `user` issued at `issued_ms` predates a password change.
    pub fn refuses(&self, user: Uuid, issued_ms: i64) -> bool {
        self.read()
            .password_changed
            .get(&user)
            .is_some_and(|changed| issued_ms < *changed)
    }

    /// Records that `user`'s password changed at `at` (milliseconds).
    pub fn password_changed(&self, user: Uuid, at: i64) {
        let mut state = self.write();
        let entry = state.password_changed.entry(user).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Records an API token's issue.
    pub fn issued(&self, issued: &TokenIssued, at: DateTime<Utc>) {
        self.write().issued.insert(
            issued.token_id,
            ApiToken {
                id: issued.token_id,
                name: issued.name.clone().unwrap_or_default(),
                role: issued.role,
                hash: issued.token_hash.clone(),
                issued_at: at,
                expires_at: issued.expires_at,
                revoked: false,
            },
        );
    }

    /// Records an API token's revocation.
    pub fn revoked(&self, token_id: Uuid) {
        self.write().revoked.insert(token_id);
    }

    /// Every API token this instance knows of, newest first.
    pub fn api_tokens(&self) -> Vec<ApiToken> {
        let state = self.read();
        let mut out: Vec<ApiToken> = state
            .issued
            .values()
            .map(|t| ApiToken {
                revoked: state.revoked.contains(&t.id),
                ..t.clone()
            })
            .collect();
        out.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The token `token` is, if it is a valid API token: issued, with a matching hash, not
    /// revoked, not expired.
    pub async fn api_token(&self, token: &str) -> Result<ApiToken, TokenRefused> {
        let id = api_token_id(token).ok_or(TokenRefused::Unknown)?;
        if !self.read().issued.contains_key(&id) {
            self.look_up(id).await?;
        }
        let state = self.read();
        let known = state.issued.get(&id).ok_or(TokenRefused::Unknown)?;
        if !same_hash(&known.hash, &token_hash(token)) {
            return Err(TokenRefused::Unknown);
        }
        if state.revoked.contains(&id) {
            return Err(TokenRefused::Revoked);
        }
        if known.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(TokenRefused::Expired);
        }
        Ok(known.clone())
    }

    /// Reads one token's subject from the log (a token issued through another instance that
    /// this one's tail has not delivered yet).
    async fn look_up(&self, id: Uuid) -> Result<(), TokenRefused> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let events = store
            .read_subject(&store.subjects().token(id), 0)
            .await
            .map_err(|e| {
                tracing::warn!(error = format!("{e:#}"), "looking up an API token");
                TokenRefused::Unavailable
            })?;
        for recorded in &events {
            self.fold(recorded);
        }
        Ok(())
    }

    fn fold(&self, recorded: &Recorded) {
        let envelope = &recorded.envelope;
        match &envelope.event {
            Event::CredentialsSet(c) => {
                self.password_changed(c.user_id, envelope.occurred_at.timestamp_millis());
            }
            Event::TokenIssued(t) => self.issued(t, envelope.occurred_at),
            Event::TokenRevoked(t) => self.revoked(t.token_id),
            _ => {}
        }
    }

    /// Folds a raw event if it is about credentials.
    fn offer(&self, message: RawMessage) {
        if !is_credential_event(&message) {
            return;
        }
        match decode_known(message) {
            Ok(Some(recorded)) => self.fold(&recorded),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "a credentials event does not decode"
            ),
        }
    }

    /// Follows the log: subscribes to the live tail, then reads what it already holds (API
    /// tokens from the start, password changes from `lifetime` ago). Returns once that read
    /// is done, with a task that ends if the tail stops (this instance would then no longer
    /// learn of revocations, and must not go on serving as if it did).
    pub async fn follow(
        self: Arc<Self>,
        store: EventStore,
        tail: &LiveTail,
        lifetime: Duration,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let subjects = store.subjects().clone();
        let (_, subscription) = {
            let this = self.clone();
            // Called for every event of the process: the header check rejects almost all of
            // them before the subject is parsed or anything is copied.
            tail.subscribe(move |message| {
                if is_credential_event(message)
                    && matches!(
                        subjects.parse(&message.subject),
                        Some(SubjectKind::User(_) | SubjectKind::Token(_))
                    )
                {
                    this.offer(message.clone());
                }
            })?
        };
        let since = Utc::now() - chrono::Duration::from_std(lifetime)?;
        self.read_existing(&store, &store.subjects().all_tokens(), Start::After(0))
            .await?;
        self.read_existing(&store, &store.subjects().all_users(), Start::At(since))
            .await?;
        let _ = self.store.set(store);
        Ok(tokio::spawn(async move {
            subscription.closed().await;
            tracing::error!("the log's live tail stopped; revocations are no longer followed");
        }))
    }

    /// Folds what `filter` holds from `start` up to the log's head when the read began.
    async fn read_existing(
        &self,
        store: &EventStore,
        filter: &str,
        start: Start,
    ) -> anyhow::Result<()> {
        let (mut pending, messages) = store.follow_counted(filter, start).await?;
        let mut messages = Box::pin(messages);
        while pending > 0 {
            let Some(message) = messages.try_next().await? else {
                break;
            };
            pending = message.pending;
            self.offer(message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_are_told_apart_and_name_their_id() {
        let new = NewApiToken::generate();
        assert_eq!(api_token_id(&new.token), Some(new.id));
        assert_eq!(new.hash, token_hash(&new.token));
        assert!(new.token.starts_with(API_TOKEN_PREFIX));
        for bad in [
            "",
            "natter_",
            "eyJhbGciOiJIUzI1NiJ9.e30.x",
            &new.token[..new.token.len() - 1],
            &format!("{}x", new.token),
            &new.token.replacen('_', "-", 2),
        ] {
            assert_eq!(api_token_id(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_token_is_accepted_until_revoked_or_expired_and_only_with_its_secret() {
        let credentials = Credentials::default();
        let new = NewApiToken::generate();
        let issued = |expires_at| TokenIssued {
            token_id: new.id,
            name: Some("backend".into()),
            role: TokenRole::Service,
            token_hash: new.hash.clone(),
            expires_at,
        };
        assert_eq!(
            credentials.api_token(&new.token).await,
            Err(TokenRefused::Unknown)
        );
        credentials.issued(&issued(None), Utc::now());
        assert_eq!(credentials.api_token(&new.token).await.unwrap().id, new.id);

        let mut forged = new.token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            credentials.api_token(&forged).await,
            Err(TokenRefused::Unknown)
        );

        credentials.issued(
            &issued(Some(Utc::now() - chrono::Duration::seconds(1))),
            Utc::now(),
        );
        assert_eq!(
            credentials.api_token(&new.token).await,
            Err(TokenRefused::Expired)
        );
        credentials.issued(&issued(None), Utc::now());
        credentials.revoked(new.id);
        assert_eq!(
            credentials.api_token(&new.token).await,
            Err(TokenRefused::Revoked)
        );
        // A revocation folded before its issue still holds.
        credentials.issued(&issued(None), Utc::now());
        assert_eq!(
            credentials.api_token(&new.token).await,
            Err(TokenRefused::Revoked)
        );
        assert!(credentials.api_tokens()[0].revoked);
    }

    #[test]
    fn a_password_change_refuses_older_tokens_only() {
        let credentials = Credentials::default();
        let user = Uuid::new_v4();
        credentials.password_changed(user, 2_000);
        credentials.password_changed(user, 1_000);
        assert!(credentials.refuses(user, 1_999));
        assert!(!credentials.refuses(user, 2_000));
        assert!(!credentials.refuses(Uuid::new_v4(), 0));
    }
}
