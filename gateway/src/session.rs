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

use crate::Gateway;
use crate::conn::{Conn, SEND_BUFFER};
use crate::ops::{Followed, WriteLane, error_frame, handle};
use crate::protocol::{self, CLOSE_UNAUTHORIZED, ClientOp, FrameError};

/// Largest client frame accepted (bigger ones get an error frame).
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// Rooms one connection may follow at once.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// `send` and `read` ops of one connection running at once.
const MAX_OPS_IN_FLIGHT: usize = 64;
/// How often a connection checks whether its token was revoked.
const REVOCATION_CHECK: Duration = Duration::from_millis(500);
/// The server pings this often; a connection silent for three times as long is closed.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the client to take the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

/// How long a connection opened without a token has to send its `auth` frame.
const AUTH_WAIT: Duration = Duration::from_secs(10);

/// `GET /api/v1/ws`. The token comes in `Authorization: Bearer`, in `?token=`, or (so that it
/// appears in no URL, log or browser console) in the connection's first frame,
/// `{"op": "auth", "token": ...}`. A refused token is answered as a websocket can be heard:
/// the upgrade succeeds and the connection closes with 4001 and the reason, so that a client
/// knows to get a new token (a browser sees a refused upgrade only as 1006). A request that
/// is not an upgrade gets the REST answer: 401 without a valid token, else 400.
#[utoipa::path(get, path = "/ws", tag = "websocket", operation_id = "openWebsocket", summary = "Open the websocket of room events", params(("token" = Option<String>, Query, description = "the login token, for clients that cannot set `Authorization`; better sent in the first frame (`{\"op\": \"auth\", \"token\": ...}`), where no URL or log shows it")), responses((status = 101, description = "a websocket of room events; its protocol is described in AsyncAPI at `/api/v1/asyncapi.json`. A refused token closes it with 4001"), (status = 400, description = "not a websocket upgrade", body = natter_edge::error::ErrorBody), (status = 401, description = "not a websocket upgrade, and no valid token", body = natter_edge::error::ErrorBody)), security((), ("login_token" = [])))]
pub async fn upgrade(
    State(gateway): State<Gateway>,
    Query(param): Query<TokenParam>,
    parts: Parts,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = bearer_token(&parts).map(str::to_string).or(param.token);
    let auth = match token {
        Some(token) => Some(authorize(&gateway.keys, token).await),
        None => None,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return match auth {
                None => ApiError::unauthorized(
                    "a token is required (Authorization: Bearer, ?token= or the first frame)",
                )
                .into_response(),
                Some(Err(refused)) => refused.into_response(),
                Some(Ok(_)) => {
                    ApiError::bad_request(format!("not a websocket upgrade: {e}")).into_response()
                }
            };
        }
    };
    let keys = gateway.keys.clone();
    ws.read_buffer_size(512)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(1024 * 1024)
        .on_upgrade(move |socket| {
            // Split here: an async fn keeps its arguments' room for its whole life, and the
            // socket is big.
            let (sink, stream) = socket.split();
            authenticated(gateway, keys, auth, sink, stream)
        })
}

/// A login token's claims, or why it is refused: invalid, expired, revoked, or an API token
/// (a websocket is a user's; an API token acts for no user).
async fn authorize(keys: &JwtKeys, token: String) -> Result<(Claims, String), ApiError> {
    let caller = keys.authenticate(&token).await?;
    if caller.user().is_none() {
        return Err(ApiError::forbidden(
            "a websocket is a user's; an API token acts for no user",
        ));
    }
    let claims = keys.verify(&token)?;
    Ok((claims, token))
}

/// The close a refused token gets: 4001 (get a new token) with the reason, or, when it could
/// not be checked for now, 1013 (try again later).
fn refusal_close(refused: &ApiError) -> CloseFrame {
    let code = if refused.status.is_server_error() {
        1013
    } else {
        CLOSE_UNAUTHORIZED
    };
    // A close reason holds at most 123 bytes.
    let mut reason = refused.message.clone();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }
}

/// Runs the session once the connection is known to be a user's: at once when the upgrade
/// carried a token, else after its first frame; a refusal closes it with the reason.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see `session`)"
)]
fn authenticated(
    gateway: Gateway,
    keys: Arc<JwtKeys>,
    auth: Option<Result<(Claims, String), ApiError>>,
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
) -> impl Future<Output = ()> + use<> {
    async move {
        let auth = match auth {
            Some(auth) => auth,
            None => match tokio::time::timeout(AUTH_WAIT, first_text(&mut stream)).await {
                Ok(Some(text)) => match protocol::parse(&text) {
                    Ok(ClientOp::Auth { token }) => authorize(&keys, token).await,
                    _ => Err(ApiError::unauthorized(
                        "authenticate first: {\"op\": \"auth\", \"token\": ...}",
                    )),
                },
                Ok(None) => return,
                Err(_) => Err(ApiError::unauthorized(
                    "no token: send {\"op\": \"auth\", \"token\": ...} first",
                )),
            },
        };
        match auth {
            Ok((claims, token)) => {
                Box::pin(session(gateway, keys, claims, token, sink, stream)).await;
            }
            Err(refused) => {
                let close = Message::Close(Some(refusal_close(&refused)));
                let _ = tokio::time::timeout(Duration::from_secs(5), sink.send(close)).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            }
        }
    }
}

/// The connection's first text frame (pings and pongs pass); `None` once it closes.
async fn first_text(stream: &mut SplitStream<WebSocket>) -> Option<String> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Binary(_)) => return Some(String::new()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
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
        Box::pin(gateway.ephemeral.connected(conn.user)).await;

        let rooms: Arc<Mutex<Followed>> = Arc::default();
        let lane = WriteLane {
            token: Arc::from(token),
            in_flight: Arc::new(Semaphore::new(MAX_OPS_IN_FLIGHT)),
            sends: Default::default(),
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
                            Box::pin(handle(&gateway, &conn, &rooms, &pending, &lane, text.as_str())).await;
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
        Box::pin(gateway.ephemeral.disconnected(conn.user)).await;
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
