// natter's TypeScript client. See README.md.
export { NatterClient } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  ClientOp,
  ConnectionState,
  Discontinuity,
  LocalMessage,
  MessageLinks,
  RoomEvent,
  ServerFrame,
  StateChange,
  WebSocketLike,
} from "./client.js";
export { NatterError, Rest } from "./rest.js";
export { NAMED_USERS, applyToMessage, messageFromEvent, messagesTouched } from "./fold.js";
export type { EventOf } from "./fold.js";
export type {
  ErrorBody,
  GetToken,
  Invite,
  Member,
  Message,
  MyRoom,
  PublicEvent,
  RestOptions,
  Room,
  Schemas,
  Session,
  User,
} from "./rest.js";
export { CloseCode, closeCodes } from "./generated/ws.js";
