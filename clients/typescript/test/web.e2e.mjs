// natter's web page in a real browser (Debian's chromium, driven by playwright-core; never a
// downloaded browser): two people register, meet in a room and chat; natter restarts while
// they are connected, and both come back with every message once. Screenshots of both
// windows go to test-results/.
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
after(async () => {
  await browser?.close();
  await natter?.stop();
});

async function window(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error:`, e));
  await page.goto(natter.base);
  return page;
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
  anna.once("dialog", (d) => d.accept("first"));
  await anna.click("#messages li:has-text('frist') button:has-text('edit')");
  await ben.waitForSelector("#messages li:has-text('first') .when:has-text('edited')");
  await say(anna, "oops");
  await ben.waitForSelector("#messages li:has-text('oops')");
  anna.once("dialog", (d) => d.accept());
  await anna.click("#messages li:has-text('oops') button:has-text('delete')");
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
  await ben.click(`${question} .actions button:has-text('👍')`);
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
