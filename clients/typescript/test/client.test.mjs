// The client against a real natter: a conversation, a server killed mid-stream, a lost frame,
// a consumer too slow for the server.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import WebSocket from "ws";
import { Rest, applyToMessage, messageFromEvent } from "../dist/index.js";
import { Natter, sleep, until } from "./harness.mjs";

const servers = [];
after(async () => {
  for (const s of servers) await s.stop();
});
async function natter(env) {
  const s = await Natter.start(env);
  servers.push(s);
  return s;
}

/** Every event a client delivers for `room`, recording what the app would see. */
function record(client, room) {
  const seen = [];
  client.on("event", (e) => {
    if (e.roomId === room) seen.push(e);
  });
  return seen;
}

/** The room's positions in the log itself. */
async function logPositions(rest, room) {
  return (await rest.roomEvents(room)).map((e) => e.position);
}

function assertChained(seen) {
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].position > seen[i - 1].position, `ascending at ${i}`);
    assert.equal(seen[i].prevPosition, seen[i - 1].position, `chained at ${i}`);
  }
}

test("two clients hold a conversation over the socket", async () => {
  const s = await natter();
  const alice = await s.user("alice");
  const bob = await s.user("bob");
  const { room } = await alice.client.rest.createRoom({ name: "chat" });
  await bob.client.rest.join(room.id);
  const states = [];
  alice.client.on("state", (c) => states.push(c.state));
  const aliceSaw = record(alice.client, room.id);
  const bobSaw = record(bob.client, room.id);
  for (const c of [alice.client, bob.client]) {
    c.subscribe(room.id);
    c.connect();
  }
  await until(() => alice.client.state === "connected" && bob.client.state === "connected");
  await sleep(200);
  const statuses = [];
  alice.client.on("message", (m) => statuses.push(m.status));
  const sent = [];
  for (let i = 0; i < 5; i++) {
    sent.push(alice.client.send(room.id, `alice ${i}`));
    sent.push(bob.client.send(room.id, `bob ${i}`));
  }
  for (const m of sent) {
    const c = m.content.startsWith("alice") ? alice.client : bob.client;
    const done = await c.settled(m);
    assert.equal(done.status, "sent", JSON.stringify(done.error));
    assert.equal(done.message.content, m.content);
  }
  assert.deepEqual(statuses.slice(0, 1), ["pending"], "shown at once as pending");
  await until(() => aliceSaw.length >= 10 && bobSaw.length >= 10, 10_000, "both to see all ten");
  const contents = (seen) => seen.map((e) => e.event.data.content);
  assert.deepEqual(contents(aliceSaw), contents(bobSaw), "both see one order");
  assert.equal(new Set(contents(aliceSaw)).size, 10, "each once");
  assertChained(aliceSaw);
  // Read-your-writes: the REST helpers wait for the client's own last write.
  const page = await alice.client.rest.messages(room.id);
  assert.equal(page.messages.length, 10);
  assert.deepEqual(states.slice(0, 2), ["connecting", "connected"]);
  alice.client.close();
  bob.client.close();
});

test("threads, reactions, mentions and search through the client", async () => {
  const s = await natter();
  const alice = await s.user("alice");
  const bob = await s.user("bob");
  const { room } = await alice.client.rest.createRoom({ name: "social" });
  await bob.client.rest.join(room.id);
  const bobSaw = record(bob.client, room.id);
  bob.client.subscribe(room.id);
  for (const c of [alice.client, bob.client]) c.connect();
  await until(() => alice.client.state === "connected" && bob.client.state === "connected");
  await sleep(200);

  const { message: root } = await alice.client.rest.sendMessage(room.id, { content: "release notes" });
  const bobId = (await bob.client.rest.me()).id;
  const reply = await alice.client.settled(
    alice.client.send(room.id, "draft is up", undefined, { thread_id: root.id, mentions: [bobId] }),
  );
  assert.equal(reply.status, "sent", JSON.stringify(reply.error));
  assert.equal(reply.message.thread_id, root.id);
  assert.deepEqual(reply.message.mentions, [bobId]);
  await bob.client.rest.react(room.id, root.id, "🎉");
  await bob.client.rest.react(room.id, root.id, "🎉");
  await until(() => bobSaw.some((e) => e.event.type === "message.reaction_added"), 10_000, "the reaction live");
  assert.equal(bobSaw.filter((e) => e.event.type === "message.reaction_added").length, 1, "reacting twice counts once");
  assertChained(bobSaw);

  const shown = await bob.client.rest.message(room.id, root.id);
  assert.deepEqual(shown.reactions, [{ emoji: "🎉", count: 1, user_ids: [bobId] }]);
  assert.equal(shown.thread.reply_count, 1);
  const timeline = await bob.client.rest.messages(room.id);
  assert.deepEqual(timeline.messages.map((m) => m.content), ["release notes"], "the thread stays out of the timeline");
  const thread = await bob.client.rest.messages(room.id, { thread_id: root.id });
  assert.deepEqual(thread.messages.map((m) => m.content), ["draft is up"]);
  const mentions = await bob.client.rest.mentions();
  assert.deepEqual(mentions.messages.map((m) => m.id), [reply.message.id]);
  const found = await bob.client.rest.search({ q: "relea" });
  assert.deepEqual(found.results.map((r) => r.highlight), ["<mark>release</mark> notes"]);
  await bob.client.rest.unreact(room.id, root.id, "🎉");
  assert.deepEqual((await bob.client.rest.message(room.id, root.id)).reactions, []);
  alice.client.close();
  bob.client.close();
});

