-- A user who must choose a new password before anything else (an account adopted from Aurora with its flag
-- set): only the password change is open to them until they make it. See src/passwords/mod.rs.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
