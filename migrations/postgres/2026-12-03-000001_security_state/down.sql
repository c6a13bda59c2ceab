DELETE FROM revocations WHERE kind = 'not_before';
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('session', 'token', 'user'));
ALTER TABLE users DROP COLUMN not_before;
ALTER TABLE users DROP COLUMN security_version;
