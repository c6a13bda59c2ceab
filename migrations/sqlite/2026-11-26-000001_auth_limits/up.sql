-- Same schema as migrations/postgres.
-- The brute-force limits shared by every instance (PostgreSQL; SQLite keeps them in
-- memory, this table stays empty there): one row per counted subject, the requests of
-- one client address to one auth route ("address /login 203.0.113.7", IPv6 by its /64)
-- or the failed password checks of one username ("login <SHA-256 of the username>") or
-- user ("password <user id>"). A window opens at the first hit and lasts a fixed time;
-- `resets_at_ms` (milliseconds since the Unix epoch, by the instance that opened it) is
-- when it closes. Counted by one atomic INSERT ... ON CONFLICT DO UPDATE, so that
-- concurrent requests on several instances never lose a hit; closed windows are
-- deleted by the periodic sweep.
CREATE TABLE auth_limits (
    subject TEXT PRIMARY KEY,
    hits BIGINT NOT NULL,
    resets_at_ms BIGINT NOT NULL
);
CREATE INDEX auth_limits_resets_at_ms_idx ON auth_limits (resets_at_ms);
