-- Organizations own connections. A personal org's id is its user's id, so the names Part 1 gave to a user's
-- secrets, locks and change announcements stay the same for the default connection of their personal org;
-- shared orgs get a generated id (`org-` and 32 hex digits). `created_by`: the user who created it.
CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    personal   BOOLEAN NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Who belongs to an org, with which role. No foreign key to users: Auth.js and internal callers are users
-- that Tokenkeeper never registered.
CREATE TABLE memberships (
    org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Every user known before this release gets a personal org where they are admin: registered users, and
-- the users of stored connections (Auth.js and internal callers have no users row).
INSERT INTO orgs (id, name, personal, created_by, created_at)
SELECT id, COALESCE(name, email), 1, id, created_at FROM users;
INSERT INTO orgs (id, name, personal, created_by, created_at)
SELECT user_id, user_id, 1, user_id, MIN(created_at) FROM connections
WHERE user_id NOT IN (SELECT id FROM orgs) GROUP BY user_id;
INSERT INTO memberships (org_id, user_id, role, created_at)
SELECT id, id, 'admin', created_at FROM orgs;

-- Connections belong to an org (`user_id` stays: the user who first stored it). Every connection moves to
-- its user's personal org. SQLite cannot change a primary key: the table is rebuilt.
CREATE TABLE connections_new (
    org_id           TEXT NOT NULL REFERENCES orgs(id),
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
    PRIMARY KEY (org_id, provider)
);
INSERT INTO connections_new (org_id, user_id, provider, secret_ref, secret_version, metadata, status,
    status_reason, expires_at, next_refresh_at, refresh_failures, created_at, updated_at)
SELECT user_id, user_id, provider, secret_ref, secret_version, metadata, status,
    status_reason, expires_at, next_refresh_at, refresh_failures, created_at, updated_at FROM connections;
DROP TABLE connections;
ALTER TABLE connections_new RENAME TO connections;
CREATE INDEX connections_due_idx ON connections (next_refresh_at) WHERE next_refresh_at IS NOT NULL;

-- Audit events carry the org they acted in (NULL for events outside any org: logins, registrations).
ALTER TABLE audit_events ADD COLUMN org_id TEXT;
CREATE INDEX audit_events_org_idx ON audit_events (org_id, id DESC) WHERE org_id IS NOT NULL;
