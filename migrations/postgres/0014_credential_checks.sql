-- Credential checks (docs/CHECKS.md): when a connection was last checked (milliseconds, like the row's
-- other times), what the last check found wrong, and when the background pass checks it next (whole
-- seconds, like next_refresh_at; only static keys have one).
ALTER TABLE connections ADD COLUMN last_checked_at BIGINT;
ALTER TABLE connections ADD COLUMN last_check_error TEXT;
ALTER TABLE connections ADD COLUMN next_check_at BIGINT;
-- Static keys stored before checks existed: their first check spread over the next day.
UPDATE connections SET next_check_at = EXTRACT(EPOCH FROM now())::BIGINT + (random() * 86400)::BIGINT
WHERE next_refresh_at IS NULL AND status <> 'needs_reauth';
CREATE INDEX connections_check_due_idx ON connections (next_check_at) WHERE next_check_at IS NOT NULL;
