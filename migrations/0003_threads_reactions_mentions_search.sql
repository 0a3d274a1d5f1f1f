-- Replies and threads, reactions, mentions and search (API.md "Replies, threads, reactions,
-- mentions, search"). Like every read model, rebuilt from the log by natter rebuild.

ALTER TABLE messages
    ADD COLUMN reply_to  UUID,
    -- The root of the thread this message replies in; NULL for the main timeline.
    ADD COLUMN thread_id UUID,
    ADD COLUMN mentions  UUID[] NOT NULL DEFAULT '{}',
    -- Full-text search: the content's words, language-neutral (no stemming, no stop words;
    -- queries match word prefixes). A deletion empties the content, so it matches nothing.
    ADD COLUMN search    TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED;

-- The main timeline leaves thread replies out; a thread is paged by its root.
CREATE INDEX messages_timeline_idx ON messages (room_id, position) WHERE thread_id IS NULL;
CREATE INDEX messages_thread_idx ON messages (thread_id, position) INCLUDE (sender_id, deleted, created_at)
    WHERE thread_id IS NOT NULL;
CREATE INDEX messages_search_idx ON messages USING gin (search);

-- Who reacted to which message with what; `position` orders a message's reactions by
-- their first use, and the users of one by when they reacted.
CREATE TABLE reactions (
    message_id UUID NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    UUID NOT NULL,
    room_id    UUID NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- A user named by a message (never its sender); a row goes when its message is deleted.
-- `GET /me/mentions` and `unread_mentions` read it.
CREATE TABLE mentions (
    user_id    UUID NOT NULL,
    message_id UUID NOT NULL,
    room_id    UUID NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX mentions_user_idx ON mentions (user_id, room_id, position);
CREATE INDEX mentions_recent_idx ON mentions (user_id, position DESC);
