-- A user's security state. `security_version` goes up in the transaction of every change
-- that must end what was issued before it (a password change, an admin flag change, an
-- admin's revoke of every session): a login that read the user before such a change
-- opens its session only if the version it read still holds. `not_before` is when that
-- happened, by the database's clock: tokens without a session issued until then are
-- refused.
ALTER TABLE users ADD COLUMN security_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN not_before TIMESTAMP;

-- The revocation log also carries those moments, so every instance learns them.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('session', 'token', 'user', 'not_before'));
