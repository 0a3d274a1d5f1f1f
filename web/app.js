// natter's web chat: a small page over the TypeScript client (natter-client.js is its bundle,
// built from clients/typescript by `npm run build:web` there). Plain DOM, no framework. One
// file on purpose (~820 lines): the page's state (session, rooms, the open room and thread)
// is shared by every part, and a second module would only pass it around.
import { CloseCode, NatterClient, NatterError, Rest, applyToMessage, messageFromEvent, messagesTouched } from "/web/natter-client.js";

const $ = (id) => document.getElementById(id);
const origin = location.origin;
const SESSION = "natter.session";
const OPEN_ROOM = "natter.room";

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

let toastTimer;
/** Says what went wrong in the page (no browser dialog): a refused request by its message, a
 * network failure in plain words; a refused login token signs out. */
function showError(e) {
  if (e instanceof NatterError && e.status === 401) return signOut("Your session has ended: log in again.");
  const text =
    e instanceof NatterError
      ? e.message
      : e instanceof TypeError
        ? "Cannot reach natter: check your connection, then try again."
        : String(e?.message ?? e);
  const toast = $("toast");
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 6000);
}

/** Runs work the user did not ask for (a refresh after an event): a room that is no longer
 * ours (403, 404) is not an error worth showing. */
function background(promise) {
  promise.catch((e) => {
    if (e instanceof NatterError && (e.status === 403 || e.status === 404)) return;
    showError(e);
  });
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
  sessionStorage.removeItem(OPEN_ROOM);
  location.reload();
});

function showAuth(notice) {
  $("auth").hidden = false;
  $("app").hidden = true;
  $("auth-notice").hidden = !notice;
  $("auth-notice").textContent = notice ?? "";
}

/** The token is refused and no other can be had: back to the login form. */
function signOut(notice) {
  sessionStorage.removeItem(SESSION);
  const old = client;
  client = undefined;
  old?.close();
  showAuth(notice);
}

// -- the app ------------------------------------------------------------------------------------

async function start() {
  client?.close();
  followed.clear();
  // The page has no way to get a new token by itself: asked for one, it gives up, and the
  // client closes (4001), which brings back the login form.
  client = new NatterClient({
    baseUrl: origin,
    getToken: (refresh) => {
      if (refresh) throw new Error("the session ended");
      return session.token;
    },
  });
  client.rest.wrote(session.position);
  try {
    session.user = await client.rest.me();
  } catch (e) {
    if (e instanceof NatterError && (e.status === 401 || e.status === 404)) return signOut("Log in again.");
    throw e;
  }
  names.set(session.user.id, session.user.username);
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = session.user.display_name;
  client.on("state", ({ state, code }) => {
    $("conn").textContent = state;
    $("conn").className = `conn ${state}`;
    if (state === "closed" && code === CloseCode.unauthorized) signOut("Your session has ended: log in again.");
  });
  client.on("event", onEvent);
  client.on("feed", ({ position }) => {
    client.rest.saw(position);
    background(loadMyRooms());
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
    background(loadMyRooms());
  });
  client.connect();
  await loadMyRooms();
  await loadPublic("");
  // The room open before a reload opens again.
  const open = sessionStorage.getItem(OPEN_ROOM);
  if (open && myRooms.has(open)) await openRoom(open);
}

// The public list's member counts change as people come and go in rooms this page does not
// follow: refreshed every 30 s while the page is shown, and soon after any membership event.
let publicTimer;
function refreshPublic(delay = 500) {
  clearTimeout(publicTimer);
  publicTimer = setTimeout(() => client && background(loadPublic($("search").value)), delay);
}
setInterval(() => {
  if (client && !document.hidden) refreshPublic(0);
}, 30_000);

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
  searchTimer = setTimeout(() => background(loadPublic(ev.target.value)), 250);
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
  flushRead();
  sessionStorage.setItem(OPEN_ROOM, id);
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
  try {
    await Promise.all([loadMembers(), loadPage()]);
  } catch (e) {
    if (current?.id === id) closeRoom();
    return background(Promise.reject(e));
  }
  markRead();
}

