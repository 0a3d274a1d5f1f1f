// natter's web page in a real browser (Debian's chromium, driven by playwright-core; never a
// downloaded browser): two people register, meet in a room and chat; natter restarts while
// they are connected, and both come back with every message once; then the rest of what the
// page does, with no page error and no console error in the whole run (the browser's own
// lines about a refused connection while natter is down aside, and those may not carry a
// token). Screenshots of both windows go to test-results/.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { after, test } from "node:test";
import { chromium } from "playwright-core";
import { Natter, sleep } from "./harness.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = new URL("../test-results/", import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

let natter;
let browser;
const others = [];
after(async () => {
  await browser?.close();
  await natter?.stop();
  for (const s of others) await s.stop();
});

/** What went wrong in any window: page errors, and console errors. */
const problems = [];
/** Every console line of every window, to check that none shows a token. */
const consoleLines = [];
/** The browser's own report of a connection refused while natter is down: not the page's. */
const networkNoise = /^(Failed to load resource: net::ERR_|WebSocket connection to .* failed)/;

async function window(name, server = natter) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`[${name}] page error: ${e.message}`));
  page.on("console", (m) => {
    consoleLines.push(m.text());
    if (m.type() === "error" && !networkNoise.test(m.text())) problems.push(`[${name}] console: ${m.text()}`);
  });
  await page.goto(server.base);
  return page;
}

function assertClean() {
  assert.deepEqual(problems, [], "no page error and no console error");
}

