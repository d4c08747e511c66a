-- A session carries the password generation it was issued under. A password change (or an operator reset)
-- moves the user's generation on, and a session of an older generation is refused: a login that checked the
-- old password while the change committed cannot leave a working session. See src/identity/sessions.rs.
ALTER TABLE users ADD COLUMN password_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN password_generation BIGINT NOT NULL DEFAULT 0;
