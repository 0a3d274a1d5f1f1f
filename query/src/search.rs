//! Full-text search over the messages of the caller's rooms: Postgres text search on the
//! read model (`messages.search`, a generated `tsvector` with a GIN index), best match first
//! among the newest 500 matches, so that a search costs the same in a room of a thousand
//! messages and of millions, however common the word.
//!
//! Matching is language-neutral (the `simple` configuration: words lower-cased, no stemming,
//! no stop words) and by prefix: every word of the query must begin a word of the message,
//! so `deplo` finds "deployment". A deletion empties a message's content, so it matches
//! nothing; an edit replaces it, so the message is found by its new text. Only rooms the
//! caller is a member of now are searched.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use natter_edge::views::MessageView;
use natter_edge::{ApiError, ApiQuery, AuthUser};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;
use crate::rooms::{check_limit, member_room};
use crate::rows::{MESSAGE_COLUMNS, MessageRow, db_error};

/// The longest query, in characters.
const MAX_QUERY_CHARS: usize = 200;
/// Matches ranked: the newest this many (a word in every message of a room of millions
/// costs as much as one in a few hundred).
pub const RANKED: usize = 500;
/// Recent messages read, between the rooms searched, before the text index is asked.
const WALK: usize = 2_000;
/// At least this many recent messages read per room.
const WALK_MIN: usize = 100;
/// Searches over more rooms go to the text index at once.
const WALK_ROOMS: usize = 50;
/// Marks around each match in Postgres's headline, replaced by `<mark>` once the rest is
/// escaped (private-use code points; a message's own are replaced before the headline).
const START: char = '\u{E000}';
const STOP: char = '\u{E001}';
/// `<`, `>` and `&` stand in as these while Postgres makes the headline, whose parser would
/// take `<b>` for a tag and leave it out.
const LT: char = '\u{E002}';
const GT: char = '\u{E003}';
const AMP: char = '\u{E004}';

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(search_messages))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The words to find (1-200 characters); each must begin a word of the message.
    #[param(min_length = 1, max_length = 200)]
    q: Option<String>,
    /// Search this room only (members only).
    room_id: Option<Uuid>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One match.
#[derive(Serialize, ToSchema)]
struct SearchHit {
    message: MessageView,
    /// An HTML fragment: the matching part of the content, escaped, each match in `<mark>`.
    highlight: String,
}

/// `{results, next_cursor}`: best match first (newest first among equals), among the newest
/// 500 matches.
#[derive(Serialize, ToSchema)]
struct SearchResults {
    results: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    rank: f32,
    headline: String,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// Where a page ends: the last hit's rank (its exact bits) and position.
fn encode_cursor(rank: f32, position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s:{}:{position}", rank.to_bits()))
}

fn decode_cursor(cursor: &str) -> Result<(f32, i64), ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let mut parts = s.strip_prefix("s:")?.split(':');
            let rank = f32::from_bits(parts.next()?.parse().ok()?);
            let position = parts.next()?.parse().ok()?;
            (rank.is_finite() && parts.next().is_none()).then_some((rank, position))
        })
        .ok_or_else(|| ApiError::bad_request("malformed cursor"))
}

/// The query text, checked: 1-200 characters, no control character, at least one word.
fn check_query(q: Option<&str>) -> Result<&str, ApiError> {
    let q = q.map(str::trim).unwrap_or_default();
    let chars = q.chars().count();
    if !(1..=MAX_QUERY_CHARS).contains(&chars) || q.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "q must be 1-{MAX_QUERY_CHARS} characters without control characters"
        )));
    }
    if !q.chars().any(char::is_alphanumeric) {
        return Err(ApiError::validation("q must contain a word"));
    }
    Ok(q)
}

/// Postgres's headline with its marks, as safe HTML.
fn highlight(headline: &str) -> String {
    let mut html = String::with_capacity(headline.len() + 16);
    for c in headline.chars() {
        match c {
            START => html.push_str("<mark>"),
            STOP => html.push_str("</mark>"),
            '<' | LT => html.push_str("&lt;"),
            '>' | GT => html.push_str("&gt;"),
            '&' | AMP => html.push_str("&amp;"),
            '"' => html.push_str("&quot;"),
            c => html.push(c),
        }
    }
    html
}

/// Each word the query's text parses into, as a prefix, all required: the same parser as the
/// messages' vectors, so a query finds what a message's words were taken as; each lexeme
/// quoted for `to_tsquery` (quotes and backslashes doubled), so no text is a syntax error.
const QUERY_CTE: &str = "q AS (SELECT to_tsquery('simple', \
       (SELECT string_agg('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || ''':*', ' & ') \
        FROM unnest(to_tsvector('simple', $1)))) AS query)";

