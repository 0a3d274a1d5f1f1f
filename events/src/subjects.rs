//! Subject names, all under the configured prefix so that several natter deployments (or
//! parallel tests) can share one NATS server without their streams' subjects overlapping.

use uuid::Uuid;

/// Which of a room's three aggregates a room subject belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomPart {
    /// Lifecycle, membership, invites, settings: appended with an expected sequence.
    Meta,
    /// Messages, edits, deletions.
    Msg,
    /// Read markers.
    Read,
}

impl RoomPart {
    /// Every part, in no particular order.
    pub const ALL: [RoomPart; 3] = [RoomPart::Meta, RoomPart::Msg, RoomPart::Read];

    fn token(self) -> &'static str {
        match self {
            RoomPart::Meta => "meta",
            RoomPart::Msg => "msg",
            RoomPart::Read => "read",
        }
    }
}

/// What a subject of the event stream names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKind {
    Room(Uuid, RoomPart),
    User(Uuid),
    Username(String),
    /// An API token's issue and revocation.
    Token(Uuid),
}

/// Builds and parses subjects for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// `prefix` must be one or more dot-separated tokens of `[A-Za-z0-9_-]`.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let valid = !prefix.is_empty()
            && prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if valid {
            Ok(Subjects {
                prefix: prefix.to_string(),
            })
        } else {
            Err(format!(
                "subject prefix {prefix:?} must be dot-separated tokens of letters, digits, '_' or '-'"
            ))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every stored event: the event stream's subject filter.
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// Every room event of every room.
    pub fn all_rooms(&self) -> String {
        format!("{}.events.room.*.*", self.prefix)
    }

    /// Every event of one room (all its parts).
    pub fn room_events(&self, room_id: Uuid) -> String {
        format!("{}.events.room.{}.*", self.prefix, room_id)
    }

    /// The room whose every event `filter` is ([`room_events`](Self::room_events)), if it is.
    pub fn room_of_filter(&self, filter: &str) -> Option<Uuid> {
        filter
            .strip_prefix(&self.prefix)?
            .strip_prefix(".events.room.")?
            .strip_suffix(".*")?
            .parse()
            .ok()
    }

    pub fn room(&self, room_id: Uuid, part: RoomPart) -> String {
        format!("{}.events.room.{}.{}", self.prefix, room_id, part.token())
    }

    /// Every user's own subject.
    pub fn all_users(&self) -> String {
        format!("{}.events.user.>", self.prefix)
    }

    pub fn user(&self, user_id: Uuid) -> String {
        format!("{}.events.user.{}", self.prefix, user_id)
    }

    /// Every username's subject.
    pub fn all_usernames(&self) -> String {
        format!("{}.events.username.>", self.prefix)
    }

    /// Every API token's subject.
    pub fn all_tokens(&self) -> String {
        format!("{}.events.token.*", self.prefix)
    }

    /// An API token's subject: its issue, then perhaps its revocation.
    pub fn token(&self, token_id: Uuid) -> String {
        format!("{}.events.token.{}", self.prefix, token_id)
    }

    /// `username` must already be normalised (lower-case, `a-z 0-9 _ -`).
    pub fn username(&self, username: &str) -> String {
        format!("{}.events.username.{}", self.prefix, username)
    }

    /// Ephemeral traffic on core NATS, outside the stream.
    pub fn live(&self, rest: &str) -> String {
        format!("{}.live.{}", self.prefix, rest)
    }

    /// What a stream subject names, or `None` for a subject outside this prefix's events.
    pub fn parse(&self, subject: &str) -> Option<SubjectKind> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".events.")?;
        let mut parts = rest.split('.');
        let kind = match (parts.next()?, parts.next()?, parts.next()) {
            ("room", id, Some(part)) => {
                let part = match part {
                    "meta" => RoomPart::Meta,
                    "msg" => RoomPart::Msg,
                    "read" => RoomPart::Read,
                    _ => return None,
                };
                SubjectKind::Room(id.parse().ok()?, part)
            }
            ("user", id, None) => SubjectKind::User(id.parse().ok()?),
            ("username", name, None) => SubjectKind::Username(name.to_string()),
            ("token", id, None) => SubjectKind::Token(id.parse().ok()?),
            _ => return None,
        };
        parts.next().is_none().then_some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_through_parse() {
        let s = Subjects::new("t1.natter").unwrap();
        let id = Uuid::new_v4();
        for part in [RoomPart::Meta, RoomPart::Msg, RoomPart::Read] {
            assert_eq!(
                s.parse(&s.room(id, part)),
                Some(SubjectKind::Room(id, part))
            );
        }
        assert_eq!(s.parse(&s.user(id)), Some(SubjectKind::User(id)));
        assert_eq!(
            s.parse(&s.username("bob")),
            Some(SubjectKind::Username("bob".into()))
        );
        assert_eq!(
            s.room(id, RoomPart::Msg),
            format!("t1.natter.events.room.{id}.msg")
        );
    }

    #[test]
    fn foreign_or_malformed_subjects_do_not_parse() {
        let s = Subjects::new("natter").unwrap();
        assert_eq!(s.parse("other.events.user.x"), None);
        assert_eq!(s.parse("natter.events.room.not-a-uuid.meta"), None);
        assert_eq!(
            s.parse(&format!("natter.events.room.{}.meta.x", Uuid::nil())),
            None
        );
    }

    #[test]
    fn prefixes_with_wildcards_or_empty_tokens_are_refused() {
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a"] {
            assert!(Subjects::new(bad).is_err(), "{bad:?}");
        }
    }
}
