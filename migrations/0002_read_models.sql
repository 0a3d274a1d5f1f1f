-- Read models: disposable projections of the event log (natter rebuild recreates them).
-- Every row remembers the position of the last event that changed it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    position      BIGINT NOT NULL
);

CREATE TABLE rooms (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    visibility    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    owner_id      UUID NOT NULL,
    max_members   INTEGER NOT NULL,
    member_count  INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    created_position BIGINT NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,
    -- The latest message (for "my rooms"), kept here so listing rooms needs no message scan.
    last_message_position BIGINT,
    position      BIGINT NOT NULL
);
CREATE INDEX rooms_public_idx ON rooms (created_position DESC) WHERE visibility = 'public' AND NOT deleted;
CREATE INDEX rooms_name_trgm_idx ON rooms USING gin (name gin_trgm_ops);

CREATE TABLE members (
    room_id            UUID NOT NULL,
    user_id            UUID NOT NULL,
    role               TEXT NOT NULL,
    joined_at          TIMESTAMPTZ NOT NULL,
    joined_position    BIGINT NOT NULL,
    last_read_position BIGINT NOT NULL DEFAULT 0,
    -- Others' messages after max(last_read_position, joined_position), not deleted.
    unread_count       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_user_idx ON members (user_id, room_id);

CREATE TABLE invites (
    id          UUID PRIMARY KEY,
    room_id     UUID NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invitee_id  UUID,
    expires_at  TIMESTAMPTZ NOT NULL,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    position    BIGINT NOT NULL
);
CREATE INDEX invites_room_idx ON invites (room_id);
CREATE INDEX invites_invitee_idx ON invites (invitee_id) WHERE invitee_id IS NOT NULL;

CREATE TABLE messages (
    position    BIGINT PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    room_id     UUID NOT NULL,
    sender_id   UUID,
    kind        TEXT NOT NULL,
    content     TEXT NOT NULL,
    attachment  JSONB,
    created_at  TIMESTAMPTZ NOT NULL,
    edited_at   TIMESTAMPTZ,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX messages_room_idx ON messages (room_id, position) INCLUDE (sender_id, deleted);
