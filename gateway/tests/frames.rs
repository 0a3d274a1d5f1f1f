//! The websocket frame parser over generated input: it never panics, and whatever it does not
//! accept is a clean error frame with one of the documented codes.

use natter_gateway::protocol::parse;
use proptest::prelude::*;

const CODES: &[&str] = &["bad_request", "unknown_op", "frame_too_large"];

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse(text) {
        prop_assert!(
            CODES.contains(&e.code),
            "undocumented code {:?} for {text:?}",
            e.code
        );
        prop_assert!(!e.message.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_parsed_or_refused_cleanly(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn frames_shaped_like_ops_are_parsed_or_refused_cleanly(
        op in prop_oneof![Just("subscribe".to_string()), Just("unsubscribe".to_string()), Just("typing".to_string()),
                          Just("signal".to_string()), Just("ping".to_string()), "[a-z]{0,8}"],
        room in prop_oneof![Just("\"00000000-0000-0000-0000-000000000001\"".to_string()), Just("42".to_string()), Just("null".to_string()), "\"[a-f0-9-]{0,40}\""],
        since in prop_oneof![Just("1".to_string()), Just("-1".to_string()), Just("1e30".to_string()), Just("\"x\"".to_string()), Just("18446744073709551616".to_string())],
        extra in prop_oneof![Just(String::new()), Just(",\"typing\":true".to_string()), Just(",\"signal\":\"camera\",\"on\":1".to_string())],
    ) {
        let text = format!("{{\"op\":\"{op}\",\"room_id\":{room},\"since\":{since}{extra}}}");
        check(&text)?;
    }
}
