//! Which user ids exist, for commands that name another user (`POST /direct/{user_id}`,
//! `POST /users/{user_id}/tokens`), and the usernames of app-managed users (whose tokens a
//! service mints, and a token carries its username). A
//! user's registration lives on their username's subject, which no id leads to, so each
//! command process folds the registrations into a set of ids: it joins the live tail, then
//! reads every registration up to where the tail began, so none falls between the two. A user
//! registered through another instance moments ago may not be in the set yet; a miss is
//! confirmed after the room cache's read barrier (which waits for the same live tail).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::TryStreamExt;
use natter_events::catalogue::Event;
use natter_events::store::decode_known;
use natter_events::{EventStore, LiveTail, RawMessage, Start, SubjectKind, TailSubscription};
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct Directory {
    known: Arc<RwLock<Known>>,
}

#[derive(Default)]
struct Known {
    ids: HashSet<Uuid>,
    /// App-managed users (created with a service token): their usernames.
    managed: HashMap<Uuid, Box<str>>,
}

/// What the directory knows of a user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Signs in with a password.
    Registered,
    /// Managed by an app, under this username.
    AppManaged(Box<str>),
}

impl Directory {
    /// Builds the set and keeps it current; dropping the subscription stops that.
    pub async fn start(
        store: &EventStore,
        tail: &LiveTail,
    ) -> anyhow::Result<(Directory, TailSubscription)> {
        let directory = Directory::default();
        let (head, subscription) = {
            let (directory, store) = (directory.clone(), store.clone());
            tail.subscribe(move |message| {
                if matches!(
                    store.subjects().parse(&message.subject),
                    Some(SubjectKind::Username(_))
                ) {
                    directory.note(message);
                }
            })?
        };
        let filter = store.subjects().all_usernames();
        let (pending, messages) = store.follow_counted(&filter, Start::After(0)).await?;
        let mut messages = Box::pin(messages);
        let mut left = pending;
        while left > 0 {
            let Some(message) = messages.try_next().await? else {
                break;
            };
            let position = message.position;
            left = message.pending;
            directory.note(&message);
            if position >= head {
                break;
            }
        }
        Ok((directory, subscription))
    }

    fn note(&self, message: &RawMessage) {
        if let Ok(Some(recorded)) = decode_known(message.clone())
            && let Event::UserRegistered(r) = &recorded.envelope.event
        {
            self.add(r.user_id, r.service_token_id.map(|_| r.username.as_str()));
        }
    }

    /// Records a user (with their username if an app manages them).
    pub fn add(&self, user: Uuid, managed_as: Option<&str>) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        known.ids.insert(user);
        if let Some(name) = managed_as {
            known.managed.insert(user, name.into());
        }
    }

    pub fn contains(&self, user: Uuid) -> bool {
        self.get(user).is_some()
    }

    pub fn get(&self, user: Uuid) -> Option<Entry> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        if let Some(name) = known.managed.get(&user) {
            return Some(Entry::AppManaged(name.clone()));
        }
        known.ids.contains(&user).then_some(Entry::Registered)
    }
}
