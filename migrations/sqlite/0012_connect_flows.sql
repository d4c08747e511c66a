-- Connect flows in progress (OAuth authorization code with PKCE): one row per `state` handed to a browser,
-- kept here so that any instance can finish a flow another started. The state itself is never stored, only
-- its SHA-256 (hex): the row is found by what the browser brings back. A row is claimed once (`claimed_at`)
-- and dies after ten minutes (`expires_at`, epoch milliseconds); old rows are pruned when new flows start.
CREATE TABLE connect_flows (
    state_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- The PKCE verifier: worthless without the authorization code (which only the browser sees) and the
    -- platform's client secret, and dead once the row is claimed or expired.
    verifier    TEXT NOT NULL,
    return_url  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    claimed_at  BIGINT
);
CREATE INDEX connect_flows_expires_idx ON connect_flows (expires_at);
