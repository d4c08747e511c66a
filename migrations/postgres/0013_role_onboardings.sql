-- Role onboardings (AWS): `POST /api/connect/aws` issues an external id for an org's connection before the
-- user creates the role that trusts Tokenkeeper with it; the later `PUT /api/tokens/aws` for the same org and
-- connection name uses it (and marks it used). One row per org, provider and connection name: asking again
-- while a row is pending (not used, not expired) gives the same external id; a used or expired row is
-- replaced by a new one. An external id is not a secret (AWS: it guards against the confused deputy, it does
-- not authenticate), so it is kept here in plain text, like a stored connection's `external_id` metadata.
-- Times are epoch milliseconds.
CREATE TABLE role_onboardings (
    org_id       TEXT NOT NULL,
    provider     TEXT NOT NULL,
    name         TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    PRIMARY KEY (org_id, provider, name)
);
