//! The NATS connection every natter role makes: a comma-separated server list (the usual
//! NATS form, e.g. every node of a cluster), a first connection retried with backoff instead
//! of exiting, quick reconnects, and a frozen server noticed within seconds.

use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::ServerAddr;

/// How often the client pings the server; after two pings unanswered it reconnects (to
/// another node of a cluster when there is one). The default, 60 s, would leave natter
/// talking to a frozen server for two minutes.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// The longest pause between reconnection attempts. The client's default grows to 4 s, so
/// natter would notice a restarted server up to 4 s late; an attempt costs a refused TCP
/// connection, so a few per second is cheap.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(250);
/// The longest pause between attempts at the first connection.
const MAX_FIRST_DELAY: Duration = Duration::from_secs(5);

/// Parses `NATS_URL`: one server address or several separated by commas.
pub fn server_list(urls: &str) -> anyhow::Result<Vec<ServerAddr>> {
    let servers = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .with_context(|| format!("NATS_URL: {u:?} is not a NATS server address"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if servers.is_empty() {
        bail!("NATS_URL names no server");
    }
    Ok(servers)
}

fn options(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .ping_interval(PING_INTERVAL)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(reconnect_delay)
}

/// Connects once to a server of `urls` (for command-line tools, which fail rather than wait).
pub async fn connect_once(urls: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    options(name)
        .connect(server_list(urls)?)
        .await
        .with_context(|| format!("connecting to NATS at {urls}"))
}

/// Connects to the first server of `urls` that answers, retrying with backoff (each attempt
/// logged) until one does. `name` is the connection's name on the server (`natter-command`).
pub async fn connect(urls: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    let servers = server_list(urls)?;
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1u32;
    loop {
        match options(name).connect(servers.clone()).await {
            Ok(client) => {
                if attempt > 1 {
                    tracing::info!(attempt, "connected to NATS");
                }
                return Ok(client);
            }
            Err(e) => {
                tracing::warn!(
                    attempt,
                    servers = urls,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "NATS is not reachable yet; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_FIRST_DELAY);
                attempt += 1;
            }
        }
    }
}

/// The pause before reconnection attempt `attempts`: at once for the first, then growing to
/// [`MAX_RECONNECT_DELAY`], with jitter so that many instances do not reconnect in step.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let base = Duration::from_millis(25 * attempts as u64).min(MAX_RECONNECT_DELAY);
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_names_every_server() {
        let servers = server_list("nats://a:4222, nats://b:4223,c:4224").unwrap();
        assert_eq!(servers.len(), 3);
        assert!(server_list("").is_err());
        assert!(server_list("nats://a:4222,::bad::").is_err());
    }

    #[test]
    fn reconnects_start_at_once_and_stay_under_the_cap_with_jitter() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        for attempts in 2..100 {
            assert!(reconnect_delay(attempts) <= MAX_RECONNECT_DELAY * 5 / 4);
        }
    }
}