test("natter killed and restarted mid-stream: the client resumes with no gap and no duplicate", async () => {
  const s = await natter();
  const owner = await s.user("owner");
  const reader = await s.user("reader");
  const { room } = await owner.client.rest.createRoom({ name: "busy" });
  await reader.client.rest.join(room.id);
  const seen = record(reader.client, room.id);
  const states = [];
  reader.client.on("state", (c) => states.push(c));
  reader.client.subscribe(room.id);
  reader.client.connect();
  await until(() => reader.client.state === "connected");
  await sleep(200);
  let sent = 0;
  const send = async (i) => {
    for (;;) {
      try {
        await owner.client.rest.sendMessage(room.id, { content: `m${i}` }, `m${i}`);
        sent++;
        return;
      } catch {
        await sleep(100); // natter is down: retry the same idempotent send
      }
    }
  };
  for (let i = 0; i < 60; i++) await send(i);
  await s.kill();
  // Sent over the socket while natter is down: pending, then sent once it is back, once.
  const offline = reader.client.send(room.id, "sent while down");
  assert.equal(offline.status, "pending");
  const restarted = s.restart();
  for (let i = 60; i < 120; i++) await send(i);
  await restarted;
  const settled = await reader.client.settled(offline);
  assert.equal(settled.status, "sent", JSON.stringify(settled.error));
  await until(() => seen.length >= 121, 30_000, "all 121 messages");
  const log = await owner.client.rest.roomEvents(room.id);
  assert.equal(log.filter((e) => e.data.content === "sent while down").length, 1, "stored once");
  const expected = (await logPositions(owner.client.rest, room.id)).filter((p) => p > seen[0].prevPosition);
  assert.deepEqual(seen.map((e) => e.position), expected, "every event once, in order");
  assertChained(seen);
  assert.ok(states.some((c) => c.state === "disconnected"), "it noticed");
  assert.equal(reader.client.state, "connected", "and came back");
  reader.client.close();
});

/** The contents of the room's messages in the order the log stores them. */
async function storedContents(rest, room) {
  return (await rest.roomEvents(room)).filter((e) => e.type === "message.sent").map((e) => e.data.content);
}

test("a burst of sends is stored in the order it was sent, across a kill -9 mid-burst", async () => {
  const s = await natter();
  const writer = await s.user("writer");
  const reader = await s.user("reader");
  const { room } = await writer.client.rest.createRoom({ name: "burst" });
  await reader.client.rest.join(room.id);
  const seen = record(reader.client, room.id);
  for (const c of [writer.client, reader.client]) {
    c.subscribe(room.id);
    c.connect();
  }
  await until(() => writer.client.state === "connected" && reader.client.state === "connected");
  await sleep(200);
  const sent = [];
  let acked = 0;
  writer.client.on("message", (m) => m.status === "sent" && acked++);
  for (let i = 0; i < 50; i++) sent.push(writer.client.send(room.id, `b${i}`));
  await until(() => acked >= 10, 10_000, "the first acks");
  await s.kill();
  // Typed while natter is down: they queue behind the ones never answered.
  for (let i = 50; i < 70; i++) sent.push(writer.client.send(room.id, `b${i}`));
  await s.restart();
  for (const m of sent) {
    const done = await writer.client.settled(m);
    assert.equal(done.status, "sent", JSON.stringify(done.error));
  }
  const order = sent.map((m) => m.content);
  assert.deepEqual(await storedContents(writer.client.rest, room.id), order, "stored once each, in send order");
  await until(() => seen.length >= 70, 20_000, "the reader to see all 70");
  assert.deepEqual(seen.map((e) => e.event.data.content), order, "the reader sees the send order");
  writer.client.close();
  reader.client.close();
});

