//! One websocket connection: authentication at the upgrade, client ops, a writer draining a
//! bounded queue, heartbeats, and the close codes of the contract.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use natter_edge::auth::bearer_token;
use natter_edge::{ApiError, Claims, JwtKeys};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

use super::Gateway;
use super::conn::{Conn, SEND_BUFFER};
use super::ops::{Followed, Ops, error_frame, handle};
use super::protocol::{CLOSE_UNAUTHORIZED, FrameError};
use crate::QueryState;

/// Largest client frame accepted (bigger ones get an error frame).
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// Rooms one connection may follow at once.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// The server pings this often; a connection silent for three times as long is closed.
/// `send` and `read` ops of one connection running at once.
const MAX_OPS_IN_FLIGHT: usize = 64;
/// How often a connection checks whether its token was revoked.
const REVOCATION_CHECK: Duration = Duration::from_millis(500);
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the client to take the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

/// `GET /api/v1/ws`: the token comes in `Authorization: Bearer` or `?token=`; without a valid
/// one the upgrade is refused with 401.
#[utoipa::path(get, path = "/ws", tag = "websocket", params(("token" = Option<String>, Query, description = "the login token, for clients that cannot set `Authorization` (browsers)")), responses((status = 101, description = "a websocket of room events; its protocol is described in AsyncAPI at `/api/v1/asyncapi.json`"), (status = 400, description = "not a websocket upgrade", body = natter_edge::error::ErrorBody)), security(("login_token" = [])))]
pub async fn upgrade(
    State(state): State<QueryState>,
    Query(param): Query<TokenParam>,
    parts: Parts,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = bearer_token(&parts).map(str::to_string).or(param.token);
    let Some(token_text) = token.as_deref() else {
        return ApiError::unauthorized("a token is required (Authorization: Bearer or ?token=)")
            .into_response();
    };
    // A websocket is a user's: an API token (for no user) is refused once known valid.
    if let Err(e) = state
        .keys
        .authenticate(token_text)
        .await
        .and_then(|caller| {
            caller.user().map(|_| ()).ok_or_else(|| {
                ApiError::forbidden("a websocket is a user's; an API token acts for no user")
            })
        })
    {
        return e.into_response();
    }
    let claims = match state.keys.verify(token_text) {
        Ok(claims) => claims,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::bad_request(format!("not a websocket upgrade: {e}")).into_response();
        }
    };
    let gateway = state.gateway.clone();
    let keys = state.keys.clone();
    ws.read_buffer_size(512)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(1024 * 1024)
        .on_upgrade(move |socket| {
            // Split here: an async fn keeps its arguments' room for its whole life, and the
            // socket is big.
            let (sink, stream) = socket.split();
            session(
                gateway,
                keys,
                claims,
                token.unwrap_or_default(),
                sink,
                stream,
            )
        })
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see the body)"
)]
fn session(
    gateway: Gateway,
    keys: Arc<JwtKeys>,
    claims: Claims,
    token: String,
    sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
) -> impl Future<Output = ()> + use<> {
    // A block, not an `async fn`: an async fn moves its arguments into locals and keeps
    // room for both for its whole life, and this future is held by every connection.
    async move {
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        let conn = Conn::new(gateway.hub.next_conn_id(), claims.sub, &claims.username, tx);
        let (close_tx, close_rx) = watch::channel(None::<(u16, &'static str)>);
        let writer = tokio::spawn(writer(sink, rx, conn.clone(), close_rx));
        gateway.hub.connected(&conn);
        // Presence publishes are boxed, as ops are below: the session's future is held by every
        // idle connection, and would otherwise be as big as its largest await.
        Box::pin(gateway.live.connected(conn.user)).await;

        let rooms: Arc<Mutex<Followed>> = Arc::default();
        let ops = Ops {
            token: Arc::from(token),
            in_flight: Arc::new(Semaphore::new(MAX_OPS_IN_FLIGHT)),
            sends: Arc::default(),
        };
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let expires_at = tokio::time::Instant::now()
            + Duration::from_secs(
                u64::try_from(claims.exp - chrono::Utc::now().timestamp()).unwrap_or(0),
            );
        // One timer per connection (each is memory and wake-ups, times every idle socket): it
        // closes the connection within a moment of its token expiring, of a password change
        // revoking that token (as every request with it is then refused: 4001), or of going
        // three heartbeats without a frame from the client.
        let mut check = tokio::time::interval(REVOCATION_CHECK);
        let mut last_heard = tokio::time::Instant::now();
        let close: Option<(u16, &'static str)> = loop {
            tokio::select! {
                message = stream.next() => {
                    last_heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            Box::pin(handle(&gateway, &conn, &rooms, &pending, &ops, text.as_str())).await;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            conn.offer(error_frame(&FrameError::new("bad_request", "frames are JSON text")));
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => break None,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read failed");
                            break None;
                        }
                    }
                }
                _ = conn.kill.killed() => break conn.kill.reason(),
                now = check.tick() => {
                    if now >= expires_at {
                        break Some((CLOSE_UNAUTHORIZED, "token expired"));
                    }
                    if keys.credentials().refuses(claims.sub, claims.issued_at_ms()) {
                        break Some((CLOSE_UNAUTHORIZED, "token revoked: the password changed"));
                    }
                    if now.duration_since(last_heard) > HEARTBEAT * 3 {
                        break Some((1001, "idle"));
                    }
                }
            }
        };
        if let Some(reason) = close {
            let _ = close_tx.send(Some(reason));
        }
        drop(close_tx);
        let followed: Vec<Uuid> = {
            let mut rooms = rooms.lock().expect("rooms lock");
            rooms.ended = true;
            rooms.ids.iter().copied().collect()
        };
        gateway.hub.disconnected(&conn, &followed);
        Box::pin(gateway.live.disconnected(conn.user)).await;
        let _ = writer.await;
    }
}

/// Drains the connection's queue into the socket. On a close request (or when the hub found
/// the queue full) it stops taking frames and sends the close frame, waiting a bounded time
/// for a slow client to take it.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see `session`)"
)]
fn writer(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    conn: Conn,
    mut close: watch::Receiver<Option<(u16, &'static str)>>,
) -> impl Future<Output = ()> + use<> {
    async move {
        let mut ping = tokio::time::interval(HEARTBEAT);
        ping.tick().await;
        loop {
            let first = tokio::select! {
                biased;
                _ = close.changed() => break,
                _ = conn.kill.killed() => break,
                frame = rx.recv() => match frame {
                    Some(text) => {
                        conn.queued.written(text.len());
                        Message::Text(text)
                    }
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Default::default()),
            };
            // Whatever else is already queued goes out with it, in one flush (one write) rather
            // than one per frame: fan-out and replays queue many frames at once.
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(text) => {
                        conn.queued.written(text.len());
                        batch.push(Message::Text(text));
                    }
                    Err(_) => break,
                }
            }
            let send_all = async {
                for message in batch {
                    sink.feed(message).await?;
                }
                sink.flush().await
            };
            tokio::select! {
                sent = send_all => if sent.is_err() { return },
                _ = close.changed() => break,
                _ = conn.kill.killed() => break,
            }
        }
        let reason = *close.borrow();
        let reason = reason.or(conn.kill.reason());
        if let Some((code, why)) = reason {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(why),
            }));
            // A stalled client may take a while to read its way to the close frame; nothing else
            // is queued meanwhile, so waiting costs no memory.
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(frame)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }
}
