//! How the projector reads and writes its batches: the live tail once caught up (and its own
//! consumer when behind), and batches of new messages in one statement.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use super::{append_raw_message, recounted_unread_mismatches, setup, traffic};
use crate::helpers::{Stack, assert_same_models};

/// Whether `what` holds within 5 s.
async fn eventually(what: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Once caught up, the projector reads the process's live tail instead of a consumer of its
/// own; held up by Postgres for longer than the tail buffers for it, it goes back to a
/// consumer of its own from where it was, and hands over to the tail again once it has
/// caught up. Nothing is lost or applied twice on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_reads_the_live_tail_once_caught_up_and_its_own_consumer_when_behind() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    let (users, rooms) = setup(&stack).await;
    let (_, status) = stack.start_projector();
    let handovers = || status.tail_handovers.load(Ordering::SeqCst);
    let on_tail = || status.on_tail.load(Ordering::SeqCst);
    stack.caught_up().await;
    assert!(
        eventually(on_tail).await,
        "caught up, the projector reads the live tail"
    );
    assert_eq!(handovers(), 1);

    // Hold the projector's next batch on the checkpoint row while far more events arrive
    // than its read-ahead and the tail's buffer hold together.
    let mut blocker = stack.pool.begin().await.unwrap();
    sqlx::query("SELECT position FROM projection_checkpoints FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (room, sender) = (rooms[0], users[1].id);
    let sent = 9000;
    let appends =
        (0..sent).map(|i| {
            let stack = &stack;
            async move {
                append_raw_message(stack, room, sender, Uuid::new_v4(), &format!("b{i}")).await
            }
        });
    futures::stream::iter(appends)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    blocker.rollback().await.unwrap();

    stack.caught_up().await;
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM messages WHERE room_id = $1 AND content LIKE 'b%'")
            .bind(room)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(n, sent, "every event applied once");
    assert_eq!(recounted_unread_mismatches(&stack).await, 0);
    // It fell behind what the tail buffers, read on a consumer of its own, and handed over
    // again once caught up.
    assert!(
        eventually(|| handovers() == 2 && on_tail()).await,
        "handovers: {}",
        handovers()
    );
    let after = append_raw_message(&stack, room, sender, Uuid::new_v4(), "last").await;
    assert!(stack.caught_up().await >= after);
}

/// Live traffic, one request at a time, reaches the projector one event per batch, so its
/// messages take the one-statement path for batches of new messages only; a rebuild applies
/// the same log in batches of hundreds of mixed events, through the general statements. Both
/// must leave the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_new_messages_alone_leave_the_rows_mixed_batches_do() {
    let stack = Stack::spawn().await;
    let (users, rooms) = setup(&stack).await;
    traffic(&stack, &users, &rooms, 120).await;
    stack.caught_up().await;
    let (threaded, mentions, reactions): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE thread_id IS NOT NULL), \
                (SELECT count(*) FROM mentions), (SELECT count(*) FROM reactions)",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert!(
        threaded > 0 && mentions > 0 && reactions > 0,
        "the traffic has threads ({threaded}), mentions ({mentions}) and reactions ({reactions})"
    );
    let live = stack.dump().await;
    assert_eq!(recounted_unread_mismatches(&stack).await, 0);
    stack.rebuild().await.unwrap();
    assert_same_models(
        &live,
        &stack.dump().await,
        "live batches and a rebuild agree",
    );
}
