//! The `natter` binary: every role of the chat backend, and the operators' tools.

mod audit;
mod bench;
mod rebuild;

use clap::{Parser, Subcommand};

use natter::config::{Config, Role};
use natter::{api_doc, serve};

// The request path allocates many small, short-lived objects across the runtime's threads;
// mimalloc's thread-local free lists cut the allocator's share of CPU (profiled with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// natter: a real-time chat backend, event-sourced on NATS JetStream with Postgres read models.
#[derive(Debug, Parser)]
#[command(name = "natter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
    #[command(flatten)]
    config: Config,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Runs natter's HTTP API (REST and websocket) and its background work.
    Serve {
        /// Which parts to run; `all` runs everything in one process on one port.
        #[arg(long, value_enum, default_value = "all", env = "NATTER_ROLE")]
        role: Role,
    },
    /// Creates the read-model database if missing and applies its migrations.
    Migrate,
    /// Replays the whole log into fresh read-model tables and swaps them in; the query API
    /// keeps answering meanwhile.
    Rebuild,
    /// Prints events from the log (a room's or all, in a range, of a type), credentials
    /// redacted; progress on stderr when long.
    Replay(audit::ReplayArgs),
    /// Reads the whole log and checks it: exit 0 when sound, non-zero naming the bad
    /// positions.
    Verify,
    /// Prints the description of the API: `openapi` (REST, OpenAPI 3.1) or `asyncapi` (the
    /// websocket, AsyncAPI 3.0), as the server serves them; needs no server.
    Describe {
        #[arg(value_enum)]
        document: Document,
    },
    /// Measures natter against the raw limits of its own NATS and Postgres: runs
    /// `natter-bench` (beside this binary; `cargo build --release -p natter-bench`) on this
    /// binary, with these arguments (`--quick`, `--json`, `--scenario NAME`; `--help` lists
    /// them).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Document {
    Openapi,
    Asyncapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Commands::Serve { role } => serve::serve(cli.config, role).await,
            Commands::Migrate => {
                natter_readmodel::db::prepare(&cli.config.database_url).await?;
                tracing::info!("database ready and migrated");
                Ok(())
            }
            Commands::Rebuild => rebuild::rebuild(cli.config).await,
            Commands::Replay(args) => audit::replay(cli.config, args).await,
            Commands::Verify => audit::verify(cli.config).await,
            Commands::Describe { document } => {
                let doc = match document {
                    Document::Openapi => api_doc::openapi(),
                    Document::Asyncapi => api_doc::asyncapi(),
                };
                println!("{}", serde_json::to_string_pretty(doc)?);
                Ok(())
            }
            Commands::Bench { args } => bench::run(&cli.config, &args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("natter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
