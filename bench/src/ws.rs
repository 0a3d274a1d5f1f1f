//! A minimal websocket client for the bench's load.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

pub struct Client {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Client {
    pub async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Client> {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?token={token}"))
                .await?;
        Ok(Client { socket })
    }

    pub async fn subscribe(&mut self, room: Uuid, since: Option<u64>) -> anyhow::Result<()> {
        let mut op = json!({ "op": "subscribe", "room_id": room });
        if let Some(s) = since {
            op["since"] = json!(s);
        }
        self.socket
            .send(Message::Text(op.to_string().into()))
            .await?;
        Ok(())
    }

    /// Connects from the loopback address `source` (so that many connections do not run
    /// out of ephemeral ports on one source address).
    pub async fn connect_from(
        addr: SocketAddr,
        source: std::net::IpAddr,
        token: &str,
    ) -> anyhow::Result<Client> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let (socket, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}/api/v1/ws?token={token}"),
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await?;
        Ok(Client { socket })
    }

    /// Sends one op.
    pub async fn send(&mut self, op: &Value) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(op.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next text frame, parsed.
    pub async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(f))) => anyhow::bail!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the connection ended"),
            }
        }
    }

    /// Reads frames until `subscribed`; returns how many events came before it.
    pub async fn until_subscribed(&mut self) -> anyhow::Result<u64> {
        let mut events = 0;
        loop {
            let frame = self.next().await?;
            match frame["type"].as_str() {
                Some("subscribed") => return Ok(events),
                Some("event") => events += 1,
                Some("error") => anyhow::bail!("subscribe refused: {frame}"),
                _ => {}
            }
        }
    }
}
