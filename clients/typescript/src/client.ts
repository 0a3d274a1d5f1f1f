// The realtime side of natter: one websocket, with an explicit connection state machine,
// reconnects with exponential backoff and full jitter, per-room resume with (epoch, position),
// a contiguity check on every event (a gap is backfilled from the log before the app sees
// anything), dedupe across socket and backfill, and idempotent sends with local echo.
// One file, ~500 lines: the state machine, the per-room resume and the outbox share one
// connection's state, and splitting them would only pass it around.
import { CloseCode, type components } from "./generated/ws.js";
import { type GetToken, type Message, type PublicEvent, Rest } from "./rest.js";

type Frames = components["schemas"];
export type ServerFrame = Frames["ServerFrame"];
export type ClientOp = Frames["ClientOp"];
type Frame<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

/** A state change, with the close code and reason that caused it. */
export interface StateChange {
  state: ConnectionState;
  code?: number;
  reason?: string;
}

/** A room event, delivered in order, once, with nothing missing before it. */
export interface RoomEvent {
  roomId: string;
  position: number;
  /** The room's previous event as delivered to you (0 for its first). */
  prevPosition: number;
  event: PublicEvent;
  /** Came from the log over REST to fill a gap, rather than from the socket. */
  backfilled: boolean;
}

/** A message sent through the socket, as the app shows it before and after the server has it. */
/** What a message sent over the socket may refer to, as on `POST /rooms/{id}/messages`. */
export interface MessageLinks {
  /** Quote this message of the room. */
  reply_to?: string;
  /** Reply inside the thread of this root message. */
  thread_id?: string;
  /** Members of the room to mention. */
  mentions?: string[];
}

export interface LocalMessage {
  clientId: string;
  roomId: string;
  content: string;
  links?: MessageLinks;
  status: "pending" | "sent" | "failed";
  /** The server's message, once sent. */
  message?: Message;
  error?: { code: string; message: string };
}

export interface Discontinuity {
  roomId: string;
  /** The last position delivered before the hole. */
  from: number;
  /** The position the next delivered event follows. */
  to: number;
  error: unknown;
}

export interface ClientEvents {
  state: StateChange;
  event: RoomEvent;
  /** An event that names you from a room you do not follow (`"feed": "me"`). */
  feed: { roomId: string; position: number; event: PublicEvent };
  subscribed: { roomId: string; position: number; epoch: string };
  unsubscribed: { roomId: string; reason: string };
  /** The log was recreated: the room's history starts over. */
  reset: { roomId: string };
  discontinuity: Discontinuity;
  message: LocalMessage;
  typing: Frame<"typing">;
  signal: Frame<"signal">;
  presence: Frame<"presence">;
  error: { code: string; message: string };
}

type Listener<T> = (value: T) => void;

/**
 * A handler property as both the browser's WebSocket and `ws` declare theirs, each with its
 * own event type: written as a method so that either is accepted under `strict`.
 */
type Handler<E> = { handle(ev: E): void }["handle"] | null;

/** The constructor of a WHATWG-style WebSocket (the browser's, or `ws`'s in Node). */
export type WebSocketLike = new (url: string) => {
  readyState: number;
  onopen: Handler<unknown>;
  onmessage: Handler<{ data: unknown }>;
  onclose: Handler<{ code: number; reason: string }>;
  onerror: Handler<unknown>;
  send(data: string): void;
  close(code?: number, reason?: string): void;
};

export interface ClientOptions {
  /** Where natter is, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The login token; called again with `true` when the last one was refused. */
  getToken: GetToken;
  /** Defaults to `globalThis.WebSocket`; in Node 20 pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketLike;
  fetch?: typeof fetch;
  /** Reconnect backoff: full jitter over `min(maxMs, initialMs * 2^attempt)`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** For tests: drop incoming frames this says to drop, as a lossy network would. */
  dropFrame?: (frame: ServerFrame) => boolean;
}

interface RoomTrack {
  /** The position after which events are wanted: the last delivered, or the one asked for. */
  last: number | undefined;
  epoch: string | undefined;
  /** Frames held while a gap is being backfilled. */
  held: Frame<"event">[] | undefined;
  ids: Set<string>;
}

const MAX_IDS = 4096;
/** A 4001 close this soon after opening is the token refused, not a token that expired later. */
const REFUSED_AT_ONCE_MS = 2000;

