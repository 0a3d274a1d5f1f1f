//! Which user ids exist, for commands that name another user (`POST /direct/{user_id}`). A
//! user's registration lives on their username's subject, which no id leads to, so each
//! command process folds the registrations into a set of ids: it joins the live tail, then
//! reads every registration up to where the tail began, so none falls between the two. A user
//! registered through another instance moments ago may not be in the set yet; a miss is
//! confirmed after the room cache's read barrier (which waits for the same live tail).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use futures::TryStreamExt;
use natter_events::catalogue::Event;
use natter_events::store::decode_known;
use natter_events::{EventStore, LiveTail, RawMessage, Start, SubjectKind, TailSubscription};
use uuid::Uuid;

#[derive(Clone)]
pub struct Directory {
    ids: Arc<RwLock<HashSet<Uuid>>>,
}

impl Directory {
    /// Builds the set and keeps it current; dropping the subscription stops that.
    pub async fn start(
        store: &EventStore,
        tail: &LiveTail,
    ) -> anyhow::Result<(Directory, TailSubscription)> {
        let directory = Directory {
            ids: Arc::default(),
        };
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
            self.ids
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.user_id);
        }
    }

    pub fn contains(&self, user: Uuid) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&user)
    }
}
