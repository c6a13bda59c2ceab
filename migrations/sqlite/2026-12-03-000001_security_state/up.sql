-- A user's security state. `security_version` goes up in the transaction of every change
-- that must end what was issued before it (a password change, an admin flag change, an
-- admin's revoke of every session): a login that read the user before such a change
-- opens its session only if the version it read still holds. `not_before` is when that
-- happened: tokens without a session issued until then are refused.
ALTER TABLE users ADD COLUMN security_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN not_before TIMESTAMP;

-- The revocation log also carries those moments, so every instance learns them. SQLite
-- cannot change a CHECK constraint: the table is rebuilt.
CREATE TABLE revocations_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token', 'user', 'not_before')),
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO revocations_new (id, kind, subject, user_id, revoked_at, expires_at)
SELECT id, kind, subject, user_id, revoked_at, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
