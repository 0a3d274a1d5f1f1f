//! Ephemeral traffic on core NATS under `{prefix}.live.>` (never stored): typing, media
//! signals and presence. Each gateway instance holds ONE wildcard subscription and routes to
//! its local connections. Presence itself (who is online, across gateways) is
//! [`natter_edge::presence`], which the queries read too; this module counts the local
//! connections, announces them, and tells the sockets who came and went.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use natter_edge::presence::{self, BEAT, EXPIRY, Presence, PresenceNews};
use natter_events::Subjects;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::hub::Hub;
use crate::protocol::{self, SignalKind};

#[derive(Debug, Serialize, Deserialize)]
struct RoomSignal {
    user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    typing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<SignalKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on: Option<bool>,
}

pub struct Ephemeral {
    nats: async_nats::Client,
    subjects: Subjects,
    hub: Arc<Hub>,
    /// Who is online across gateways (shared with the queries in this process).
    pub presence: Arc<Presence>,
    /// Local connections per user.
    local: Mutex<HashMap<Uuid, usize>>,
    instance: Uuid,
}

impl Ephemeral {
    pub async fn start(
        nats: async_nats::Client,
        subjects: Subjects,
        hub: Arc<Hub>,
    ) -> anyhow::Result<(Arc<Ephemeral>, tokio::task::JoinHandle<()>)> {
        let ephemeral = Arc::new(Ephemeral {
            nats,
            subjects,
            hub,
            presence: Arc::new(Presence::default()),
            local: Mutex::default(),
            instance: Uuid::new_v4(),
        });
        let mut subscription = ephemeral
            .nats
            .subscribe(ephemeral.subjects.live(">"))
            .await?;
        let task = {
            let ephemeral = ephemeral.clone();
            tokio::spawn(async move {
                let mut beat = tokio::time::interval(BEAT);
                let mut expire = tokio::time::interval(EXPIRY);
                loop {
                    tokio::select! {
                        message = subscription.next() => match message {
                            Some(m) => ephemeral.on_message(&m.subject, &m.payload),
                            None => return,
                        },
                        _ = beat.tick() => ephemeral.beat().await,
                        _ = expire.tick() => ephemeral.expire(),
                    }
                }
            })
        };
        Ok((ephemeral, task))
    }

    fn room_subject(&self, room: Uuid, what: &str) -> String {
        self.subjects.live(&format!("room.{room}.{what}"))
    }

    pub async fn typing(&self, room: Uuid, user: Uuid, typing: bool) {
        let news = RoomSignal {
            user_id: user,
            typing: Some(typing),
            signal: None,
            on: None,
        };
        self.publish(self.room_subject(room, "typing"), &news).await;
    }

    pub async fn signal(&self, room: Uuid, user: Uuid, signal: SignalKind, on: bool) {
        let news = RoomSignal {
            user_id: user,
            typing: None,
            signal: Some(signal),
            on: Some(on),
        };
        self.publish(self.room_subject(room, "signal"), &news).await;
    }

    /// A connection of `user` opened here.
    pub async fn connected(&self, user: Uuid) {
        let first = {
            let mut local = self.local.lock().expect("presence lock");
            let n = local.entry(user).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            let news = PresenceNews {
                instance: self.instance,
                online: vec![user],
                offline: vec![],
            };
            self.publish(presence::subject(&self.subjects), &news).await;
        }
    }

    /// A connection of `user` closed here.
    pub async fn disconnected(&self, user: Uuid) {
        let last = {
            let mut local = self.local.lock().expect("presence lock");
            match local.get_mut(&user) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    local.remove(&user);
                    true
                }
                None => false,
            }
        };
        if last {
            let news = PresenceNews {
                instance: self.instance,
                online: vec![],
                offline: vec![user],
            };
            self.publish(presence::subject(&self.subjects), &news).await;
        }
    }

    async fn publish(&self, subject: String, news: &impl Serialize) {
        let payload = serde_json::to_vec(news).expect("live news serializes");
        if let Err(e) = self.nats.publish(subject, payload.into()).await {
            tracing::warn!(error = %e, "could not publish live news");
        }
    }

    async fn beat(&self) {
        let online: Vec<Uuid> = self
            .local
            .lock()
            .expect("presence lock")
            .keys()
            .copied()
            .collect();
        if !online.is_empty() {
            let news = PresenceNews {
                instance: self.instance,
                online,
                offline: vec![],
            };
            self.publish(presence::subject(&self.subjects), &news).await;
        }
    }

    fn on_message(&self, subject: &str, payload: &[u8]) {
        let Some(rest) = subject.strip_prefix(&format!("{}.live.", self.subjects.prefix())) else {
            return;
        };
        if rest == "presence" {
            if let Ok(news) = serde_json::from_slice::<PresenceNews>(payload) {
                self.on_presence(news);
            }
            return;
        }
        let mut parts = rest.split('.');
        let (Some("room"), Some(room), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (Ok(room), Ok(news)) = (
            room.parse::<Uuid>(),
            serde_json::from_slice::<RoomSignal>(payload),
        ) else {
            return;
        };
        let frame = match (what, news.typing, news.signal, news.on) {
            ("typing", Some(typing), _, _) => protocol::typing(room, news.user_id, typing),
            ("signal", _, Some(signal), Some(on)) => {
                protocol::signal(room, news.user_id, signal, on)
            }
            _ => return,
        };
        let frame = Utf8Bytes::from(frame);
        // To the room's other subscribed members.
        for conn in self
            .hub
            .subscribers(room)
            .iter()
            .filter(|c| c.user != news.user_id)
        {
            conn.offer(frame.clone());
        }
    }

    fn on_presence(&self, news: PresenceNews) {
        self.announce(self.presence.heard(news));
    }

    fn expire(&self) {
        self.announce(self.presence.expire());
    }

    /// Presence frames to the connections watching a room the user is a member of.
    fn announce(&self, changed: Vec<presence::Change>) {
        for (user, online) in changed {
            let frame = Utf8Bytes::from(protocol::presence(user, online));
            for conn in self.hub.watchers_of(user).iter().filter(|c| c.user != user) {
                conn.offer(frame.clone());
            }
        }
    }
}
