//! `connections`: as many websocket connections as the bench can hold (100,000 at full
//! scale), each subscribed to one room: how long they take to connect and subscribe, natter's
//! RSS per connection, and one message delivered to all of them (deliveries/s), against raw
//! core NATS fanning one message out to the same number of subscriptions.
//!
//! Each connection is a file descriptor in the bench and one in natter, so both need an
//! open-file limit above the count: the bench raises its own soft limit to the hard limit
//! before it starts natter (which inherits it, see [`raise_open_file_limit`]); a hard limit
//! below the count (a container without `CAP_SYS_RESOURCE`) caps the scenario, and the figure
//! says at how many it measured. Clients connect from several loopback source addresses
//! (127.0.0.2, .3, ...), about 20,000 each, so ephemeral ports suffice.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{Env, Figure, Scale, quantile, ws};

/// Connections per loopback source address (the ephemeral range holds ~28,000 ports).
const PER_SOURCE: usize = 20_000;
/// File descriptors each process keeps for itself beside the connections.
const SPARE_FDS: u64 = 1_000;
/// Messages sent to everyone (each measured alone); the median is reported.
const ROUNDS: usize = 3;

/// Raises this process's soft open-file limit to its hard limit (children inherit it);
/// returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let hard = rlimit::Resource::NOFILE
        .get()
        .map(|(_, hard)| hard)
        .unwrap_or(1024);
    rlimit::increase_nofile_limit(hard).unwrap_or(1024)
}

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let wanted = scale.pick(2_000, 100_000);
    let limit = raise_open_file_limit();
    let n = wanted.min(limit.saturating_sub(SPARE_FDS) as usize);
    if n < wanted {
        tracing::warn!(
            wanted,
            n,
            limit,
            "the open-file hard limit caps the connections scenario: it needs {} (ulimit -Hn, \
             LimitNOFILE=) in the bench and in natter",
            wanted as u64 + SPARE_FDS
        );
    }
    let token = env.register("crowd_owner").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&token), &json!({ "name": "crowd" }))
        .await?;
    let room: Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;

    let rss_start = env.server_rss_kib()?;
    let started = Instant::now();
    let mut rss_half = rss_start;
    let mut clients = Vec::with_capacity(n);
    for (half, range) in [(0, 0..n / 2), (1, n / 2..n)] {
        let batch: Vec<ws::Client> = stream::iter(range)
            .map(|i| {
                let token = token.clone();
                async move {
                    // The first source is the kernel's choice at connect time; binding a
                    // source address first makes the kernel search its bound ports on every
                    // bind, which grows with the connections already open.
                    let mut c = match i / PER_SOURCE {
                        0 => ws::Client::connect(env.addr, &token).await?,
                        k => {
                            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k as u8));
                            ws::Client::connect_from(env.addr, source, &token).await?
                        }
                    };
                    c.subscribe(room, None).await?;
                    c.until_subscribed().await?;
                    Ok::<_, anyhow::Error>(c)
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        clients.extend(batch);
        if half == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_half = env.server_rss_kib()?;
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_full = env.server_rss_kib()?;

    // Every client waits for each round's message in a task of its own.
    let received = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(Notify::new());
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let (received, all_in) = (received.clone(), all_in.clone());
            tokio::spawn(async move {
                let mut got = 0;
                while got < ROUNDS {
                    if c.next().await?["type"] == "event" {
                        got += 1;
                        if received.fetch_add(1, Ordering::SeqCst) + 1 == n * got {
                            all_in.notify_one();
                        }
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let mut natter_rates = Vec::new();
    for round in 1..=ROUNDS {
        let sent = Instant::now();
        let wait = all_in.notified();
        env.post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            &json!({ "content": format!("to everyone {round}") }),
        )
        .await?;
        tokio::time::timeout(Duration::from_secs(120), async {
            tokio::pin!(wait);
            while received.load(Ordering::SeqCst) < n * round {
                wait.as_mut().await;
                wait.set(all_in.notified());
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("a message did not reach every connection in 120 s"))?;
        natter_rates.push(n as f64 / sent.elapsed().as_secs_f64());
    }
    for r in readers {
        r.await??;
    }
    natter_rates.sort_by(f64::total_cmp);
    let raw = raw_fanout(env, n).await?;

    let per_connection = rss_full.saturating_sub(rss_half) as f64 / (n - n / 2).max(1) as f64;
    Ok(vec![
        Figure::new(
            "connections",
            format!("connect and subscribe {n}"),
            connect_secs,
            "s",
        ),
        Figure::new(
            "connections",
            format!("RSS per connection, {} to {n}", n / 2),
            per_connection,
            "KiB",
        ),
        Figure::new(
            "connections",
            format!("RSS per connection, 0 to {n}"),
            rss_full.saturating_sub(rss_start) as f64 / n.max(1) as f64,
            "KiB",
        ),
        Figure::new(
            "connections",
            format!("one message to {n} sockets"),
            quantile(&natter_rates, 0.5),
            "deliv/s",
        )
        .against(raw, "crowd_vs_raw"),
    ])
}

/// Core NATS: one message to `n` subscriptions over 100 connections, median deliveries/s
/// over [`ROUNDS`] messages.
async fn raw_fanout(env: &Env, n: usize) -> anyhow::Result<f64> {
    let connections = 100.min(n.max(1));
    let subject = format!("bench.crowd.{}", Uuid::new_v4().simple());
    let received = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    let mut subscribed = Vec::new();
    for c in 0..connections {
        let client = async_nats::connect(&env.config.nats_url).await?;
        let count = n / connections + usize::from(c < n % connections);
        for _ in 0..count {
            let mut sub = client.subscribe(subject.clone()).await?;
            let (received, all_in) = (received.clone(), all_in.clone());
            tasks.push(tokio::spawn(async move {
                while sub.next().await.is_some() {
                    if (received.fetch_add(1, Ordering::SeqCst) + 1) % n == 0 {
                        all_in.notify_one();
                    }
                }
            }));
        }
        client.flush().await?;
        subscribed.push(client);
    }
    let publisher = async_nats::connect(&env.config.nats_url).await?;
    let mut rates = Vec::new();
    for round in 1..=ROUNDS {
        received.store(0, Ordering::SeqCst);
        let sent = Instant::now();
        let wait = all_in.notified();
        publisher
            .publish(subject.clone(), format!("to everyone {round}").into())
            .await?;
        publisher.flush().await?;
        // Core NATS is at most once: a slow subscription may drop, so a round that does not
        // complete counts what arrived in its time.
        let complete = tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .is_ok();
        let got = if complete {
            n
        } else {
            received.load(Ordering::SeqCst)
        };
        rates.push(got as f64 / sent.elapsed().as_secs_f64());
    }
    for t in tasks {
        t.abort();
    }
    drop(subscribed);
    rates.sort_by(f64::total_cmp);
    Ok(quantile(&rates, 0.5))
}
