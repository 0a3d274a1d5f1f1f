//! natter's write side. Every command is authenticated, validated, decided against room state
//! folded from JetStream (cached in memory, kept fresh by one live consumer), and appended as
//! exactly one event with per-aggregate optimistic concurrency. It never reads Postgres, so
//! commands keep working while Postgres is down.
//!
//! - [`users`]: registration (the username claim) and login.
//! - [`rooms`]: rooms, the owner's controls, membership, invites.
//! - [`messages`]: messages (send, edit, delete) and read markers.
//! - [`one_to_one`]: direct rooms and random 1:1 matching.
//! - [`services`]: app-managed users, created and given tokens with an API token.
//! - [`admin`]: operators' commands: API tokens, broadcasts, disconnecting a user.
//! - [`input`]: the input rules as types (room names, message bodies, attachments).
//! - [`execute`]: the decide → append → (conflict: catch up, retry) loop.
//! - [`cache`]: the room cache and its live consumer.
//! - [`idempotency`]: `Idempotency-Key` over a JetStream key-value bucket.
//! - [`ratelimit`], [`passwords`]: send limits and Argon2 hashing.

pub mod admin;
pub mod cache;
pub mod directory;
pub mod execute;
pub mod idempotency;
pub mod input;
pub mod messages;
pub mod one_to_one;
pub mod passwords;
pub mod ratelimit;
pub mod rooms;
pub mod services;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::from_fn_with_state;
use natter_edge::{ApiError, JwtKeys, UserRole};
use natter_events::{EventStore, LiveTail};
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::cache::RoomCache;
use crate::directory::Directory;
use crate::idempotency::IdempotencyStore;
use crate::passwords::Passwords;
use crate::ratelimit::{RateSpec, SendLimiter};

/// The write side's settings.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// Usernames (lower-case) whose tokens carry role `admin`.
    pub admins: Vec<String>,
    /// Messages one user may send to one room per window; `None` turns the limit off.
    pub send_rate: Option<RateSpec>,
    /// How long a login token stays valid.
    pub token_ttl: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Replicas of the idempotency bucket's stream (match the event stream's).
    pub replicas: usize,
    /// Rooms kept folded in memory.
    pub cache_capacity: usize,
    /// How long a command waits for this instance's view of the log to catch up with the
    /// log's head before answering 503 (it normally takes a millisecond or two).
    pub freshness_wait: Duration,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            admins: Vec::new(),
            send_rate: Some("10/10s".parse().expect("a valid default")),
            token_ttl: Duration::from_secs(24 * 3600),
            body_limit: natter_edge::DEFAULT_BODY_LIMIT,
            replicas: 1,
            cache_capacity: cache::DEFAULT_CAPACITY,
            freshness_wait: Duration::from_secs(5),
        }
    }
}

/// The write side's clock, to the microsecond: the precision Postgres keeps, so a command's
/// answer, its event and the read models show one and the same time.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Cheap handles shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub rooms: RoomCache,
    /// The user ids that exist.
    pub directory: Directory,
    /// The pair room slot `/match` tries first (a hint: the log decides).
    pub match_slot: Arc<std::sync::atomic::AtomicU64>,
    pub keys: Arc<JwtKeys>,
    pub config: Arc<CommandConfig>,
    pub limiter: Option<Arc<SendLimiter>>,
    pub idempotency: IdempotencyStore,
    pub passwords: Passwords,
}

impl FromRef<AppState> for Arc<JwtKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl AppState {
    /// A login token; the role follows `NATTER_ADMINS`, which names users who sign in with a
    /// password (an app-managed user is never an admin, whatever their name).
    pub fn issue_token(&self, user_id: Uuid, username: &str) -> Result<String, ApiError> {
        let app_managed = matches!(
            self.directory.get(user_id),
            Some(directory::Entry::AppManaged(_))
        );
        let role = if !app_managed && self.config.admins.iter().any(|a| a == username) {
            UserRole::Admin
        } else {
            UserRole::User
        };
        Ok(self.keys.issue(user_id, username, role)?)
    }

    /// A token for app-managed `user_id` that expires at `until`, as the one minted first
    /// (for an idempotent replay of a mint): `None` once `until` has passed, or for a user
    /// this instance does not know as app-managed.
    pub(crate) fn remint(
        &self,
        user_id: Uuid,
        username: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, ApiError> {
        let Ok(left @ 1..) = u64::try_from((until - chrono::Utc::now()).num_seconds()) else {
            return Ok(None);
        };
        if !matches!(
            self.directory.get(user_id),
            Some(directory::Entry::AppManaged(_))
        ) {
            return Ok(None);
        }
        let (token, _) =
            self.keys
                .issue_for(user_id, username, UserRole::User, Duration::from_secs(left))?;
        Ok(Some(token))
    }
}

/// Every command route under `/api/v1`, with its OpenAPI description.
fn api() -> OpenApiRouter<AppState> {
    users::router()
        .merge(rooms::router())
        .merge(messages::router())
        .merge(one_to_one::router())
        .merge(services::router())
        .merge(admin::router())
}

/// The OpenAPI description of the command routes, their paths under `/api/v1`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::new()
        .nest("/api/v1", api())
        .into_openapi()
}

/// A running write side: its state and the background tasks it needs.
pub struct CommandService {
    pub state: AppState,
    /// The room cache's live consumer and housekeeping; they run until aborted.
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl CommandService {
    /// Opens the idempotency bucket and follows the live tail into the room cache.
    pub async fn start(
        store: EventStore,
        tail: &LiveTail,
        keys: Arc<JwtKeys>,
        config: CommandConfig,
    ) -> anyhow::Result<Self> {
        let idempotency =
            IdempotencyStore::open(store.jetstream(), store.stream_name(), config.replicas).await?;
        let rooms = RoomCache::new(store.clone(), config.cache_capacity, config.freshness_wait);
        let live = rooms.start_live(tail)?;
        let limiter = config
            .send_rate
            .map(|spec| Arc::new(SendLimiter::new(spec)));
        let (directory, registrations) = Directory::start(&store, tail).await?;
        let mut tasks = vec![
            ("room cache consumer", live),
            (
                "user directory",
                tokio::spawn(async move {
                    registrations.closed().await;
                    tracing::error!("the log's live tail stopped; the user directory is stale");
                }),
            ),
        ];
        if let Some(task) = keys.follow_credentials(&store, tail).await? {
            tasks.push(("credential changes", task));
        }
        if let Some(limiter) = limiter.clone() {
            tasks.push((
                "rate limiter housekeeping",
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(60));
                    loop {
                        tick.tick().await;
                        limiter.forget_idle();
                    }
                }),
            ));
        }
        let state = AppState {
            store,
            rooms,
            directory,
            match_slot: Arc::default(),
            keys,
            config: Arc::new(config),
            limiter,
            idempotency,
            passwords: Passwords::default(),
        };
        Ok(CommandService { state, tasks })
    }

    /// The command routes under `/api/v1`, without fallbacks (so they merge with other roles').
    pub fn routes(&self) -> Router {
        let (commands, _) = api().split_for_parts();
        Router::new()
            .nest(
                "/api/v1",
                commands.route_layer(from_fn_with_state(
                    self.state.clone(),
                    idempotency::middleware,
                )),
            )
            .with_state(self.state.clone())
    }

    /// The command routes alone as a complete app (JSON 404/405, body limit).
    pub fn app(&self) -> Router {
        natter_edge::finish(
            self.routes(),
            natter_edge::RequestLimits {
                body: self.state.config.body_limit,
                ..natter_edge::RequestLimits::default()
            },
        )
    }
}

impl Drop for CommandService {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}
