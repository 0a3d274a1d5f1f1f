//! `natter rebuild`: the read models from scratch, with a progress bar on a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use natter::config::Config;

pub async fn rebuild(config: Config) -> anyhow::Result<()> {
    let (_, store) = config.open_store_once("natter-rebuild").await?;
    let pool = natter_readmodel::db::prepare(&config.database_url).await?;
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let summary =
        natter_projector::rebuild::rebuild(&pool, &store, &config.projector(), |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    let secs = summary.elapsed.as_secs_f64().max(0.001);
    println!(
        "rebuilt the read models from {} events up to position {} in {:.1} s ({:.0} events/s)",
        summary.events,
        summary.position,
        secs,
        summary.events as f64 / secs
    );
    Ok(())
}
