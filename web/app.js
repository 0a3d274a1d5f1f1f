// natter's web chat: a small page over the TypeScript client (natter-client.js is its bundle,
// built from clients/typescript by `npm run build:web` there). Plain DOM, no framework. One
// file on purpose (~680 lines): the page's state (session, rooms, the open room and thread)
// is shared by every part, and a second module would only pass it around.
import { NatterClient, NatterError, Rest } from "/web/natter-client.js";

const $ = (id) => document.getElementById(id);
const origin = location.origin;
const SESSION = "natter.session";

// Per tab (sessionStorage), so that two tabs can be two people; a reload keeps it.
let session = JSON.parse(sessionStorage.getItem(SESSION) || "null"); // {token, user, position}
let client;
const myRooms = new Map(); // room id -> MyRoom row
const names = new Map(); // user id -> username
let current; // {id, room, oldest, hasMore, loading, members: Map<user id, member>, thread: root id?}
let typingSent = 0;
const typers = new Map(); // user id -> timeout
const followed = new Set(); // room ids subscribed on the socket

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function showError(e) {
  const text = e instanceof NatterError ? `${e.message} (${e.code})` : String(e);
  console.error(e);
  alert(text);
}

// -- signing in ---------------------------------------------------------------------------------

$("auth-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const action = ev.submitter?.value ?? "login";
  const body = { username: form.get("username"), password: form.get("password") };
  const rest = new Rest({ baseUrl: origin });
  try {
    const answer = action === "register" ? await rest.register(body) : await rest.login(body);
    // A registration's position: the first queries wait for it (the read models may not
    // have the new user yet).
    session = { token: answer.token, user: answer.user, position: answer.position ?? 0 };
    sessionStorage.setItem(SESSION, JSON.stringify(session));
    $("auth-error").textContent = "";
    await start();
  } catch (e) {
    $("auth-error").textContent = e instanceof NatterError ? e.message : String(e);
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(SESSION);
  location.reload();
});

function showAuth() {
  $("auth").hidden = false;
  $("app").hidden = true;
}

// -- the app ------------------------------------------------------------------------------------

async function start() {
  client = new NatterClient({ baseUrl: origin, getToken: () => session.token });
  client.rest.wrote(session.position);
  try {
    session.user = await client.rest.me();
  } catch (e) {
    if (e instanceof NatterError && (e.status === 401 || e.status === 404)) return showAuth();
    throw e;
  }
  names.set(session.user.id, session.user.username);
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = session.user.display_name;
  client.on("state", ({ state, code }) => {
    $("conn").textContent = state;
    $("conn").className = `conn ${state}`;
    if (state === "closed" && code === 4001) showAuth();
  });
  client.on("event", onEvent);
  client.on("feed", ({ position }) => {
    client.rest.saw(position);
    void loadMyRooms();
  });
  client.on("message", onLocal);
  client.on("typing", onTyping);
  client.on("presence", ({ user_id, status }) => {
    const member = current?.members.get(user_id);
    if (member) {
      member.online = status === "online";
      renderMembers();
    }
  });
  client.on("unsubscribed", ({ roomId }) => {
    followed.delete(roomId);
    if (current?.id === roomId) closeRoom();
    void loadMyRooms();
  });
  client.connect();
  await loadMyRooms();
  await loadPublic("");
}

async function loadMyRooms() {
  const { rooms } = await client.rest.myRooms();
  myRooms.clear();
  for (const row of rooms) {
    myRooms.set(row.id, row);
    if (row.other_user) names.set(row.other_user.id, row.other_user.username);
    if (!followed.has(row.id)) {
      followed.add(row.id);
      client.subscribe(row.id);
    }
  }
  renderMyRooms();
}

function roomTitle(row) {
  return row.kind === "direct" && row.other_user ? `@ ${row.other_user.username}` : row.name;
}

function renderMyRooms() {
  const list = $("my-rooms");
  list.replaceChildren();
  for (const row of myRooms.values()) {
    const unread = current?.id === row.id ? 0 : row.unread_count;
    list.append(
      el(
        "li",
        { class: current?.id === row.id ? "active" : "", "data-room": row.id, onclick: () => openRoom(row.id) },
        el("span", { class: "name", text: roomTitle(row) }),
        unread > 0 ? el("span", { class: "badge", text: String(unread) }) : "",
      ),
    );
  }
}

let searchTimer;
$("search").addEventListener("input", (ev) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadPublic(ev.target.value), 250);
});

