//! `natter serve` as a child process, as operators run it: a port of its own (kept across
//! restarts, so clients reconnect to the same address), its log kept for assertion messages.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Isolation;

/// One `natter serve` process.
pub struct NatterProcess {
    binary: PathBuf,
    role: String,
    env: Vec<(String, String)>,
    pub port: u16,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatterProcess {
    /// The environment a test's natter gets: its stream, prefix and database, no rate limit.
    pub fn env_for(
        isolation: &Isolation,
        nats_url: &str,
        database_url: &str,
    ) -> Vec<(String, String)> {
        [
            ("NATS_URL", nats_url),
            ("DATABASE_URL", database_url),
            ("NATTER_STREAM", &isolation.stream),
            ("NATTER_SUBJECT_PREFIX", &isolation.prefix),
            ("NATTER_SEND_RATE_LIMIT", "off"),
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Starts `binary serve --role role` with `env` on a free port and waits until it
    /// listens (it may wait for NATS first, so this waits up to a minute).
    pub fn start(
        binary: impl Into<PathBuf>,
        role: &str,
        env: Vec<(String, String)>,
    ) -> NatterProcess {
        let mut process = Self::start_in_background(binary, role, env);
        process.wait_listening(Duration::from_secs(60));
        process
    }

    /// Starts the process without waiting for it to listen (it may be waiting for NATS).
    pub fn start_in_background(
        binary: impl Into<PathBuf>,
        role: &str,
        env: Vec<(String, String)>,
    ) -> NatterProcess {
        let mut process = NatterProcess {
            binary: binary.into(),
            role: role.to_string(),
            env,
            port: crate::nats::free_port(),
            child: None,
            log: Arc::default(),
        };
        process.spawn();
        process
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) {
        self.spawn();
        self.wait_listening(Duration::from_secs(60));
    }

    /// Starts the process without waiting for it to listen.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "natter is already running");
        let mut child = Command::new(&self.binary)
            .args(["serve", "--role", &self.role])
            .env("NATTER_HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("natter starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push(line);
                if log.len() > 2000 {
                    log.drain(..1000);
                }
            }
        });
        self.child = Some(child);
    }

    /// Waits until the process accepts connections.
    pub fn wait_listening(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !crate::nats::port_open(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("natter exited with {status}: {}", self.log_tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "natter did not listen: {}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What its `/readyz` answers (status and body), or `None` while nothing answers.
    pub async fn readyz(&self) -> Option<(u16, serde_json::Value)> {
        readyz(&self.base()).await
    }

    /// Kills the process as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and returns how it exited.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("natter did not stop on SIGTERM: {}", self.log_tail(20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The last `n` lines it logged.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Every line it logged so far (the last 1,000-2,000).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NatterProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `{base}/readyz` answers (status and body), or `None` while nothing answers there.
pub async fn readyz(base: &str) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}
