-- Times are milliseconds since the Unix epoch (BIGINT) on both backends, except connections.expires_at
-- and next_refresh_at: epoch seconds, like the expires_at of the token data.
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE,
    name                TEXT,
    password_hash       TEXT,
    password_changed_at BIGINT,
    created_at          BIGINT NOT NULL
);

-- Tokenkeeper's own Bearer sessions: only the SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Failed login / change-password attempts, shared by every instance for rate limiting.
CREATE TABLE auth_failures (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX auth_failures_key_at_idx ON auth_failures (key, at);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT,
    kind        TEXT NOT NULL,
    provider    TEXT,
    outcome     TEXT NOT NULL,
    client_addr TEXT,
    detail      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, id DESC);

-- One row per (user, provider): the reference to the secret and non-secret metadata only.
CREATE TABLE connections (
    user_id          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    secret_ref       TEXT NOT NULL,
    secret_version   BIGINT NOT NULL,
    metadata         TEXT NOT NULL,
    status           TEXT NOT NULL,
    status_reason    TEXT,
    expires_at       BIGINT,
    next_refresh_at  BIGINT,
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider)
);
-- The background refresher's due query: only rows that can still be refreshed.
CREATE INDEX connections_due_idx ON connections (next_refresh_at) WHERE next_refresh_at IS NOT NULL;
