-- Cross-instance refresh locks as leases, as SQLite has had since its 0002 (they were advisory locks, which
-- end with their backend connection even while their holder is still at the provider with a single-use
-- refresh token). One row per credential being refreshed: `holder` is a random id per acquisition, `until_ms`
-- the end of the lease in the database server's clock (epoch milliseconds). The holder renews the lease while
-- it works and deletes the row when done; a row whose lease ran out belongs to a holder that vanished, and
-- the next taker overwrites it. A logged table: a lease must survive a restart of the database.
CREATE TABLE refresh_locks (
    key      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
