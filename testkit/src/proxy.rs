//! A small TCP proxy a test puts between natter and a shared server (Postgres), so it can cut
//! the connection without stopping the server other tests use.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:{port}` to an upstream address until dropped. While cut, every
/// connection through it is closed and new ones are closed as soon as they are accepted,
/// as if the server were down.
pub struct TcpProxy {
    pub port: u16,
    cut: Arc<watch::Sender<bool>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(upstream: &str) -> TcpProxy {
        let upstream = upstream.to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("an address").port();
        let cut = Arc::new(watch::Sender::new(false));
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

    /// Cuts (`true`) or restores (`false`) the way through.
    pub fn set_cut(&self, cut: bool) {
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

async fn accept(listener: TcpListener, upstream: String, cut: watch::Receiver<bool>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(client);
            continue;
        }
        let upstream = upstream.clone();
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.wait_for(|c| *c) => {}
            }
        });
    }
}
