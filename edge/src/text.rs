//! The contract's rules for text: a name (room name, display name, attachment name, a query
//! parameter) holds no control character at all; a message body may hold newlines and tabs
//! but no other control character (NUL included, which Postgres `text` cannot store).
//!
//! Both are checked at the edge, before anything is appended, so a refused text never
//! reaches the log; the projector still stores whatever an older or foreign writer put there
//! (see `natter_projector::storable`).

use crate::error::ApiError;

/// Whether `c` may appear in a message body: anything but control characters, except
/// newline and tab.
fn allowed_in_body(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// Refuses a single-line text (a name, a label, a query parameter) holding any control
/// character: `422 validation_failed` naming `field`.
pub fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} may not contain control characters"
        )));
    }
    Ok(())
}

/// A message body as stored: `\r\n` line ends become `\n` (what browsers' forms send is the
/// same text); any other control character but newline and tab, a lone `\r` included, is
/// refused with `422 validation_failed` naming `field`.
pub fn body_text(field: &str, value: &str) -> Result<String, ApiError> {
    let text = if value.contains('\r') {
        value.replace("\r\n", "\n")
    } else {
        value.to_string()
    };
    if let Some(c) = text.chars().find(|c| !allowed_in_body(*c)) {
        return Err(ApiError::validation(format!(
            "{field} may not contain control characters other than newline and tab (found U+{:04X})",
            c as u32
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_keeps_newlines_and_tabs_and_normalizes_crlf() {
        assert_eq!(body_text("content", "a\r\nb\tc\n").unwrap(), "a\nb\tc\n");
    }

    #[test]
    fn a_body_with_nul_or_another_control_character_is_refused() {
        for bad in [
            "a\u{0}b",
            "bell\u{7}",
            "lone\rcr",
            "esc\u{1b}[0m",
            "c1\u{85}",
        ] {
            let e = body_text("content", bad).unwrap_err();
            assert_eq!(e.code, "validation_failed", "{bad:?}");
        }
    }

    #[test]
    fn a_name_refuses_every_control_character_even_newline() {
        assert!(check_name("name", "general").is_ok());
        for bad in ["a\nb", "tab\there", "nul\u{0}"] {
            assert_eq!(
                check_name("name", bad).unwrap_err().code,
                "validation_failed"
            );
        }
    }
}
