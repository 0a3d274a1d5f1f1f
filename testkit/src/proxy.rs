//! A small TCP proxy a test puts between natter and a shared server (Postgres), so it can cut
//! the connection without stopping the server other tests use.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the way through is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Open: bytes flow.
    Open,
    /// As if the server were down: every connection is closed, new ones as soon as they are
    /// accepted.
    Refuse,
    /// As if the network dropped every packet: connections stay open and nothing arrives
    /// either way; new ones are accepted and never answered.
    Blackhole,
}

/// Forwards `127.0.0.1:{port}` to an upstream address until dropped; a test cuts it with
/// [`TcpProxy::set`].
pub struct TcpProxy {
    pub port: u16,
    cut: Arc<watch::Sender<Cut>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(upstream: &str) -> TcpProxy {
        let upstream = upstream.to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("an address").port();
        let cut = Arc::new(watch::Sender::new(Cut::Open));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let cut_rx = cut.subscribe();
        // A runtime of its own, so the proxy outlives whatever runtime the test uses.
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                tokio::select! {
                    () = accept(listener, upstream, cut_rx) => {}
                    _ = stopped => {}
                }
            });
        });
        TcpProxy {
            port,
            cut,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Cuts the way through, or restores it ([`Cut::Open`]).
    pub fn set(&self, cut: Cut) {
        self.cut.send_replace(cut);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, upstream: String, cut: watch::Receiver<Cut>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let mut cut = cut.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let now = *cut.borrow();
            match now {
                Cut::Refuse => return,
                // Held, silent, until the way opens again (then closed: the peer has long
                // given up on it).
                Cut::Blackhole => {
                    let _held = client;
                    let _ = cut.wait_for(|c| *c != Cut::Blackhole).await.map(|c| *c);
                    return;
                }
                Cut::Open => {}
            }
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            // Forward until cut; a blackhole stops forwarding but keeps both sockets open.
            let forward = async {
                tokio::select! {
                    _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                    _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                }
            };
            let broken = async {
                let _ = cut.wait_for(|c| *c != Cut::Open).await.map(|c| *c);
            };
            tokio::select! {
                () = forward => return,
                () = broken => {}
            }
            let blackhole = *cut.borrow() == Cut::Blackhole;
            if blackhole {
                let _ = cut.wait_for(|c| *c != Cut::Blackhole).await.map(|c| *c);
            }
        });
    }
}
