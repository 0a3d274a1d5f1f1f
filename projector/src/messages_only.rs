//! The common batch of a chat, new messages and nothing else, written in one statement: the
//! messages, every member's unread gain, the rooms' last-message positions, and the
//! checkpoint's move with its announcement. Each statement costs Postgres a plan, an executor
//! start and a round trip whatever it holds, and a live batch holds few events, so this one
//! statement replaces five (see BENCHMARKS.md). Any other batch takes [`crate::apply::write`],
//! whose statements this one repeats for this case (a test checks both leave the same rows).

use sqlx::{Postgres, Transaction};

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
    let rows: Vec<_> = batch.messages.values().collect();
    let attachments: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            r.attachment
                .as_ref()
                .map(|a| serde_json::to_string(a).expect("attachments serialize"))
        })
        .collect();
    let live: Vec<_> = rows.iter().filter(|r| !r.deleted).collect();
    let patches: Vec<_> = batch.room_patches.iter().collect();
    let moved: Option<(i32,)> = sqlx::query_as(
        "WITH cp AS (UPDATE projection_checkpoints SET position = $15, updated_at = now() \
                     WHERE projection = $16 AND position = $17 RETURNING position), \
              ins AS (INSERT INTO messages (position, id, room_id, sender_id, kind, content, attachment, \
                                            created_at, edited_at, deleted) \
                      SELECT p, id, r, s, k, c, a::jsonb, ca, ea, d \
                      FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                                  $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[]) \
                           AS v(p, id, r, s, k, c, a, ca, ea, d) \
                      WHERE EXISTS (SELECT 1 FROM cp)), \
              b AS (SELECT * FROM UNNEST($11::uuid[], $12::uuid[]) AS b(room_id, sender_id)), \
              t AS (SELECT room_id, count(*) AS n FROM b GROUP BY room_id), \
              s AS (SELECT room_id, sender_id, count(*) AS n FROM b WHERE sender_id IS NOT NULL GROUP BY 1, 2), \
              d AS (SELECT m.room_id, m.user_id, t.n - COALESCE(s.n, 0) AS gained \
                    FROM members m JOIN t ON t.room_id = m.room_id \
                    LEFT JOIN s ON s.room_id = m.room_id AND s.sender_id = m.user_id), \
              gain AS (UPDATE members m SET unread_count = m.unread_count + d.gained FROM d \
                       WHERE m.room_id = d.room_id AND m.user_id = d.user_id AND d.gained > 0 \
                         AND EXISTS (SELECT 1 FROM cp)), \
              rp AS (UPDATE rooms r SET \
                        last_message_position = GREATEST(r.last_message_position, v.last_message_position), \
                        position = GREATEST(r.position, v.position) \
                     FROM UNNEST($13::uuid[], $14::bigint[], $18::bigint[]) AS v(id, last_message_position, position) \
                     WHERE r.id = v.id AND EXISTS (SELECT 1 FROM cp)) \
         SELECT 1 FROM cp, pg_notify($19, cp.position::text)",
    )
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.room_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sender_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.clone()).collect::<Vec<_>>())
    .bind(&attachments)
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.edited_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
    .bind(live.iter().map(|r| r.room_id).collect::<Vec<_>>())
    .bind(live.iter().map(|r| r.sender_id).collect::<Vec<_>>())
    .bind(patches.iter().map(|(id, _)| **id).collect::<Vec<_>>())
    .bind(
        patches
            .iter()
            .map(|(_, p)| p.last_message_position)
            .collect::<Vec<_>>(),
    )
    .bind(batch.last as i64)
    .bind(PROJECTION)
    .bind(after as i64)
    .bind(patches.iter().map(|(_, p)| p.position).collect::<Vec<_>>())
    .bind(NOTIFY_CHANNEL)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(moved.is_some())
}
