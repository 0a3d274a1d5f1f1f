//! Test support shared by every crate's integration tests: each test gets its own stream name,
//! subject prefix and Postgres database on the real servers (`NATS_URL`, `TEST_DATABASE_URL`,
//! defaulting to the local ones), and leaves nothing behind when it ends, even by panicking.

pub mod api;
pub mod http;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod readmodels;
pub mod ws;

use std::sync::Once;

/// The NATS server tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A Postgres server URL (without a database name) tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Names unique to one test.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// JetStream stream name, e.g. `T_3f2a...`.
    pub stream: String,
    /// Subject prefix, e.g. `t3f2a...`.
    pub prefix: String,
    /// Postgres database name, e.g. `natter_t_3f2a...`.
    pub database: String,
    /// Full URL of that database.
    pub database_url: String,
    /// The NATS server the stream lives on.
    pub nats_url: String,
    /// The Postgres server (a URL without a database name) the database lives on.
    pub postgres_server: String,
}

impl Isolation {
    /// A test's names on the shared servers (`NATS_URL`, `TEST_POSTGRES_URL`).
    pub fn new() -> Self {
        Self::on("t", &nats_url(), &postgres_server_url())
    }

    /// Names of their own on the given servers, marked with `label` (`T_…`, `t…`,
    /// `natter_t_…` for tests; the bench uses `bench`).
    pub fn on(label: &str, nats_url: &str, postgres_server: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("natter_{label}_{id}");
        Isolation {
            stream: format!("{}_{id}", label.to_ascii_uppercase()),
            prefix: format!("{label}{id}"),
            database_url: format!("{postgres_server}/{database}"),
            database,
            nats_url: nats_url.to_string(),
            postgres_server: postgres_server.to_string(),
        }
    }
}

impl Isolation {
    /// Where this test's event log lives (one replica, on the shared server).
    pub fn store_config(&self) -> natter_events::StoreConfig {
        natter_events::StoreConfig {
            stream: self.stream.clone(),
            prefix: self.prefix.clone(),
            replicas: 1,
        }
    }

    /// Opens (creating it) this test's event store on the shared NATS server.
    pub async fn open_store(&self) -> natter_events::EventStore {
        init_logs();
        let client = async_nats::connect(&self.nats_url)
            .await
            .expect("NATS is running");
        natter_events::EventStore::open(client, &self.store_config())
            .await
            .expect("the test's event store")
    }
}

impl Default for Isolation {
    fn default() -> Self {
        Self::new()
    }
}

/// Deletes a test's streams (the event stream and those named after it: `KV_{stream}_idem`,
/// the bench's `{stream}_RAW`) and drops its database when dropped.
pub struct Cleanup {
    pub isolation: Isolation,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let isolation = self.isolation.clone();
        // Drop cannot await, and may run inside a runtime: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(&isolation.nats_url).await {
                    let js = async_nats::jetstream::new(client);
                    for name in [
                        isolation.stream.clone(),
                        format!("KV_{}_idem", isolation.stream),
                        format!("{}_RAW", isolation.stream),
                    ] {
                        let _ = js.delete_stream(&name).await;
                    }
                }
                if let Ok(pool) =
                    sqlx::PgPool::connect(&format!("{}/postgres", isolation.postgres_server)).await
                {
                    let sql = format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        isolation.database
                    );
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                }
            });
        })
        .join();
    }
}

/// Logs to the test output when `TEST_LOG` is set (filtered by `RUST_LOG`); quiet otherwise.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}