async function loadPublic(q) {
  const { rooms } = await client.rest.listRooms({ scope: "public", q: q || undefined, limit: 20 });
  const list = $("public-rooms");
  list.replaceChildren();
  for (const room of rooms) {
    const joined = myRooms.has(room.id);
    list.append(
      el(
        "li",
        { "data-room": room.id },
        el("span", { class: "name", text: room.name }),
        el("span", { class: "muted", text: `${room.member_count}` }),
        joined
          ? el("button", { class: "link", text: "open", onclick: () => openRoom(room.id) })
          : el("button", { class: "link", text: "join", onclick: () => joinRoom(room.id) }),
      ),
    );
  }
}

async function joinRoom(id) {
  try {
    await client.rest.join(id);
    await loadMyRooms();
    await openRoom(id);
    await loadPublic($("search").value);
  } catch (e) {
    showError(e);
  }
}

$("create-room").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const { room } = await client.rest.createRoom({
      name: form.get("name"),
      visibility: form.get("private") ? "private" : "public",
    });
    ev.target.reset();
    await loadMyRooms();
    await openRoom(room.id);
    await loadPublic($("search").value);
  } catch (e) {
    showError(e);
  }
});

$("accept-invite").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = new FormData(ev.target).get("token").trim();
  try {
    const { room } = await client.rest.acceptInvite(token);
    ev.target.reset();
    await loadMyRooms();
    await openRoom(room.id);
  } catch (e) {
    showError(e);
  }
});

// -- one room -----------------------------------------------------------------------------------

async function openRoom(id) {
  const row = myRooms.get(id);
  if (!row) return;
  current = { id, room: row, oldest: undefined, hasMore: false, loading: false, members: new Map() };
  $("app").classList.add("in-room");
  $("empty").hidden = true;
  $("room").hidden = false;
  $("room-name").textContent = roomTitle(row);
  $("room-meta").textContent = `${row.visibility}${row.kind !== "group" ? ` · ${row.kind}` : ""}`;
  $("invite").hidden = row.kind !== "group" || row.owner_id !== session.user.id;
  $("leave").hidden = row.kind === "direct";
  $("invite-out").hidden = true;
  $("messages").replaceChildren();
  closeThread();
  $("typing").textContent = "";
  renderMyRooms();
  await Promise.all([loadMembers(), loadPage()]);
  markRead();
}

function closeRoom() {
  current = undefined;
  $("app").classList.remove("in-room");
  $("room").hidden = true;
  $("empty").hidden = false;
  renderMyRooms();
}

$("back").addEventListener("click", closeRoom);

async function loadMembers() {
  const room = current;
  const { members } = await client.rest.members(room.id);
  room.members = new Map(members.map((m) => [m.user_id, m]));
  for (const m of members) names.set(m.user_id, m.username);
  if (current === room) renderMembers();
}

function renderMembers() {
  const list = $("members");
  list.replaceChildren();
  for (const m of current.members.values()) {
    const me = m.user_id === session.user.id;
    list.append(
      el(
        "li",
        { title: me ? "you" : `Message ${m.username}` },
        el("span", { class: `dot ${m.online ? "online" : ""}` }),
        me
          ? el("span", { text: `${m.display_name} (you)` })
          : el("button", { class: "link", text: m.display_name, onclick: () => openDirect(m.user_id) }),
        m.role === "owner" ? el("span", { class: "muted", text: "owner" }) : "",
      ),
    );
  }
}

async function openDirect(userId) {
  try {
    const { room } = await client.rest.direct(userId);
    await loadMyRooms();
    await openRoom(room.id);
  } catch (e) {
    showError(e);
  }
}

/** The page before the oldest shown (the latest, first). */
async function loadPage() {
  const room = current;
  if (room.loading) return;
  room.loading = true;
  try {
    const page = await client.rest.messages(room.id, { before: room.oldest, limit: 50 });
    if (current !== room) return;
    const list = $("messages");
    const atTop = room.oldest !== undefined;
    const height = list.scrollHeight;
    const items = page.messages.filter((m) => !list.querySelector(`[data-id="${m.id}"]`)).map(messageItem);
    list.prepend(...items);
    if (page.messages.length) room.oldest = page.messages[0].position;
    room.hasMore = page.has_more;
    if (atTop) list.scrollTop = list.scrollHeight - height;
    else list.scrollTop = list.scrollHeight;
  } finally {
    room.loading = false;
  }
}

