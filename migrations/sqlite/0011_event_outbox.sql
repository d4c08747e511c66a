-- Change events waiting to be delivered to the webhook receiver, written in the transaction of the change
-- they describe. `stream`: the connection the event is about; events of one stream are delivered in id order
-- (a transaction writing them holds the connection's lock, so ids of one stream are in commit order).
-- A delivered event is deleted; one that kept failing for a day stays, with `dead_at` set.
CREATE TABLE event_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    stream          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    dead_at         BIGINT
);
CREATE INDEX event_outbox_stream_idx ON event_outbox (stream, id) WHERE dead_at IS NULL;
CREATE INDEX event_outbox_due_idx ON event_outbox (next_attempt_at) WHERE dead_at IS NULL;

-- Who delivers events now: one instance at a time holds this lease and renews it while it delivers.
CREATE TABLE event_deliverer (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT,
    lease_until BIGINT NOT NULL
);
INSERT INTO event_deliverer (id, holder, lease_until) VALUES (1, NULL, 0);
