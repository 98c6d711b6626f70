-- Browser sessions. The cookie carries a random token; only its SHA-256 is stored, so the
-- table cannot be replayed, and logout deletes the row (the session ends on the server).
CREATE TABLE sessions (
    token_hash       bytea PRIMARY KEY,
    user_id          uuid NOT NULL,
    organization_id  uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    user_agent       text NOT NULL DEFAULT '',
    FOREIGN KEY (organization_id, user_id) REFERENCES memberships (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
