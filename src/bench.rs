//! `natter bench`: a thin command that runs the load generator, `natter-bench`, a program of
//! its own so that this binary carries none of it. It is looked for beside this binary and
//! measures this binary.

use anyhow::Context as _;

use natter::config::Config;

pub fn run(config: &Config, args: &[String]) -> anyhow::Result<()> {
    let natter = std::env::current_exe()?;
    let bench = natter.with_file_name("natter-bench");
    anyhow::ensure!(
        bench.exists(),
        "natter bench runs {}, which is not there: build it with `cargo build --release -p \
         natter-bench` (or `-p natter-bench` for a debug build beside a debug natter)",
        bench.display()
    );
    let status = std::process::Command::new(&bench)
        .arg("--natter")
        .arg(&natter)
        .args(args)
        .env("NATS_URL", &config.nats_url)
        .env("DATABASE_URL", &config.database_url)
        .env("NATTER_STREAM_REPLICAS", config.stream_replicas.to_string())
        .env("NATTER_PROJECTOR_BATCH", config.projector_batch.to_string())
        .status()
        .with_context(|| format!("running {}", bench.display()))?;
    anyhow::ensure!(status.success(), "natter-bench {status}");
    Ok(())
}
