//! Writes a [`Batch`] in one transaction, with set-based statements (UNNEST), together with the
//! projection's new checkpoint. Table names are unqualified: the connection's `search_path`
//! decides which set of tables is written (the live ones, or a rebuild's).

use natter_readmodel::checkpoint;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::batch::{Batch, MemberChange};
use crate::messages_only::{bind_new_messages, new_messages_ctes};

/// Applies `batch` and moves the checkpoint to `batch.last`.
pub async fn write(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<()> {
    users(tx, batch).await?;
    rooms(tx, batch).await?;
    invites(tx, batch).await?;
    let recount = members(tx, batch).await?;
    messages(tx, batch, &recount).await?;
    reactions(tx, batch).await?;
    if !batch.membership_rooms.is_empty() {
        let rooms: Vec<Uuid> = batch.membership_rooms.iter().copied().collect();
        sqlx::query(
            "UPDATE rooms r SET member_count = (SELECT count(*) FROM members m WHERE m.room_id = r.id) \
             WHERE r.id = ANY($1)",
        )
        .bind(&rooms)
        .execute(&mut **tx)
        .await?;
    }
    checkpoint::advance(tx, batch.last).await
}

async fn users(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<()> {
    if !batch.users.is_empty() {
        let rows: Vec<_> = batch.users.values().collect();
        sqlx::query(
            "INSERT INTO users (id, username, display_name, created_at, position) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])",
        )
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.username.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.display_name.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !batch.user_names.is_empty() {
        sqlx::query(
            "UPDATE users u SET display_name = v.name, position = v.position \
             FROM UNNEST($1::uuid[], $2::text[], $3::bigint[]) AS v(id, name, position) WHERE u.id = v.id",
        )
        .bind(batch.user_names.keys().copied().collect::<Vec<_>>())
        .bind(batch.user_names.values().map(|(n, _)| n.clone()).collect::<Vec<_>>())
        .bind(batch.user_names.values().map(|(_, p)| *p).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn rooms(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<()> {
    if !batch.rooms.is_empty() {
        let rows: Vec<_> = batch.rooms.values().collect();
        sqlx::query(
            "INSERT INTO rooms (id, name, visibility, kind, owner_id, max_members, created_at, \
                                created_position, last_message_position, position) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int[], \
                                  $7::timestamptz[], $8::bigint[], $9::bigint[], $10::bigint[])",
        )
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.visibility).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.owner_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.max_members).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| batch.room_last_message(r.id)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !batch.room_patches.is_empty() {
        let ids: Vec<Uuid> = batch.room_patches.keys().copied().collect();
        let p: Vec<_> = batch.room_patches.values().collect();
        sqlx::query(
            "UPDATE rooms r SET name = COALESCE(v.name, r.name), visibility = COALESCE(v.visibility, r.visibility), \
                max_members = COALESCE(v.max_members, r.max_members), owner_id = COALESCE(v.owner_id, r.owner_id), \
                deleted = r.deleted OR v.deleted, \
                last_message_position = GREATEST(r.last_message_position, v.last_message_position), \
                position = GREATEST(r.position, v.position) \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[], $5::uuid[], $6::bool[], $7::bigint[], $8::bigint[]) \
                AS v(id, name, visibility, max_members, owner_id, deleted, last_message_position, position) \
             WHERE r.id = v.id",
        )
        .bind(&ids)
        .bind(p.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.visibility).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.max_members).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.owner_id).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.deleted).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.last_message_position).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn invites(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<()> {
    if !batch.invites.is_empty() {
        let rows: Vec<_> = batch.invites.values().collect();
        sqlx::query(
            "INSERT INTO invites (id, room_id, token_hash, invitee_id, expires_at, max_uses, uses, revoked, created_at, position) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[], $6::int[], \
                                  $7::int[], $8::bool[], $9::timestamptz[], $10::bigint[])",
        )
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.room_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.token_hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.invitee_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.expires_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.max_uses).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.uses).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.revoked).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !batch.invite_patches.is_empty() {
        let p: Vec<_> = batch.invite_patches.values().collect();
        sqlx::query(
            "UPDATE invites i SET uses = i.uses + v.uses, revoked = i.revoked OR v.revoked, position = v.position \
             FROM UNNEST($1::uuid[], $2::int[], $3::bool[], $4::bigint[]) AS v(id, uses, revoked, position) \
             WHERE i.id = v.id",
        )
        .bind(batch.invite_patches.keys().copied().collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.uses).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.revoked).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.position).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Reactions: the ones taken back go, then the ones the batch leaves are written (a reaction
/// taken back and made again in one batch gets its new position).
async fn reactions(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<()> {
    if !batch.reactions_cleared.is_empty() {
        let keys: Vec<_> = batch.reactions_cleared.iter().collect();
        sqlx::query(
            "DELETE FROM reactions x USING UNNEST($1::uuid[], $2::text[], $3::uuid[]) AS v(m, e, u) \
             WHERE x.message_id = v.m AND x.emoji = v.e AND x.user_id = v.u",
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1.clone()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !batch.reactions_added.is_empty() {
        let rows: Vec<_> = batch.reactions_added.iter().collect();
        sqlx::query(
            "INSERT INTO reactions (message_id, emoji, user_id, room_id, position) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(rows.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|(k, _)| k.1.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(k, _)| k.2).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, v)| v.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, v)| v.1).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Members whose rows go (left or removed), as UNNEST columns.
#[derive(Default)]
struct Gone {
    rooms: Vec<Uuid>,
    users: Vec<Uuid>,
}

/// Members who joined in the batch: fresh rows.
#[derive(Default)]
struct Joins {
    rooms: Vec<Uuid>,
    users: Vec<Uuid>,
    roles: Vec<&'static str>,
    joined_at: Vec<chrono::DateTime<chrono::Utc>>,
    joined_positions: Vec<i64>,
    markers: Vec<i64>,
}

/// Members from before the batch with a new role and/or read marker.
#[derive(Default)]
struct Updates {
    rooms: Vec<Uuid>,
    users: Vec<Uuid>,
    roles: Vec<Option<&'static str>>,
    markers: Vec<Option<i64>>,
}

/// Members whose unread count is recounted from scratch (see [`messages`]).
#[derive(Default)]
struct Recount {
    rooms: Vec<Uuid>,
    users: Vec<Uuid>,
}

/// Writes membership changes; returns the members whose unread count must be recounted
/// (fresh joins and moved read markers).
async fn members(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> sqlx::Result<Recount> {
    let mut gone = Gone::default();
    let mut joins = Joins::default();
    let mut updates = Updates::default();
    let mut recount = Recount::default();
    for ((room, user), change) in &batch.members {
        match change {
            MemberChange::Gone => {
                gone.rooms.push(*room);
                gone.users.push(*user);
            }
            MemberChange::Joined {
                role,
                joined_at,
                joined_position,
                marker,
            } => {
                joins.rooms.push(*room);
                joins.users.push(*user);
                joins.roles.push(*role);
                joins.joined_at.push(*joined_at);
                joins.joined_positions.push(*joined_position);
                joins.markers.push(*marker);
                recount.rooms.push(*room);
                recount.users.push(*user);
            }
            MemberChange::Existing { role, marker } => {
                updates.rooms.push(*room);
                updates.users.push(*user);
                updates.roles.push(*role);
                updates.markers.push(*marker);
                if marker.is_some() {
                    recount.rooms.push(*room);
                    recount.users.push(*user);
                }
            }
        }
    }
    if !gone.rooms.is_empty() {
        sqlx::query(
            "DELETE FROM members m USING UNNEST($1::uuid[], $2::uuid[]) AS v(room_id, user_id) \
             WHERE m.room_id = v.room_id AND m.user_id = v.user_id",
        )
        .bind(&gone.rooms)
        .bind(&gone.users)
        .execute(&mut **tx)
        .await?;
    }
    if !joins.rooms.is_empty() {
        sqlx::query(
            "INSERT INTO members (room_id, user_id, role, joined_at, joined_position, last_read_position, unread_count) \
             SELECT r, u, role, at, p, marker, 0 \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[]) \
                AS v(r, u, role, at, p, marker) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role, joined_at = EXCLUDED.joined_at, \
                joined_position = EXCLUDED.joined_position, last_read_position = EXCLUDED.last_read_position",
        )
        .bind(&joins.rooms)
        .bind(&joins.users)
        .bind(&joins.roles)
        .bind(&joins.joined_at)
        .bind(&joins.joined_positions)
        .bind(&joins.markers)
        .execute(&mut **tx)
        .await?;
    }
    if !updates.rooms.is_empty() {
        sqlx::query(
            "UPDATE members m SET role = COALESCE(v.role, m.role), \
                last_read_position = GREATEST(m.last_read_position, COALESCE(v.marker, 0)) \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bigint[]) AS v(room_id, user_id, role, marker) \
             WHERE m.room_id = v.room_id AND m.user_id = v.user_id",
        )
        .bind(&updates.rooms)
        .bind(&updates.users)
        .bind(&updates.roles)
        .bind(&updates.markers)
        .execute(&mut **tx)
        .await?;
    }
    Ok(recount)
}

/// Writes new messages and edits, and keeps every member's unread count exact.
///
/// **The unread-count rule.** A member's `unread_count` is the number of main-timeline
/// messages of their room that are after both their read marker and their join (`position > GREATEST(
/// last_read_position, joined_position)`), not deleted, and not sent by them. A batch keeps
/// it with three statements, in this order: each new message of the main timeline (thread
/// replies count for no one) adds one to every member of its
/// room but its sender; each message deleted in the batch that counted for a member takes one
/// away; and every member who joined or moved their marker in the batch (`recount`) is
/// counted again from the messages table, which overrides the first two for them.
async fn messages(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
    recount: &Recount,
) -> sqlx::Result<()> {
    if !batch.messages.is_empty() {
        // Every member gains the batch's new messages from others (members that joined or
        // moved their marker in this batch are recounted below, which overrides this).
        bind_new_messages(
            sqlx::query(concat!("WITH ", new_messages_ctes!("true"), " SELECT 1")),
            batch,
        )
        .execute(&mut **tx)
        .await?;
    }
    if !batch.message_patches.is_empty() {
        let ids: Vec<Uuid> = batch.message_patches.keys().copied().collect();
        let deleted: Vec<Uuid> = batch
            .message_patches
            .iter()
            .filter(|(_, p)| p.deleted)
            .map(|(id, _)| *id)
            .collect();
        if !deleted.is_empty() {
            sqlx::query(
                "UPDATE members m SET unread_count = m.unread_count - d.n \
                 FROM (SELECT mm.room_id, mm.user_id, count(*) AS n FROM messages x \
                       JOIN members mm ON mm.room_id = x.room_id \
                       WHERE x.id = ANY($1) AND NOT x.deleted AND x.thread_id IS NULL \
                         AND x.position > GREATEST(mm.last_read_position, mm.joined_position) \
                         AND (x.sender_id IS NULL OR x.sender_id <> mm.user_id) \
                       GROUP BY 1, 2) d \
                 WHERE m.room_id = d.room_id AND m.user_id = d.user_id",
            )
            .bind(&deleted)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM mentions WHERE message_id = ANY($1)")
                .bind(&deleted)
                .execute(&mut **tx)
                .await?;
        }
        let p: Vec<_> = batch.message_patches.values().collect();
        sqlx::query(
            "UPDATE messages x SET \
                content = CASE WHEN x.deleted OR v.deleted THEN '' ELSE COALESCE(v.content, x.content) END, \
                attachment = CASE WHEN x.deleted OR v.deleted THEN NULL ELSE x.attachment END, \
                edited_at = CASE WHEN x.deleted THEN x.edited_at ELSE COALESCE(v.edited_at, x.edited_at) END, \
                deleted = x.deleted OR v.deleted \
             FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[]) AS v(id, content, edited_at, deleted) \
             WHERE x.id = v.id",
        )
        .bind(&ids)
        .bind(p.iter().map(|x| x.content.clone()).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.edited_at).collect::<Vec<_>>())
        .bind(p.iter().map(|x| x.deleted).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !recount.rooms.is_empty() {
        sqlx::query(
            "UPDATE members m SET unread_count = ( \
                SELECT count(*) FROM messages x WHERE x.room_id = m.room_id AND x.thread_id IS NULL \
                  AND x.position > GREATEST(m.last_read_position, m.joined_position) AND NOT x.deleted \
                  AND (x.sender_id IS NULL OR x.sender_id <> m.user_id)) \
             FROM UNNEST($1::uuid[], $2::uuid[]) AS v(room_id, user_id) \
             WHERE m.room_id = v.room_id AND m.user_id = v.user_id",
        )
        .bind(&recount.rooms)
        .bind(&recount.users)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
