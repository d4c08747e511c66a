-- A login or change-password attempt is recorded before its password is checked (pending = 1), so that
-- guesses sent at the same moment count against each other; a wrong password confirms it (pending = 0),
-- a right one deletes it. See src/passwords/rate_limit.rs.
ALTER TABLE auth_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
