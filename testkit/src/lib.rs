//! Test support shared by every crate's integration tests: each test gets its own stream name,
//! subject prefix and Postgres database on the real servers (`NATS_URL`, `TEST_DATABASE_URL`,
//! defaulting to the local ones), and leaves nothing behind when it ends, even by panicking.

pub mod api;
pub mod http;
pub mod nats;
pub mod process;
pub mod proxy;
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
}

impl Isolation {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("natter_t_{id}");
        Isolation {
            stream: format!("T_{id}"),
            prefix: format!("t{id}"),
            database_url: format!("{}/{database}", postgres_server_url()),
            database,
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
        let client = async_nats::connect(nats_url())
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

/// Deletes a test's streams (the event stream and any stream named after it, such as
/// `KV_{stream}_idem`) and drops its database when dropped.
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
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let js = async_nats::jetstream::new(client);
                    for name in [
                        isolation.stream.clone(),
                        format!("KV_{}_idem", isolation.stream),
                    ] {
                        let _ = js.delete_stream(&name).await;
                    }
                }
                if let Ok(pool) =
                    sqlx::PgPool::connect(&format!("{}/postgres", postgres_server_url())).await
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
