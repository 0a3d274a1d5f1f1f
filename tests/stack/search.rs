//! Search as a user sees it: best match first with a highlight, by word prefix, over the rooms
//! the caller is in (one of them on request); an edit found by its new text, a deletion never,
//! a room left no more; pages that visit every match once; a rebuild giving the same.

use serde_json::{Value, json};

use crate::helpers::Stack;
use crate::helpers::User;

fn found(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"]["content"].as_str().unwrap().to_string())
        .collect()
}

async fn search(stack: &Stack, token: &str, query: &str, at: u64) -> Value {
    let path = format!("/search/messages?{query}");
    let resp = stack.get_at(&path, token, at).await;
    resp.expect(200).clone()
}

#[tokio::test]
async fn search_finds_words_by_prefix_in_the_callers_rooms_best_first() {
    let stack = Stack::spawn().await;
    let party = stack.api.party("finder").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let private = stack
        .api
        .create_room(owner, json!({ "name": "secret", "visibility": "private" }))
        .await;
    stack
        .api
        .send(owner, room, "the deployment failed again")
        .await;
    stack
        .api
        .send(member, room, "deploy deploy deploy: every deploy fails")
        .await;
    stack.api.send(owner, room, "lunch at noon").await;
    stack
        .api
        .send(owner, private, "deploy keys are here <b>&</b>")
        .await;
    let (_, at) = stack
        .api
        .send_with(member, room, json!({ "content": "Déploiement prévu" }))
        .await;

    let body = search(&stack, member, "q=deplo", at).await;
    assert_eq!(
        found(&body),
        vec![
            "deploy deploy deploy: every deploy fails",
            "the deployment failed again"
        ],
        "best match first; the private room the member is not in is never searched"
    );
    assert_eq!(
        body["results"][1]["highlight"],
        "the <mark>deployment</mark> failed again"
    );
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(
        body["results"][0]["message"]["room_id"],
        room.to_string(),
        "each result is a full message"
    );

    // Every word must match (as a prefix); case and accents as written.
    let both = search(&stack, member, "q=DEPLOY%20fail", at).await;
    assert_eq!(found(&both).len(), 2);
    assert_eq!(
        found(&search(&stack, member, "q=deploy%20lunch", at).await),
        Vec::<String>::new()
    );
    assert_eq!(
        found(&search(&stack, member, "q=d%C3%A9ploiement", at).await),
        vec!["Déploiement prévu"]
    );

    // The owner is in both rooms; the highlight is escaped HTML.
    let owners = search(&stack, owner, "q=keys", at).await;
    assert_eq!(
        owners["results"][0]["highlight"],
        "deploy <mark>keys</mark> are here &lt;b&gt;&amp;&lt;/b&gt;"
    );
    let only_private = search(&stack, owner, &format!("q=deploy&room_id={private}"), at).await;
    assert_eq!(found(&only_private), vec!["deploy keys are here <b>&</b>"]);

    // Bad input is the contract's 4xx.
    for (query, status) in [
        ("", 422),
        ("q=", 422),
        ("q=%20%20", 422),
        ("q=%3F%21", 422),
        ("q=a%00b", 422),
        ("q=deploy&limit=0", 422),
        ("q=deploy&cursor=nonsense", 400),
        ("q=deploy&room_id=nope", 400),
    ] {
        let resp = stack
            .get_at(&format!("/search/messages?{query}"), member, at)
            .await;
        assert_eq!(resp.status, status, "{query}: {:?}", resp.body);
        assert!(resp.body["error"]["code"].is_string(), "{query}");
    }
    let foreign = stack
        .get_at(
            &format!("/search/messages?q=deploy&room_id={private}"),
            member,
            at,
        )
        .await;
    assert!(matches!(foreign.status.as_u16(), 403 | 404), "{foreign:?}");
    // Query syntax is not syntax: quotes, operators and backslashes are words or nothing.
    for odd in [
        "q=it%27s%20%26%20%21",
        "q=deploy%27%3A*%7C",
        "q=%5C%5Cdeploy",
        "q=a%26%7Cb",
    ] {
        let resp = stack
            .get_at(&format!("/search/messages?{odd}"), member, at)
            .await;
        assert_eq!(resp.status, 200, "{odd}: {:?}", resp.body);
    }
}

