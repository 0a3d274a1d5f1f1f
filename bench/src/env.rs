//! The bench's environment: natter started as a child process (every role, on a free port,
//! so its memory is its own) with a stream, subject prefix and database of its own
//! (testkit's `NatterProcess` and `Isolation`), handles on the same NATS and Postgres for the
//! raw figures, and cleanup at the end (testkit's `Cleanup`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::context::PublishAckFuture;
use natter_events::{Envelope, EventStore};
use natter_testkit::api::{Api, User};
use natter_testkit::process::NatterProcess;
use natter_testkit::{Cleanup, Isolation};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Config;

/// natter running as a child process for the bench (so that its memory is its own), and
/// handles on its backing services.
pub struct Env {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub api: Api,
    pub store: EventStore,
    pub pool: PgPool,
    pub config: Config,
    pub nats: async_nats::Client,
    natter: NatterProcess,
    /// How `natter` was started, for [`Env::another`].
    natter_env: Vec<(String, String)>,
    cleanup: Cleanup,
}

/// The server part of a Postgres URL (no database name, no parameters).
fn postgres_server(url: &str) -> &str {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    base.rsplit_once('/').map_or(base, |(s, _)| s)
}

impl Env {
    pub(super) async fn start(config: &Config) -> anyhow::Result<Env> {
        let isolation = Isolation::on(
            "bench",
            &config.nats_url,
            postgres_server(&config.database_url),
        );
        let mut config = config.clone();
        config.stream = isolation.stream.clone();
        config.subject_prefix = isolation.prefix.clone();
        config.database_url = isolation.database_url.clone();
        let secret = config
            .jwt_secret
            .clone()
            .unwrap_or_else(|| format!("bench-secret-{}", Uuid::new_v4()));
        let mut env = NatterProcess::env_for(&isolation, &config.nats_url, &isolation.database_url);
        env.extend(
            [
                ("NATTER_JWT_SECRET", secret.as_str()),
                ("NATTER_ADMINS", "bench_admin"),
                (
                    "NATTER_PROJECTOR_BATCH",
                    &config.projector_batch.to_string(),
                ),
                (
                    "NATTER_STREAM_REPLICAS",
                    &config.stream_replicas.to_string(),
                ),
                ("RUST_LOG", "warn"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let cleanup = Cleanup {
            isolation: isolation.clone(),
        };
        let binary = config.natter_binary()?;
        let natter_env = env.clone();
        let natter = tokio::task::spawn_blocking(move || NatterProcess::start(binary, "all", env))
            .await
            .context("starting natter for the bench")?;
        let addr: SocketAddr = ([127, 0, 0, 1], natter.port).into();
        let (nats, store) = connect(&config).await?;
        let pool = natter_readmodel::db::connect(&config.database_url).await?;
        Ok(Env {
            base: format!("http://{addr}/api/v1"),
            addr,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            api: Api::server(&natter.base()),
            store,
            pool,
            config,
            nats,
            natter,
            natter_env,
            cleanup,
        })
    }

    /// Another natter process on the same stream and database, freshly started with `role`
    /// (for figures of a cold instance); it stops when dropped.
    pub async fn another(&self, role: &'static str) -> anyhow::Result<NatterProcess> {
        let binary = self.config.natter_binary()?;
        let env = self.natter_env.clone();
        tokio::task::spawn_blocking(move || NatterProcess::start(binary, role, env))
            .await
            .context("starting another natter")
    }

    /// natter's process id.
    pub fn server_pid(&self) -> Option<u32> {
        self.natter.pid()
    }

    /// Resident memory of the natter process, in KiB.
    pub fn server_rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.natter.pid().context("natter is not running")?)
    }

    /// Stops natter, shows what it warned of, and removes the bench's streams and database.
    pub(super) async fn cleanup(self) -> anyhow::Result<()> {
        let Env {
            mut natter,
            pool,
            cleanup,
            ..
        } = self;
        pool.close().await;
        let natter = tokio::task::spawn_blocking(move || {
            natter.stop();
            natter
        })
        .await?;
        for line in natter.log_lines() {
            eprintln!("natter: {line}");
        }
        drop(cleanup);
        Ok(())
    }

    /// POSTs JSON; returns the status and body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// The `meta` events (subject, envelope) that open a public group room: `owner` creates it
    /// and each of `members` joins, for [`Env::append_all`].
    pub fn group_room(
        &self,
        room: Uuid,
        name: &str,
        owner: Uuid,
        members: &[Uuid],
    ) -> Vec<(String, Envelope)> {
        use natter_events::catalogue::{
            Event, MemberJoined, Role, RoomCreated, RoomKind, Visibility,
        };
        let subject = self
            .store
            .subjects()
            .room(room, natter_events::RoomPart::Meta);
        let at = |actor: Uuid, event: Event| {
            let envelope = Envelope::new(
                Uuid::now_v7(),
                chrono::Utc::now(),
                Some(actor),
                Some(room),
                event,
            );
            (subject.clone(), envelope)
        };
        let created = Event::RoomCreated(RoomCreated {
            name: name.into(),
            visibility: Visibility::Public,
            kind: RoomKind::Group,
            max_members: 1000,
            owner_id: owner,
            with_user_id: None,
        });
        let joins = members.iter().map(|user| {
            let joined = Event::MemberJoined(MemberJoined {
                user_id: *user,
                role: Role::Member,
                invite: None,
                matched_with: None,
            });
            at(*user, joined)
        });
        std::iter::once(at(owner, created)).chain(joins).collect()
    }

    /// `GET {path}` with `query` as `token`: its JSON body, or an error unless it answered 200.
    pub async fn get_ok(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token)
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(status.as_u16() == 200, "GET {path} {query:?}: {status}");
        Ok(resp.json().await?)
    }

