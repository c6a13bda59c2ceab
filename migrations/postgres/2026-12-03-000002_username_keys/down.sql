-- Two rows never share a name: the key kept them apart, and a name's key is one.
ALTER TABLE users ADD CONSTRAINT users_username_key UNIQUE (username);
ALTER TABLE users DROP COLUMN username_key;
