-- Same schema as migrations/postgres: usernames are unique by their key, the name
-- NFKC-normalised and case folded; existing rows get a provisional key (U+0001 and the
-- id) that the service replaces with the real one at start-up, before it serves.
--
-- SQLite cannot drop the UNIQUE constraint on `username`, so the table is rebuilt as
-- https://www.sqlite.org/lang_altertable.html#otheralter says: with foreign keys off,
-- else dropping the old table would cascade to every session. AUTOINCREMENT's high
-- mark is carried over, else the id of a deleted user could be given again.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    security_version BIGINT NOT NULL DEFAULT 0,
    not_before TIMESTAMP
);
INSERT INTO users_new (id, username, username_key, password_hash, is_admin, created_at, security_version, not_before)
SELECT id, username, char(1) || id, password_hash, is_admin, created_at, security_version, not_before FROM users;
DELETE FROM sqlite_sequence WHERE name = 'users_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'users_new', seq FROM sqlite_sequence WHERE name = 'users';
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
COMMIT;
PRAGMA foreign_keys = ON;
