//! The steady load every fault scenario runs, and the checks it ends with, all from the
//! outside: one user sends numbered messages through REST (each with an `Idempotency-Key`,
//! retried with the same key until acknowledged), and a websocket reader follows the room,
//! resuming with `since` after every disconnect.
//!
//! What a run must have left behind is checked in `checks.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::checks;

/// One send attempt as the client saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub n: usize,
    pub started: Instant,
    pub finished: Instant,
    /// `Ok(position)`, or the status and error code (status 0: no answer at all).
    pub outcome: Result<u64, (u16, String)>,
}

/// A room under load.
pub struct Workload {
    bases: Arc<[String]>,
    pub token: String,
    pub room: String,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    frames: Arc<Mutex<Vec<Value>>>,
    reconnects: Arc<Mutex<usize>>,
    sender: Option<tokio::task::JoinHandle<()>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Registers a user and creates a room through `base`, retrying while natter is not ready.
pub async fn user_and_room(base: &str, name: &str) -> (String, String) {
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        let r = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({ "username": name, "password": "password123" }))
            .header("idempotency-key", format!("register-{name}"))
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 201
        {
            let body: Value = r.json().await.unwrap();
            break body["token"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "natter never accepted a registration"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let r = client
        .post(format!("{base}/api/v1/rooms"))
        .bearer_auth(&token)
        .json(&json!({ "name": "under load" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (token, body["room"]["id"].as_str().unwrap().to_string())
}

impl Workload {
    /// Starts sending into `room` through `bases` (round robin) and reading it over a
    /// websocket from `reader`.
    pub fn start(bases: Vec<String>, reader: String, token: String, room: String) -> Workload {
        let mut w = Workload {
            bases: bases.into(),
            token,
            room,
            stop: Arc::default(),
            attempts: Arc::default(),
            frames: Arc::default(),
            reconnects: Arc::default(),
            sender: None,
            reader: None,
        };
        w.sender = Some(tokio::spawn(send_loop(
            w.bases.clone(),
            w.token.clone(),
            w.room.clone(),
            w.stop.clone(),
            w.attempts.clone(),
        )));
        w.reader = Some(tokio::spawn(read_loop(
            reader,
            w.token.clone(),
            w.room.clone(),
            w.stop.clone(),
            w.frames.clone(),
            w.reconnects.clone(),
        )));
        w
    }

    /// How many messages have been acknowledged so far.
    pub fn acked(&self) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.outcome.is_ok())
            .count()
    }

    /// Waits until `more` further messages are acknowledged (bounded).
    pub async fn wait_acked(&self, more: usize, within: Duration) {
        let target = self.acked() + more;
        let deadline = Instant::now() + within;
        while self.acked() < target {
            assert!(
                Instant::now() < deadline,
                "sends did not resume: {:?}",
                self.last_failure()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn last_failure(&self) -> Option<Attempt> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|a| a.outcome.is_err())
            .cloned()
    }

    /// Seconds from `cleared` (the fault's end) until a send that began after it succeeded.
    pub fn recovery_after(&self, cleared: Instant) -> Option<f64> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.started >= cleared && a.outcome.is_ok())
            .map(|a| a.finished.duration_since(cleared).as_secs_f64())
            .reduce(f64::min)
    }

    /// Seconds during which sends begun after `since` failed: from the first such failure to
    /// the end of the last.
    pub fn failing_window(&self, since: Instant) -> f64 {
        let attempts = self.attempts.lock().unwrap();
        let mut failed = attempts
            .iter()
            .filter(|a| a.started >= since && a.outcome.is_err());
        let Some(first) = failed.next() else {
            return 0.0;
        };
        let last = failed.next_back().unwrap_or(first);
        last.finished.duration_since(first.started).as_secs_f64()
    }

    /// Stops the load (the message in flight is finished) and checks, from the outside, that
    /// every acknowledged message is in the read model, the history and the websocket
    /// frames exactly once and in order, and every failure was a clean error of the contract
    /// (the checks are in `checks.rs`).
    pub async fn finish_and_verify(mut self, query_base: &str) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self.sender.take() {
            tokio::time::timeout(Duration::from_secs(60), s)
                .await
                .expect("the last send finishes")
                .unwrap();
        }
        let attempts = self.attempts.lock().unwrap().clone();
        let positions = checks::acknowledged_once_in_turn(&attempts);
        checks::failures_are_clean(&attempts);
        let count = positions.len();
        let expected: Vec<String> = (0..count).map(|n| format!("m{n}")).collect();
        let reader = checks::Reader {
            base: query_base,
            room: &self.room,
            token: &self.token,
        };
        checks::read_model_holds(&reader, &positions, &expected).await;
        checks::history_holds(&reader, &expected).await;

        // The websocket, once its reader has seen every message.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self
                .frames
                .lock()
                .unwrap()
                .iter()
                .filter(|f| f["event"]["type"] == "message.sent")
                .count();
            if seen >= count {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the websocket reader got {seen} of {count} messages"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        let frames = self.frames.lock().unwrap().clone();
        checks::socket_holds(&frames, &expected);
        let failures = attempts.iter().filter(|a| a.outcome.is_err()).count();
        Report {
            acked: count,
            failures,
            ws_reconnects: *self.reconnects.lock().unwrap(),
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in [self.sender.take(), self.reader.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} messages acknowledged, {} attempts refused cleanly, {} websocket resumes",
            self.acked, self.failures, self.ws_reconnects
        )
    }
}

/// What a verified run saw.
#[derive(Debug)]
pub struct Report {
    pub acked: usize,
    pub failures: usize,
    pub ws_reconnects: usize,
}

async fn send_loop(
    bases: Arc<[String]>,
    token: String,
    room: String,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
) {
    let client = client();
    let mut turn = 0usize;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Each message is retried with its key until acknowledged, so that none is lost.
        loop {
            let base = {
                turn += 1;
                bases[turn % bases.len()].clone()
            };
            let started = Instant::now();
            let r = client
                .post(format!("{base}/api/v1/rooms/{room}/messages"))
                .bearer_auth(&token)
                .header("idempotency-key", format!("m{n}"))
                .json(&json!({ "content": format!("m{n}") }))
                .send()
                .await;
            let outcome = match r {
                Ok(r) if r.status() == 201 => {
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Ok(body["position"].as_u64().expect("a position"))
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Err((
                        status,
                        body["error"]["code"].as_str().unwrap_or("").to_string(),
                    ))
                }
                // Refused or reset while natter itself is down: not an answer, retried.
                Err(e) if e.is_connect() || e.is_request() && !e.is_timeout() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => Err((0, "no answer".to_string())),
            };
            let ok = outcome.is_ok();
            attempts.lock().unwrap().push(Attempt {
                n,
                started,
                finished: Instant::now(),
                outcome,
            });
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn read_loop(
    base: String,
    token: String,
    room: String,
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Value>>>,
    reconnects: Arc<Mutex<usize>>,
) {
    let mut since = 0u64;
    let mut seen_positions: HashMap<u64, ()> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let base = base.replace("http://", "ws://");
        let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("{base}/api/v1/ws?token={token}")).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let subscribe = json!({ "op": "subscribe", "room_id": room, "since": since });
        if ws
            .send(Message::Text(subscribe.to_string().into()))
            .await
            .is_err()
        {
            continue;
        }
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            // The room's stream; an event naming the user may also come on their own feed
            // (`"feed": "me"`) before the subscription, which is not the room's stream.
            if frame["type"] == "event"
                && frame["room_id"] == room.as_str()
                && frame["feed"] != "me"
            {
                let position = frame["position"].as_u64().unwrap();
                assert!(
                    seen_positions.insert(position, ()).is_none(),
                    "the websocket delivered position {position} twice"
                );
                since = position;
                frames.lock().unwrap().push(frame);
            }
        }
        *reconnects.lock().unwrap() += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
