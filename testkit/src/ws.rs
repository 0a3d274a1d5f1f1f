//! A websocket client of the gateway as an app would hold one: JSON frames in and out, with
//! bounded waits so a test fails instead of hanging.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

/// A websocket client as an app would hold one.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    pub async fn connect(addr: std::net::SocketAddr, token: &str) -> Ws {
        let (socket, response) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?token={token}"))
                .await
                .expect("the upgrade succeeds");
        assert_eq!(response.status(), 101);
        Ws { socket }
    }

    /// A socket opened at `url` (which may carry no token, or a bad one): the upgrade
    /// succeeds whatever the token, as natter answers a refused one with a close frame.
    pub async fn open(url: &str) -> Ws {
        let (socket, response) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the upgrade succeeds");
        assert_eq!(response.status(), 101);
        Ws { socket }
    }

    /// A socket opened with no token in the URL, authenticated by its first frame.
    pub async fn connect_by_first_frame(addr: std::net::SocketAddr, token: &str) -> Ws {
        let mut ws = Ws::open(&format!("ws://{addr}/api/v1/ws")).await;
        ws.send(json!({ "op": "auth", "token": token })).await;
        ws
    }

    /// A client whose socket takes little at a time (a 16 KiB receive buffer): while it does
    /// not read, a server sending to it soon has to queue, and then to wait or to cut it.
    pub async fn connect_with_a_small_window(addr: std::net::SocketAddr, token: &str) -> Ws {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(16 * 1024)
            .expect("a receive buffer size");
        let tcp = socket.connect(addr).await.expect("the server accepts");
        let url = format!("ws://{addr}/api/v1/ws?token={token}");
        let (socket, response) =
            tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
                .await
                .expect("the upgrade succeeds");
        assert_eq!(response.status(), 101);
        Ws { socket }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    /// The next JSON frame (pings and pongs skipped); panics after 10 s of silence.
    pub async fn next(&mut self) -> Value {
        self.try_next(Duration::from_secs(10))
            .await
            .expect("a frame within 10 s")
    }

    /// The next JSON frame within `wait`, if any.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match message.expect("a websocket frame") {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("JSON frames"));
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Frames until one matches `done` (included).
    pub async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let stop = done(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        self.close_frame().await.map(|(code, _)| code)
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await
        {
            match message {
                Ok(Message::Close(frame)) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    pub async fn subscribe(&mut self, room: Uuid, since: Option<u64>) {
        let mut op = json!({ "op": "subscribe", "room_id": room });
        if let Some(s) = since {
            op["since"] = json!(s);
        }
        self.send(op).await;
    }
}
