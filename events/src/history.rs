//! Reading ranges of the log as auditors see them: the redacted envelope of each event with
//! its position, one JSON object per line, streamed (memory stays flat whatever the range).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};

use crate::store::{EventStore, RawMessage, Start};

/// One end of a range: a position, or a time (when the log stored the event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Position(u64),
    Time(DateTime<Utc>),
}

impl FromStr for Bound {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(p) = s.parse::<u64>() {
            return Ok(Bound::Position(p));
        }
        // An unencoded `+` in a query string arrives as a space: take it back.
        DateTime::parse_from_rfc3339(&s.replace(' ', "+"))
            .map(|t| Bound::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("{s:?} is neither a position nor an RFC 3339 time"))
    }
}

impl Bound {
    /// Whether `message` lies at or before this bound.
    pub fn admits_up_to(&self, message: &RawMessage) -> bool {
        match self {
            Bound::Position(p) => message.position <= *p,
            Bound::Time(t) => message.recorded_at <= *t,
        }
    }
}

/// What part of the log to read.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// First event included (default: the start of the log).
    pub from: Option<Bound>,
    /// Last event included (default: the end of the log when the read began).
    pub to: Option<Bound>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// At most this many events.
    pub limit: Option<u64>,
}

/// The events of `filter` in `range`, in order, ending at what the log held when the read
/// began.
pub async fn read(
    store: &EventStore,
    filter: &str,
    range: &Range,
) -> anyhow::Result<impl Stream<Item = anyhow::Result<RawMessage>> + Send + use<>> {
    let start = match range.from {
        Some(Bound::Time(t)) => Start::At(t),
        from => {
            // Start at the first matching event: a filtered consumer from an early position
            // would make the server walk past every other subject's events first.
            let from = match from {
                Some(Bound::Position(p)) => p.max(1),
                _ => 1,
            };
            match store.next_position(filter, from).await? {
                Some(first) => Start::After(first - 1),
                None => return Ok(stream::empty().left_stream()),
            }
        }
    };
    let (available, messages) = store.follow_counted(filter, start).await?;
    let (to, event_type, limit) = (
        range.to,
        range.event_type.clone(),
        range.limit.unwrap_or(u64::MAX),
    );
    let taken = messages
        .take(usize::try_from(available).unwrap_or(usize::MAX))
        .take_while(move |m| {
            let within = match (m, to) {
                (Ok(m), Some(to)) => to.admits_up_to(m),
                _ => true,
            };
            std::future::ready(within)
        })
        .filter(move |m| {
            let keep = match (m, &event_type) {
                (Ok(m), Some(t)) => m.event_type.as_deref() == Some(t.as_str()),
                _ => true,
            };
            std::future::ready(keep)
        })
        .take(usize::try_from(limit).unwrap_or(usize::MAX));
    // An empty range must end at once, not wait for events to come.
    Ok(if available == 0 {
        stream::empty().left_stream()
    } else {
        taken.right_stream()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_positions_or_times() {
        assert_eq!("42".parse(), Ok(Bound::Position(42)));
        let t: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!("2026-01-02T03:04:05Z".parse(), Ok(Bound::Time(t)));
        assert_eq!("2026-01-02T04:04:05+01:00".parse(), Ok(Bound::Time(t)));
        assert_eq!(
            "2026-01-02T03:04:05 00:00".parse(),
            Ok(Bound::Time(t)),
            "a + lost in a query string"
        );
        assert!("yesterday".parse::<Bound>().is_err());
        assert!("-1".parse::<Bound>().is_err());
    }
}
