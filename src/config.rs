//! Configuration, read once from the environment and command-line flags (a flag wins).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use natter_command::CommandConfig;
use natter_command::ratelimit::parse_limit;
use natter_events::StoreConfig;
use natter_projector::ProjectorConfig;
use natter_query::QueryConfig;

const DEV_SECRET: &str = "natter-development-secret-never-use-in-production";

/// Settings shared by every subcommand. Each is an environment variable and a flag.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP API (REST, websocket, ops endpoints) listens on. Port 0 picks a free
    /// port; the bound address is logged.
    #[arg(
        long,
        env = "NATTER_HTTP_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub http_addr: SocketAddr,

    /// NATS server with JetStream enabled (comma-separate several cluster members).
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,

    /// Postgres database for the read models; created and migrated on start if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/natter",
        global = true
    )]
    pub database_url: String,

    /// JetStream stream holding the event log. Give each deployment sharing a NATS server
    /// its own stream and subject prefix.
    #[arg(long, env = "NATTER_STREAM", default_value = "NATTER", global = true)]
    pub stream: String,

    /// Prefix of every subject natter uses (`{prefix}.events.>` is stored, `{prefix}.live.>`
    /// is not). Must not overlap another stream's subjects.
    #[arg(
        long,
        env = "NATTER_SUBJECT_PREFIX",
        default_value = "natter",
        global = true
    )]
    pub subject_prefix: String,

    /// Replicas of natter's streams: 1 on a single NATS server, 3 on a production cluster.
    #[arg(
        long,
        env = "NATTER_STREAM_REPLICAS",
        default_value_t = 1,
        global = true
    )]
    pub stream_replicas: usize,

    /// HS256 secret signing login tokens (at least 32 bytes). Required when
    /// `NATTER_ENV=production`; elsewhere a fixed development secret is used, loudly.
    #[arg(long, env = "NATTER_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// `production` makes missing secrets fatal; anything else is a development setup.
    #[arg(
        long = "env",
        env = "NATTER_ENV",
        default_value = "development",
        global = true
    )]
    pub environment: String,

    /// Comma-separated usernames whose tokens carry role `admin`.
    #[arg(long, env = "NATTER_ADMINS", value_delimiter = ',', global = true)]
    pub admins: Vec<String>,

    /// Messages one user may send to one room per window, as `count/window` (`10/10s`,
    /// `100/1m`), or `off`. Kept per command instance.
    #[arg(
        long,
        env = "NATTER_SEND_RATE_LIMIT",
        default_value = "10/10s",
        global = true
    )]
    pub send_rate_limit: String,

    /// Lifetime of a login token, in seconds.
    #[arg(long, env = "NATTER_TOKEN_TTL_SECS", default_value_t = 24 * 3600, global = true)]
    pub token_ttl_secs: u64,

    /// Most events the projector applies in one transaction.
    #[arg(
        long,
        env = "NATTER_PROJECTOR_BATCH",
        default_value_t = 1000,
        global = true
    )]
    pub projector_batch: usize,

    /// How long a query waits for its `min_position` before answering 504, in milliseconds.
    #[arg(
        long,
        env = "NATTER_QUERY_WAIT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub query_wait_ms: u64,

    /// Largest request body accepted, in bytes (larger ones get 413, as soon as the declared
    /// `Content-Length` says so).
    #[arg(long, env = "NATTER_BODY_LIMIT", default_value_t = 64 * 1024, global = true)]
    pub body_limit: usize,

    /// How long a client may take to send a request, in seconds: the headers (a connection
    /// that sends none for this long, idle keep-alive included, is closed; one whose headers
    /// are incomplete by then gets 408 first), and then the body (408 `timeout`).
    #[arg(
        long,
        env = "NATTER_READ_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub read_timeout_secs: u64,
}

/// Which parts of natter a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything in one process on one port.
    All,
    /// REST commands (the write side); needs NATS only.
    Command,
    /// REST queries and the websocket gateway; needs NATS and Postgres.
    Query,
    /// The websocket gateway alone, so sockets scale apart from reads; needs NATS only.
    Gateway,
    /// The projector (one active per projection, others stand by); needs NATS and Postgres.
    Projector,
}

impl Config {
    /// What `natter` with no flags would use (the environment included), for code that
    /// starts a [`Node`](crate::Node) itself and then sets what it needs.
    pub fn defaults() -> anyhow::Result<Config> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        Ok(<Only as clap::Parser>::try_parse_from(["natter"])?.config)
    }

    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            stream: self.stream.clone(),
            prefix: self.subject_prefix.clone(),
            replicas: self.stream_replicas,
        }
    }

    /// For the CLI's one-shot commands: connects to NATS once (failing fast rather than
    /// waiting for it) and opens the event store.
    pub async fn open_store_once(
        &self,
        client_name: &str,
    ) -> anyhow::Result<(async_nats::Client, natter_events::EventStore)> {
        let nats = natter_events::connection::connect_once(&self.nats_url, client_name).await?;
        let store = natter_events::EventStore::open(nats.clone(), &self.store()).await?;
        Ok((nats, store))
    }

    /// The JWT secret, failing fast in production when it is missing or weak.
    pub fn jwt_secret(&self) -> anyhow::Result<Vec<u8>> {
        let production = self.environment.eq_ignore_ascii_case("production");
        match &self.jwt_secret {
            Some(s) if s.len() >= 32 => Ok(s.as_bytes().to_vec()),
            Some(_) if production => {
                bail!("NATTER_JWT_SECRET must be at least 32 bytes in production")
            }
            None if production => bail!("NATTER_JWT_SECRET is required when NATTER_ENV=production"),
            Some(s) => {
                tracing::warn!(
                    "NATTER_JWT_SECRET is shorter than 32 bytes; fine for development only"
                );
                Ok(s.as_bytes().to_vec())
            }
            None => {
                tracing::warn!(
                    "NATTER_JWT_SECRET is not set: using a fixed DEVELOPMENT secret. Anyone can forge tokens. \
                     Set NATTER_JWT_SECRET (and NATTER_ENV=production) before exposing natter."
                );
                Ok(DEV_SECRET.as_bytes().to_vec())
            }
        }
    }

    /// The limits on what a client sends.
    pub fn request_limits(&self) -> natter_edge::RequestLimits {
        natter_edge::RequestLimits {
            body: self.body_limit,
            read_timeout: Duration::from_secs(self.read_timeout_secs.max(1)),
        }
    }

    pub fn projector(&self) -> ProjectorConfig {
        ProjectorConfig {
            database_url: self.database_url.clone(),
            batch_size: self.projector_batch.max(1),
        }
    }

    pub fn query(&self) -> QueryConfig {
        QueryConfig {
            min_position_wait: Duration::from_millis(self.query_wait_ms),
        }
    }

    pub fn command(&self) -> anyhow::Result<CommandConfig> {
        let send_rate = parse_limit(&self.send_rate_limit).map_err(anyhow::Error::msg)?;
        Ok(CommandConfig {
            admins: self
                .admins
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
            send_rate,
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            body_limit: self.body_limit,
            replicas: self.stream_replicas,
            ..CommandConfig::default()
        })
    }
}
