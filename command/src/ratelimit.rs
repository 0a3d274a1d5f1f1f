//! The per-user, per-room send rate limit (`NATTER_SEND_RATE_LIMIT`, e.g. `10/10s`), and the
//! reaction limit derived from it: [`REACTIONS_PER_MESSAGE`] times as many reactions (added or
//! taken back) in the same window, in a bucket of their own, so a client toggling an emoji
//! cannot flood a room's sockets, nor spend its user's message allowance.
//!
//! The limit is kept per command instance: behind a load balancer that spreads one user's
//! sends over N instances, a user may reach up to N times the rate.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// `N/<duration>` (`10/10s`, `100/1m`, `1000/1h`), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("rate limit {s:?} must look like 10/10s, 100/1m or 1000/1h, or be off");
        let (count, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let (digits, unit) = window.split_at(
            window
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(window.len()),
        );
        let n: u64 = if digits.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| bad())?
        };
        let secs = match unit {
            "s" | "" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return Err(bad()),
        };
        if secs == 0 {
            return Err(bad());
        }
        Ok(RateSpec {
            count,
            per: Duration::from_secs(secs),
        })
    }
}

/// Parses `NATTER_SEND_RATE_LIMIT`: `None` when it is `off`.
pub fn parse_limit(s: &str) -> Result<Option<RateSpec>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// How many reactions a user may make in a room for each message the send limit allows.
pub const REACTIONS_PER_MESSAGE: u32 = 3;

/// Token buckets per (user, room), one for messages and one for reactions: a burst of
/// `count` (reactions: [`REACTIONS_PER_MESSAGE`] times that), refilled evenly over `per`.
pub struct SendLimiter {
    messages: DefaultKeyedRateLimiter<(Uuid, Uuid)>,
    reactions: DefaultKeyedRateLimiter<(Uuid, Uuid)>,
}

fn bucket(count: NonZeroU32, per: Duration) -> DefaultKeyedRateLimiter<(Uuid, Uuid)> {
    let period = per / count.get();
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("non-zero period")
        .allow_burst(count);
    RateLimiter::keyed(quota)
}

fn wait(limiter: &DefaultKeyedRateLimiter<(Uuid, Uuid)>, key: (Uuid, Uuid)) -> Result<(), u64> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

impl SendLimiter {
    pub fn new(spec: RateSpec) -> Self {
        let reactions = spec
            .count
            .saturating_mul(NonZeroU32::new(REACTIONS_PER_MESSAGE).expect("a non-zero multiple"));
        SendLimiter {
            messages: bucket(spec.count, spec.per),
            reactions: bucket(reactions, spec.per),
        }
    }

    /// `Err(seconds to wait)` when `user` has sent too much to `room`.
    pub fn check(&self, user: Uuid, room: Uuid) -> Result<(), u64> {
        wait(&self.messages, (user, room))
    }

    /// `Err(seconds to wait)` when `user` has reacted too much in `room`.
    pub fn check_reaction(&self, user: Uuid, room: Uuid) -> Result<(), u64> {
        wait(&self.reactions, (user, room))
    }

    /// Forgets buckets that are full again, so memory follows active senders only.
    pub fn forget_idle(&self) {
        for limiter in [&self.messages, &self.reactions] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(parse_limit("off"), Ok(None));
        let spec = parse_limit("10/10s").unwrap().unwrap();
        assert_eq!((spec.count.get(), spec.per), (10, Duration::from_secs(10)));
        assert_eq!(
            parse_limit("5/m").unwrap().unwrap().per,
            Duration::from_secs(60)
        );
        for bad in ["", "10", "0/1s", "a/1s", "10/0s", "10/3d"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_with_a_wait() {
        let limiter = SendLimiter::new("3/30s".parse().unwrap());
        let (u, r) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(limiter.check(u, r), Ok(()));
        }
        let wait = limiter.check(u, r).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        // Other rooms and other users have their own buckets.
        assert_eq!(limiter.check(u, Uuid::new_v4()), Ok(()));
        assert_eq!(limiter.check(Uuid::new_v4(), r), Ok(()));
    }
}