    /// Registers a user.
    pub async fn register(&self, username: &str) -> anyhow::Result<User> {
        Ok(self.api.register(username).await)
    }

    /// Creates `n` rooms owned by `token`'s user, named `{prefix} {i}`, 32 at a time.
    pub async fn create_rooms(
        &self,
        token: &str,
        n: usize,
        prefix: &str,
    ) -> anyhow::Result<Vec<Uuid>> {
        use futures::{StreamExt, TryStreamExt, stream};
        stream::iter(0..n)
            .map(|i| async move {
                let (status, body) = self
                    .post(
                        "/rooms",
                        Some(token),
                        &json!({ "name": format!("{prefix} {i}") }),
                    )
                    .await?;
                anyhow::ensure!(status == 201, "creating a room: {status} {body}");
                Ok::<Uuid, anyhow::Error>(body["room"]["id"].as_str().unwrap_or_default().parse()?)
            })
            .buffer_unordered(32)
            .try_collect()
            .await
    }

    /// Appends events straight to the log (for pre-filling), with at most `window` acks in
    /// flight. Returns the last position.
    pub async fn append_all(
        &self,
        events: impl IntoIterator<Item = (String, Envelope)>,
    ) -> anyhow::Result<u64> {
        let js = self.store.jetstream();
        let mut inflight: Vec<PublishAckFuture> = Vec::new();
        let mut last = 0;
        for (subject, envelope) in events {
            let publish = async_nats::jetstream::message::PublishMessage::build()
                .payload(envelope.encode().into())
                .message_id(envelope.id.to_string());
            inflight.push(js.send_publish(subject, publish).await?);
            if inflight.len() >= 2048 {
                for ack in inflight.drain(..) {
                    last = last.max(ack.await?.sequence);
                }
            }
        }
        for ack in inflight {
            last = last.max(ack.await?.sequence);
        }
        Ok(last)
    }

    /// Waits until the read models have applied `position`.
    pub async fn projected(&self, position: u64) -> anyhow::Result<()> {
        loop {
            let (p,): (i64,) =
                sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM projection_checkpoints")
                    .fetch_one(&self.pool)
                    .await?;
            if p as u64 >= position {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The bench's own NATS connection and its handle on natter's event store.
async fn connect(config: &Config) -> anyhow::Result<(async_nats::Client, EventStore)> {
    let nats = natter_events::connection::connect_once(&config.nats_url, "natter-bench").await?;
    let store = EventStore::open(
        nats.clone(),
        &natter_events::StoreConfig {
            stream: config.stream.clone(),
            prefix: config.subject_prefix.clone(),
            replicas: config.stream_replicas,
        },
    )
    .await?;
    Ok((nats, store))
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("reading VmRSS")
}
