-- Where each projection has got to in the log. The projector updates a projection's row in
-- the same transaction as the read-model changes of a batch, so the two never disagree.
CREATE TABLE projection_checkpoints (
    projection  TEXT PRIMARY KEY,
    position    BIGINT NOT NULL CHECK (position >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
