//! `natter-bench` (also run as `natter bench`): measures natter against the raw limits of its
//! own NATS and Postgres in the same run, so that on a shared, noisy machine each figure is
//! read as a ratio.
//!
//! It runs a natter binary as a child process (every role, on a free port) against the
//! configured NATS and Postgres, with a stream, subject prefix and database of its own,
//! removed at the end. It is a program of its own so that the deployed binary carries no
//! load generator.

mod big_room;
mod catchup;
mod connections;
mod cpu;
mod crowd;
mod e2e;
mod env;
mod fanout;
mod http1;
mod latency;
mod me_rooms;
mod projector;
mod replay;
mod search;
mod send;
mod ws;
mod ws_send;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};

pub use env::Env;

/// Measures natter against the raw limits of its own NATS and Postgres, in one run, with a
/// stream, prefix and database of its own.
#[derive(Debug, Parser)]
#[command(name = "natter-bench", version, about)]
struct Cli {
    /// Small runs (about a minute for everything): proves the bench works, not how fast.
    #[arg(long)]
    quick: bool,
    /// Prints a machine-readable summary instead of a table.
    #[arg(long)]
    json: bool,
    /// Runs only these scenarios (send, ws-send, e2e, projector, me-rooms, search, latency,
    /// fanout, catchup, resume, replay, memory, connections, big-room); repeat the flag for several.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    #[command(flatten)]
    config: Config,
}

/// Where the bench runs natter, and against what.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// The natter binary to measure (default: `natter` beside this program).
    #[arg(long, env = "NATTER_BIN")]
    pub natter: Option<PathBuf>,
    /// NATS server with JetStream enabled (comma-separate several cluster members).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The Postgres server the bench creates its database on (the database name is ignored).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/natter"
    )]
    pub database_url: String,
    /// Replicas of natter's streams and the bench's raw stream.
    #[arg(long, env = "NATTER_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Most events natter's projector applies in one transaction.
    #[arg(long, env = "NATTER_PROJECTOR_BATCH", default_value_t = 1000)]
    pub projector_batch: usize,
    /// The secret natter signs tokens with (default: a random one per run).
    #[arg(long, env = "NATTER_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The bench's own stream and prefix (set by [`Env::start`]).
    #[arg(skip)]
    pub stream: String,
    #[arg(skip)]
    pub subject_prefix: String,
}

impl Config {
    /// The natter binary to run: `--natter`, else `natter` beside this program.
    pub fn natter_binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.natter {
            return Ok(path.clone());
        }
        let here = std::env::current_exe()?;
        let beside = here.with_file_name("natter");
        anyhow::ensure!(
            beside.exists(),
            "no natter binary beside {} (pass --natter PATH)",
            here.display()
        );
        Ok(beside)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let scale = Scale { quick: cli.quick };
    match runtime.block_on(bench(cli.config, scale, cli.json, cli.scenarios)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How big the runs are.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub quick: bool,
}

impl Scale {
    /// `quick` for CI (all scenarios within about a minute), otherwise the full figures.
    pub fn pick<T>(self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// One measured figure, with the raw figure of the same shape when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub scenario: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_name: Option<&'static str>,
}

impl Figure {
    pub fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Figure {
            scenario,
            metric: metric.into(),
            value,
            unit,
            raw: None,
            ratio_name: None,
        }
    }

    pub fn against(mut self, raw: f64, ratio_name: &'static str) -> Self {
        self.raw = Some(raw);
        self.ratio_name = Some(ratio_name);
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        self.raw.filter(|r| *r > 0.0).map(|r| self.value / r)
    }
}

/// The value at quantile `q` of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One scenario: it measures on `env` and returns its figures.
type Scenario = for<'a> fn(&'a Env, Scale) -> BoxFuture<'a, anyhow::Result<Vec<Figure>>>;

/// Every scenario, in the order they run (`--scenario` names them).
const SCENARIOS: &[(&str, Scenario)] = &[
    ("send", |env, scale| Box::pin(send::run(env, scale))),
    ("ws-send", |env, scale| Box::pin(ws_send::run(env, scale))),
    ("e2e", |env, scale| Box::pin(e2e::run(env, scale))),
    ("projector", |env, scale| {
        Box::pin(projector::run(env, scale))
    }),
    ("me-rooms", |env, scale| Box::pin(me_rooms::run(env, scale))),
    ("search", |env, scale| Box::pin(search::run(env, scale))),
    ("latency", |env, scale| Box::pin(latency::run(env, scale))),
    ("fanout", |env, scale| Box::pin(fanout::run(env, scale))),
    ("catchup", |env, scale| Box::pin(catchup::run(env, scale))),
    ("resume", |env, scale| {
        Box::pin(connections::resume(env, scale))
    }),
    ("replay", |env, scale| Box::pin(replay::run(env, scale))),
    ("memory", |env, scale| {
        Box::pin(connections::memory(env, scale))
    }),
    ("connections", |env, scale| Box::pin(crowd::run(env, scale))),
    ("big-room", |env, scale| Box::pin(big_room::run(env, scale))),
];

/// Runs the chosen scenarios (all when `only` is empty) and prints their figures.
pub async fn bench(
    config: Config,
    scale: Scale,
    json_out: bool,
    only: Vec<String>,
) -> anyhow::Result<()> {
    let unknown: Vec<_> = only
        .iter()
        .filter(|o| !SCENARIOS.iter().any(|(name, _)| name == o))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "unknown scenarios {unknown:?}; they are {:?}",
        SCENARIOS.iter().map(|(name, _)| *name).collect::<Vec<_>>()
    );
    // Before natter starts: it inherits the limit (`connections` needs one per socket).
    crowd::raise_open_file_limit();
    let env = Env::start(&config).await?;
    let mut figures = Vec::new();
    let result: anyhow::Result<()> = async {
        for (name, run) in SCENARIOS {
            if only.is_empty() || only.iter().any(|o| o == name) {
                figures.extend(
                    run(&env, scale)
                        .await
                        .with_context(|| format!("scenario {name}"))?,
                );
            }
        }
        Ok(())
    }
    .await;
    env.cleanup().await?;
    result?;
    if json_out {
        let out: Vec<Value> = figures
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(f).expect("figures serialize");
                if let (Some(name), Some(r)) = (f.ratio_name, f.ratio()) {
                    v["ratio"] = json!({ "name": name, "value": r });
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "quick": scale.quick, "figures": out }))?
        );
    } else {
        println!(
            "{:<10} {:<46} {:>14} {:<8} {:>14} {:>22}",
            "scenario", "metric", "natter", "unit", "raw", "ratio"
        );
        for f in &figures {
            let raw = f.raw.map(|r| format!("{r:.1}")).unwrap_or_default();
            let ratio = match (f.ratio_name, f.ratio()) {
                (Some(n), Some(r)) => format!("{n} = {r:.2}"),
                _ => String::new(),
            };
            println!(
                "{:<10} {:<46} {:>14.2} {:<8} {:>14} {:>22}",
                f.scenario, f.metric, f.value, f.unit, raw, ratio
            );
        }
    }
    Ok(())
}
