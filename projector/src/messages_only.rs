//! The common batch of a chat, new messages and nothing else, written in one statement: the
//! messages, every member's unread gain, the rooms' last-message positions, and the
//! checkpoint's move with its announcement. Each statement costs Postgres a plan, an executor
//! start and a round trip whatever it holds, and a live batch holds few events, so this one
//! statement replaces five (see BENCHMARKS.md). Any other batch takes [`crate::apply::write`];
//! both write the messages, mentions and unread gains with the CTEs defined here
//! ([`new_messages_ctes`]), and a test checks both paths leave the same rows.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row as _};
use uuid::Uuid;

use crate::batch::Batch;
use crate::runner::APPLY_LOCK;
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

/// The CTEs that insert a batch's new messages (`$1`–`$10`, `$13`–`$15`) and the mentions
/// they make, and add to each member's unread count the main-timeline messages others sent
/// (`$11`, `$12`: room and sender of each such message not deleted), every write only where
/// `$guard` holds; [`bind_new_messages`] binds them. Only rows that gain something are
/// written (a sender's own messages change nothing). Shared by `apply::messages` and
/// [`write`], so both paths keep one rule.
macro_rules! new_messages_ctes {
    ($guard:literal) => {
        concat!(
            "ins AS (INSERT INTO messages (position, id, room_id, sender_id, kind, content, attachment, \
                                           created_at, edited_at, deleted, reply_to, thread_id, mentions) \
                     SELECT p, id, r, s, k, c, a::jsonb, ca, ea, d, rt, th, m::uuid[] \
                     FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                                 $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[], \
                                 $13::uuid[], $14::uuid[], $15::text[]) \
                          AS v(p, id, r, s, k, c, a, ca, ea, d, rt, th, m) \
                     WHERE ", $guard, " \
                     RETURNING position, id, room_id, sender_id, deleted, mentions), \
             mi AS (INSERT INTO mentions (user_id, message_id, room_id, position) \
                    SELECT u, i.id, i.room_id, i.position FROM ins i, unnest(i.mentions) AS u \
                    WHERE NOT i.deleted AND u IS DISTINCT FROM i.sender_id ON CONFLICT DO NOTHING), \
             b AS (SELECT * FROM UNNEST($11::uuid[], $12::uuid[]) AS b(room_id, sender_id)), \
             t AS (SELECT room_id, count(*) AS n FROM b GROUP BY room_id), \
             s AS (SELECT room_id, sender_id, count(*) AS n FROM b WHERE sender_id IS NOT NULL GROUP BY 1, 2), \
             d AS (SELECT m.room_id, m.user_id, t.n - COALESCE(s.n, 0) AS gained \
                   FROM members m JOIN t ON t.room_id = m.room_id \
                   LEFT JOIN s ON s.room_id = m.room_id AND s.sender_id = m.user_id), \
             gain AS (UPDATE members m SET unread_count = m.unread_count + d.gained FROM d \
                      WHERE m.room_id = d.room_id AND m.user_id = d.user_id AND d.gained > 0 \
                        AND ", $guard, ")"
        )
    };
}
pub(crate) use new_messages_ctes;

/// Binds `$1`–`$15` of [`new_messages_ctes`] to `batch`'s new messages.
pub(crate) fn bind_new_messages<'q>(
    query: Query<'q, Postgres, PgArguments>,
    batch: &Batch,
) -> Query<'q, Postgres, PgArguments> {
    let rows: Vec<_> = batch.messages.values().collect();
    let attachments: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            r.attachment
                .as_ref()
                .map(|a| serde_json::to_string(a).expect("attachments serialize"))
        })
        .collect();
    // Thread replies count in no room's unread count (see README, "Threads").
    let live: Vec<_> = rows
        .iter()
        .filter(|r| !r.deleted && r.thread_id.is_none())
        .collect();
    // Postgres cannot UNNEST arrays of arrays of different lengths: each message's mentions
    // go as an array literal, cast back in the statement.
    let mentions: Vec<String> = rows
        .iter()
        .map(|r| {
            let ids: Vec<String> = r.mentions.iter().map(Uuid::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    query
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.room_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.sender_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.content.clone()).collect::<Vec<_>>())
        .bind(attachments)
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.edited_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
        .bind(live.iter().map(|r| r.room_id).collect::<Vec<_>>())
        .bind(live.iter().map(|r| r.sender_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reply_to).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.thread_id).collect::<Vec<_>>())
        .bind(mentions)
}

/// What the one statement of [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The batch is stored and the checkpoint moved to its last position.
    Applied,
    /// Nothing written: the checkpoint is not at `after` but here (a rebuild swapped the
    /// tables, or another projector wrote).
    Moved(u64),
    /// Nothing written: a rebuild's swap holds the apply lock; try again shortly.
    Paused,
}

/// Writes a batch of new messages (see [`Batch::only_new_messages`]) and moves the checkpoint
/// from `after` to `batch.last`, all only if the checkpoint is still at `after` and, with
/// `exclusive`, only if the apply lock can be had shared at once (a rebuild's swap holds it
/// exclusively while it replaces the tables).
///
/// One statement on a connection outside any transaction, so it is its own: one round trip
/// for the whole batch, whatever happens. Every write in it is guarded by the checkpoint's
/// move (`cp`), and that by the lock (`lk`); the outer query reads the checkpoint as it was
/// before the statement (a data-modifying CTE's changes are not visible to it), which tells a
/// moved checkpoint from a held lock.
pub async fn write(
    conn: &mut PgConnection,
    batch: &Batch,
    after: u64,
    exclusive: bool,
) -> sqlx::Result<Written> {
    debug_assert!(batch.only_new_messages());
    let patches: Vec<_> = batch.room_patches.iter().collect();
    let row = bind_new_messages(
        sqlx::query(concat!(
            "WITH lk AS (SELECT CASE WHEN $23 THEN pg_try_advisory_xact_lock_shared($24) ELSE true END AS ok), \
             cp AS (UPDATE projection_checkpoints SET position = $16, updated_at = now() \
                    WHERE projection = $17 AND position = $18 AND (SELECT ok FROM lk) \
                    RETURNING position), ",
            new_messages_ctes!("EXISTS (SELECT 1 FROM cp)"),
            ", rp AS (UPDATE rooms r SET \
                         last_message_position = GREATEST(r.last_message_position, v.last_message_position), \
                         position = GREATEST(r.position, v.position) \
                      FROM UNNEST($19::uuid[], $20::bigint[], $21::bigint[]) AS v(id, last_message_position, position) \
                      WHERE r.id = v.id AND EXISTS (SELECT 1 FROM cp)) \
             SELECT (SELECT count(*) FROM cp, pg_notify($22, cp.position::text)) = 1, \
                    (SELECT position FROM projection_checkpoints WHERE projection = $17)"
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
    .bind(exclusive)
    .bind(APPLY_LOCK)
    .fetch_one(&mut *conn)
    .await?;
    let applied: bool = row.try_get(0)?;
    let checkpoint: Option<i64> = row.try_get(1)?;
    Ok(match checkpoint.unwrap_or(0) as u64 {
        _ if applied => Written::Applied,
        at if at != after => Written::Moved(at),
        _ => Written::Paused,
    })
}
