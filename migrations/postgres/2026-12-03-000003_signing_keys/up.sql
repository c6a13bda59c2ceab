-- The signing keys of public-key algorithms, generated and rotated by `stores-api keys`.
-- `next`: published in the JWKS, not signing yet; `current`: signs (one at most);
-- `retired`: verifies the tokens it signed until `expires_at`, when the last of them
-- has expired. The private key is encrypted under JWT_KEY_ENCRYPTION_KEY
-- (XChaCha20-Poly1305, the kid as associated data): base64 of the nonce and ciphertext.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    public_jwk TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP,
    expires_at TIMESTAMP
);
-- At most one key signs, whatever instances race to make one current.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
