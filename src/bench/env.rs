//! The bench's environment: natter started as a child process (every role, on a free port,
//! so its memory is its own) with a stream, subject prefix and database of its own, handles
//! on the same NATS and Postgres for the raw figures, and cleanup at the end.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::context::PublishAckFuture;
use natter_events::{Envelope, EventStore};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use uuid::Uuid;

use natter::config::Config;

/// natter running as a child process for the bench (so that its memory is its own), and
/// handles on its backing services.
pub struct Env {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub store: EventStore,
    pub pool: PgPool,
    pub config: Config,
    pub nats: async_nats::Client,
    child: Child,
}

fn bench_database_url(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

impl Env {
    pub(super) async fn start(config: &Config) -> anyhow::Result<Env> {
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut config = config.clone();
        config.stream = format!("BENCH_{id}");
        config.subject_prefix = format!("bench{id}");
        config.database_url =
            bench_database_url(&config.database_url, &format!("natter_bench_{id}"));
        let secret = config
            .jwt_secret
            .clone()
            .unwrap_or_else(|| format!("bench-secret-{}", Uuid::new_v4()));
        config.jwt_secret = Some(secret.clone());
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--role", "all"])
            .env("NATTER_HTTP_ADDR", "127.0.0.1:0")
            .env("NATS_URL", &config.nats_url)
            .env("DATABASE_URL", &config.database_url)
            .env("NATTER_STREAM", &config.stream)
            .env("NATTER_SUBJECT_PREFIX", &config.subject_prefix)
            .env("NATTER_SEND_RATE_LIMIT", "off")
            .env("NATTER_JWT_SECRET", &secret)
            .env("NATTER_ADMINS", "bench_admin")
            .env("NATTER_PROJECTOR_BATCH", config.projector_batch.to_string())
            .env("RUST_LOG", "warn,natter::serve=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting natter for the bench")?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (addr_tx, addr_rx) = oneshot::channel::<SocketAddr>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                match line
                    .split("listening on http://")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                {
                    Some(addr) if addr_tx.is_some() => {
                        if let (Some(tx), Ok(addr)) = (addr_tx.take(), addr.parse()) {
                            let _ = tx.send(addr);
                        }
                    }
                    _ => eprintln!("natter: {line}"),
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
            .await
            .context("natter did not report its address")?
            .context("natter exited before listening")?;
        let (nats, store) = config.open_store_once("natter-bench").await?;
        let pool = natter_readmodel::db::connect(&config.database_url).await?;
        Ok(Env {
            base: format!("http://{addr}/api/v1"),
            addr,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            store,
            pool,
            config,
            nats,
            child,
        })
    }

    /// natter's process id.
    pub fn server_pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory of the natter process, in KiB.
    pub fn server_rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("natter is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("reading VmRSS")
    }

    /// Stops natter and removes the bench's streams and database.
    pub(super) async fn cleanup(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        self.pool.close().await;
        let js = self.store.jetstream();
        for name in [
            self.config.stream.clone(),
            format!("KV_{}_idem", self.config.stream),
            format!("{}_RAW", self.config.stream),
        ] {
            let _ = js.delete_stream(&name).await;
        }
        let admin = natter_readmodel::db::connect(&bench_database_url(
            &self.config.database_url,
            "postgres",
        ))
        .await?;
        let name = self
            .config
            .database_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&admin)
        .await
        .context("dropping the bench database")?;
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

    /// Registers a user; returns (token, id).
    pub async fn register(&self, username: &str) -> anyhow::Result<(String, Uuid)> {
        let (status, body) = self
            .post(
                "/auth/register",
                None,
                &json!({ "username": username, "password": "bench-password" }),
            )
            .await?;
        anyhow::ensure!(status == 201, "registering {username}: {status} {body}");
        Ok((
            body["token"].as_str().unwrap_or_default().to_string(),
            body["user"]["id"].as_str().unwrap_or_default().parse()?,
        ))
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