#[tokio::test]
async fn edits_deletions_and_leaving_change_what_is_found() {
    let stack = Stack::spawn().await;
    let party = stack.api.party("changes").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (typo, _) = stack
        .api
        .send_with(owner, room, json!({ "content": "meeting at teh office" }))
        .await;
    let (gone, at) = stack
        .api
        .send_with(owner, room, json!({ "content": "office party tonight" }))
        .await;
    assert_eq!(
        found(&search(&stack, member, "q=office", at).await).len(),
        2
    );

    let path = format!("/rooms/{room}/messages/{typo}");
    let edited = stack
        .api
        .patch(
            &path,
            Some(owner),
            json!({ "content": "meeting in the boardroom" }),
        )
        .await;
    let edited_at = edited.expect(200)["position"].as_u64().unwrap();
    let body = search(&stack, member, "q=boardroom", edited_at).await;
    assert_eq!(found(&body), vec!["meeting in the boardroom"]);
    assert!(body["results"][0]["message"]["edited_at"].is_string());
    assert_eq!(
        found(&search(&stack, member, "q=office", edited_at).await),
        vec!["office party tonight"],
        "the old text is no longer found"
    );

    let deleted_at = stack
        .api
        .delete(&format!("/rooms/{room}/messages/{gone}"), Some(owner))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        found(&search(&stack, member, "q=office", deleted_at).await),
        Vec::<String>::new(),
        "a deleted message never matches"
    );

    let left_at = stack
        .post(&format!("/rooms/{room}/leave"), member, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        found(&search(&stack, member, "q=boardroom", left_at).await),
        Vec::<String>::new(),
        "a room left is no longer searched"
    );
    assert_eq!(
        found(&search(&stack, owner, "q=boardroom", left_at).await).len(),
        1
    );

    stack.assert_rebuild_gives_the_same().await;
    assert_eq!(
        found(&search(&stack, owner, "q=boardroom", left_at).await).len(),
        1,
        "the search index is rebuilt with the read models"
    );
    let gone_at = stack
        .api
        .delete(&format!("/rooms/{room}"), Some(owner))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        found(&search(&stack, owner, "q=boardroom", gone_at).await),
        Vec::<String>::new(),
        "a deleted room is no longer searched"
    );
}

#[tokio::test]
async fn search_pages_visit_every_match_once_in_rank_order() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("pager").await;
    let room = stack.create_room(&token, json!({ "name": "many" })).await;
    let mut at = 0;
    // Ranks repeat (the same text many times), so the cursor must order equals too.
    for i in 0..57 {
        let text = match i % 3 {
            0 => format!("alpha {i}"),
            1 => format!("alpha alpha {i}"),
            _ => format!("alpha beta gamma delta {i}"),
        };
        at = stack
            .api
            .send_with(&token, room, json!({ "content": &text }))
            .await
            .1;
    }
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = "q=alpha&limit=10".to_string();
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let body = search(&stack, &token, &query, at).await;
        for r in body["results"].as_array().unwrap() {
            let m = &r["message"];
            seen.push((
                m["content"].as_str().unwrap().to_string(),
                m["position"].as_u64().unwrap(),
            ));
        }
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 6);
    // Two matches rank above one; equals come newest first.
    let mut expected = seen.clone();
    expected.sort_by_key(|(content, position)| {
        (
            !content.starts_with("alpha alpha"),
            std::cmp::Reverse(*position),
        )
    });
    assert_eq!(seen, expected);
    let mut unique: Vec<u64> = seen.iter().map(|(_, p)| *p).collect();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (57, 57), "every match once");
}

#[tokio::test]
async fn a_word_in_more_messages_than_are_ranked_returns_the_newest_ranked() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("hoarder").await;
    let room = stack.create_room(&token, json!({ "name": "busy" })).await;
    let ranked = natter_query::search::RANKED;
    let total = ranked + 100;
    let mut at = 0;
    // The oldest 100 say "common" twice (they would rank first), the rest once; one old
    // message has a rare word.
    for i in 0..total {
        let text = match i {
            0 => "common needle 0".to_string(),
            i if i < 100 => format!("common common {i}"),
            i => format!("common {i}"),
        };
        at = stack
            .api
            .send_with(&token, room, json!({ "content": &text }))
            .await
            .1;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("q=common&room_id={room}&limit=100");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let body = search(&stack, &token, &query, at).await;
        seen.extend(found(&body));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let newest: Vec<String> = (100..total).rev().map(|i| format!("common {i}")).collect();
    assert_eq!(
        seen, newest,
        "the newest {ranked} matches, newest first among equals"
    );
    // A word only in an old message is still found, wherever it is.
    let body = search(&stack, &token, "q=needle", at).await;
    assert_eq!(found(&body), vec!["common needle 0"]);
}
