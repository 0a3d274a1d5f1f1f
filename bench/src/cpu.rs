//! CPU time spent by the processes of a run, read from `/proc` around a phase: natter (the
//! bench's child), nats-server and Postgres (every process of that name on the machine; an
//! idle one adds next to nothing, but a busy neighbour would be counted: run the bench on a
//! quiet machine).

use std::time::Duration;

/// CPU time per part, at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub natter: Duration,
    pub nats: Duration,
    pub postgres: Duration,
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux in practice).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `utime + stime` of one process, in ticks (`None` if it is gone).
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Process ids whose command name is `name`.
fn named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// The CPU time natter (`natter_pid`), nats-server and Postgres have spent so far.
pub fn sample(natter_pid: Option<u32>) -> Sample {
    let per_tick = Duration::from_secs(1) / ticks_per_second() as u32;
    let sum = |pids: Vec<u32>| per_tick * pids.into_iter().filter_map(ticks).sum::<u64>() as u32;
    Sample {
        natter: natter_pid
            .and_then(ticks)
            .map_or(Duration::ZERO, |t| per_tick * t as u32),
        nats: sum(named("nats-server")),
        postgres: sum(named("postgres")),
    }
}

impl Sample {
    /// What was spent between `self` and `later`.
    pub fn until(self, later: Sample) -> Sample {
        Sample {
            natter: later.natter.saturating_sub(self.natter),
            nats: later.nats.saturating_sub(self.nats),
            postgres: later.postgres.saturating_sub(self.postgres),
        }
    }
}
