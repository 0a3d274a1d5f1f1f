//! The write side's input rules as types that can only hold valid values (parse, don't
//! validate): a handler parses the request into them, and everything after works on values
//! that are known to be good. Each refusal is the contract's `422 validation_failed` naming
//! the field.

use natter_edge::ApiError;
use natter_edge::text::{body_text, check_name};
use natter_events::catalogue::{Attachment, MessageKind, MessageSent};
use uuid::Uuid;

/// The longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 4_000;
const MAX_URL_BYTES: usize = 2048;

/// A room name: trimmed, 1-100 characters, no control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        let name = name.trim();
        let len = name.chars().count();
        if !(1..=100).contains(&len) || name.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "name must be 1-100 characters without control characters",
            ));
        }
        Ok(RoomName(name.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A file attached to a message: an http(s) URL, a name, a `type/subtype` MIME type.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAttachment(Attachment);

impl ValidAttachment {
    pub fn parse(a: Attachment) -> Result<Self, ApiError> {
        let url_ok = (a.url.starts_with("https://") || a.url.starts_with("http://"))
            && a.url.len() <= MAX_URL_BYTES
            && !a.url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !url_ok {
            return Err(ApiError::validation(format!(
                "attachment.url must be an http(s) URL of at most {MAX_URL_BYTES} characters"
            )));
        }
        if !(1..=255).contains(&a.name.chars().count()) {
            return Err(ApiError::validation(
                "attachment.name must be 1-255 characters",
            ));
        }
        check_name("attachment.name", &a.name)?;
        check_name("attachment.mime", &a.mime)?;
        let mime_ok = a.mime.len() <= 255
            && a.mime
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty());
        if !mime_ok {
            return Err(ApiError::validation(
                "attachment.mime must look like type/subtype",
            ));
        }
        Ok(ValidAttachment(a))
    }
}

/// What a user may send: a kind other than `system`, content as stored (see
/// [`body_text`]) of at most [`MAX_CONTENT_CHARS`], empty only with an attachment, and an
/// attachment required for image, video and file messages.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageBody {
    kind: MessageKind,
    content: String,
    attachment: Option<ValidAttachment>,
}

impl MessageBody {
    pub fn parse(
        kind: Option<MessageKind>,
        content: &str,
        attachment: Option<Attachment>,
    ) -> Result<Self, ApiError> {
        let kind = kind.unwrap_or(MessageKind::Text);
        let content = body_text("content", content)?;
        if kind == MessageKind::System {
            return Err(ApiError::validation(
                "kind must be text, image, video or file",
            ));
        }
        let chars = content.chars().count();
        if chars > MAX_CONTENT_CHARS {
            return Err(ApiError::validation(format!(
                "content must be at most {MAX_CONTENT_CHARS} characters"
            )));
        }
        let attachment = attachment.map(ValidAttachment::parse).transpose()?;
        if attachment.is_none() {
            if chars == 0 {
                return Err(ApiError::validation(
                    "content may be empty only with an attachment",
                ));
            }
            if kind != MessageKind::Text {
                return Err(ApiError::validation(
                    "image, video and file messages need an attachment",
                ));
            }
        }
        Ok(MessageBody {
            kind,
            content,
            attachment,
        })
    }

    /// The message this body makes, under `message_id`, with its links.
    pub fn into_message(self, message_id: Uuid, links: Links) -> MessageSent {
        MessageSent {
            message_id,
            kind: self.kind,
            content: self.content,
            attachment: self.attachment.map(|a| a.0),
            reply_to: links.reply_to,
            thread_id: links.thread_id,
            mentions: links.mentions,
        }
    }
}

/// The most users one message may mention.
pub const MAX_MENTIONS: usize = 50;

/// What a message refers to: the message it quotes, the thread it replies in, the users it
/// mentions (each once, in the order first named, at most [`MAX_MENTIONS`]). Whether they
/// exist in the room is the room's rule, decided against the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    reply_to: Option<Uuid>,
    thread_id: Option<Uuid>,
    mentions: Vec<Uuid>,
}

impl Links {
    pub fn parse(
        reply_to: Option<Uuid>,
        thread_id: Option<Uuid>,
        mentions: Option<Vec<Uuid>>,
    ) -> Result<Self, ApiError> {
        let mut unique = Vec::new();
        for user in mentions.unwrap_or_default() {
            if !unique.contains(&user) {
                unique.push(user);
            }
        }
        if unique.len() > MAX_MENTIONS {
            return Err(ApiError::validation(format!(
                "mentions may name at most {MAX_MENTIONS} users"
            )));
        }
        Ok(Links {
            reply_to,
            thread_id,
            mentions: unique,
        })
    }
}

/// The longest emoji, in bytes (a family or a flag with modifiers is several code points).
const MAX_EMOJI_BYTES: usize = 32;
const MAX_SHORT_NAME_CHARS: usize = 32;

