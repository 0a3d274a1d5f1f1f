// Built from clients/typescript by `npm run build:web`; do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/generated/ws.ts
var closeCodes = [
  {
    "client_should": "reconnect with backoff and resume",
    "code": 1001,
    "meaning": "the server is going away",
    "name": "going_away"
  },
  {
    "client_should": "reconnect with backoff and resume",
    "code": 1012,
    "meaning": "the server is restarting",
    "name": "restarting"
  },
  {
    "client_should": "get a new token before reconnecting",
    "code": 4001,
    "meaning": "unauthorized: the token is missing, invalid, expired or revoked",
    "name": "unauthorized"
  },
  {
    "client_should": "do not reconnect on your own",
    "code": 4003,
    "meaning": "disconnected by an admin",
    "name": "by_admin"
  },
  {
    "client_should": "reconnect and resubscribe with since = your last position",
    "code": 4008,
    "meaning": "too slow: the client did not keep up",
    "name": "too_slow"
  }
];
var CloseCode = {
  "going_away": 1001,
  "restarting": 1012,
  "unauthorized": 4001,
  "by_admin": 4003,
  "too_slow": 4008
};

// src/rest.ts
var NatterError = class extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    __publicField(this, "status", status);
    __publicField(this, "code", code);
    __publicField(this, "retryAfter", retryAfter);
    this.name = "NatterError";
  }
};
var Rest = class {
  constructor(options) {
    __publicField(this, "options", options);
    __publicField(this, "base");
    __publicField(this, "fetcher");
    /** The highest position a command of this client was answered with. */
    __publicField(this, "written", 0);
    this.base = options.baseUrl.replace(/\/$/, "") + "/api/v1";
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }
  /** The position of this client's latest write: queries wait for it (read-your-writes). */
  get position() {
    return this.written;
  }
  /** Notes a position this client caused (a command's answer, a socket `ack`). */
  wrote(position) {
    if (typeof position === "number" && position > this.written) this.written = position;
  }
  /**
   * Notes a position the app has seen (an event from the socket): later queries wait for the
   * read models to reach it too, so what they show is never behind what was shown live.
   */
  saw(position) {
    this.wrote(position);
  }
  async token(refresh) {
    if (!this.options.getToken) throw new NatterError(401, "unauthorized", "no getToken given");
    return await this.options.getToken(refresh);
  }
  /** One request to `/api/v1{path}`; a `401` is retried once with a refreshed token. */
  async raw(method, path, call = {}) {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(call.query ?? {})) {
      if (v !== void 0) url.searchParams.set(k, String(v));
    }
    const min = call.minPosition ?? (method === "GET" ? this.written : 0);
    if (method === "GET" && min > 0) url.searchParams.set("min_position", String(min));
    const auth = call.auth ?? true;
    for (let attempt = 0; ; attempt++) {
      const headers = { ...call.headers };
      if (call.body !== void 0) headers["content-type"] = "application/json";
      if (auth) headers.authorization = `Bearer ${await this.token(attempt > 0)}`;
      const response = await this.fetcher(url, {
        method,
        headers,
        body: call.body === void 0 ? void 0 : JSON.stringify(call.body)
      });
      if (response.status === 401 && auth && attempt === 0 && this.options.getToken) continue;
      if (!response.ok) throw await toError(response);
      return response;
    }
  }
  async call(method, path, call = {}) {
    const response = await this.raw(method, path, call);
    const body = await response.json();
    if (method !== "GET") this.wrote(body.position);
    return body;
  }
  register(body) {
    return this.call("POST", "/auth/register", { body, auth: false });
  }
  login(body) {
    return this.call("POST", "/auth/login", { body, auth: false });
  }
  me() {
    return this.call("GET", "/me");
  }
  updateMe(body) {
    return this.call("PATCH", "/me", { body });
  }
  user(userId) {
    return this.call("GET", `/users/${userId}`);
  }
  createRoom(body) {
    return this.call("POST", "/rooms", { body });
  }
  updateRoom(roomId, body) {
    return this.call("PATCH", `/rooms/${roomId}`, { body });
  }
  deleteRoom(roomId) {
    return this.call("DELETE", `/rooms/${roomId}`);
  }
  room(roomId) {
    return this.call("GET", `/rooms/${roomId}`);
  }
  listRooms(query = {}) {
    return this.call("GET", "/rooms", { query });
  }
  myRooms() {
    return this.call("GET", "/me/rooms");
  }
  members(roomId) {
    return this.call("GET", `/rooms/${roomId}/members`);
  }
  join(roomId) {
    return this.call("POST", `/rooms/${roomId}/join`);
  }
  leave(roomId) {
    return this.call("POST", `/rooms/${roomId}/leave`);
  }
  removeMember(roomId, userId) {
    return this.call("DELETE", `/rooms/${roomId}/members/${userId}`);
  }
  createInvite(roomId, body = {}) {
    return this.call("POST", `/rooms/${roomId}/invites`, { body });
  }
  acceptInvite(token) {
    return this.call("POST", `/invites/${encodeURIComponent(token)}/accept`);
  }
  direct(userId) {
    return this.call("POST", `/direct/${userId}`);
  }
  /** The main timeline, or with `thread_id` that thread's replies. */
  messages(roomId, query = {}) {
    return this.call("GET", `/rooms/${roomId}/messages`, { query });
  }
  message(roomId, messageId) {
    return this.call("GET", `/rooms/${roomId}/messages/${messageId}`);
  }
  /** Reacting again with the same emoji changes nothing. */
  react(roomId, messageId, emoji) {
    return this.call("PUT", `/rooms/${roomId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`);
  }
  unreact(roomId, messageId, emoji) {
    return this.call("DELETE", `/rooms/${roomId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`);
  }
  /** Messages that mention the caller, newest first. */
  mentions(query = {}) {
    return this.call("GET", "/me/mentions", { query });
  }
  /** Full-text search over the caller's rooms (or one), best match first. */
  search(query) {
    return this.call("GET", "/search/messages", { query });
  }
  sendMessage(roomId, body, idempotencyKey) {
    const headers = idempotencyKey ? { "idempotency-key": idempotencyKey } : void 0;
    return this.call("POST", `/rooms/${roomId}/messages`, { body, headers });
  }
  editMessage(roomId, messageId, content) {
    return this.call("PATCH", `/rooms/${roomId}/messages/${messageId}`, { body: { content } });
  }
  deleteMessage(roomId, messageId) {
    return this.call("DELETE", `/rooms/${roomId}/messages/${messageId}`);
  }
  markRead(roomId, upToPosition) {
    return this.call("POST", `/rooms/${roomId}/read`, { body: { up_to_position: upToPosition } });
  }
  /** A room's events from the log (`from` inclusive), as the websocket carries them. */
  async roomEvents(roomId, query = {}) {
    const response = await this.raw("GET", `/rooms/${roomId}/events`, { query, minPosition: 0 });
    const text = await response.text();
    return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
  }
};
async function toError(response) {
  const retry = response.headers.get("retry-after");
  try {
    const body = await response.json();
    return new NatterError(response.status, body.error.code, body.error.message, retry ? Number(retry) : void 0);
  } catch {
    return new NatterError(response.status, "unknown", response.statusText);
  }
}

