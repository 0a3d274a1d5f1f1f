//! `natter replay` and `natter verify`: for auditors with NATS access and no HTTP.

use std::io::Write;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use natter_events::audit::Verifier;
use natter_events::history::{self, Bound, Range};
use natter_events::{EventStore, Start};
use uuid::Uuid;

use natter::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON envelope (with its position) per line.
    Ndjson,
    /// A readable table.
    Table,
}

/// What `replay` prints.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only this room's events.
    #[arg(long)]
    room: Option<Uuid>,
    /// First event: a position or an RFC 3339 time (when the log stored it).
    #[arg(long)]
    from: Option<Bound>,
    /// Last event: a position or an RFC 3339 time.
    #[arg(long)]
    to: Option<Bound>,
    /// Only events of this type (e.g. message.sent).
    #[arg(long = "type")]
    event_type: Option<String>,
    #[arg(long, value_enum, default_value = "ndjson")]
    format: Format,
}

async fn open(config: &Config) -> anyhow::Result<EventStore> {
    Ok(config.open_store_once("natter-audit").await?.1)
}

fn progress(total: u64) -> ProgressBar {
    // Shown on a terminal only (stderr); stdout carries the data.
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    if total < 10_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

pub async fn replay(config: Config, args: ReplayArgs) -> anyhow::Result<()> {
    let store = open(&config).await?;
    let filter = match args.room {
        Some(room) => store.subjects().room_events(room),
        None => store.subjects().all_events(),
    };
    let range = Range {
        from: args.from,
        to: args.to,
        event_type: args.event_type,
        limit: None,
    };
    let head = store.head().await?;
    let bar = progress(head);
    let mut lines = Box::pin(history::read(&store, &filter, &range).await?);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if args.format == Format::Table {
        writeln!(
            out,
            "{:>10}  {:<30}  {:<22}  {:<36}  {:<36}  data",
            "position", "recorded at", "type", "room", "actor"
        )?;
    }
    let mut count = 0u64;
    while let Some(message) = lines.next().await {
        let message = message?;
        bar.set_position(message.position);
        let line = natter_events::envelope::public_json(&message);
        match args.format {
            Format::Ndjson => {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            Format::Table => {
                let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                let mut data = v["data"].to_string();
                if data.len() > 120 {
                    data.truncate(data.floor_char_boundary(117));
                    data.push_str("...");
                }
                writeln!(
                    out,
                    "{:>10}  {:<30}  {:<22}  {:<36}  {:<36}  {data}",
                    message.position,
                    message.recorded_at.to_rfc3339(),
                    v["type"].as_str().unwrap_or("?"),
                    v["room_id"].as_str().unwrap_or("-"),
                    v["actor_id"].as_str().unwrap_or("-"),
                )?;
            }
        }
        count += 1;
    }
    out.flush()?;
    bar.finish_and_clear();
    eprintln!("{count} events");
    Ok(())
}

/// Reads the whole log and checks it; the error names the offending positions.
pub async fn verify(config: Config) -> anyhow::Result<()> {
    let store = open(&config).await?;
    let head = store.head().await?;
    let bar = progress(head);
    let (available, messages) = store
        .follow_counted(&store.subjects().all_events(), Start::After(0))
        .await?;
    let mut messages = Box::pin(messages.take(usize::try_from(available).unwrap_or(usize::MAX)));
    let mut verifier = Verifier::new(store.subjects().clone());
    while let Some(message) = messages.next().await {
        let message = message?;
        bar.set_position(message.position);
        verifier.check(&message);
    }
    bar.finish_and_clear();
    println!("{} events up to position {head}", verifier.events);
    for (event_type, n) in &verifier.counts {
        println!("  {event_type:<24} {n}");
    }
    if verifier.findings.is_empty() {
        println!("the log is sound");
        return Ok(());
    }
    for finding in verifier.findings.iter().take(100) {
        println!("position {}: {}", finding.position, finding.problem);
    }
    let positions: Vec<String> = verifier
        .findings
        .iter()
        .take(20)
        .map(|f| f.position.to_string())
        .collect();
    anyhow::bail!(
        "{} problem(s) in the log, at positions {}{}",
        verifier.findings.len(),
        positions.join(", "),
        if verifier.findings.len() > 20 {
            ", ..."
        } else {
            ""
        }
    )
}
