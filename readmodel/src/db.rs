//! The read-model database: created if missing and migrated on start.

use anyhow::Context as _;
use sqlx::migrate::MigrateDatabase;
use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, migrate::Migrator};

/// The read models' migrations, embedded from the repository's top-level `migrations/` (where
/// a reader of the tree looks for the schema; the path is relative to this crate).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Creates the database at `url` if it does not exist and applies every pending migration.
pub async fn prepare(url: &str) -> anyhow::Result<PgPool> {
    if !Postgres::database_exists(url)
        .await
        .context("connecting to Postgres")?
    {
        // Two instances may race to create it; losing that race is fine.
        if let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await.unwrap_or(false)
        {
            return Err(anyhow::Error::new(e).context("creating the database"));
        }
    }
    let pool = connect(url).await?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

/// How long a query waits for a connection before it answers `503 unavailable`. Queries take
/// milliseconds, so a full pool frees a connection well within it; while Postgres is
/// unreachable, every request fails after this long instead of queueing, and the pool
/// connects again as soon as Postgres is back.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool on an existing database.
///
/// Its sessions run without JIT compilation: natter's statements are short, and on tables
/// the planner has no statistics for yet (a read model just rebuilt or loaded) its row
/// estimates can pass `jit_above_cost`, when compiling costs a query hundreds of
/// milliseconds it then runs in one (seen in `natter bench --scenario me-rooms`).
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("parsing the read-model database URL")?
        .options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("connecting to the read-model database")
}
