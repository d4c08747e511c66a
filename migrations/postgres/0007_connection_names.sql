-- Several connections per provider: a connection is keyed by its org, its provider and its name. Every
-- connection stored before is its provider's `default` connection (the name a request without `?name=` means),
-- so its secret, lock and change announcement keep their names. `id`: a stable handle shown in listings
-- (32 hex digits); the defaults also serve rows written by an instance of the previous release during a
-- rolling upgrade.
ALTER TABLE connections ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE connections ADD COLUMN id TEXT NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '');
ALTER TABLE connections ADD CONSTRAINT connections_id_key UNIQUE (id);
ALTER TABLE connections DROP CONSTRAINT connections_pkey;
ALTER TABLE connections ADD PRIMARY KEY (org_id, provider, name);

-- Audit events name the connection they acted on (NULL for events about no connection, and for events
-- written before this release, which all concern `default` connections).
ALTER TABLE audit_events ADD COLUMN connection_name TEXT;

-- Change announcements name the connection: `{provider}:{org_id}` for the default one (the text earlier
-- releases sent and listen for), `{provider}/{name}:{org_id}` for the others.
CREATE OR REPLACE FUNCTION tokenkeeper_connection_announcement(provider TEXT, name TEXT, org_id TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT provider || CASE WHEN name = 'default' THEN '' ELSE '/' || name END || ':' || org_id
$$;
CREATE OR REPLACE FUNCTION tokenkeeper_announce_connection_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tokenkeeper_cache', tokenkeeper_connection_announcement(OLD.provider, OLD.name, OLD.org_id));
    ELSE
        PERFORM pg_notify('tokenkeeper_cache', tokenkeeper_connection_announcement(NEW.provider, NEW.name, NEW.org_id));
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.provider, OLD.name, OLD.org_id) IS DISTINCT FROM (NEW.provider, NEW.name, NEW.org_id) THEN
        PERFORM pg_notify('tokenkeeper_cache', tokenkeeper_connection_announcement(OLD.provider, OLD.name, OLD.org_id));
    END IF;
    RETURN NULL;
END
$$;

-- A new connection's secret must not be another's: its reference is looked up before it is written.
CREATE INDEX connections_secret_ref_idx ON connections (secret_ref);
