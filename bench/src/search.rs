//! `search`: `GET /search/messages` over 100,000 messages (10,000 with `--quick`) in 20 rooms,
//! for a reader who is a member of half of them. Messages are 6-20 words drawn from a
//! vocabulary of 5,000 with a skewed (Zipf-like) frequency, so the queries range from a word
//! in a third of all messages to one in a handful: whole words, prefixes and two-word queries.
//! The raw figure is the same text-search query sent straight to Postgres (the match and
//! rank over the reader's rooms, given as a list, without natter's membership lookup, HTTP,
//! JSON, headline and message view).

use std::time::Instant;

use chrono::Utc;
use natter_events::catalogue::{Event, MessageSent};
use natter_events::{Envelope, RoomPart};
use natter_testkit::api::User;
use uuid::Uuid;

use crate::{Env, Figure, Scale, quantile};

const ROOMS: usize = 20;
const VOCABULARY: usize = 5_000;
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ra", "te", "zu", "po", "ne", "si", "da", "vo", "gu", "fe", "hi", "bo", "ju",
];

/// A small deterministic generator (the figures should not depend on a seed's luck).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Word `i` of the vocabulary: distinct, 3 syllables plus one per 256 ranks.
fn word(i: usize) -> String {
    let mut w = String::new();
    let mut n = i;
    for _ in 0..3 + i / 256 % 2 {
        w.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    w.push_str(SYLLABLES[n % SYLLABLES.len()]);
    w
}

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let total = scale.pick(10_000, 100_000);
    let User {
        token, id: reader, ..
    } = env.register("bench_searcher").await?;
    let writer = Uuid::now_v7();
    let subjects = env.store.subjects().clone();
    let rooms: Vec<Uuid> = (0..ROOMS).map(|_| Uuid::now_v7()).collect();
    let readable: Vec<Uuid> = rooms.iter().copied().step_by(2).collect();
    let ev = |room: Uuid, actor: Uuid, event: Event| {
        Envelope::new(Uuid::now_v7(), Utc::now(), Some(actor), Some(room), event)
    };
    let setup: Vec<_> = rooms
        .iter()
        .flat_map(|room| {
            let members: &[Uuid] = if readable.contains(room) {
                &[reader]
            } else {
                &[]
            };
            env.group_room(*room, "archive", writer, members)
        })
        .collect();
    env.append_all(setup).await?;
    let mut rng = Lcg(0x6e61_7474_6572);
    let mut messages = Vec::with_capacity(total);
    for i in 0..total {
        let words = 6 + (rng.next() * 15.0) as usize;
        let text: Vec<String> = (0..words)
            .map(|_| word((VOCABULARY as f64 * rng.next().powi(3)) as usize))
            .collect();
        let room = rooms[i % ROOMS];
        let sent = Event::MessageSent(MessageSent {
            message_id: Uuid::now_v7(),
            content: text.join(" "),
            ..MessageSent::default()
        });
        messages.push((subjects.room(room, RoomPart::Msg), ev(room, writer, sent)));
    }
    let head = env.append_all(messages).await?;
    env.projected(head).await?;

    // From very common to rare, whole words, prefixes and pairs.
    let mut queries = Vec::new();
    for rank in [0, 3, 30, 300, 1_500, 4_000] {
        let w = word(rank);
        queries.push(w[..4].to_string());
        queries.push(w.clone());
        queries.push(format!("{w} {}", word(rank + 7)));
    }
    let rounds = scale.pick(3, 10);
    let mut latencies = Vec::new();
    let mut raw = Vec::new();
    let mut found = 0usize;
    for _ in 0..rounds {
        for q in &queries {
            let started = Instant::now();
            let query = [("q", q.as_str()), ("limit", "20")];
            let body = env.get_ok("/search/messages", &query, &token).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let results = body["results"].as_array().cloned().unwrap_or_default();
            found += results.len();
            for r in &results {
                let room: Uuid = r["message"]["room_id"].as_str().unwrap_or("").parse()?;
                anyhow::ensure!(readable.contains(&room), "a result from a room not joined");
            }

            let started = Instant::now();
            let rows: Vec<(i64, f32)> = sqlx::query_as(
                "WITH q AS (SELECT to_tsquery('simple', \
                    (SELECT string_agg(lexeme || ':*', ' & ') FROM unnest(to_tsvector('simple', $1)))) AS query) \
                 SELECT x.position, ts_rank(x.search, q.query) AS rank \
                 FROM q, messages x \
                 WHERE x.search @@ q.query AND NOT x.deleted AND x.room_id = ANY($2) \
                 ORDER BY rank DESC, x.position DESC LIMIT 20",
            )
            .bind(q)
            .bind(&readable)
            .fetch_all(&env.pool)
            .await?;
            raw.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                rows.len() == results.len(),
                "natter found {} for {q:?}, Postgres {}",
                results.len(),
                rows.len()
            );
        }
    }
    anyhow::ensure!(found > 0, "no query found anything");
    latencies.sort_by(f64::total_cmp);
    raw.sort_by(f64::total_cmp);
    let label = format!("GET /search/messages, {total} messages");
    Ok(vec![
        Figure::new(
            "search",
            format!("{label} p50"),
            quantile(&latencies, 0.5),
            "ms",
        )
        .against(quantile(&raw, 0.5), "search_p50_vs_raw"),
        Figure::new(
            "search",
            format!("{label} p99"),
            quantile(&latencies, 0.99),
            "ms",
        )
        .against(quantile(&raw, 0.99), "search_p99_vs_raw"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_has_distinct_words() {
        let words: std::collections::HashSet<String> = (0..VOCABULARY + 10).map(word).collect();
        assert_eq!(words.len(), VOCABULARY + 10);
    }
}
