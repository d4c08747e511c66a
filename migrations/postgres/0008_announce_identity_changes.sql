-- Every instance keeps sessions, users' password state and memberships in memory (src/db/identity_cache.rs).
-- Every change to those rows is announced on `tokenkeeper_identity` with the user's id (`u:{user_id}`), by
-- the database itself and in the transaction that makes the change: a logout, a password change (its
-- revocations and its new generation), a membership added, changed or removed (also by the cascade of an
-- org deleted, or by hand in psql) reaches every instance when it commits. A session inserted at login is
-- not announced: nothing can have cached a session that did not exist.
-- The trigger's argument names the column holding the user's id (`id` in users, `user_id` elsewhere).
CREATE FUNCTION tokenkeeper_announce_identity_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Identical notifications of one transaction are sent once (a password change revoking many sessions).
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('tokenkeeper_identity', 'u:' || (to_jsonb(OLD) ->> TG_ARGV[0]));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('tokenkeeper_identity', 'u:' || (to_jsonb(NEW) ->> TG_ARGV[0]));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_announce_identity_change
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION tokenkeeper_announce_identity_change('id');
CREATE TRIGGER sessions_announce_identity_change
    AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION tokenkeeper_announce_identity_change('user_id');
CREATE TRIGGER memberships_announce_identity_change
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION tokenkeeper_announce_identity_change('user_id');
