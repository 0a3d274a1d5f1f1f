//! What the read models cannot store as the log has it, made storable without losing it.
//!
//! Postgres `text` and `jsonb` cannot hold U+0000. The edge refuses NUL in every text field,
//! but the log may still hold one (an event written before that rule, or by another writer),
//! and the projector must never wedge on an event that is already in the log. So in the read
//! models only, each NUL in a string becomes U+FFFD (the replacement character); the log keeps
//! the original, and the history endpoints and `natter replay` show it as it was.
//!
//! JSON can carry a NUL only as the escape `\u0000` (a raw one is invalid), so the payload is
//! rewritten before decoding, byte for byte, and only when that escape is present: the
//! common case costs one scan and no copy.

use std::borrow::Cow;

const NUL_ESCAPE: &[u8] = b"\\u0000";
const REPLACEMENT_ESCAPE: &[u8] = b"\\ufffd";

/// `payload` with every JSON-escaped NUL inside a string replaced by U+FFFD's escape.
pub fn storable(payload: &[u8]) -> Cow<'_, [u8]> {
    if !payload.windows(NUL_ESCAPE.len()).any(|w| w == NUL_ESCAPE) {
        return Cow::Borrowed(payload);
    }
    let mut out = Vec::with_capacity(payload.len());
    let mut i = 0;
    while i < payload.len() {
        if payload[i] == b'\\' {
            // An escape: `\u0000` is a NUL; anything else (`\\` included, so that a literal
            // backslash followed by "u0000" is left alone) is copied whole.
            if payload[i..].starts_with(NUL_ESCAPE) {
                out.extend_from_slice(REPLACEMENT_ESCAPE);
                i += NUL_ESCAPE.len();
            } else {
                out.extend_from_slice(&payload[i..(i + 2).min(payload.len())]);
                i += 2;
            }
        } else {
            out.push(payload[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(payload: &str) -> String {
        let out = storable(payload.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["s"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_nul_in_a_string_becomes_the_replacement_character() {
        assert_eq!(text(r#"{"s":"a\u0000b\u0000"}"#), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn a_literal_backslash_before_u0000_is_not_a_nul_and_stays() {
        assert_eq!(
            text(r#"{"s":"C:\\u0000 and \u0000"}"#),
            "C:\\u0000 and \u{fffd}"
        );
    }

    #[test]
    fn a_payload_without_nul_is_not_copied() {
        assert!(matches!(
            storable(br#"{"s":"plain \n text"}"#),
            Cow::Borrowed(_)
        ));
    }
}
