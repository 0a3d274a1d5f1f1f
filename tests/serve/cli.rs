//! `natter replay` and `natter verify` on a log.

use super::*;

fn natter_cli(isolation: &Isolation, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .env("NATS_URL", nats_url())
        .env("NATTER_STREAM", &isolation.stream)
        .env("NATTER_SUBJECT_PREFIX", &isolation.prefix)
        .output()
        .unwrap()
}

#[tokio::test]
async fn replay_prints_the_log_and_verify_names_a_corrupt_event() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let command = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let api = Api::server(&command.base());
    let auditor = api.register("auditor").await;
    let token = auditor.token;
    let room = api.create_room(&token, json!({ "name": "audited" })).await;
    for i in 0..5 {
        api.send(&token, room, &format!("m{i}")).await;
    }

    let out = natter_cli(&isolation, &["replay"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert!(!stdout.contains("$argon2"), "credentials are redacted");
    let out = natter_cli(
        &isolation,
        &[
            "replay",
            "--room",
            &room.to_string(),
            "--type",
            "message.sent",
            "--from",
            "4",
        ],
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let out = natter_cli(&isolation, &["replay", "--format", "table", "--to", "2"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("  position"), "{table}");
    assert!(
        table.contains("room.created") && !table.contains("message.sent"),
        "{table}"
    );

    // Threads, reactions and mentions are part of a sound log too.
    let root = api
        .post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": "root" }),
        )
        .await
        .expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = json!({ "content": "reply", "thread_id": root, "reply_to": root, "mentions": [auditor.id] });
    api.post(&format!("/rooms/{room}/messages"), Some(&token), reply)
        .await
        .expect(201);
    let reaction = format!("/rooms/{room}/messages/{root}/reactions/%F0%9F%91%8D");
    api.request(
        axum::http::Method::PUT,
        &reaction,
        Some(&token),
        Vec::new(),
        &[],
    )
    .await
    .expect(200);
    api.delete(&reaction, Some(&token)).await.expect(200);

    let out = natter_cli(&isolation, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("message.sent")
            && report.contains("message.reaction_added")
            && report.contains("message.reaction_removed")
            && report.contains("the log is sound"),
        "{report}"
    );

    // A corrupt event, published straight to the stream.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let subject = format!("{}.events.room.{room}.msg", isolation.prefix);
    let bad = js
        .publish(subject, "{\"type\":\"message.sent\",\"oops\":".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let out = natter_cli(&isolation, &["verify"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(&format!("position {bad}:")), "{stdout}");
    assert!(stderr.contains(&format!("at positions {bad}")), "{stderr}");
    drop(command);
}
