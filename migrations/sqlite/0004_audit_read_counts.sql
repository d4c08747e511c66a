-- The audit trail at scale (src/audit/): credential reads are kept as one row per connection, caller,
-- outcome and minute with a count (`read_key` names that group while its minute is being counted; other
-- events have no key and count 1), and old events are pruned by time through an index on `at`.
ALTER TABLE audit_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN read_key TEXT;
CREATE UNIQUE INDEX audit_events_read_key_idx ON audit_events (read_key) WHERE read_key IS NOT NULL;
CREATE INDEX audit_events_at_idx ON audit_events (at);