export class NatterClient {
  readonly rest: Rest;
  private socket: InstanceType<WebSocketLike> | undefined;
  private current: ConnectionState = "disconnected";
  private attempt = 0;
  private refusals = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly rooms = new Map<string, RoomTrack>();
  /** Pending sends, in the order they were made (a `Map` keeps insertion order). */
  private readonly outbox = new Map<string, LocalMessage>();
  /** Rooms whose sends wait after a refusal for now, until the timer resends them in order. */
  private readonly paused = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly listeners = new Map<keyof ClientEvents, Set<Listener<never>>>();
  private readonly ctor: WebSocketLike;

  constructor(private readonly options: ClientOptions) {
    this.rest = new Rest({ baseUrl: options.baseUrl, getToken: options.getToken, fetch: options.fetch });
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
    if (!ctor) throw new Error("no WebSocket: pass options.WebSocket (in Node 20, `ws`)");
    this.ctor = ctor;
  }

  get state(): ConnectionState {
    return this.current;
  }

  on<K extends keyof ClientEvents>(name: K, listener: Listener<ClientEvents[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  private emit<K extends keyof ClientEvents>(name: K, value: ClientEvents[K]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        (listener as Listener<ClientEvents[K]>)(value);
      } catch (e) {
        console.error("a natter listener threw", e);
      }
    }
  }

  private setState(state: ConnectionState, code?: number, reason?: string): void {
    this.current = state;
    this.emit("state", { state, code, reason });
  }

  /** Opens the socket (and keeps it open until `close`). */
  connect(): void {
    if (this.current === "connecting" || this.current === "connected") return;
    void this.open(false);
  }

  /** Closes for good: no reconnect. */
  close(): void {
    clearTimeout(this.timer);
    for (const timer of this.paused.values()) clearTimeout(timer);
    this.paused.clear();
    const socket = this.socket;
    this.socket = undefined;
    this.setState("closed", 1000, "closed by the client");
    socket?.close(1000);
  }

