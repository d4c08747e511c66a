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
SELECT id, COALESCE(name, email), TRUE, id, created_at FROM users;
INSERT INTO orgs (id, name, personal, created_by, created_at)
SELECT DISTINCT ON (user_id) user_id, user_id, TRUE, user_id, created_at FROM connections
WHERE user_id NOT IN (SELECT id FROM orgs) ORDER BY user_id, created_at;
INSERT INTO memberships (org_id, user_id, role, created_at)
SELECT id, id, 'admin', created_at FROM orgs;

-- Connections belong to an org (`user_id` stays: the user who first stored it). Every connection moves to
-- its user's personal org.
ALTER TABLE connections ADD COLUMN org_id TEXT;
UPDATE connections SET org_id = user_id;
ALTER TABLE connections ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE connections ADD CONSTRAINT connections_org_fk FOREIGN KEY (org_id) REFERENCES orgs(id);
ALTER TABLE connections DROP CONSTRAINT connections_pkey;
ALTER TABLE connections ADD PRIMARY KEY (org_id, provider);

-- Audit events carry the org they acted in (NULL for events outside any org: logins, registrations).
ALTER TABLE audit_events ADD COLUMN org_id TEXT;
CREATE INDEX audit_events_org_idx ON audit_events (org_id, id DESC) WHERE org_id IS NOT NULL;

-- Change announcements now name the org: `{provider}:{org_id}` (for a personal org, the same text as before).
CREATE OR REPLACE FUNCTION tokenkeeper_announce_connection_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tokenkeeper_cache', OLD.provider || ':' || OLD.org_id);
    ELSE
        PERFORM pg_notify('tokenkeeper_cache', NEW.provider || ':' || NEW.org_id);
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.provider, OLD.org_id) IS DISTINCT FROM (NEW.provider, NEW.org_id) THEN
        PERFORM pg_notify('tokenkeeper_cache', OLD.provider || ':' || OLD.org_id);
    END IF;
    RETURN NULL;
END
$$;
