-- Nothing to change in the schema: SQLite has no NOTIFY, so every process that changes a session, a user's
-- password or a membership bumps the identity change counter beside the database file
-- (src/db/generation.rs, src/db/identity_cache.rs). Kept so that both backends number their migrations alike.
SELECT 1;