test("sends refused by the rate limit are retried in their order", async () => {
  const s = await natter({ NATTER_SEND_RATE_LIMIT: "4/2s" });
  const writer = await s.user("writer");
  const { room } = await writer.client.rest.createRoom({ name: "limited" });
  writer.client.connect();
  await until(() => writer.client.state === "connected");
  const sent = [];
  for (let i = 0; i < 12; i++) sent.push(writer.client.send(room.id, `r${i}`));
  for (const m of sent) {
    const done = await writer.client.settled(m);
    assert.equal(done.status, "sent", JSON.stringify(done.error));
  }
  assert.deepEqual(await storedContents(writer.client.rest, room.id), sent.map((m) => m.content));
  writer.client.close();
});

test("a lost frame is healed from the log before the app sees what follows", async () => {
  const s = await natter();
  const owner = await s.user("owner");
  let events = 0;
  const listener = await s.user("listener", {
    dropFrame: (f) => f.type === "event" && ++events === 3,
  });
  const { room } = await owner.client.rest.createRoom({ name: "lossy" });
  await listener.client.rest.join(room.id);
  const seen = record(listener.client, room.id);
  const holes = [];
  listener.client.on("discontinuity", (d) => holes.push(d));
  listener.client.subscribe(room.id);
  listener.client.connect();
  await until(() => listener.client.state === "connected");
  await sleep(200);
  for (let i = 0; i < 6; i++) await owner.client.rest.sendMessage(room.id, { content: `m${i}` });
  await until(() => seen.length >= 6, 10_000, "six events");
  assert.deepEqual(seen.map((e) => e.event.data.content), ["m0", "m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(seen.map((e) => e.backfilled), [false, false, true, false, false, false]);
  assertChained(seen);
  assert.deepEqual(holes, []);
  listener.client.close();
});

test("a consumer too slow for the server is closed with 4008 and resumes where it was", async () => {
  const s = await natter();
  const owner = await s.user("owner");
  let socket;
  class Pausable extends WebSocket {
    constructor(url) {
      super(url);
      socket = this;
    }
  }
  const slow = await s.user("slow", { WebSocket: Pausable });
  const { room } = await owner.client.rest.createRoom({ name: "firehose" });
  await slow.client.rest.join(room.id);
  const seen = record(slow.client, room.id);
  const states = [];
  slow.client.on("state", (c) => states.push(c));
  slow.client.subscribe(room.id);
  slow.client.connect();
  await until(() => slow.client.state === "connected");
  await sleep(200);
  socket.pause(); // the app stops reading: the server's queue for it fills
  const big = "x".repeat(3900);
  const total = 2500;
  for (let i = 0; i < total; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, k) => owner.client.rest.sendMessage(room.id, { content: `${i + k} ${big}` })),
    );
  }
  await sleep(500);
  socket.resume();
  await until(() => states.some((c) => c.code === 4008), 30_000, "a 4008 close");
  await until(() => seen.length >= total, 60_000, `all ${total} messages`);
  const positions = await logPositions(owner.client.rest, room.id);
  assert.deepEqual(seen.map((e) => e.position), positions.filter((p) => p > seen[0].prevPosition));
  assertChained(seen);
  slow.client.close();
});

test("close codes decide: a refused token is refreshed and resumed, an admin's disconnect stops", async () => {
  const s = await natter();
  const root = await s.user("root");
  let token;
  const carol = await s.user("carol", { getToken: (refresh) => (refresh ? token.fresh : token.current) });
  token = { current: carol.token, fresh: undefined };
  const states = [];
  carol.client.on("state", (c) => states.push(c));
  carol.client.connect();
  await until(() => carol.client.state === "connected");
  // A password change revokes the token the socket was opened with (4001): the client asks
  // for a fresh one and comes back.
  const changed = await carol.client.rest.updateMe({ password: "a new password", current_password: "password123" });
  token.fresh = changed.token;
  await until(() => states.some((c) => c.code === 4001), 5_000, "a 4001 close");
  await until(() => carol.client.state === "connected", 5_000, "a reconnect with the fresh token");
  // An admin cuts carol off (4003): the client stays closed.
  const cut = await root.client.rest.call("DELETE", `/admin/connections/${carol.user.id}`);
  assert.equal(cut.closed, 1);
  await until(() => carol.client.state === "closed", 5_000, "closed");
  assert.equal(states.at(-1).code, 4003);
  await sleep(700);
  assert.equal(carol.client.state, "closed", "no reconnect on its own");
});

