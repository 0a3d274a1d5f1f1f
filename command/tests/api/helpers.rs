//! `TestApp`: the write side on the real NATS server with a stream and prefix of its own,
//! called without a socket; two of them on one stream, and [`race`] to run calls at once
//! across them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use futures::StreamExt;
use natter_command::{CommandConfig, CommandService};
use natter_edge::JwtKeys;
use natter_events::LiveTail;
use natter_testkit::api::Api;
pub use natter_testkit::api::User;
use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::Value;
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub app: Router,
    pub api: Api,
    pub isolation: Isolation,
    /// The instance's own handle on the log (its head lookups, what its server can check).
    pub store: natter_events::EventStore,
    _service: CommandService,
    _cleanup: Option<Cleanup>,
}

pub use natter_testkit::http::Resp;

pub fn test_config() -> CommandConfig {
    CommandConfig {
        send_rate: None,
        admins: vec!["root".into()],
        ..CommandConfig::default()
    }
}

/// Runs `call(app, i)` for every `i` below `n` at once, call `i` on `apps[i % apps.len()]`:
/// spread over two instances on one stream, the calls really race through JetStream's
/// expected-sequence check and not only through one process's lock. The answers, in `i` order.
pub async fn race<'a, F, Fut>(apps: &[&'a TestApp], n: usize, call: F) -> Vec<Fut::Output>
where
    F: Fn(&'a TestApp, usize) -> Fut,
    Fut: Future,
{
    futures::future::join_all((0..n).map(|i| call(apps[i % apps.len()], i))).await
}

impl TestApp {
    /// Two instances on one new stream (like two processes behind a load balancer); the
    /// first cleans up.
    pub async fn two() -> (TestApp, TestApp) {
        let a = TestApp::spawn().await;
        let b = TestApp::on(&a.isolation, test_config()).await;
        (a, b)
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(test_config()).await
    }

    pub async fn spawn_with(config: CommandConfig) -> Self {
        let isolation = Isolation::new();
        let mut app = Self::on(&isolation, config).await;
        app._cleanup = Some(Cleanup { isolation });
        app
    }

    /// Another command instance on the same stream (like a second process behind a load
    /// balancer); it cleans nothing up.
    pub async fn on(isolation: &Isolation, config: CommandConfig) -> Self {
        let store = isolation.open_store().await;
        let tail = LiveTail::start(&store).await.expect("the live tail");
        let keys = Arc::new(JwtKeys::new(SECRET, Duration::from_secs(3600)));
        let service = CommandService::start(store.clone(), &tail, keys, config)
            .await
            .expect("command service");
        TestApp {
            api: Api::app(service.app()),
            app: service.app(),
            isolation: isolation.clone(),
            store,
            _service: service,
            _cleanup: None,
        }
    }

    /// Stops this instance's live view of the log, as if its consumer were stuck.
    pub fn stall_live_view(&self) {
        for (name, task) in &self._service.tasks {
            if *name == "room cache consumer" {
                task.abort();
            }
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.api.request(method, path, token, body, headers).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.api.post(path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.api.delete(path, token).await
    }

    /// Registers `username`.
    pub async fn register(&self, username: &str) -> User {
        self.api.register(username).await
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, token: &str, body: Value) -> Uuid {
        self.api.create_room(token, body).await
    }

    /// Every message in the stream, read with a plain ordered consumer:
    /// (position, subject, headers, payload).
    pub async fn stream_messages(&self) -> Vec<(u64, String, async_nats::HeaderMap, Value)> {
        read_stream(&self.isolation.stream)
            .await
            .into_iter()
            .map(|(seq, subject, headers, payload)| {
                (
                    seq,
                    subject,
                    headers,
                    serde_json::from_slice(&payload).unwrap(),
                )
            })
            .collect()
    }

    /// Every value in the idempotency bucket's stream, as text.
    pub async fn idempotency_values(&self) -> Vec<String> {
        read_stream(&format!("KV_{}_idem", self.isolation.stream))
            .await
            .into_iter()
            .map(|(_, _, _, payload)| String::from_utf8_lossy(&payload).into_owned())
            .collect()
    }
}

/// Every message of stream `name`, read with a plain ordered consumer:
/// (position, subject, headers, payload).
async fn read_stream(name: &str) -> Vec<(u64, String, async_nats::HeaderMap, bytes::Bytes)> {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(name).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        out.push((
            seq,
            m.subject.to_string(),
            m.headers.clone().unwrap_or_default(),
            m.payload.clone(),
        ));
        if seq >= last {
            break;
        }
    }
    out
}

/// `root` is in `NATTER_ADMINS` in the test configuration.
pub async fn root(app: &TestApp) -> String {
    app.register("root").await.token
}

pub async fn api_token(app: &TestApp, admin: &str, body: Value) -> (Uuid, String) {
    let issued = app
        .post("/admin/tokens", Some(admin), body)
        .await
        .expect(201)
        .clone();
    let id = issued["id"].as_str().unwrap().parse().unwrap();
    (id, issued["token"].as_str().unwrap().to_string())
}
