-- Nothing to do: PostgreSQL's 0009 gives it the `refresh_locks` lease table that SQLite has had since 0002.
-- (Kept so that one change has one number in both directories.)
SELECT 1;
