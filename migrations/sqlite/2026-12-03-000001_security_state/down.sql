CREATE TABLE revocations_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token', 'user')),
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO revocations_old (id, kind, subject, user_id, revoked_at, expires_at)
SELECT id, kind, subject, user_id, revoked_at, expires_at FROM revocations
WHERE kind <> 'not_before';
DROP TABLE revocations;
ALTER TABLE revocations_old RENAME TO revocations;
CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
ALTER TABLE users DROP COLUMN not_before;
ALTER TABLE users DROP COLUMN security_version;