function closeRoom() {
  flushRead();
  sessionStorage.removeItem(OPEN_ROOM);
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
  if (current && current.hasMore && ev.target.scrollTop < 40) background(loadPage());
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
    const picker = el("span", { class: "picker", hidden: "" });
    for (const emoji of EMOJI) {
      picker.append(
        el("button", { class: "link", text: emoji, title: `React with ${emoji}`, onclick: () => {
          picker.hidden = true;
          void toggleReaction(li._message, emoji);
        } }),
      );
    }
    actions.append(
      el("button", { class: "link", text: "react", title: "React", onclick: () => (picker.hidden = !picker.hidden) }),
      picker,
    );
  }
  if (mine && !m.deleted && m.kind !== "system") {
    actions.append(
      el("button", { class: "link", text: "edit", onclick: () => editMessage(li) }),
      el("button", { class: "link", text: "delete", onclick: (ev) => deleteMessage(m, ev.currentTarget) }),
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

const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

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
function onThreadReply(m, event) {
  applyToShown(event);
  if (current?.thread === m.thread_id) showLive(m, $("thread-messages"));
}

/** Folds an event into every message it changes that the page shows (a thread's root shows
 * twice while its thread is open), with the client's rules, the read model's. */
function applyToShown(event) {
  for (const id of messagesTouched(event)) {
    for (const li of document.querySelectorAll(`[data-id="${id}"]`)) {
      if (!li._message) continue;
      const m = applyToMessage(li._message, event);
      if (m !== li._message) fillMessage(li, m, m.sender_id === session.user.id);
    }
  }
}

/** Edits a message in place: its text becomes an editor (Enter saves, Escape cancels). */
function editMessage(li) {
  const m = li._message;
  const text = li.querySelector(".text");
  if (!text || li.querySelector(".editor")) return;
  const input = el("textarea", { maxlength: "4000", rows: "2" });
  input.value = m.content;
  const done = () => fillMessage(li, li._message, true);
  const save = async () => {
    const content = input.value.trim();
    if (!content || content === m.content) return done();
    try {
      await client.rest.editMessage(m.room_id, m.id, content);
      done();
    } catch (e) {
      showError(e);
    }
  };
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      void save();
    } else if (ev.key === "Escape") done();
  });
  text.replaceWith(
    el("span", { class: "editor" }, input,
      el("button", { class: "link", text: "save", onclick: save }),
      el("button", { class: "link", text: "cancel", onclick: done })),
  );
  input.focus();
}

/** A second click within 4 s confirms (no browser dialog). */
function confirmed(button, question) {
  if (button.dataset.confirm) return true;
  const label = button.textContent;
  button.dataset.confirm = "1";
  button.textContent = question;
  button.classList.add("confirm");
  setTimeout(() => {
    delete button.dataset.confirm;
    button.textContent = label;
    button.classList.remove("confirm");
  }, 4000);
  return false;
}