$("messages").addEventListener("scroll", (ev) => {
  if (current && current.hasMore && ev.target.scrollTop < 40) void loadPage();
});

function messageItem(m) {
  const mine = m.sender_id === session.user.id;
  const li = el("li", { "data-id": m.id, "data-position": String(m.position) });
  fillMessage(li, m, mine);
  if (m.sender_id && !names.has(m.sender_id)) {
    // A sender this page has not met (a former member, say): show their name once known.
    client.rest.user(m.sender_id).then(
      (u) => {
        names.set(u.id, u.username);
        if (li._message) fillMessage(li, li._message, mine);
      },
      () => {},
    );
  }
  return li;
}

function fillMessage(li, m, mine) {
  const mentioned = (m.mentions ?? []).includes(session.user.id);
  li.className = [m.kind === "system" ? "system" : "", m.deleted ? "deleted" : "", mentioned ? "mentioned" : ""]
    .join(" ")
    .trim();
  const who = m.kind === "system" ? "natter" : names.get(m.sender_id) ?? "someone";
  const when = new Date(m.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const actions = el("span", { class: "actions" });
  if (!m.deleted) {
    if (!m.thread_id) {
      actions.append(el("button", { class: "link", text: "reply", onclick: () => openThread(li._message) }));
    }
    actions.append(el("button", { class: "link", text: "👍", title: "React", onclick: () => toggleReaction(li._message, "👍") }));
  }
  if (mine && !m.deleted && m.kind !== "system") {
    actions.append(
      el("button", { class: "link", text: "edit", onclick: () => editMessage(m) }),
      el("button", { class: "link", text: "delete", onclick: () => deleteMessage(m) }),
    );
  }
  const reactions = el("div", { class: "reactions" });
  for (const r of m.reactions ?? []) {
    const own = r.user_ids.includes(session.user.id);
    reactions.append(
      el("button", { class: own ? "mine" : "", title: r.user_ids.map((u) => names.get(u) ?? "someone").join(", "),
        text: `${r.emoji} ${r.count}`, onclick: () => toggleReaction(li._message, r.emoji) }),
    );
  }
  const replies = m.thread?.reply_count
    ? el("button", { class: "link replies", text: `${m.thread.reply_count} ${m.thread.reply_count === 1 ? "reply" : "replies"}`,
        onclick: () => openThread(li._message) })
    : "";
  li.replaceChildren(
    el("span", { class: "who", text: who }),
    el("span", { class: "text", text: m.deleted ? "message deleted" : m.content }),
    el("span", { class: "when", text: `${when}${m.edited_at ? " · edited" : ""}` }),
    actions,
    reactions,
    replies,
  );
  li._message = m;
}

/** The members a message names as `@username` (others are left as text). */
function linksOf(content) {
  const byName = new Map([...current.members.values()].map((m) => [m.username.toLowerCase(), m.user_id]));
  const mentions = [...content.matchAll(/@([a-z0-9_]+)/gi)]
    .map((match) => byName.get(match[1].toLowerCase()))
    .filter((id) => id && id !== session.user.id);
  return mentions.length ? { mentions: [...new Set(mentions)] } : {};
}

/** Reacts with `emoji`, or takes the caller's reaction back. */
async function toggleReaction(m, emoji) {
  const own = (m.reactions ?? []).find((r) => r.emoji === emoji)?.user_ids.includes(session.user.id);
  try {
    if (own) await client.rest.unreact(m.room_id, m.id, emoji);
    else await client.rest.react(m.room_id, m.id, emoji);
  } catch (e) {
    showError(e);
  }
}

/** `m` with one reaction added or taken back, as its event says. */
function withReaction(m, emoji, userId, added) {
  const reactions = (m.reactions ?? []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let r = reactions.find((x) => x.emoji === emoji);
  if (added) {
    if (!r) reactions.push((r = { emoji, count: 0, user_ids: [] }));
    r.count += 1;
    if (r.user_ids.length < 10) r.user_ids.push(userId);
  } else if (r) {
    r.count -= 1;
    r.user_ids = r.user_ids.filter((u) => u !== userId);
    if (r.count <= 0) reactions.splice(reactions.indexOf(r), 1);
  }
  return { ...m, reactions };
}

// -- threads ------------------------------------------------------------------------------------

async function openThread(root) {
  const room = current;
  room.thread = root.id;
  $("app").classList.add("thread-open");
  $("thread").hidden = false;
  const list = $("thread-messages");
  list.replaceChildren(messageItem(root));
  list.firstChild.classList.add("root");
  try {
    const page = await client.rest.messages(room.id, { thread_id: root.id, limit: 100 });
    if (current !== room || room.thread !== root.id) return;
    list.append(...page.messages.filter((m) => !list.querySelector(`[data-id="${m.id}"]`)).map(messageItem));
    list.scrollTop = list.scrollHeight;
  } catch (e) {
    showError(e);
  }
}

function closeThread() {
  if (current) current.thread = undefined;
  $("app").classList.remove("thread-open");
  $("thread").hidden = true;
  $("thread-messages").replaceChildren();
}

$("close-thread").addEventListener("click", closeThread);

$("thread-composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.content;
  const content = input.value.trim();
  if (!content || !current?.thread) return;
  input.value = "";
  const local = client.send(current.id, content, undefined, { ...linksOf(content), thread_id: current.thread });
  const li = el("li", { class: "pending", "data-client-id": local.clientId });
  li.append(el("span", { class: "who", text: session.user.username }), el("span", { class: "text", text: content }));
  $("thread-messages").append(li);
  $("thread-messages").scrollTop = $("thread-messages").scrollHeight;
});

/** A reply in a thread arrived: the thread shows it, its root counts it. */
function onThreadReply(m) {
  // The root shows in the timeline, and atop its thread while that is open.
  for (const root of document.querySelectorAll(`[data-id="${m.thread_id}"]`)) {
    if (!root._message) continue;
    const t = root._message.thread ?? { reply_count: 0, last_reply_at: m.created_at, participant_ids: [] };
    const thread = {
      reply_count: t.reply_count + 1,
      last_reply_at: m.created_at,
      participant_ids: t.participant_ids.includes(m.sender_id) ? t.participant_ids : [...t.participant_ids, m.sender_id],
    };
    fillMessage(root, { ...root._message, thread }, root._message.sender_id === session.user.id);
  }
  if (current?.thread === m.thread_id) showLive(m, $("thread-messages"));
}

async function editMessage(m) {
  const content = prompt("Edit message", m.content);
  if (content === null || content === m.content) return;
  try {
    await client.rest.editMessage(current.id, m.id, content);
  } catch (e) {
    showError(e);
  }
}

async function deleteMessage(m) {
  if (!confirm("Delete this message?")) return;
  try {
    await client.rest.deleteMessage(current.id, m.id);
  } catch (e) {
    showError(e);
  }
}

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.content;
  const content = input.value.trim();
  if (!content || !current) return;
  input.value = "";
  client.typing(current.id, false);
  typingSent = 0;
  const local = client.send(current.id, content, undefined, linksOf(content));
  const li = el("li", { class: "pending", "data-client-id": local.clientId });
  li.append(el("span", { class: "who", text: session.user.username }), el("span", { class: "text", text: content }));
  $("messages").append(li);
  $("messages").scrollTop = $("messages").scrollHeight;
});

