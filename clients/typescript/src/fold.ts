// A message as natter's read model shows it, kept current from the room's events: built from
// `message.sent`, then changed by the reactions, edits, deletions and thread replies that
// follow, by the same rules as the server's read model. An app that shows a timeline from the
// socket folds with these instead of deriving the rules again.
import type { Message, PublicEvent } from "./rest.js";

/** The event of type `T`, with its payload typed. */
export type EventOf<T extends PublicEvent["type"]> = Extract<PublicEvent, { type: T }>;

/** How many users a reaction or a thread summary names (the earliest ones). */
export const NAMED_USERS = 10;

/** The message a `message.sent` event makes, as `GET /rooms/{id}/messages` would show it. */
export function messageFromEvent(event: EventOf<"message.sent">, roomId: string = event.room_id ?? ""): Message {
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
    reactions: [],
  };
}

/** The message ids an event changes (none for an event about no message). */
export function messagesTouched(event: PublicEvent): string[] {
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

/**
 * `message` after `event`: a new object when the event changes it, else `message` itself. A
 * deleted message keeps its place with no content, attachment or reactions; a reply in its
 * thread counts on a root.
 */
export function applyToMessage(message: Message, event: PublicEvent): Message {
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
          participant_ids: named ? [...t.participant_ids, sender] : t.participant_ids,
        },
      };
    }
    default:
      return message;
  }
}

type Reactions = NonNullable<Message["reactions"]>;

/** One user's reaction added or taken back; each user counts once per emoji. */
function react(reactions: Reactions, emoji: string, userId: string, added: boolean): Reactions {
  const out = reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  const i = out.findIndex((r) => r.emoji === emoji);
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
