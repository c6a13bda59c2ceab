-- Same schema as migrations/postgres.
-- The revocation log: one row per revoked session (`sid`), sid-less token (`jti`) or
-- deleted user, written in the transaction that revokes. Every instance keeps its
-- revoked set in memory and follows this table by `revoked_at` (re-reading an overlap
-- window, so a row whose transaction commits late is still seen). Unlike
-- sessions.revoked_at, a row here survives the user's deletion (which cascades the
-- sessions away). `expires_at` is when the entry may be dropped: the revoked tokens'
-- expiry plus the decode leeway.
CREATE TABLE revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token', 'user')),
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);

-- New and rotated sessions are followed the same way.
CREATE INDEX sessions_created_at_idx ON sessions (created_at);
CREATE INDEX sessions_refreshed_at_idx ON sessions (refreshed_at);

-- What was revoked before the log existed.
INSERT INTO revocations (kind, subject, user_id, revoked_at, expires_at)
SELECT 'session', id, user_id, revoked_at, expires_at FROM sessions WHERE revoked_at IS NOT NULL;
INSERT INTO revocations (kind, subject, user_id, revoked_at, expires_at)
SELECT 'token', jti, COALESCE(user_id, 0), revoked_at, expires_at FROM revoked_tokens;