/// Search messages in the caller's rooms.
///
/// The newest 500 matches are ranked and paged, best match first: a word found in more
/// messages than that returns its most recent ones (narrow with more words or `room_id`).
#[utoipa::path(get, path = "/search/messages", operation_id = "searchMessages", tag = "messages", params(SearchParams), responses((status = 200, description = "matches in the caller's rooms, best first among the newest 500", body = SearchResults)), security(("login_token" = [])))]
async fn search_messages(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let q = check_query(params.q.as_deref())?;
    let limit = check_limit(params.limit)?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    if let Some(room_id) = params.room_id {
        member_room(&state.pool, room_id, user.id).await?;
    }
    // The caller's rooms as one array (a filter on the index scan's rows, not a join the
    // planner would guess wrong). Only the newest RANKED matches are ranked, found one of two
    // ways, so that neither a word in every message nor a rare one costs with the history:
    // - `walked`: each room's newest messages (WALK between the rooms, at least WALK_MIN each,
    //   for up to WALK_ROOMS rooms) read newest first from the room's index; a word common
    //   there fills RANKED without touching the rest;
    // - `indexed`, only when that did not: every match from the text index, newest RANKED
    //   (the word is rare in recent messages, so its matches are few).
    // The page is taken from them, and only the page's rows are read again for their columns
    // and headline.
    let sql = format!(
        "WITH {QUERY_CTE}, \
         readable AS (SELECT array_agg(m.room_id) AS rooms, count(*) AS n FROM members m \
                      JOIN rooms r ON r.id = m.room_id AND NOT r.deleted \
                      WHERE m.user_id = $2 AND ($3::uuid IS NULL OR m.room_id = $3)), \
         walked AS MATERIALIZED (SELECT c.position, c.search \
                  FROM readable, q, unnest(CASE WHEN readable.n <= {WALK_ROOMS} THEN readable.rooms END) AS r(id) \
                  CROSS JOIN LATERAL (SELECT recent.position, recent.search \
                      FROM (SELECT x.position, x.search, x.deleted FROM messages x WHERE x.room_id = r.id \
                            ORDER BY x.position DESC \
                            LIMIT (SELECT greatest({WALK} / greatest(n, 1), {WALK_MIN}) FROM readable)) recent \
                      WHERE NOT recent.deleted AND recent.search @@ q.query \
                      ORDER BY recent.position DESC LIMIT {RANKED}) c \
                  ORDER BY c.position DESC LIMIT {RANKED}), \
         indexed AS MATERIALIZED (SELECT m.position, m.search \
                  FROM (SELECT x.position, x.search FROM q, readable, messages x \
                        WHERE x.search @@ q.query AND NOT x.deleted AND x.room_id = ANY(readable.rooms) \
                        OFFSET 0) m \
                  WHERE (SELECT count(*) FROM walked) < {RANKED} \
                  ORDER BY m.position DESC LIMIT {RANKED}), \
         candidates AS (SELECT * FROM walked WHERE (SELECT count(*) FROM walked) = {RANKED} \
                        UNION ALL SELECT * FROM indexed), \
         hits AS MATERIALIZED (SELECT c.position, ts_rank(c.search, q.query) AS rank FROM candidates c, q), \
         page AS (SELECT * FROM hits \
                  WHERE $4::real IS NULL OR (rank, position) < ($4::real, $5::bigint) \
                  ORDER BY rank DESC, position DESC LIMIT $6) \
         SELECT h.rank, \
                ts_headline('simple', translate(x.content, E'\\uE000\\uE001\\uE002\\uE003\\uE004<>&', \
                                                 E'\\uFFFD\\uFFFD\\uFFFD\\uFFFD\\uFFFD\\uE002\\uE003\\uE004'), q.query, \
                            'StartSel=\"{START}\", StopSel=\"{STOP}\", MaxWords=35, MinWords=15') AS headline, \
                {MESSAGE_COLUMNS} \
         FROM page h JOIN messages x ON x.position = h.position, q \
         ORDER BY h.rank DESC, h.position DESC"
    );
    let mut rows: Vec<HitRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(q)
        .bind(user.id)
        .bind(params.room_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| encode_cursor(r.rank, r.message.position))
        })
        .flatten();
    let results = rows
        .iter()
        .map(|r| {
            Ok(SearchHit {
                message: r.message.view()?,
                highlight: highlight(&r.headline),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(SearchResults {
        results,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_highlight_is_escaped_html_with_marks() {
        let headline = format!("a <b> & {LT}i{GT}{AMP} {START}deploy{STOP}ment \"x\"");
        assert_eq!(
            highlight(&headline),
            "a &lt;b&gt; &amp; &lt;i&gt;&amp; <mark>deploy</mark>ment &quot;x&quot;"
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(0.0607927, 42);
        assert_eq!(decode_cursor(&c).unwrap(), (0.0607927, 42));
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("s:1"),
            &URL_SAFE_NO_PAD.encode("r:5"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
        let nan = URL_SAFE_NO_PAD.encode(format!("s:{}:1", f32::NAN.to_bits()));
        assert!(decode_cursor(&nan).is_err());
    }

    #[test]
    fn a_query_needs_a_word() {
        assert_eq!(check_query(Some("  deploy ")).unwrap(), "deploy");
        for bad in [None, Some(""), Some("   "), Some("?!"), Some("a\u{0}b")] {
            assert!(check_query(bad).is_err(), "{bad:?}");
        }
        assert!(check_query(Some(&"x".repeat(201))).is_err());
    }
}