$("composer").addEventListener("input", () => {
  if (!current || Date.now() - typingSent < 3000) return;
  typingSent = Date.now();
  client.typing(current.id, true);
});

/** A socket send changed status: the local echo follows. */
function onLocal(local) {
  const li = document.querySelector(`[data-client-id="${local.clientId}"]`);
  if (!li) return;
  if (local.status === "failed") {
    li.className = "failed";
    li.title = local.error?.message ?? "not sent";
    return;
  }
  if (local.status === "sent" && local.message) {
    const existing = document.querySelector(`[data-id="${local.message.id}"]`);
    if (existing && existing !== li) {
      li.remove(); // the live event got here first
      return;
    }
    li.removeAttribute("data-client-id");
    li.setAttribute("data-id", local.message.id);
    li.setAttribute("data-position", String(local.message.position));
    fillMessage(li, local.message, true);
  }
}

function onTyping({ room_id, user_id, typing }) {
  if (current?.id !== room_id || user_id === session.user.id) return;
  if (!names.has(user_id)) {
    // Someone this page has not met yet (joined a moment ago): learn their name first.
    client.rest.user(user_id).then(
      (u) => {
        names.set(u.id, u.username);
        onTyping({ room_id, user_id, typing });
      },
      () => {},
    );
    return;
  }
  clearTimeout(typers.get(user_id));
  if (typing) typers.set(user_id, setTimeout(() => onTyping({ room_id, user_id, typing: false }), 5000));
  else typers.delete(user_id);
  const who = [...typers.keys()].map((id) => names.get(id) ?? "someone");
  $("typing").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}

