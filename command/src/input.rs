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

    /// The message this body makes, under `message_id`.
    pub fn into_message(self, message_id: Uuid) -> MessageSent {
        MessageSent {
            message_id,
            kind: self.kind,
            content: self.content,
            attachment: self.attachment.map(|a| a.0),
        }
    }
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
        let sent = body.into_message(Uuid::nil());
        assert_eq!(sent.kind, MessageKind::Text);
        assert_eq!(sent.content, "hi\nthere");
        assert!(MessageBody::parse(None, "", None).is_err());
        assert!(MessageBody::parse(None, &"x".repeat(MAX_CONTENT_CHARS + 1), None).is_err());
        assert!(MessageBody::parse(None, &"x".repeat(MAX_CONTENT_CHARS), None).is_ok());
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