  private async open(refresh: boolean): Promise<void> {
    this.setState("connecting");
    let token: string;
    try {
      token = await this.options.getToken(refresh);
    } catch (e) {
      this.setState("closed", CloseCode.unauthorized, `no token: ${String(e)}`);
      return;
    }
    if (this.current !== "connecting") return;
    // The token goes in the first frame, not the URL: no URL, proxy log or browser console
    // (which prints the URL of every failed connection) shows it.
    const url = new URL(this.options.baseUrl.replace(/\/$/, "") + "/api/v1/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new this.ctor(url.toString());
    this.socket = socket;
    let opened: number | undefined;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = Date.now();
      this.attempt = 0;
      socket.send(JSON.stringify({ op: "auth", token } satisfies ClientOp));
      this.setState("connected");
      for (const [roomId, track] of this.rooms) this.sendSubscribe(roomId, track);
      for (const pending of this.outbox.values()) this.sendOp(pending);
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      if (this.options.dropFrame?.(frame)) return;
      this.onFrame(frame);
    };
    socket.onerror = () => {};
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.onClose(ev.code, ev.reason, opened);
    };
  }

  private onClose(code: number, reason: string, openedAt: number | undefined): void {
    if (this.current === "closed") return;
    const opened = openedAt !== undefined;
    if (code === CloseCode.by_admin) {
      // Disconnected by an admin: do not come back on our own.
      this.setState("closed", code, reason);
      return;
    }
    if (code === CloseCode.unauthorized) {
      // Refused token: ask for a new one; a fresh token refused again at once means stop. A
      // token refused at the start is closed within a moment; one that lived its life and
      // expired (or was revoked) later counts as a first refusal.
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
    const { initialMs = 250, maxMs = 10_000 } = this.options.backoff ?? {};
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
  subscribe(roomId: string, since?: number): void {
    let track = this.rooms.get(roomId);
    if (!track) {
      track = { last: since, epoch: undefined, held: undefined, ids: new Set() };
      this.rooms.set(roomId, track);
    }
    if (this.current === "connected") this.sendSubscribe(roomId, track);
  }

  unsubscribe(roomId: string): void {
    this.rooms.delete(roomId);
    this.sendRaw({ op: "unsubscribe", room_id: roomId });
  }

  /** The last position delivered in a room (what a resume starts after). */
  position(roomId: string): number | undefined {
    return this.rooms.get(roomId)?.last;
  }

  typing(roomId: string, typing: boolean): void {
    this.sendRaw({ op: "typing", room_id: roomId, typing });
  }

  private sendSubscribe(roomId: string, track: RoomTrack): void {
    this.sendRaw({ op: "subscribe", room_id: roomId, since: track.last, epoch: track.epoch });
  }

  /** An op as the AsyncAPI document types it (absent fields are left out of the JSON). */
  private sendRaw(op: ClientOp): boolean {
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
  send(roomId: string, content: string, clientId: string = randomId(), links?: MessageLinks): LocalMessage {
    const local: LocalMessage = { clientId, roomId, content, links, status: "pending" };
    this.outbox.set(clientId, local);
    this.emit("message", local);
    this.sendOp(local);
    return local;
  }

  /** Resolves when `local` is sent or failed. */
  settled(local: LocalMessage): Promise<LocalMessage> {
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
  read(roomId: string, upToPosition: number): void {
    this.sendRaw({ op: "read", room_id: roomId, up_to_position: upToPosition });
  }

  private sendOp(local: LocalMessage): void {
    if (this.paused.has(local.roomId)) return; // resent in order when the pause ends
    this.sendRaw({ op: "send", room_id: local.roomId, client_id: local.clientId, content: local.content, ...local.links });
  }

  /**
   * Holds a room's sends after one was refused for now, then resends all its pending ones in
   * the order they were made. The server refuses those already on the wire behind the refused
   * one the same way, so none of them overtakes it.
   */
  private pause(roomId: string, seconds: number): void {
    if (this.paused.has(roomId)) return;
    const timer = setTimeout(() => {
      this.paused.delete(roomId);
      for (const local of this.outbox.values()) if (local.roomId === roomId) this.sendOp(local);
    }, seconds * 1000);
    this.paused.set(roomId, timer);
  }

  private settle(clientId: string | null | undefined, update: Partial<LocalMessage>): boolean {
    const local = clientId ? this.outbox.get(clientId) : undefined;
    if (!local) return false;
    Object.assign(local, update);
    if (local.status !== "pending") this.outbox.delete(local.clientId);
    this.emit("message", { ...local });
    return true;
  }

  // -- frames --------------------------------------------------------------------------------

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "subscribed": {
        const track = this.rooms.get(frame.room_id);
        if (track) {
          track.epoch = frame.epoch;
          if (track.last === undefined) {
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
          track.held = undefined;
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
        this.settle(frame.client_id, { status: "sent", message: frame.message ?? undefined });
        return;
      case "error": {
        const error = { code: frame.code, message: frame.message };
        if (frame.client_id && this.outbox.has(frame.client_id)) {
          const retriable = ["unavailable", "rate_limited", "in_progress"].includes(frame.code);
          if (retriable) {
            this.pause(this.outbox.get(frame.client_id)!.roomId, frame.retry_after ?? 1);
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

  private onEvent(frame: Frame<"event">): void {
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
    // Contiguous when the event's predecessor is at or before what was delivered (or the
    // position asked for); an event at or before it is a duplicate, dropped by `deliver`.
    if (last === undefined || frame.position <= last || prev <= last) {
      this.deliver(frame.room_id, track, frame.position, prev, frame.event, false);
      return;
    }
    // A hole between what we delivered and this event: fill it from the log first.
    track.held = [frame];
    void this.backfill(frame.room_id, track, last, prev);
  }

  private deliver(
    roomId: string,
    track: RoomTrack,
    position: number,
    prevPosition: number,
    event: PublicEvent,
    backfilled: boolean,
  ): void {
    if (track.last !== undefined && position <= track.last) return;
    if (track.ids.has(event.id)) return;
    track.ids.add(event.id);
    if (track.ids.size > MAX_IDS) {
      const oldest = track.ids.values().next().value;
      if (oldest !== undefined) track.ids.delete(oldest);
    }
    track.last = position;
    this.emit("event", { roomId, position, prevPosition, event, backfilled });
  }

  private async backfill(roomId: string, track: RoomTrack, from: number, upTo: number): Promise<void> {
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
    track.held = undefined;
    if (this.rooms.get(roomId) !== track) return;
    for (const frame of held) this.onEvent(frame);
  }
}

function randomId(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
