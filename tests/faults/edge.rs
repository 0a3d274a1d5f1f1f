//! Inputs and starts that once stopped natter: a declared body over the limit, requests that
//! trickle in, a server list in `NATS_URL`, NATS down at start, an event Postgres refuses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use natter_testkit::nats::{NatsServer, default_binary, free_port};
use natter_testkit::process::{NatterProcess, readyz};
use serde_json::{Value, json};

use crate::{NATTER, Setup};
use natter_testkit::nats_url;

/// Sends `head` (and nothing more) and reads the answer until the server closes or `wait`
/// passes; returns the status and the body, and how long the answer took.
fn raw_exchange(port: u16, head: &[u8], wait: Duration) -> (Option<u16>, String, Duration) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    tcp.write_all(head).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                // One whole response is enough.
                if let Some((head, body)) = text.split_once("\r\n\r\n")
                    && let Some(len) = head.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_string)
                    })
                    && body.len() >= len.trim().parse::<usize>().unwrap_or(0)
                {
                    break;
                }
            }
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body, took)
}

#[test]
fn a_declared_body_over_the_limit_is_refused_at_once_and_trickling_requests_time_out() {
    let setup = Setup::new(nats_url());
    let mut env =
        NatterProcess::env_for(&setup.isolation, &setup.nats, &setup.isolation.database_url);
    env.push(("NATTER_READ_TIMEOUT_SECS".into(), "1".into()));
    let natter = NatterProcess::start(NATTER.as_str(), "all", env);

    // Declared far over the limit, nothing sent: 413 at once.
    let (status, body, took) = raw_exchange(
        natter.port,
        b"POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status, Some(413), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "payload_too_large"
    );
    assert!(took < Duration::from_millis(900), "the 413 took {took:?}");

    // A body that does not arrive: 408 after the read timeout.
    let (status, body, took) = raw_exchange(
        natter.port,
        b"POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-length: 40\r\n\r\n{\"user",
        Duration::from_secs(5),
    );
    assert_eq!(status, Some(408), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "timeout"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // Headers that never finish: 408 too, and the connection is closed.
    let (status, body, took) = raw_exchange(
        natter.port,
        b"GET /api/v1/rooms HTTP/1.1\r\nhost: x\r\nx-slow: ",
        Duration::from_secs(5),
    );
    assert_eq!(status, Some(408), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "timeout"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    // Natter still serves.
    let (status, _, _) = raw_exchange(
        natter.port,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status, Some(200));
}

#[test]
fn nats_url_takes_a_server_list_and_natter_waits_for_nats_at_start() {
    // The first server named is down; the second does not exist yet.
    let dead = free_port();
    let later = free_port();
    let setup = Setup::new(format!("nats://127.0.0.1:{dead},nats://127.0.0.1:{later}"));
    let env = NatterProcess::env_for(&setup.isolation, &setup.nats, &setup.isolation.database_url);
    let mut natter = NatterProcess::start_in_background(NATTER.as_str(), "all", env);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        natter.exited().is_none(),
        "natter exits when NATS is down: {}",
        natter.log_tail(20)
    );
    assert!(
        natter
            .log_lines()
            .iter()
            .any(|l| l.contains("NATS is not reachable yet")),
        "each attempt is logged: {}",
        natter.log_tail(20)
    );
    let _nats = NatsServer::start_on(&default_binary(), later);
    natter.wait_listening(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = raw_exchange(
            natter.port,
            b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n",
            Duration::from_secs(5),
        );
        if status == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "natter never got ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn readyz_and_metrics_show_a_projection_halted_on_an_event_postgres_refuses() {
    let setup = Setup::new(nats_url());
    let env = NatterProcess::env_for(&setup.isolation, &setup.nats, &setup.isolation.database_url);
    let natter = NatterProcess::start(NATTER.as_str(), "all", env);
    let base = natter.base();
    let (token, room) = crate::workload::user_and_room(&base, "owner").await;
    let client = crate::workload::client();
    let send = |content: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/v1/rooms/{room}/messages");
        let token = token.clone();
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "content": content }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = send("first").await;
    // Applied on its own first (in one batch the two would fold into one row).
    let applied = client
        .get(format!(
            "{base}/api/v1/rooms/{room}/messages?min_position={}",
            first["position"]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 200);
    // A copy of that event under a new event id: the same message id twice, which the read
    // model's unique message id refuses however often it is tried.
    let nats = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let subject = format!("{}.events.room.{room}.msg", setup.isolation.prefix);
    let mut stream = js.get_stream(&setup.isolation.stream).await.unwrap();
    let stored = stream
        .get_raw_message(first["position"].as_u64().unwrap())
        .await
        .unwrap();
    let mut envelope: Value = serde_json::from_slice(&stored.payload).unwrap();
    envelope["id"] = json!(uuid::Uuid::now_v7());
    let dup = js
        .publish(subject, envelope.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let _ = stream.info().await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = readyz(&base).await.expect("an answer");
        if status == 503 && !body["projection"]["halted"].is_null() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never showed the halt: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["projection"]["halted"]["position"], dup, "{body}");
    assert!(
        body["projection"]["halted"]["error"]
            .as_str()
            .unwrap()
            .contains("duplicate key"),
        "{body}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "natter_projection_halted 1"),
        "{metrics}"
    );
    assert!(
        natter
            .log_lines()
            .iter()
            .any(|l| l.contains("projection halted") && l.contains(&dup.to_string())),
        "an operator gets a log line naming the position"
    );
}
