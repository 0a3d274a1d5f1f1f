//! Who is online, across gateways. Presence travels on core NATS (`{prefix}.live.presence`,
//! never stored): a gateway announces a user online when their first local connection opens
//! and offline when their last one closes, and every [`BEAT`] re-announces all its users. A
//! user is online while some gateway's announcement is fresher than [`STALE`], so a gateway
//! that dies without a word takes its users offline within that bound.
//!
//! The gateway announces and also tells its sockets who came and went; the queries read
//! [`Presence::is_online`] for members' `online`. A process that runs the queries without a
//! gateway follows the announcements on its own ([`Presence::follow`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use natter_events::Subjects;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How often a gateway re-announces its online users.
pub const BEAT: Duration = Duration::from_secs(10);
/// How long an announcement keeps a user online.
pub const STALE: Duration = Duration::from_secs(30);
/// How often announcements older than [`STALE`] are dropped.
pub const EXPIRY: Duration = Duration::from_secs(2);

/// One gateway's announcement.
#[derive(Debug, Serialize, Deserialize)]
pub struct PresenceNews {
    /// Which gateway speaks (one per process).
    pub instance: Uuid,
    #[serde(default)]
    pub online: Vec<Uuid>,
    #[serde(default)]
    pub offline: Vec<Uuid>,
}

/// The subject announcements travel on.
pub fn subject(subjects: &Subjects) -> String {
    subjects.live("presence")
}

/// A user who came online (`true`) or went offline (`false`).
pub type Change = (Uuid, bool);

/// Who is online, as the announcements heard so far say.
#[derive(Default)]
pub struct Presence {
    /// Per user, the gateways that announced them, and when.
    seen: Mutex<HashMap<Uuid, HashMap<Uuid, Instant>>>,
}

fn fresh(by: &HashMap<Uuid, Instant>) -> bool {
    by.values().any(|t| t.elapsed() < STALE)
}

impl Presence {
    pub fn is_online(&self, user: Uuid) -> bool {
        self.seen
            .lock()
            .expect("presence lock")
            .get(&user)
            .is_some_and(fresh)
    }

    /// Takes in an announcement; answers whose presence it changed.
    pub fn heard(&self, news: PresenceNews) -> Vec<Change> {
        let mut changed = Vec::new();
        let mut seen = self.seen.lock().expect("presence lock");
        let now = Instant::now();
        for user in news.online {
            let by = seen.entry(user).or_default();
            let was = fresh(by);
            by.insert(news.instance, now);
            if !was {
                changed.push((user, true));
            }
        }
        for user in news.offline {
            if let Some(by) = seen.get_mut(&user) {
                let was = fresh(by);
                by.remove(&news.instance);
                let is = fresh(by);
                if by.is_empty() {
                    seen.remove(&user);
                }
                if was && !is {
                    changed.push((user, false));
                }
            }
        }
        changed
    }

    /// Drops announcements older than [`STALE`]; answers who went offline by it.
    pub fn expire(&self) -> Vec<Change> {
        let mut changed = Vec::new();
        let mut seen = self.seen.lock().expect("presence lock");
        seen.retain(|user, by| {
            let was = !by.is_empty();
            by.retain(|_, t| t.elapsed() < STALE);
            if was && by.is_empty() {
                changed.push((*user, false));
            }
            !by.is_empty()
        });
        changed
    }

    /// Follows the announcements on a subscription of its own, for a process that runs no
    /// gateway (a gateway hears them on its one subscription to `{prefix}.live.>`).
    pub async fn follow(
        nats: async_nats::Client,
        subjects: &Subjects,
    ) -> anyhow::Result<(Arc<Presence>, tokio::task::JoinHandle<()>)> {
        let presence = Arc::new(Presence::default());
        let mut subscription = nats.subscribe(subject(subjects)).await?;
        let task = {
            let presence = presence.clone();
            tokio::spawn(async move {
                let mut expire = tokio::time::interval(EXPIRY);
                loop {
                    tokio::select! {
                        message = subscription.next() => match message {
                            Some(m) => {
                                if let Ok(news) = serde_json::from_slice(&m.payload) {
                                    presence.heard(news);
                                }
                            }
                            None => return,
                        },
                        _ = expire.tick() => {
                            presence.expire();
                        }
                    }
                }
            })
        };
        Ok((presence, task))
    }
}