/// A reaction's emoji: one emoji (a single grapheme cluster of at most 32 bytes with a
/// pictographic code point or a keycap in it) or a `:short_name:` of 1-32 characters of
/// `a-z 0-9 _ + -` (for custom emoji, which natter stores as names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(emoji: &str) -> Result<Self, ApiError> {
        use unicode_segmentation::UnicodeSegmentation;
        let short_name = emoji
            .strip_prefix(':')
            .and_then(|e| e.strip_suffix(':'))
            .is_some_and(|name| {
                (1..=MAX_SHORT_NAME_CHARS).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'+' | b'-'))
            });
        let one_emoji = emoji.len() <= MAX_EMOJI_BYTES
            && emoji.graphemes(true).count() == 1
            && emoji.chars().any(pictographic);
        if short_name || one_emoji {
            Ok(Emoji(emoji.to_string()))
        } else {
            Err(ApiError::validation(
                "emoji must be one emoji or a :short_name: of 1-32 characters of a-z 0-9 _ + -",
            ))
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Whether `c` makes a grapheme an emoji: the pictographic blocks, the older symbols that
/// have emoji presentation, and the keycap mark (`1️⃣`).
fn pictographic(c: char) -> bool {
    matches!(
        u32::from(c),
        0xA9 | 0xAE
            | 0x203C
            | 0x2049
            | 0x20E3
            | 0x2122
            | 0x2139
            | 0x2194..=0x21AA
            | 0x231A..=0x23FF
            | 0x24C2
            | 0x25AA..=0x27BF
            | 0x2934..=0x2935
            | 0x2B05..=0x2B55
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
            | 0x1F000..=0x1FAFF
    )
}

/// A message's new content in an edit: as stored (see [`body_text`]), 1 to
/// [`MAX_CONTENT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditedContent(String);

impl EditedContent {
    pub fn parse(content: &str) -> Result<Self, ApiError> {
        let content = body_text("content", content)?;
        if !(1..=MAX_CONTENT_CHARS).contains(&content.chars().count()) {
            return Err(ApiError::validation(format!(
                "content must be 1-{MAX_CONTENT_CHARS} characters"
            )));
        }
        Ok(EditedContent(content))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(url: &str, name: &str, mime: &str) -> Attachment {
        Attachment {
            url: url.into(),
            name: name.into(),
            mime: mime.into(),
            size: 1,
        }
    }

    #[test]
    fn a_room_name_is_trimmed_and_bounded() {
        assert_eq!(RoomName::parse("  lobby ").unwrap().into_inner(), "lobby");
        assert_eq!(
            RoomName::parse(&"é".repeat(100)).unwrap().into_inner(),
            "é".repeat(100),
            "the bound counts characters, not bytes"
        );
        for bad in ["", "   ", &"a".repeat(101), "tab\there", "nul\u{0}"] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_text_message_needs_content_and_keeps_its_lines() {
        let body = MessageBody::parse(None, "hi\r\nthere", None).unwrap();
        let sent = body.into_message(Uuid::nil(), Links::default());
        assert_eq!(sent.kind, MessageKind::Text);
        assert_eq!(sent.content, "hi\nthere");
        assert!(MessageBody::parse(None, "", None).is_err());
        assert!(MessageBody::parse(None, &"x".repeat(MAX_CONTENT_CHARS + 1), None).is_err());
        assert!(MessageBody::parse(None, &"x".repeat(MAX_CONTENT_CHARS), None).is_ok());
    }

    #[test]
    fn an_emoji_is_one_pictographic_grapheme_or_a_short_name() {
        for good in [
            "👍",
            "👍🏽",
            "❤️",
            "🇫🇷",
            "👨‍👩‍👧‍👦",
            "1️⃣",
            "©",
            ":thumbsup:",
            ":+1:",
            ":party-parrot_2:",
        ] {
            assert_eq!(Emoji::parse(good).unwrap().into_inner(), good);
        }
        for bad in [
            "",
            "a",
            "é",
            "👍👍",
            "👍 ",
            " 👍",
            "::",
            ":Thumbs:",
            ":a b:",
            "thumbsup",
            &format!(":{}:", "a".repeat(33)),
            "\u{0}",
            "<b>",
            "12",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mentions_are_named_once_and_bounded() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let links = Links::parse(None, None, Some(vec![a, b, a])).unwrap();
        let sent = MessageBody::parse(None, "hi", None)
            .unwrap()
            .into_message(Uuid::nil(), links);
        assert_eq!(sent.mentions, vec![a, b]);
        let many: Vec<Uuid> = (0..=MAX_MENTIONS).map(|_| Uuid::new_v4()).collect();
        assert!(Links::parse(None, None, Some(many)).is_err());
    }

    #[test]
    fn edited_content_is_text_of_1_to_4000_characters() {
        assert_eq!(EditedContent::parse("a\r\nb").unwrap().into_inner(), "a\nb");
        for bad in ["", &"x".repeat(MAX_CONTENT_CHARS + 1), "bell\u{7}"] {
            assert!(EditedContent::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn system_messages_and_media_without_a_file_are_refused() {
        assert!(MessageBody::parse(Some(MessageKind::System), "x", None).is_err());
        for kind in [MessageKind::Image, MessageKind::Video, MessageKind::File] {
            assert!(MessageBody::parse(Some(kind), "x", None).is_err());
            let file = attachment("https://a.example/f", "f.png", "image/png");
            assert!(MessageBody::parse(Some(kind), "", Some(file)).is_ok());
        }
    }

    #[test]
    fn an_attachment_is_an_http_url_with_a_name_and_a_mime_type() {
        let ok = attachment("https://a.example/f.png", "f.png", "image/png");
        assert!(ValidAttachment::parse(ok).is_ok());
        for bad in [
            attachment("ftp://a.example/f", "f", "image/png"),
            attachment("https://a.example/a b", "f", "image/png"),
            attachment(
                &format!("https://{}", "a".repeat(MAX_URL_BYTES)),
                "f",
                "a/b",
            ),
            attachment("https://a.example/f", "", "image/png"),
            attachment("https://a.example/f", "new\nline", "image/png"),
            attachment("https://a.example/f", "f", "png"),
            attachment("https://a.example/f", "f", "image/"),
        ] {
            assert!(
                ValidAttachment::parse(bad.clone()).is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
