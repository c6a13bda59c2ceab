-- The rebuild of up.sql the other way round (see there why).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE users_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    security_version BIGINT NOT NULL DEFAULT 0,
    not_before TIMESTAMP
);
INSERT INTO users_old (id, username, password_hash, is_admin, created_at, security_version, not_before)
SELECT id, username, password_hash, is_admin, created_at, security_version, not_before FROM users;
DELETE FROM sqlite_sequence WHERE name = 'users_old';
INSERT INTO sqlite_sequence (name, seq) SELECT 'users_old', seq FROM sqlite_sequence WHERE name = 'users';
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
COMMIT;
PRAGMA foreign_keys = ON;
