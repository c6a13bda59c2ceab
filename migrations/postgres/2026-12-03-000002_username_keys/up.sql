-- Usernames are unique by their key: the name NFKC-normalised and case folded, so that
-- `Alice`, `alice` and a full-width `ａlice` are one account. SQL cannot compute that
-- key on both backends, so every existing row gets a provisional one here, U+0001 and
-- its id (unique, and no real key starts with a control character); the service
-- replaces them with the real keys at start-up, before it serves (models::user).
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = chr(1) || id::text;
ALTER TABLE users ALTER COLUMN username_key SET NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_username_key_unique UNIQUE (username_key);
-- The key is the unique one now; the name is what is shown.
ALTER TABLE users DROP CONSTRAINT users_username_key;
