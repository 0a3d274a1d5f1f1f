// The client-side fold of messages from room events, without a server: the same rules as
// natter's read model (the whole-stack tests compare the two on a live natter).
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyToMessage, messageFromEvent, messagesTouched, NAMED_USERS } from "../dist/index.js";

const room = "00000000-0000-0000-0000-0000000000aa";
const alice = "00000000-0000-0000-0000-00000000000a";
let position = 10;
function event(type, data, actor = alice) {
  position += 1;
  return {
    id: `00000000-0000-0000-0000-${String(position).padStart(12, "0")}`,
    type,
    version: 1,
    occurred_at: `2026-12-06T10:00:${String(position % 60).padStart(2, "0")}Z`,
    actor_id: actor,
    room_id: room,
    position,
    data,
  };
}
const sent = (id, content, extra = {}, actor = alice) =>
  event("message.sent", { message_id: id, kind: "text", content, mentions: [], ...extra }, actor);

test("a message.sent event makes the message the read model shows", () => {
  const e = sent("m1", "hello", { reply_to: "m0" });
  assert.deepEqual(messageFromEvent(e), {
    id: "m1",
    room_id: room,
    sender_id: alice,
    kind: "text",
    content: "hello",
    attachment: null,
    position: e.position,
    created_at: e.occurred_at,
    edited_at: null,
    deleted: false,
    reply_to: "m0",
    thread_id: null,
    mentions: [],
    thread: null,
    reactions: [],
  });
  const system = messageFromEvent(event("message.sent", { message_id: "s", kind: "system", content: "maintenance" }));
  assert.equal(system.sender_id, null, "a broadcast has no sender");
});

test("reactions count each user once, name the earliest ten, and go at zero", () => {
  let m = messageFromEvent(sent("m2", "vote"));
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  for (const u of users) m = applyToMessage(m, event("message.reaction_added", { message_id: "m2", emoji: "👍", user_id: u }, u));
  m = applyToMessage(m, event("message.reaction_added", { message_id: "m2", emoji: "🎉", user_id: "user-0" }, "user-0"));
  assert.deepEqual(
    m.reactions.map((r) => [r.emoji, r.count, r.user_ids.length]),
    [
      ["👍", 12, NAMED_USERS],
      ["🎉", 1, 1],
    ],
  );
  assert.deepEqual(m.reactions[0].user_ids, users.slice(0, NAMED_USERS));
  const again = applyToMessage(m, event("message.reaction_added", { message_id: "m2", emoji: "🎉", user_id: "user-0" }));
  assert.equal(again.reactions[1].count, 1, "the same user's reaction counts once");
  m = applyToMessage(m, event("message.reaction_removed", { message_id: "m2", emoji: "🎉", user_id: "user-0" }));
  assert.deepEqual(
    m.reactions.map((r) => r.emoji),
    ["👍"],
  );
});

test("an edit changes the content; a deletion empties the message and its reactions, and later edits leave it", () => {
  let m = messageFromEvent(sent("m3", "frist", { attachment: { url: "https://x/y.png", name: "y.png", mime: "image/png", size: 1 } }));
  m = applyToMessage(m, event("message.reaction_added", { message_id: "m3", emoji: "👍", user_id: alice }));
  const edit = event("message.edited", { message_id: "m3", content: "first" });
  m = applyToMessage(m, edit);
  assert.equal(m.content, "first");
  assert.equal(m.edited_at, edit.occurred_at);
  m = applyToMessage(m, event("message.deleted", { message_id: "m3" }));
  assert.deepEqual([m.deleted, m.content, m.attachment, m.reactions], [true, "", null, []]);
  const after = applyToMessage(m, event("message.edited", { message_id: "m3", content: "back?" }));
  assert.equal(after, m, "a deleted message takes no edit");
});

test("a reply in a thread counts on its root; other events leave a message as it is", () => {
  let root = messageFromEvent(sent("root", "lunch?"));
  const bob = "00000000-0000-0000-0000-00000000000b";
  for (const [id, who] of [["r1", bob], ["r2", alice], ["r3", bob]]) {
    root = applyToMessage(root, sent(id, "ok", { thread_id: "root" }, who));
  }
  assert.equal(root.thread.reply_count, 3);
  assert.deepEqual(root.thread.participant_ids, [bob, alice], "each participant once, in order");
  const other = sent("elsewhere", "hi");
  assert.equal(applyToMessage(root, other), root, "unchanged: the same object");
  assert.deepEqual(messagesTouched(sent("r4", "x", { thread_id: "root" })), ["root"]);
  assert.deepEqual(messagesTouched(event("message.deleted", { message_id: "m9" })), ["m9"]);
  assert.deepEqual(messagesTouched(event("room.member_left", { user_id: bob })), []);
});
