//! What a fault scenario's run must have left behind, seen from the outside: every
//! acknowledged send once and in turn, every refusal a clean error of the contract, and the
//! same messages, once and in order, in the read model, the log's history and the websocket.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::workload::{Attempt, client};

/// Codes a failed request may carry while a fault lasts (with their statuses).
const FAULT_CODES: &[(u16, &str)] = &[(503, "unavailable"), (504, "stale"), (409, "in_progress")];

/// Each message was acknowledged once, in the order sent, at rising positions; returns the
/// positions, in order.
pub fn acknowledged_once_in_turn(attempts: &[Attempt]) -> Vec<u64> {
    let mut acked: Vec<(usize, u64)> = attempts
        .iter()
        .filter_map(|a| a.outcome.as_ref().ok().map(|p| (a.n, *p)))
        .collect();
    acked.sort();
    assert!(!acked.is_empty(), "nothing was sent");
    for (i, (n, _)) in acked.iter().enumerate() {
        assert_eq!(*n, i, "message {i} was acknowledged once, in turn");
    }
    let positions: Vec<u64> = acked.iter().map(|(_, p)| *p).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "acknowledged positions increase: {positions:?}"
    );
    positions
}

/// Every refused attempt failed with a status and code the contract gives for a fault.
pub fn failures_are_clean(attempts: &[Attempt]) {
    for a in attempts {
        if let Err((status, code)) = &a.outcome {
            assert!(
                FAULT_CODES.contains(&(*status, code.as_str())),
                "send {} failed with {status} {code:?}, not a clean error of the contract",
                a.n
            );
        }
    }
}

/// Where and as whom the room is read.
pub struct Reader<'a> {
    pub base: &'a str,
    pub room: &'a str,
    pub token: &'a str,
}

/// The read model, paged forward once it has applied the last acknowledged send, holds
/// `expected` once, in order, at the positions the sends were answered with.
pub async fn read_model_holds(reader: &Reader<'_>, positions: &[u64], expected: &[String]) {
    let client = client();
    let last = *positions.last().expect("something was acknowledged");
    let mut from_reads = Vec::new();
    let mut after = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .get(format!(
                "{}/api/v1/rooms/{}/messages?after={after}&limit=100&min_position={last}",
                reader.base, reader.room
            ))
            .bearer_auth(reader.token)
            .send()
            .await;
        let Ok(r) = r else {
            assert!(Instant::now() < deadline, "the read model never answered");
            continue;
        };
        if r.status() != 200 {
            assert!(
                Instant::now() < deadline,
                "the read model did not catch up: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let page: Value = r.json().await.unwrap();
        let messages = page["messages"].as_array().unwrap();
        for m in messages {
            from_reads.push((
                m["position"].as_u64().unwrap(),
                m["content"].as_str().unwrap().to_string(),
            ));
        }
        match messages.last() {
            Some(m) if page["has_more"] == true => after = m["position"].as_u64().unwrap(),
            _ => break,
        }
    }
    let read_contents: Vec<String> = from_reads.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        read_contents, expected,
        "the read model holds every message once, in order"
    );
    let read_positions: Vec<u64> = from_reads.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        read_positions, positions,
        "at the positions the sends were answered with"
    );
}

/// The room's history, read from the log, holds `expected` once, in order.
pub async fn history_holds(reader: &Reader<'_>, expected: &[String]) {
    let text = client()
        .get(format!(
            "{}/api/v1/rooms/{}/events",
            reader.base, reader.room
        ))
        .bearer_auth(reader.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let history: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "message.sent")
        .map(|e| e["data"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        history, expected,
        "the log holds every message once, in order"
    );
}

/// The websocket's frames chain each to the one before it, and deliver `expected` once, in
/// order.
pub fn socket_holds(frames: &[Value], expected: &[String]) {
    let mut previous = 0;
    for f in frames {
        assert_eq!(
            f["prev_position"].as_u64(),
            Some(previous),
            "frame at {} follows the one before it without a gap",
            f["position"]
        );
        previous = f["position"].as_u64().unwrap();
    }
    let socket: Vec<String> = frames
        .iter()
        .filter(|f| f["event"]["type"] == "message.sent")
        .map(|f| f["event"]["data"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        socket, expected,
        "the websocket delivered every message once, in order"
    );
}
