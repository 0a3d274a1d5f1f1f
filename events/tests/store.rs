//! The JetStream event store against the real NATS server.

use chrono::Utc;
use futures::StreamExt;
use natter_events::catalogue::{Event, MessageKind, MessageSent, RoomDeleted};
use natter_events::{
    AppendError, Envelope, EventStore, Expect, LiveTail, RoomPart, Start, StoreConfig,
};
use natter_testkit::{Cleanup, Isolation, nats_url};
use uuid::Uuid;

async fn store() -> (EventStore, Cleanup) {
    let isolation = Isolation::new();
    let store = isolation.open_store().await;
    (store, Cleanup { isolation })
}

fn message(room: Uuid, text: &str) -> Envelope {
    Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        Some(Uuid::new_v4()),
        Some(room),
        Event::MessageSent(MessageSent {
            message_id: Uuid::new_v4(),
            kind: MessageKind::Text,
            content: text.into(),
            attachment: None,
            ..Default::default()
        }),
    )
}

#[tokio::test]
async fn appends_with_a_stale_expected_position_are_refused() {
    let (store, _cleanup) = store().await;
    let room = Uuid::new_v4();
    let subject = store.subjects().room(room, RoomPart::Meta);
    let first = message(room, "one");
    let p1 = store
        .append(&subject, &first, &first.id.to_string(), Expect::LastAt(0))
        .await
        .unwrap();
    let second = message(room, "two");
    let stale = store
        .append(&subject, &second, &second.id.to_string(), Expect::LastAt(0))
        .await;
    assert!(matches!(stale, Err(AppendError::Conflict)), "{stale:?}");
    let p2 = store
        .append(
            &subject,
            &second,
            &second.id.to_string(),
            Expect::LastAt(p1),
        )
        .await
        .unwrap();
    assert!(p2 > p1);
    let events = store.read_subject(&subject, 0).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![p1, p2]
    );
    assert_eq!(events[0].envelope, first);
    assert_eq!(store.read_subject(&subject, p1).await.unwrap().len(), 1);
    assert!(store.read_subject(&subject, p2).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_retried_append_with_the_same_id_is_stored_once() {
    let (store, _cleanup) = store().await;
    let room = Uuid::new_v4();
    let subject = store.subjects().room(room, RoomPart::Meta);
    let event = message(room, "once");
    let p1 = store
        .append(&subject, &event, "cmd-1", Expect::LastAt(0))
        .await
        .unwrap();
    // The retry's expectation is stale, but the duplicate is recognised first.
    let p2 = store
        .append(&subject, &event, "cmd-1", Expect::LastAt(0))
        .await
        .unwrap();
    assert_eq!(p1, p2);
    assert_eq!(store.read_subject(&subject, 0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn subjects_of_different_aggregates_do_not_conflict() {
    let (store, _cleanup) = store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for room in [a, b] {
        let e = message(room, "x");
        store
            .append(
                &store.subjects().room(room, RoomPart::Meta),
                &e,
                &e.id.to_string(),
                Expect::LastAt(0),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.head().await.unwrap(), 2);
}

#[tokio::test]
async fn following_from_now_sees_later_events_in_order() {
    let (store, _cleanup) = store().await;
    let room = Uuid::new_v4();
    let before = message(room, "before");
    let msg_subject = store.subjects().room(room, RoomPart::Msg);
    store
        .append(&msg_subject, &before, &before.id.to_string(), Expect::Any)
        .await
        .unwrap();
    let mut live = store
        .follow(&store.subjects().all_rooms(), Start::New)
        .await
        .unwrap();
    let mut expected = Vec::new();
    for i in 0..5 {
        let e = message(room, &format!("m{i}"));
        expected.push(
            store
                .append(&msg_subject, &e, &e.id.to_string(), Expect::Any)
                .await
                .unwrap(),
        );
    }
    let deleted = Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        None,
        Some(room),
        Event::RoomDeleted(RoomDeleted {}),
    );
    let meta = store.subjects().room(room, RoomPart::Meta);
    expected.push(
        store
            .append(&meta, &deleted, &deleted.id.to_string(), Expect::Any)
            .await
            .unwrap(),
    );
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        seen.push(live.next().await.unwrap().unwrap().position);
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_stream_that_would_discard_events_is_refused() {
    let isolation = Isolation::new();
    let cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: isolation.stream.clone(),
        subjects: vec![format!("{}.events.>", isolation.prefix)],
        max_messages: 1000,
        ..Default::default()
    })
    .await
    .unwrap();
    let config = StoreConfig {
        stream: isolation.stream.clone(),
        prefix: isolation.prefix.clone(),
        replicas: 1,
    };
    let err = EventStore::open(client, &config)
        .await
        .err()
        .expect("must refuse");
    assert!(format!("{err:#}").contains("discard"), "{err:#}");
    drop(cleanup);
}

#[tokio::test]
async fn the_stream_is_created_as_an_event_store() {
    let (store, _cleanup) = store().await;
    let info = store
        .jetstream()
        .get_stream(store.stream_name())
        .await
        .unwrap()
        .cached_info()
        .clone();
    let c = info.config;
    assert_eq!(c.subjects, vec![store.subjects().all_events()]);
    assert_eq!(c.storage, async_nats::jetstream::stream::StorageType::File);
    assert!(c.deny_delete && c.deny_purge && c.allow_direct);
    assert_eq!((c.max_messages, c.max_bytes), (-1, -1));
    assert!(c.max_age.is_zero());
}

#[tokio::test]
async fn the_next_event_of_a_wildcard_subject_is_found_from_any_position() {
    let (store, _cleanup) = store().await;
    let (room, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut mine = Vec::new();
    for i in 0..6 {
        let (r, part) = if i % 2 == 0 {
            (room, RoomPart::Msg)
        } else {
            (other, RoomPart::Meta)
        };
        let e = message(r, "x");
        let p = store
            .append(
                &store.subjects().room(r, part),
                &e,
                &e.id.to_string(),
                Expect::Any,
            )
            .await
            .unwrap();
        if r == room {
            mine.push(p);
        }
    }
    let filter = store.subjects().room_events(room);
    assert_eq!(
        store.next_position(&filter, 1).await.unwrap(),
        Some(mine[0])
    );
    assert_eq!(
        store.next_position(&filter, mine[0] + 1).await.unwrap(),
        Some(mine[1])
    );
    assert_eq!(
        store.next_position(&filter, mine[2] + 1).await.unwrap(),
        None
    );
}

/// Another instance: a second handle on the same stream over its own connection.
async fn other_instance(store: &EventStore) -> EventStore {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let prefix = store
        .subjects()
        .all_events()
        .trim_end_matches(".events.>")
        .to_string();
    EventStore::open(
        client,
        &StoreConfig {
            stream: store.stream_name().to_string(),
            prefix,
            replicas: 1,
        },
    )
    .await
    .unwrap()
}

async fn send(store: &EventStore, room: Uuid, msg_id: &str) -> u64 {
    let event = message(room, "x");
    store
        .append(
            &store.subjects().room(room, RoomPart::Msg),
            &event,
            msg_id,
            Expect::Any,
        )
        .await
        .unwrap()
}

/// A room's next event is found on each of its subjects (a wildcard lookup makes the server
/// walk the log): from any position, it is the room's first event at or after it, whichever
/// part it is on, past other rooms' events in between.
#[tokio::test]
async fn a_rooms_next_event_is_its_first_at_or_after_a_position_on_any_part() {
    let (store, _cleanup) = store().await;
    let (room, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ours = Vec::new();
    for (i, part) in [
        RoomPart::Meta,
        RoomPart::Msg,
        RoomPart::Read,
        RoomPart::Msg,
        RoomPart::Meta,
    ]
    .into_iter()
    .enumerate()
    {
        send(&store, other, &format!("other-{i}")).await;
        let event = message(room, "x");
        let subject = store.subjects().room(room, part);
        ours.push(
            store
                .append(&subject, &event, &event.id.to_string(), Expect::Any)
                .await
                .unwrap(),
        );
    }
    send(&store, other, "other-last").await;
    let head = store.head().await.unwrap();
    let filter = store.subjects().room_events(room);
    for from in 1..=head + 1 {
        let expected = ours.iter().copied().find(|p| *p >= from);
        assert_eq!(
            store.next_position(&filter, from).await.unwrap(),
            expected,
            "from {from}"
        );
    }
}

/// The log's head (what the read barrier and `min_position` checks look up) is a direct get of
/// the stream's last message, not the stream info (which costs the server far more): both name
/// the same position, on every server version the tests run on, and an empty stream has none
/// to get.
#[tokio::test]
async fn the_last_position_by_direct_get_is_the_stream_infos() {
    let (store, _cleanup) = store().await;
    assert_eq!(store.direct_last().await.unwrap(), None);
    assert_eq!(store.head().await.unwrap(), 0);
    for i in 0..5 {
        let acked = send(&store, Uuid::new_v4(), &format!("m{i}")).await;
        assert_eq!(store.direct_last().await.unwrap(), Some(acked));
        assert_eq!(store.size().await.unwrap().last_position, acked);
        assert_eq!(store.head().await.unwrap(), acked);
    }
}

// Multi-threaded, as `natter serve` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_bound_covers_every_event_acknowledged_before_it() {
    let (store, _cleanup) = store().await;
    let other = other_instance(&store).await;
    let room = Uuid::new_v4();

    // Idle: nothing of this handle's own is in flight, so the stream is asked.
    let acked = send(&other, room, "idle").await;
    let lookups = store.head_lookups();
    assert!(store.head_bound().await.unwrap() >= acked);
    assert_eq!(store.head_lookups(), lookups + 1);

    // Busy: this handle appends all the time, and its acks answer most bounds. A quarter of
    // its appends repeat an old message id: a duplicate's ack names the position stored the
    // first time, which is no bound of now.
    let first = send(&store, room, "again").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appenders: Vec<_> = (0..16)
        .map(|i| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if i % 4 != 0 {
                        send(&store, room, &Uuid::new_v4().to_string()).await;
                    } else {
                        assert_eq!(send(&store, room, "again").await, first);
                    }
                }
            })
        })
        .collect();
    let lookups = store.head_lookups();
    let rounds = 300;
    for i in 0..rounds {
        let acked = send(&other, room, &format!("busy-{i}")).await;
        let bound = store.head_bound().await.unwrap();
        assert!(bound >= acked, "bound {bound} below acknowledged {acked}");
    }
    let looked_up = store.head_lookups() - lookups;
    // Most, in practice (1–2 % of sends need a lookup in `natter bench`); here, with a few
    // appenders on a shared test machine, at least some.
    assert!(
        looked_up * 10 < rounds * 9,
        "{looked_up} of {rounds} bounds needed a lookup while appends were under way"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in appenders {
        a.await.unwrap();
    }
}

#[tokio::test]
async fn subscribers_of_one_live_tail_share_one_consumer_and_see_every_event_in_order() {
    let (store, _cleanup) = store().await;
    let room = Uuid::new_v4();
    let before = send(&store, room, "before").await;
    let seen = |name: &'static str| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let callback = move |m: &natter_events::RawMessage| {
            let _ = tx.send((name, m.position));
        };
        (callback, rx)
    };
    let (a, mut a_rx) = seen("a");
    let (b, mut b_rx) = seen("b");
    let tail = LiveTail::start(&store).await.unwrap();
    let (a_from, a_sub) = tail.subscribe(a).unwrap();
    let (b_from, b_sub) = tail.clone().subscribe(b).unwrap();
    assert_eq!(a_from, before);
    assert!(b_from >= a_from);
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(send(&store, room, &format!("m{i}")).await);
    }
    for (rx, from) in [(&mut a_rx, a_from), (&mut b_rx, b_from)] {
        let expected: Vec<u64> = sent.iter().copied().filter(|p| *p > from).collect();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let (_, p) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("an event within 5 s")
                .unwrap();
            got.push(p);
        }
        assert_eq!(got, expected);
    }
    let info = store
        .jetstream()
        .get_stream(store.stream_name())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.consumer_count, 1, "one consumer for both");

    assert_eq!(tail.position(), Some(*sent.last().unwrap()));

    // The tail outlives its subscribers while a handle is held, and a new subscriber joins
    // the same consumer.
    drop((a_sub, b_sub));
    let (c, mut c_rx) = seen("c");
    let (c_from, c_sub) = tail.subscribe(c).unwrap();
    let next = send(&store, room, "after").await;
    assert!(next > c_from);
    let (_, p) = tokio::time::timeout(std::time::Duration::from_secs(5), c_rx.recv())
        .await
        .expect("an event within 5 s")
        .unwrap();
    assert_eq!(p, next);

    drop(c_sub);
}
