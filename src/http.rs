//! The HTTP server loop of `natter serve`: axum's router on hyper, with what `axum::serve`
//! does not offer: a deadline on request headers, and a `408 timeout` in the contract's JSON
//! for a client whose headers are still incomplete when it passes.
//!
//! hyper closes a connection whose headers do not arrive within the deadline (an idle
//! keep-alive connection is closed the same way, silently); it cannot answer, because no
//! request exists yet. So the socket is shared with the connection task, which writes the
//! `408` itself when the client had sent part of a request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

const TIMEOUT_BODY: &str =
    r#"{"error":{"code":"timeout","message":"the request did not arrive in time"}}"#;

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small frames (websocket events, acks) must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            tcp: Arc::new(tcp),
            partial: Arc::new(AtomicBool::new(false)),
        };
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let _done = done;
            let socket = connection.clone();
            let service = TowerToHyperService::new(
                app.map_request(|r: axum::http::Request<Incoming>| r.map(Body::new)),
            );
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(connection), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                let timed_out = e
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
                if timed_out && socket.partial.load(Ordering::Relaxed) {
                    socket.answer_timeout().await;
                }
            }
        });
    }
    stop_tx.send_replace(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
    Ok(())
}

/// A connection's socket, shared between hyper and its task. `partial` is set while the
/// client has sent bytes that no response has followed yet (a request under way).
#[derive(Clone)]
struct Connection {
    tcp: Arc<TcpStream>,
    partial: Arc<AtomicBool>,
}

impl Connection {
    /// Writes a `408` and closes (best effort: the client may be gone).
    async fn answer_timeout(&self) {
        let response = format!(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{TIMEOUT_BODY}",
            TIMEOUT_BODY.len()
        );
        let mut written = 0;
        let bytes = response.as_bytes();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while written < bytes.len() && tokio::time::Instant::now() < deadline {
            if tokio::time::timeout_at(deadline, self.tcp.writable())
                .await
                .is_err()
            {
                return;
            }
            match self.tcp.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
        let _ = socket2::SockRef::from(&*self.tcp).shutdown(std::net::Shutdown::Write);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.tcp.poll_read_ready(cx))?;
            // Into the buffer's unfilled part as it is (no zeroing first).
            match self.tcp.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 {
                        self.partial.store(true, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Connection {
    /// Writes with `write` once the socket is writable. A response is going out: what the
    /// client sent so far was a whole request.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.partial.store(false, Ordering::Relaxed);
        loop {
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
            match write(&self.tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.tcp).shutdown(std::net::Shutdown::Write))
    }
}
