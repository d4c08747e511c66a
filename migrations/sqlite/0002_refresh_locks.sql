-- Cross-process refresh locks (SQLite only; PostgreSQL uses advisory locks). One row per credential
-- being refreshed: `holder` is a random id per acquisition, `until_ms` the wall-clock end of the lease
-- (milliseconds since the Unix epoch). The holder renews the lease while it works and deletes the row
-- when done; a row whose lease ran out belongs to a holder that vanished, and the next taker overwrites it.
CREATE TABLE refresh_locks (
    key      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
