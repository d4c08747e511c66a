-- Several connections per provider: a connection is keyed by its org, its provider and its name. Every
-- connection stored before is its provider's `default` connection (the name a request without `?name=` means),
-- so its secret and lock keep their names. `id`: a stable handle shown in listings (32 hex digits); the
-- defaults also serve rows written by an instance of the previous release. SQLite cannot change a primary
-- key: the table is rebuilt.
CREATE TABLE connections_new (
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    user_id          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    name             TEXT NOT NULL DEFAULT 'default',
    id               TEXT NOT NULL UNIQUE DEFAULT (lower(hex(randomblob(16)))),
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
    PRIMARY KEY (org_id, provider, name)
);
INSERT INTO connections_new (org_id, user_id, provider, secret_ref, secret_version, metadata, status,
    status_reason, expires_at, next_refresh_at, refresh_failures, created_at, updated_at)
SELECT org_id, user_id, provider, secret_ref, secret_version, metadata, status,
    status_reason, expires_at, next_refresh_at, refresh_failures, created_at, updated_at FROM connections;
DROP TABLE connections;
ALTER TABLE connections_new RENAME TO connections;
CREATE INDEX connections_due_idx ON connections (next_refresh_at) WHERE next_refresh_at IS NOT NULL;

-- Audit events name the connection they acted on (NULL for events about no connection, and for events
-- written before this release, which all concern `default` connections).
ALTER TABLE audit_events ADD COLUMN connection_name TEXT;

-- A new connection's secret must not be another's: its reference is looked up before it is written.
CREATE INDEX connections_secret_ref_idx ON connections (secret_ref);
