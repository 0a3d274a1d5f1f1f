//! A lean HTTP/1.1 client connection for the throughput scenarios. The load generator shares
//! the two cores with natter, NATS and Postgres, so it should cost as little as it can: one
//! kept-alive connection per request in flight, the body encoded once, the header values built
//! once, no pool and no per-request URL parsing.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What every request of a connection carries.
#[derive(Clone)]
pub struct Fixed {
    host: HeaderValue,
    authorization: HeaderValue,
    json: HeaderValue,
}

impl Fixed {
    pub fn new(addr: SocketAddr, token: &str) -> anyhow::Result<Fixed> {
        Ok(Fixed {
            host: HeaderValue::from_str(&addr.to_string())?,
            authorization: HeaderValue::from_str(&format!("Bearer {token}"))?,
            json: HeaderValue::from_static("application/json"),
        })
    }
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    fixed: Fixed,
}

impl Connection {
    pub async fn open(addr: SocketAddr, fixed: Fixed) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender, fixed })
    }

    /// POSTs `body` (JSON) to `uri` (a path) and returns the status once the whole response
    /// has been read.
    pub async fn post(&mut self, uri: Uri, body: Bytes) -> anyhow::Result<u16> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.fixed.host.clone());
        headers.insert(AUTHORIZATION, self.fixed.authorization.clone());
        headers.insert(CONTENT_TYPE, self.fixed.json.clone());
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}
