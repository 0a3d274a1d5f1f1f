//! The common batch of a chat, new messages and nothing else, written in one statement: the
//! messages, every member's unread gain, the rooms' last-message positions, and the
//! checkpoint's move with its announcement. Each statement costs Postgres a plan, an executor
//! start and a round trip whatever it holds, and a live batch holds few events, so this one
//! statement replaces five (see BENCHMARKS.md). Any other batch takes [`crate::apply::write`];
//! both write the messages and unread gains with the same CTEs (`apply::new_messages_ctes`),
//! and a test checks both paths leave the same rows.

use sqlx::{Postgres, Transaction};

use crate::apply::new_messages_ctes;
use crate::batch::Batch;
use natter_readmodel::checkpoint::{NOTIFY_CHANNEL, PROJECTION};

impl Batch {
    /// Whether the batch only adds messages (and so moves rooms' last-message positions).
    pub fn only_new_messages(&self) -> bool {
        self.users.is_empty()
            && self.user_names.is_empty()
            && self.rooms.is_empty()
            && self.members.is_empty()
            && self.invites.is_empty()
            && self.invite_patches.is_empty()
            && self.message_patches.is_empty()
            && self.reactions_cleared.is_empty()
            && self.reactions_added.is_empty()
            && self.membership_rooms.is_empty()
            && self.room_patches.values().all(|p| {
                p.name.is_none()
                    && p.visibility.is_none()
                    && p.max_members.is_none()
                    && p.owner_id.is_none()
                    && !p.deleted
            })
    }
}

/// Writes a batch of new messages (see [`Batch::only_new_messages`]) and moves the checkpoint
/// from `after` to `batch.last`, all only if the checkpoint is still at `after`. Returns
/// whether it was (nothing is written otherwise).
pub async fn write(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
    after: u64,
) -> sqlx::Result<bool> {
    debug_assert!(batch.only_new_messages());
    let patches: Vec<_> = batch.room_patches.iter().collect();
    let moved = crate::apply::bind_new_messages(
        sqlx::query(concat!(
            "WITH cp AS (UPDATE projection_checkpoints SET position = $16, updated_at = now() \
                         WHERE projection = $17 AND position = $18 RETURNING position), ",
            new_messages_ctes!("EXISTS (SELECT 1 FROM cp)"),
            ", rp AS (UPDATE rooms r SET \
                         last_message_position = GREATEST(r.last_message_position, v.last_message_position), \
                         position = GREATEST(r.position, v.position) \
                      FROM UNNEST($19::uuid[], $20::bigint[], $21::bigint[]) AS v(id, last_message_position, position) \
                      WHERE r.id = v.id AND EXISTS (SELECT 1 FROM cp)) \
             SELECT 1 FROM cp, pg_notify($22, cp.position::text)"
        )),
        batch,
    )
    .bind(batch.last as i64)
    .bind(PROJECTION)
    .bind(after as i64)
    .bind(patches.iter().map(|(id, _)| **id).collect::<Vec<_>>())
    .bind(
        patches
            .iter()
            .map(|(_, p)| p.last_message_position)
            .collect::<Vec<_>>(),
    )
    .bind(patches.iter().map(|(_, p)| p.position).collect::<Vec<_>>())
    .bind(NOTIFY_CHANNEL)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(moved.is_some())
}
