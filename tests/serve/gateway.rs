//! `--role gateway`: websockets without Postgres, and a client that never reads.

use super::*;

/// `--role gateway` serves sockets apart from the reads, on NATS alone: it is ready with
/// Postgres unreachable, streams a room, and its sends reach the command role over NATS.
#[tokio::test]
async fn the_gateway_role_serves_websockets_without_postgres() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let unreachable = "postgres://postgres@127.0.0.1:1/unused";
    let gateway = natter(&isolation, "gateway", unreachable);
    let command = natter(&isolation, "command", unreachable);
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", gateway.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the gateway role does not need Postgres"
    );
    let api = Api::server(&command.base());
    let alice = api.register("alice").await;
    let room = api
        .create_room(&alice.token, json!({ "name": "sockets" }))
        .await;

    let addr = gateway
        .base()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let mut ws = Ws::connect(addr, &alice.token).await;
    ws.subscribe(room, Some(0)).await;
    ws.until(|f| f["type"] == "subscribed").await;
    ws.send(json!({ "op": "send", "room_id": room, "client_id": "c1", "content": "hi" }))
        .await;
    // The ack and the event, in whichever order they come.
    let (mut ack, mut event) = (None, None);
    while ack.is_none() || event.is_none() {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("event") if frame["event"]["type"] == "message.sent" => event = Some(frame),
            _ => {}
        }
    }
    let (ack, event) = (ack.unwrap(), event.unwrap());
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["position"], event["position"]);
    assert_eq!(event["event"]["data"]["content"], "hi");
    // It serves no queries: those are the query role's.
    let me = client
        .get(format!("{}/api/v1/me/rooms", gateway.base()))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 404);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_4008_and_the_gateways_memory_stays_flat() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let gateway = natter(&isolation, "query", &isolation.database_url);
    let command = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let api = Api::server(&command.base());
    let token = api.register("flooder").await.token;
    let room = api.create_room(&token, json!({ "name": "flood" })).await;

    let ws_url = format!(
        "{}/api/v1/ws?token={token}",
        gateway.base().replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    use futures::SinkExt;
    ws.send(Message::Text(
        json!({ "op": "subscribe", "room_id": room })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await
            && t.as_str().contains("subscribed")
        {
            break;
        }
    }
    let before = rss_kib(gateway.pid().expect("running"));
    // 48 MB of events the client never reads.
    let body = json!({ "content": "x".repeat(3900) });
    let url = format!("{}/api/v1/rooms/{room}/messages", command.base());
    futures::stream::iter(0..12_000)
        .for_each_concurrent(16, |_| {
            let (client, url, token, body) =
                (client.clone(), url.clone(), token.clone(), body.clone());
            async move {
                let _ = client.post(url).bearer_auth(token).json(&body).send().await;
            }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(gateway.pid().expect("running"));
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("gateway RSS {before} KiB before, {after} KiB after a 48 MB backlog");
    assert!(
        grown_mib < 25,
        "the gateway grew by {grown_mib} MiB for a 48 MB backlog"
    );
    let mut code = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if let Ok(Message::Close(frame)) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(4008));
}