test("a token that expired while natter was down is refreshed at the reconnect, and no URL carries it", async () => {
  const s = await natter({ NATTER_TOKEN_TTL_SECS: "4" });
  const owner = await s.user("owner");
  const urls = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      urls.push(url);
    }
  }
  const refreshes = [];
  const rest = new Rest({ baseUrl: s.base });
  const login = () => rest.login({ username: "dana", password: "password123" });
  const dana = await s.user("dana", {
    WebSocket: Recording,
    getToken: async (refresh) => {
      if (!refresh) return dana.token;
      refreshes.push(Date.now());
      return (await login()).token;
    },
  });
  const { room } = await owner.client.rest.createRoom({ name: "r" });
  await dana.client.rest.join(room.id);
  const seen = record(dana.client, room.id);
  const states = [];
  dana.client.on("state", (c) => states.push(c));
  dana.client.subscribe(room.id);
  dana.client.connect();
  await until(() => dana.client.state === "connected");
  await s.kill();
  await sleep(10_000); // the token (4 s, 5 s of leeway) expires while natter is down
  await s.restart();
  await until(() => refreshes.length > 0, 10_000, "a fresh token asked for");
  const fresh = await login();
  const ownerNow = new Rest({
    baseUrl: s.base,
    getToken: async () => (await rest.login({ username: "owner", password: "password123" })).token,
  });
  await ownerNow.sendMessage(room.id, { content: "welcome back" });
  await until(() => seen.some((e) => e.event.data.content === "welcome back"), 10_000, "the room resumed");
  assert.equal(dana.client.state, "connected");
  assert.ok(states.some((c) => c.code === 4001), "the expired token was closed with 4001");
  assert.ok(urls.length >= 2);
  for (const url of urls) {
    assert.ok(!url.includes("token"), `no token in ${url}`);
    assert.ok(!url.includes(dana.token) && !url.includes(fresh.token));
  }
  dana.client.close();
});

test("when no token can be had the client closes instead of retrying", async () => {
  const s = await natter();
  const erin = await s.user("erin", {
    getToken: (refresh) => {
      if (refresh) throw new Error("signed out");
      return "not-a-token";
    },
  });
  const states = [];
  erin.client.on("state", (c) => states.push(c));
  erin.client.connect();
  await until(() => erin.client.state === "closed", 10_000, "closed");
  assert.equal(states.at(-1).code, 4001);
  assert.match(states.at(-1).reason, /signed out/);
  const attempts = states.filter((c) => c.state === "connecting").length;
  await sleep(700);
  assert.equal(states.filter((c) => c.state === "connecting").length, attempts, "no more attempts");
});

test("the client's fold of a room's events gives the messages natter's read model shows", async () => {
  const s = await natter();
  const alice = await s.user("alice");
  const bob = await s.user("bob");
  const { room } = await alice.client.rest.createRoom({ name: "folded" });
  await bob.client.rest.join(room.id);
  const a = alice.client.rest;
  const b = bob.client.rest;
  const root = (await a.sendMessage(room.id, { content: "root" })).message;
  const typo = (await b.sendMessage(room.id, { content: "teh" })).message;
  const gone = (await a.sendMessage(room.id, { content: "oops" })).message;
  await b.sendMessage(room.id, { content: "in the thread", thread_id: root.id });
  await a.sendMessage(room.id, { content: "me too", thread_id: root.id });
  await b.react(room.id, root.id, "👍");
  await a.react(room.id, root.id, "👍");
  await a.react(room.id, root.id, "🎉");
  await a.unreact(room.id, root.id, "🎉");
  await b.editMessage(room.id, typo.id, "the");
  await a.react(room.id, gone.id, "😮");
  await a.deleteMessage(room.id, gone.id);
  await a.sendMessage(room.id, { content: "a quote", reply_to: typo.id });

  const folded = new Map();
  for (const event of await a.roomEvents(room.id)) {
    if (event.type === "message.sent") folded.set(event.data.message_id, messageFromEvent(event, room.id));
    for (const [id, m] of folded) folded.set(id, applyToMessage(m, event));
  }
  const normal = (m) => ({ ...m, created_at: Date.parse(m.created_at), edited_at: m.edited_at && Date.parse(m.edited_at),
    thread: m.thread && { ...m.thread, last_reply_at: Date.parse(m.thread.last_reply_at) } });
  const timeline = (await a.messages(room.id)).messages;
  const thread = (await a.messages(room.id, { thread_id: root.id })).messages;
  const served = [...timeline, ...thread].sort((x, y) => x.position - y.position);
  assert.deepEqual(
    [...folded.values()].sort((x, y) => x.position - y.position).map(normal),
    served.map(normal),
  );
  alice.client.close();
  bob.client.close();
});