async function register(page, username) {
  await page.fill("#auth-form [name=username]", username);
  await page.fill("#auth-form [name=password]", "password123");
  await page.click("#auth-form button[value=register]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector("#conn.connected");
}

/** The messages a window shows, in order. */
async function shown(page) {
  return await page.$$eval("#messages li .text", (nodes) => nodes.map((n) => n.textContent));
}

async function say(page, text) {
  await page.fill("#composer [name=content]", text);
  await page.press("#composer [name=content]", "Enter");
}

test("two windows chat, through a server restart, with every message once", async () => {
  natter = await Natter.start();
  browser = await chromium.launch({
    executablePath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const anna = await window("anna");
  const ben = await window("ben");
  await register(anna, "anna");
  await register(ben, "ben");

  // Anna opens a room; Ben finds it by searching and joins.
  await anna.fill("#create-room [name=name]", "meeting point");
  await anna.click("#create-room button");
  await anna.waitForSelector("#room:not([hidden])");
  await ben.fill("#search", "meeting");
  await ben.waitForSelector("#public-rooms li:has-text('meeting point') button:has-text('join')");
  await ben.click("#public-rooms li:has-text('meeting point') button:has-text('join')");
  await ben.waitForSelector("#room-name:has-text('meeting point')");

  await say(anna, "hi ben");
  await ben.waitForSelector("#messages li:has-text('hi ben')");
  await say(ben, "hi anna, found it");
  await anna.waitForSelector("#messages li:has-text('hi anna, found it')");
  // Typing shows on the other side.
  await ben.fill("#composer [name=content]", "typing something");
  await anna.waitForSelector("#typing:has-text('ben is typing')");
  await ben.fill("#composer [name=content]", "");

  // natter goes away (killed) and comes back; meanwhile Anna writes. Both reconnect by
  // themselves; Anna's message goes out when it can, and nobody sees anything twice.
  await natter.kill();
  await anna.waitForSelector("#conn:not(.connected)");
  await ben.waitForSelector("#conn:not(.connected)");
  await say(anna, "did you get this?");
  await sleep(300);
  await natter.restart();
  await anna.waitForSelector("#conn.connected", { timeout: 20_000 });
  await ben.waitForSelector("#conn.connected", { timeout: 20_000 });
  await ben.waitForSelector("#messages li:has-text('did you get this?')", { timeout: 20_000 });
  await say(ben, "yes, all of it");
  await say(anna, "great");
  const expected = ["hi ben", "hi anna, found it", "did you get this?", "yes, all of it", "great"];
  for (const page of [anna, ben]) {
    await page.waitForSelector("#messages li:has-text('great')");
    await page.waitForFunction(
      (n) => document.querySelectorAll("#messages li:not(.pending)").length >= n,
      expected.length,
    );
  }
  await sleep(500);
  assert.deepEqual(await shown(anna), expected, "anna sees every message once, in order");
  assert.deepEqual(await shown(ben), expected, "ben sees every message once, in order");
  // An unread badge: Ben leaves the room view; Anna writes; Ben's list counts it.
  await ben.setViewportSize({ width: 420, height: 760 });
  await ben.click("#back");
  await say(anna, "one more");
  await ben.waitForSelector("#my-rooms li:has-text('meeting point') .badge:has-text('1')");

  await anna.screenshot({ path: `${shots}anna.png` });
  await ben.screenshot({ path: `${shots}ben.png` });
  await ben.click("#my-rooms li:has-text('meeting point')");
  await ben.waitForSelector("#messages li:has-text('one more')");
  await ben.screenshot({ path: `${shots}ben-phone.png` });
});

test("edits, deletions, invites, direct rooms and paging back through history", async () => {
  const anna = await window("anna2");
  const ben = await window("ben2");
  await register(anna, "anna2");
  await register(ben, "ben2");
  // Anna opens a private room and invites Ben with a token.
  await anna.fill("#create-room [name=name]", "back room");
  await anna.check("#create-room [name=private]");
  await anna.click("#create-room button");
  await anna.waitForSelector("#room-name:has-text('back room')");
  await anna.click("#invite");
  const out = await (await anna.waitForSelector("#invite-out:not([hidden])")).textContent();
  const token = out.split(": ").at(-1).trim();
  await ben.fill("#accept-invite [name=token]", token);
  await ben.click("#accept-invite button");
  await ben.waitForSelector("#room-name:has-text('back room')");

  // Anna edits and then deletes what she said; Ben sees both.
  await say(anna, "frist");
  await ben.waitForSelector("#messages li:has-text('frist')");
  // Edited in place: no browser dialog (the test fails on one).
  anna.on("dialog", (d) => problems.push(`a browser dialog: ${d.message()}`));
  await anna.click("#messages li:has-text('frist') button:has-text('edit')");
  await anna.fill("#messages li .editor textarea", "first");
  await anna.press("#messages li .editor textarea", "Enter");
  await ben.waitForSelector("#messages li:has-text('first') .when:has-text('edited')");
  await say(anna, "oops");
  await ben.waitForSelector("#messages li:has-text('oops')");
  await anna.click("#messages li:has-text('oops') button:has-text('delete')");
  await anna.click("#messages li:has-text('oops') button:has-text('sure?')");
  await ben.waitForSelector("#messages li.deleted:has-text('message deleted')");
  assert.deepEqual(await shown(ben), ["first", "message deleted"]);

  // Ben opens a direct room with Anna from the member list; it appears on Anna's side.
  await ben.waitForSelector("#members button:has-text('anna2')");
  await ben.click("#members button:has-text('anna2')");
  await ben.waitForSelector("#room-name:has-text('@ anna2')");
  await say(ben, "just us");
  await anna.waitForSelector("#my-rooms li:has-text('@ ben2')");
  await anna.click("#my-rooms li:has-text('@ ben2')");
  await anna.waitForSelector("#messages li:has-text('just us')");

  // History pages back as Anna scrolls up: 60 messages, 50 at first.
  const { client } = await natter.user("chatty");
  const { room } = await client.rest.createRoom({ name: "long history" });
  for (let i = 0; i < 60; i++) await client.rest.sendMessage(room.id, { content: `old ${i}` });
  await anna.fill("#search", "long history");
  await anna.click("#public-rooms li:has-text('long history') button:has-text('join')");
  await anna.waitForSelector("#messages li:has-text('old 59')");
  assert.equal((await shown(anna)).length, 50, "the latest page first");
  await anna.$eval("#messages", (list) => {
    list.scrollTop = 0;
  });
  await anna.waitForSelector("#messages li:has-text('old 0')");
  const all = await shown(anna);
  assert.deepEqual(all, Array.from({ length: 60 }, (_, i) => `old ${i}`), "in order, once");
  await anna.screenshot({ path: `${shots}anna-history.png` });
});

test("reactions and threads, live on both sides", async () => {
  const anna = await window("anna3");
  const ben = await window("ben3");
  await register(anna, "anna3");
  await register(ben, "ben3");
  await anna.fill("#create-room [name=name]", "lunch club");
  await anna.click("#create-room button");
  await anna.waitForSelector("#room-name:has-text('lunch club')");
  await ben.fill("#search", "lunch club");
  await ben.click("#public-rooms li:has-text('lunch club') button:has-text('join')");
  await ben.waitForSelector("#room-name:has-text('lunch club')");
  await say(anna, "lunch at noon?");
  const question = "#messages li:has-text('lunch at noon?')";
  await ben.waitForSelector(question);

  // Ben reacts; Anna sees the count and adds hers.
  await ben.click(`${question} .actions button:has-text('react')`);
  await ben.click(`${question} .actions .picker button:has-text('👍')`);
  await anna.waitForSelector(`${question} .reactions button:has-text('👍 1')`);
  await anna.click(`${question} .reactions button:has-text('👍 1')`);
  await ben.waitForSelector(`${question} .reactions button.mine:has-text('👍 2')`);
  await ben.click(`${question} .reactions button.mine`);
  await anna.waitForSelector(`${question} .reactions button.mine:has-text('👍 1')`);

  // Ben answers in the thread; Anna's root counts it, and the thread shows it.
  await ben.click(`${question} .actions button:has-text('reply')`);
  await ben.waitForSelector("#thread:not([hidden])");
  await ben.fill("#thread-composer [name=content]", "noon works");
  await ben.press("#thread-composer [name=content]", "Enter");
  await ben.waitForSelector("#thread-messages li:not(.pending):has-text('noon works')");
  await anna.waitForSelector(`${question} .replies:has-text('1 reply')`);
  await anna.click(`${question} .replies`);
  await anna.waitForSelector("#thread-messages li:has-text('noon works')");
  assert.deepEqual(await shown(anna), ["lunch at noon?"], "the reply stays out of the timeline");
  await anna.fill("#thread-composer [name=content]", "see you there");
  await anna.press("#thread-composer [name=content]", "Enter");
  await ben.waitForSelector("#thread-messages li:has-text('see you there')");
  await ben.waitForSelector(`${question} .replies:has-text('2 replies')`);

  // Ben names Anna in the room: the message is marked as mentioning her on her side only.
  await say(ben, "@anna3 bring the menu");
  await anna.waitForSelector("#messages li.mentioned:has-text('bring the menu')");
  await ben.waitForSelector("#messages li:not(.pending):has-text('bring the menu')");
  assert.equal(await ben.$$eval("#messages li.mentioned", (n) => n.length), 0);
  await anna.screenshot({ path: `${shots}anna-thread.png` });
});

test("multi-line text, a long word, other emoji, search, a reload, leaving, and an offline error", async () => {
  const anna = await window("anna4");
  const ben = await window("ben4");
  await register(anna, "anna4");
  await register(ben, "ben4");
  await anna.fill("#create-room [name=name]", "night owls");
  await anna.click("#create-room button");
  await anna.waitForSelector("#room-name:has-text('night owls')");
  await ben.fill("#search", "night owls");
  await ben.waitForSelector("#public-rooms li:has-text('night owls') button:has-text('join')");
  // The public list's member count follows: 1 before Ben joins, 2 after, 1 when he leaves.
  await anna.waitForSelector("#public-rooms li:has-text('night owls') .muted:text-is('1')");
  await ben.click("#public-rooms li:has-text('night owls') button:has-text('join')");
  await ben.waitForSelector("#room-name:has-text('night owls')");
  await anna.waitForSelector("#public-rooms li:has-text('night owls') .muted:text-is('2')", { timeout: 5_000 });

  // Shift+Enter makes a new line; Enter sends; the lines arrive as lines.
  await anna.fill("#composer [name=content]", "first line");
  await anna.press("#composer [name=content]", "Shift+Enter");
  await anna.type("#composer [name=content]", "second line");
  await anna.press("#composer [name=content]", "Enter");
  const lines = "#messages li:has-text('second line')";
  await ben.waitForSelector(lines);
  assert.equal(await ben.$eval(`${lines} .text`, (n) => n.textContent), "first line\nsecond line");
  const height = await ben.$eval(`${lines} .text`, (n) => n.getBoundingClientRect().height);
  const oneLine = await ben.$eval("#room-name", (n) => parseFloat(getComputedStyle(n).lineHeight) || 20);
  assert.ok(height > oneLine * 1.5, `shown on two lines (${height}px)`);

  // A burst of quick messages: both windows show them in the order they were typed.
  const burst = Array.from({ length: 14 }, (_, i) => `quick ${i + 1}`);
  for (const text of burst) await say(anna, text);
  for (const page of [anna, ben]) {
    await page.waitForSelector("#messages li:not(.pending):has-text('quick 14')");
    const quick = (await shown(page)).filter((t) => t.startsWith("quick "));
    assert.deepEqual(quick, burst, "in the order typed");
  }

  // Two identical messages sent at once: each local echo becomes its own message (they are
  // paired with their messages by client_id, not by text), and each window shows two.
  await say(anna, "same again");
  await say(anna, "same again");
  for (const page of [anna, ben]) {
    await page.waitForFunction(
      () => [...document.querySelectorAll("#messages li:not(.pending) .text")].filter((n) => n.textContent === "same again").length === 2,
    );
  }
  await sleep(2500); // past the wait for an ack
  for (const page of [anna, ben]) {
    assert.equal((await shown(page)).filter((t) => t === "same again").length, 2, "twice, not three or one times");
  }
  assert.equal(await anna.$$eval("#messages li.pending", (n) => n.length), 0, "nothing left pending");

  // A long word wraps inside the timeline instead of running under the member list.
  await say(anna, "x".repeat(300));
  const word = "#messages li:has-text('xxxxxxxxxx')";
  await ben.waitForSelector(word);
  const [text, list] = await Promise.all([
    ben.$eval(`${word} .text`, (n) => n.getBoundingClientRect().right),
    ben.$eval("#messages", (n) => n.getBoundingClientRect().right),
  ]);
  assert.ok(text <= list + 1, `the word stays in the timeline (${text} > ${list})`);

  // Another emoji than the thumb.
  await ben.click(`${lines} .actions button:has-text('react')`);
  await ben.click(`${lines} .actions .picker button:has-text('🎉')`);
  await anna.waitForSelector(`${lines} .reactions button:has-text('🎉 1')`);

  // Searching messages finds the line and opens its room.
  await ben.evaluate(() => document.querySelector("#back").click());
  await ben.fill("#search-messages [name=q]", "second");
  await ben.waitForSelector("#search-results li:has-text('second line') mark:has-text('second')");
  await ben.click("#search-results li:has-text('second line')");
  await ben.waitForSelector("#room-name:has-text('night owls')");

  // A reload comes back to the open room.
  await ben.reload();
  await ben.waitForSelector("#room-name:has-text('night owls')");
  await ben.waitForSelector(lines);

  // A message read just before leaving the room view counts as read.
  await say(anna, "read me quickly");
  await ben.waitForSelector("#messages li:has-text('read me quickly')");
  await ben.evaluate(() => document.querySelector("#back").click()); // at once, within 300 ms
  await sleep(800);
  await ben.reload();
  await ben.waitForSelector("#my-rooms li:has-text('night owls')");
  assert.equal(await ben.$$eval("#my-rooms li:has-text('night owls') .badge", (n) => n.length), 0, "no unread badge");

  // Leaving the room: no page error; it goes from Ben's list, and the count follows.
  await ben.click("#my-rooms li:has-text('night owls')");
  await ben.waitForSelector("#room-name:has-text('night owls')");
  await ben.click("#leave");
  await ben.click("#leave:has-text('sure?')");
  await ben.waitForSelector("#room", { state: "hidden" });
  await ben.waitForFunction(() => !document.querySelector("#my-rooms li[data-room]")?.textContent.includes("night owls"));
  await anna.waitForSelector("#public-rooms li:has-text('night owls') .muted:text-is('1')", { timeout: 5_000 });

  // Offline: a refused request says so in the page, in plain words.
  await anna.context().setOffline(true);
  await anna.fill("#create-room [name=name]", "while offline");
  await anna.click("#create-room button");
  await anna.waitForSelector("#toast:not([hidden]):has-text('Cannot reach natter')");
  await anna.context().setOffline(false);
  await anna.waitForSelector("#conn.connected", { timeout: 20_000 });
  await anna.screenshot({ path: `${shots}anna-offline.png` });
  assertClean();
});

test("a session that ends brings back the login form, and no console line shows a token", async () => {
  const short = await Natter.start({ NATTER_TOKEN_TTL_SECS: "4" });
  others.push(short);
  const cleo = await window("cleo", short);
  await register(cleo, "cleo");
  const token = await cleo.evaluate(() => JSON.parse(sessionStorage.getItem("natter.session")).token);
  // The token expires: the socket closes with 4001, the page cannot get another by itself.
  await cleo.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
  await cleo.waitForSelector("#auth-notice:not([hidden]):has-text('log in again')");
  // Logging in again works at once.
  await cleo.fill("#auth-form [name=username]", "cleo");
  await cleo.fill("#auth-form [name=password]", "password123");
  await cleo.click("#auth-form button[value=login]");
  await cleo.waitForSelector("#conn.connected");
  for (const line of consoleLines) assert.ok(!line.includes(token), `a console line shows the token: ${line}`);
  // Nor does any earlier window's token show (the first test's reconnects while natter was down).
  assert.ok(!consoleLines.some((l) => l.includes("token=")), "no URL with a token in the console");
  assertClean();
});