/** A room event, in order, once (the client guarantees it). */
function onEvent({ roomId, event }) {
  const data = event.data;
  client.rest.saw(event.position);
  switch (event.type) {
    case "message.sent": {
      const m = {
        id: data.message_id,
        room_id: roomId,
        sender_id: data.kind === "system" ? null : event.actor_id,
        kind: data.kind,
        content: data.content,
        attachment: data.attachment ?? null,
        position: event.position,
        created_at: event.occurred_at,
        edited_at: null,
        deleted: false,
        reply_to: data.reply_to ?? null,
        thread_id: data.thread_id ?? null,
        mentions: data.mentions ?? [],
        thread: null,
        reactions: [],
      };
      if (m.thread_id) {
        // Thread replies count in no room's unread count.
        if (current?.id === roomId) onThreadReply(m);
        if (m.sender_id) onTyping({ room_id: roomId, user_id: m.sender_id, typing: false });
        return;
      }
      if (current?.id === roomId) {
        showLive(m);
        markRead();
      } else if (m.sender_id !== session.user.id) {
        const row = myRooms.get(roomId);
        if (row) {
          row.unread_count += 1;
          renderMyRooms();
        }
      }
      if (m.sender_id) onTyping({ room_id: roomId, user_id: m.sender_id, typing: false });
      return;
    }
    case "message.reaction_added":
    case "message.reaction_removed": {
      if (current?.id !== roomId) return;
      for (const li of document.querySelectorAll(`[data-id="${data.message_id}"]`)) {
        if (!li._message) continue;
        const m = withReaction(li._message, data.emoji, data.user_id, event.type === "message.reaction_added");
        fillMessage(li, m, m.sender_id === session.user.id);
      }
      return;
    }
    case "message.edited":
    case "message.deleted": {
      if (current?.id !== roomId) return;
      // A thread's root is shown twice while its thread is open.
      for (const li of document.querySelectorAll(`[data-id="${data.message_id}"]`)) {
        if (!li._message) continue;
        const m = { ...li._message };
        if (event.type === "message.edited") {
          m.content = data.content;
          m.edited_at = event.occurred_at;
        } else {
          m.deleted = true;
          m.content = "";
          m.reactions = [];
        }
        fillMessage(li, m, m.sender_id === session.user.id);
      }
      return;
    }
    case "room.member_joined":
    case "room.member_left":
    case "room.member_removed":
    case "room.updated":
      if (current?.id === roomId) void loadMembers();
      if (data.user_id === session.user.id || event.type === "room.updated") void loadMyRooms();
      return;
    case "room.deleted":
      void loadMyRooms();
      return;
  }
}

function showLive(m, list = $("messages")) {
  if (list.querySelector(`[data-id="${m.id}"]`)) return;
  // My own message: it replaces its local echo (the oldest pending one with this text).
  if (m.sender_id === session.user.id) {
    const echo = [...list.querySelectorAll("li.pending")].find(
      (li) => li.querySelector(".text")?.textContent === m.content,
    );
    if (echo) {
      echo.className = "";
      echo.removeAttribute("data-client-id");
      echo.setAttribute("data-id", m.id);
      fillMessage(echo, m, true);
      return;
    }
  }
  const near = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(messageItem(m));
  if (near) list.scrollTop = list.scrollHeight;
}

let readTimer;
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!current) return;
    const last = client.position(current.id);
    const row = myRooms.get(current.id);
    if (last && row && last > row.last_read_position) {
      client.read(current.id, last);
      row.last_read_position = last;
    }
    if (row) {
      row.unread_count = 0;
      renderMyRooms();
    }
  }, 300);
}

$("invite").addEventListener("click", async () => {
  try {
    const { invite } = await client.rest.createInvite(current.id);
    const out = $("invite-out");
    out.hidden = false;
    out.textContent = `Invite token (valid until ${new Date(invite.expires_at).toLocaleString()}): ${invite.token}`;
  } catch (e) {
    showError(e);
  }
});

$("leave").addEventListener("click", async () => {
  if (!confirm("Leave this room?")) return;
  try {
    await client.rest.leave(current.id);
    closeRoom();
    await loadMyRooms();
    await loadPublic($("search").value);
  } catch (e) {
    showError(e);
  }
});

if (session) start().catch(showError);
else showAuth();