// src/client.ts
var MAX_IDS = 4096;
var REFUSED_AT_ONCE_MS = 2e3;
var NatterClient = class {
  constructor(options) {
    __publicField(this, "options", options);
    __publicField(this, "rest");
    __publicField(this, "socket");
    __publicField(this, "current", "disconnected");
    __publicField(this, "attempt", 0);
    __publicField(this, "refusals", 0);
    __publicField(this, "timer");
    __publicField(this, "rooms", /* @__PURE__ */ new Map());
    /** Pending sends, in the order they were made (a `Map` keeps insertion order). */
    __publicField(this, "outbox", /* @__PURE__ */ new Map());
    /** Rooms whose sends wait after a refusal for now, until the timer resends them in order. */
    __publicField(this, "paused", /* @__PURE__ */ new Map());
    __publicField(this, "listeners", /* @__PURE__ */ new Map());
    __publicField(this, "ctor");
    this.rest = new Rest({ baseUrl: options.baseUrl, getToken: options.getToken, fetch: options.fetch });
    const ctor = options.WebSocket ?? globalThis.WebSocket;
    if (!ctor) throw new Error("no WebSocket: pass options.WebSocket (in Node 20, `ws`)");
    this.ctor = ctor;
  }
  get state() {
    return this.current;
  }
  on(name, listener) {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => set.delete(listener);
  }
  emit(name, value) {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        listener(value);
      } catch (e) {
        console.error("a natter listener threw", e);
      }
    }
  }
  setState(state, code, reason) {
    this.current = state;
    this.emit("state", { state, code, reason });
  }
  /** Opens the socket (and keeps it open until `close`). */
  connect() {
    if (this.current === "connecting" || this.current === "connected") return;
    void this.open(false);
  }
  /** Closes for good: no reconnect. */
  close() {
    clearTimeout(this.timer);
    for (const timer of this.paused.values()) clearTimeout(timer);
    this.paused.clear();
    const socket = this.socket;
    this.socket = void 0;
    this.setState("closed", 1e3, "closed by the client");
    socket?.close(1e3);
  }
  async open(refresh) {
    this.setState("connecting");
    let token;
    try {
      token = await this.options.getToken(refresh);
    } catch (e) {
      this.setState("closed", CloseCode.unauthorized, `no token: ${String(e)}`);
      return;
    }
    if (this.current !== "connecting") return;
    const url = new URL(this.options.baseUrl.replace(/\/$/, "") + "/api/v1/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new this.ctor(url.toString());
    this.socket = socket;
    let opened;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = Date.now();
      this.attempt = 0;
      socket.send(JSON.stringify({ op: "auth", token }));
      this.setState("connected");
      for (const [roomId, track] of this.rooms) this.sendSubscribe(roomId, track);
      for (const pending of this.outbox.values()) this.sendOp(pending);
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      let frame;
      try {
        frame = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (this.options.dropFrame?.(frame)) return;
      this.onFrame(frame);
    };
    socket.onerror = () => {
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = void 0;
      this.onClose(ev.code, ev.reason, opened);
    };
  }
  onClose(code, reason, openedAt) {
    if (this.current === "closed") return;
    const opened = openedAt !== void 0;
    if (code === CloseCode.by_admin) {
      this.setState("closed", code, reason);
      return;
    }
    if (code === CloseCode.unauthorized) {
      if (opened && Date.now() - openedAt > REFUSED_AT_ONCE_MS) this.refusals = 0;
      this.refusals += 1;
      if (this.refusals > 2) {
        this.setState("closed", code, reason);
        return;
      }
      this.setState("disconnected", code, reason);
      void this.open(true);
      return;
    }
    if (opened) this.refusals = 0;
    this.setState("disconnected", code, reason);
    const { initialMs = 250, maxMs = 1e4 } = this.options.backoff ?? {};
    const ceiling = Math.min(maxMs, initialMs * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      if (this.current === "disconnected") void this.open(false);
    }, Math.random() * ceiling);
  }
  // -- rooms ---------------------------------------------------------------------------------
  /**
   * Follows a room: every event after `since` (none: from now), then live, resumed after any
   * disconnect from the last event delivered.
   */
  subscribe(roomId, since) {
    let track = this.rooms.get(roomId);
    if (!track) {
      track = { last: since, epoch: void 0, held: void 0, ids: /* @__PURE__ */ new Set() };
      this.rooms.set(roomId, track);
    }
    if (this.current === "connected") this.sendSubscribe(roomId, track);
  }
  unsubscribe(roomId) {
    this.rooms.delete(roomId);
    this.sendRaw({ op: "unsubscribe", room_id: roomId });
  }
  /** The last position delivered in a room (what a resume starts after). */
  position(roomId) {
    return this.rooms.get(roomId)?.last;
  }
  typing(roomId, typing) {
    this.sendRaw({ op: "typing", room_id: roomId, typing });
  }
  sendSubscribe(roomId, track) {
    this.sendRaw({ op: "subscribe", room_id: roomId, since: track.last, epoch: track.epoch });
  }
  /** An op as the AsyncAPI document types it (absent fields are left out of the JSON). */
  sendRaw(op) {
    if (this.current !== "connected" || !this.socket) return false;
    this.socket.send(JSON.stringify(op));
    return true;
  }
  // -- sending -------------------------------------------------------------------------------
  /**
   * Sends a message over the socket. It is shown at once (`pending`), then `sent` with the
   * server's message, or `failed`; until then it is resent after every reconnect with the same
   * `client_id`, so it is stored once however often it goes out. A client's messages to one
   * room are stored in the order `send` was called, across reconnects and retries.
   */
  send(roomId, content, clientId = randomId(), links) {
    const local = { clientId, roomId, content, links, status: "pending" };
    this.outbox.set(clientId, local);
    this.emit("message", local);
    this.sendOp(local);
    return local;
  }
  /** Resolves when `local` is sent or failed. */
  settled(local) {
    if (local.status !== "pending") return Promise.resolve(local);
    return new Promise((resolve) => {
      const off = this.on("message", (m) => {
        if (m.clientId === local.clientId && m.status !== "pending") {
          off();
          resolve(m);
        }
      });
    });
  }
  /** Moves the read marker over the socket. */
  read(roomId, upToPosition) {
    this.sendRaw({ op: "read", room_id: roomId, up_to_position: upToPosition });
  }
  sendOp(local) {
    if (this.paused.has(local.roomId)) return;
    this.sendRaw({ op: "send", room_id: local.roomId, client_id: local.clientId, content: local.content, ...local.links });
  }
  /**
   * Holds a room's sends after one was refused for now, then resends all its pending ones in
   * the order they were made. The server refuses those already on the wire behind the refused
   * one the same way, so none of them overtakes it.
   */
  pause(roomId, seconds) {
    if (this.paused.has(roomId)) return;
    const timer = setTimeout(() => {
      this.paused.delete(roomId);
      for (const local of this.outbox.values()) if (local.roomId === roomId) this.sendOp(local);
    }, seconds * 1e3);
    this.paused.set(roomId, timer);
  }
  settle(clientId, update) {
    const local = clientId ? this.outbox.get(clientId) : void 0;
    if (!local) return false;
    Object.assign(local, update);
    if (local.status !== "pending") this.outbox.delete(local.clientId);
    this.emit("message", { ...local });
    return true;
  }
  // -- frames --------------------------------------------------------------------------------
  onFrame(frame) {
    switch (frame.type) {
      case "subscribed": {
        const track = this.rooms.get(frame.room_id);
        if (track) {
          track.epoch = frame.epoch;
          if (track.last === void 0) {
            track.last = frame.position;
          }
        }
        this.emit("subscribed", { roomId: frame.room_id, position: frame.position, epoch: frame.epoch });
        return;
      }
      case "reset": {
        const track = this.rooms.get(frame.room_id);
        if (track) {
          track.last = 0;
          track.ids.clear();
          track.held = void 0;
        }
        this.emit("reset", { roomId: frame.room_id });
        return;
      }
      case "event":
        return this.onEvent(frame);
      case "unsubscribed":
        if (frame.reason !== "requested") this.rooms.delete(frame.room_id);
        this.emit("unsubscribed", { roomId: frame.room_id, reason: frame.reason });
        return;
      case "ack":
        this.rest.wrote(frame.position);
        this.settle(frame.client_id, { status: "sent", message: frame.message ?? void 0 });
        return;
      case "error": {
        const error = { code: frame.code, message: frame.message };
        if (frame.client_id && this.outbox.has(frame.client_id)) {
          const retriable = ["unavailable", "rate_limited", "in_progress"].includes(frame.code);
          if (retriable) {
            this.pause(this.outbox.get(frame.client_id).roomId, frame.retry_after ?? 1);
            return;
          }
          this.settle(frame.client_id, { status: "failed", error });
          return;
        }
        this.emit("error", error);
        return;
      }
      case "typing":
        return this.emit("typing", frame);
      case "signal":
        return this.emit("signal", frame);
      case "presence":
        return this.emit("presence", frame);
      case "pong":
        return;
    }
  }
  onEvent(frame) {
    const track = this.rooms.get(frame.room_id);
    if (frame.feed === "me" && !track) {
      this.emit("feed", { roomId: frame.room_id, position: frame.position, event: frame.event });
      return;
    }
    if (!track) return;
    if (track.held) {
      track.held.push(frame);
      return;
    }
    const prev = frame.prev_position ?? 0;
    const last = track.last;
    if (last === void 0 || frame.position <= last || prev <= last) {
      this.deliver(frame.room_id, track, frame.position, prev, frame.event, false);
      return;
    }
    track.held = [frame];
    void this.backfill(frame.room_id, track, last, prev);
  }
  deliver(roomId, track, position, prevPosition, event, backfilled) {
    if (track.last !== void 0 && position <= track.last) return;
    if (track.ids.has(event.id)) return;
    track.ids.add(event.id);
    if (track.ids.size > MAX_IDS) {
      const oldest = track.ids.values().next().value;
      if (oldest !== void 0) track.ids.delete(oldest);
    }
    track.last = position;
    this.emit("event", { roomId, position, prevPosition, event, backfilled });
  }
  async backfill(roomId, track, from, upTo) {
    try {
      const events = await this.rest.roomEvents(roomId, { from: from + 1 });
      for (const event of events) {
        if (event.position > upTo) break;
        this.deliver(roomId, track, event.position, track.last ?? from, event, true);
      }
      if ((track.last ?? 0) < upTo) throw new Error(`the log gave events only up to ${track.last}`);
    } catch (error) {
      this.emit("discontinuity", { roomId, from: track.last ?? from, to: upTo, error });
      track.last = upTo;
    }
    const held = track.held ?? [];
    track.held = void 0;
    if (this.rooms.get(roomId) !== track) return;
    for (const frame of held) this.onEvent(frame);
  }
};
function randomId() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// src/fold.ts
var NAMED_USERS = 10;
function messageFromEvent(event, roomId = event.room_id ?? "") {
  const data = event.data;
  return {
    id: data.message_id,
    room_id: roomId,
    // A system message (an operator's broadcast) has no sender.
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
    reactions: []
  };
}
function messagesTouched(event) {
  switch (event.type) {
    case "message.edited":
    case "message.deleted":
    case "message.reaction_added":
    case "message.reaction_removed":
      return [event.data.message_id];
    case "message.sent":
      return event.data.thread_id ? [event.data.thread_id] : [];
    default:
      return [];
  }
}
function applyToMessage(message, event) {
  switch (event.type) {
    case "message.edited":
      if (event.data.message_id !== message.id || message.deleted) return message;
      return { ...message, content: event.data.content, edited_at: event.occurred_at };
    case "message.deleted":
      if (event.data.message_id !== message.id) return message;
      return { ...message, deleted: true, content: "", attachment: null, reactions: [] };
    case "message.reaction_added":
    case "message.reaction_removed": {
      const { message_id, emoji, user_id } = event.data;
      if (message_id !== message.id || message.deleted) return message;
      return { ...message, reactions: react(message.reactions ?? [], emoji, user_id, event.type === "message.reaction_added") };
    }
    case "message.sent": {
      const { thread_id } = event.data;
      if (!thread_id || thread_id !== message.id) return message;
      const t = message.thread ?? { reply_count: 0, last_reply_at: event.occurred_at, participant_ids: [] };
      const sender = event.data.kind === "system" ? null : event.actor_id;
      const named = sender && !t.participant_ids.includes(sender) && t.participant_ids.length < NAMED_USERS;
      return {
        ...message,
        thread: {
          reply_count: t.reply_count + 1,
          last_reply_at: event.occurred_at,
          participant_ids: named ? [...t.participant_ids, sender] : t.participant_ids
        }
      };
    }
    default:
      return message;
  }
}
function react(reactions, emoji, userId, added) {
  const out = reactions.map((r2) => ({ ...r2, user_ids: [...r2.user_ids] }));
  const i = out.findIndex((r2) => r2.emoji === emoji);
  const r = out[i];
  if (added) {
    if (!r) return [...out, { emoji, count: 1, user_ids: [userId] }];
    if (r.user_ids.includes(userId)) return reactions;
    r.count += 1;
    if (r.user_ids.length < NAMED_USERS) r.user_ids.push(userId);
    return out;
  }
  if (!r) return reactions;
  r.count -= 1;
  r.user_ids = r.user_ids.filter((u) => u !== userId);
  if (r.count <= 0) out.splice(i, 1);
  return out;
}
export {
  CloseCode,
  NAMED_USERS,
  NatterClient,
  NatterError,
  Rest,
  applyToMessage,
  closeCodes,
  messageFromEvent,
  messagesTouched
};
