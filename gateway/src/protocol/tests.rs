//! The hand-written frames checked against `ServerFrame` (and so against AsyncAPI), and the
//! parser's answers to good and bad frames.

use super::*;

/// The frames written by hand (the spliced `event`, `ack`) are what `ServerFrame`, and so
/// the AsyncAPI document, says they are.
#[test]
fn hand_written_frames_are_server_frames() {
    use natter_events::catalogue::{Event, MessageSent};
    use natter_events::{Envelope, RawMessage};
    let (room, message_id) = (Uuid::new_v4(), Uuid::new_v4());
    let envelope = Envelope::new(
        Uuid::new_v4(),
        chrono::Utc::now(),
        Some(Uuid::new_v4()),
        Some(room),
        Event::MessageSent(MessageSent {
            message_id,
            kind: MessageKind::Text,
            content: "hi".into(),
            attachment: None,
            ..Default::default()
        }),
    );
    let stored = RawMessage {
        position: 9,
        subject: "t.events.room.x.msg".into(),
        payload: envelope.encode().into(),
        pending: 0,
        recorded_at: chrono::Utc::now(),
        event_type: Some("message.sent".into()),
    };
    let json = natter_events::envelope::public_json(&stored);
    for feed in [false, true] {
        let frame: ServerFrame = serde_json::from_str(&event(room, 9, Some(4), &json, feed))
            .expect("an event frame is a ServerFrame");
        let ServerFrame::Event {
            room_id,
            position,
            prev_position,
            feed: me,
            event,
        } = frame
        else {
            panic!("not an event frame");
        };
        assert_eq!((room_id, position, prev_position), (room, 9, Some(4)));
        assert_eq!(me.as_deref(), feed.then_some("me"));
        assert_eq!(event.position, 9);
        assert_eq!(event.envelope.type_name, "message.sent");
        assert_eq!(event.envelope.data["message_id"], message_id.to_string());
    }
    let answer = json!({ "id": message_id, "room_id": room, "sender_id": null, "kind": "text",
        "content": "hi", "attachment": null, "position": 9,
        "created_at": "2026-12-01T00:00:00Z", "edited_at": null, "deleted": false });
    let frame: ServerFrame =
        serde_json::from_str(&ack(Some("c1"), &json!(9), Some(&answer))).expect("an ack");
    assert!(matches!(
        frame,
        ServerFrame::Ack { client_id: Some(ref c), position: 9, message: Some(_) } if c == "c1"
    ));
}

#[test]
fn event_frames_are_json_with_the_envelope_inside() {
    let room = Uuid::new_v4();
    let frame: Value = serde_json::from_str(&event(
        room,
        7,
        Some(5),
        br#"{"position":7,"type":"x"}"#,
        true,
    ))
    .unwrap();
    assert_eq!(
        frame,
        json!({ "type": "event", "room_id": room, "position": 7, "prev_position": 5, "feed": "me",
                               "event": { "position": 7, "type": "x" } })
    );
    let frame: Value = serde_json::from_str(&event(room, 7, None, b"{}", false)).unwrap();
    assert_eq!(frame["prev_position"], Value::Null);
    assert!(frame.get("feed").is_none());
}

#[test]
fn ops_parse_and_bad_frames_say_why() {
    let room = Uuid::new_v4();
    assert_eq!(
        parse(&format!(
            r#"{{"op":"subscribe","room_id":"{room}","since":5}}"#
        )),
        Ok(ClientOp::Subscribe {
            room_id: room,
            since: Some(5),
            epoch: None
        })
    );
    assert_eq!(parse(r#"{"op":"ping"}"#), Ok(ClientOp::Ping));
    assert_eq!(parse("garbage").unwrap_err().code, "bad_request");
    assert_eq!(parse(r#"{"op":"dance"}"#).unwrap_err().code, "unknown_op");
    assert_eq!(parse(r#"{"nope":1}"#).unwrap_err().code, "unknown_op");
    assert_eq!(
        parse(r#"{"op":"subscribe","room_id":"x"}"#)
            .unwrap_err()
            .code,
        "bad_request"
    );
    assert_eq!(
        parse(&format!(
            r#"{{"op":"signal","room_id":"{room}","signal":"laser","on":true}}"#
        ))
        .unwrap_err()
        .code,
        "bad_request"
    );
}
