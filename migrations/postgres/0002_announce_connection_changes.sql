-- Every change to a connection row is announced on the channel the read caches of all instances listen
-- on (`tokenkeeper_cache`, payload `{provider}:{user_id}`, the cache's key), by the database itself and in
-- the same transaction: the announcement goes out exactly when the change commits, even if the process
-- that made it dies right after, and a change made by hand (psql) is announced too.
CREATE FUNCTION tokenkeeper_announce_connection_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tokenkeeper_cache', OLD.provider || ':' || OLD.user_id);
    ELSE
        PERFORM pg_notify('tokenkeeper_cache', NEW.provider || ':' || NEW.user_id);
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.provider, OLD.user_id) IS DISTINCT FROM (NEW.provider, NEW.user_id) THEN
        PERFORM pg_notify('tokenkeeper_cache', OLD.provider || ':' || OLD.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER connections_announce_change
    AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION tokenkeeper_announce_connection_change();