async function deleteMessage(m, button) {
  if (!confirmed(button, "delete: sure?")) return;
  try {
    await client.rest.deleteMessage(m.room_id, m.id);
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

// Enter sends, Shift+Enter makes a new line.
for (const form of [$("composer"), $("thread-composer")]) {
  form.elements.content.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
}

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
    clearTimeout(early.get(local.message.id));
    early.delete(local.message.id);
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
      const m = messageFromEvent(event, roomId);
      if (m.thread_id) {
        // Thread replies count in no room's unread count.
        if (current?.id === roomId) onThreadReply(m, event);
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
    case "message.reaction_removed":
    case "message.edited":
    case "message.deleted":
      if (current?.id === roomId) applyToShown(event);
      return;
    case "room.member_joined":
    case "room.member_left":
    case "room.member_removed":
    case "room.updated": {
      const gone = event.type !== "room.member_joined" && event.type !== "room.updated" && data.user_id === session.user.id;
      if (gone && current?.id === roomId) closeRoom();
      else if (current?.id === roomId) background(loadMembers());
      if (data.user_id === session.user.id || event.type === "room.updated") background(loadMyRooms());
      refreshPublic();
      return;
    }
    case "room.deleted":
      if (current?.id === roomId) closeRoom();
      background(loadMyRooms());
      refreshPublic();
      return;
  }
}

// My own message seen live while my sends are pending: its ack (which names the message, by
// the send's client_id) says which local echo it is, so it waits for it, up to 2 s (it may
// come from my other tab, whose sends this page never acks).
const early = new Map(); // message id -> timer
function showLive(m, list = $("messages")) {
  if (list.querySelector(`[data-id="${m.id}"]`) || early.has(m.id)) return;
  if (m.sender_id === session.user.id && list.querySelector("li.pending")) {
    early.set(m.id, setTimeout(() => {
      early.delete(m.id);
      showLive(m, list);
    }, 2000));
    return;
  }
  const near = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(messageItem(m));
  if (near) list.scrollTop = list.scrollHeight;
}

// The read marker follows the open room a moment behind (one op for a burst of messages);
// leaving the room (another room, the list, a reload) sends what is pending at once.
let readTimer;
let readRoom;
function markRead() {
  clearTimeout(readTimer);
  readRoom = current?.id;
  readTimer = setTimeout(flushRead, 300);
}

function flushRead() {
  clearTimeout(readTimer);
  const roomId = readRoom;
  readRoom = undefined;
  if (!roomId || !client) return;
  const last = client.position(roomId);
  const row = myRooms.get(roomId);
  if (last && row && last > row.last_read_position) {
    client.read(roomId, last);
    row.last_read_position = last;
  }
  if (row) {
    row.unread_count = 0;
    renderMyRooms();
  }
}
window.addEventListener("pagehide", flushRead);

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

$("leave").addEventListener("click", async (ev) => {
  if (!current || !confirmed(ev.currentTarget, "Leave: sure?")) return;
  const id = current.id;
  try {
    closeRoom();
    await client.rest.leave(id);
    followed.delete(id);
    await loadMyRooms();
    await loadPublic($("search").value);
  } catch (e) {
    showError(e);
  }
});

// -- searching messages -------------------------------------------------------------------------

/** The server's highlight (escaped text with `<mark>`), rebuilt as text and marks only. */
function highlighted(html) {
  const doc = new DOMParser().parseFromString(`<p>${html}</p>`, "text/html");
  const out = el("span", { class: "text" });
  for (const node of doc.body.firstChild?.childNodes ?? []) {
    out.append(node.nodeName === "MARK" ? el("mark", { text: node.textContent }) : document.createTextNode(node.textContent));
  }
  return out;
}

let messageSearch;
$("search-messages").addEventListener("submit", (ev) => ev.preventDefault());
$("search-messages").elements.q.addEventListener("input", (ev) => {
  clearTimeout(messageSearch);
  messageSearch = setTimeout(() => background(searchMessages(ev.target.value.trim())), 300);
});

async function searchMessages(q) {
  const list = $("search-results");
  if (!q) return list.replaceChildren();
  const { results } = await client.rest.search({ q, limit: 20 });
  if ($("search-messages").elements.q.value.trim() !== q) return; // a newer search is on its way
  list.replaceChildren(
    ...(results.length
      ? results.map(({ message, highlight }) => {
          const row = myRooms.get(message.room_id);
          return el(
            "li",
            { "data-room": message.room_id, onclick: () => openRoom(message.room_id) },
            el("span", { class: "room-of", text: row ? roomTitle(row) : "a room" }),
            highlighted(highlight),
          );
        })
      : [el("li", { class: "muted", text: "No message matches." })]),
  );
}

if (session) start().catch(showError);
else showAuth();
