//! The signing keys kept in the database: generating, listing, rotating and retiring
//! them (`stores-api keys`), and the rows every instance reads to follow a rotation.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use jsonwebtoken::Algorithm;

use super::{encoding_key, sealed, KeyError, PublicKey};
use crate::auth::audit::{self, Action, Event, Origin, Outcome};
use crate::config::Secret;
use crate::db::DbConnection;
use crate::schema::signing_keys;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in the JWKS, not signing yet.
    Next,
    /// Signs new tokens (one key at most).
    Current,
    /// Verifies the tokens it signed until the last of them has expired.
    Retired,
}

impl KeyState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    fn parse(text: &str) -> KeyState {
        match text {
            "current" => KeyState::Current,
            "retired" => KeyState::Retired,
            _ => KeyState::Next,
        }
    }
}

/// A key as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct StoredKey {
    kid: String,
    algorithm: String,
    state: String,
    public_jwk: String,
    private_key: String,
    created_at: NaiveDateTime,
    activated_at: Option<NaiveDateTime>,
    retired_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
}

/// A key as the service reads it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// The RFC 7638 thumbprint of its public key.
    pub kid: String,
    /// Its algorithm's name (`EdDSA`, `ES256`, `RS256`).
    pub algorithm_name: String,
    /// Where it is in its life.
    pub state: KeyState,
    /// The public JWK.
    pub public_jwk: String,
    /// The private key, sealed.
    pub private_key: String,
    /// When it was made, and so published.
    pub created_at: NaiveDateTime,
    /// When it began to sign.
    pub activated_at: Option<NaiveDateTime>,
    /// When it stopped signing.
    pub retired_at: Option<NaiveDateTime>,
    /// When the last token it signed expires (retired keys).
    pub expires_at: Option<NaiveDateTime>,
}

impl KeyRow {
    /// Its algorithm.
    pub fn algorithm(&self) -> Result<Algorithm, KeyError> {
        self.algorithm_name
            .parse::<Algorithm>()
            .map_err(|_| KeyError::Stored(self.kid.clone()))
    }
}

impl From<StoredKey> for KeyRow {
    fn from(k: StoredKey) -> Self {
        KeyRow {
            state: KeyState::parse(&k.state),
            kid: k.kid,
            algorithm_name: k.algorithm,
            public_jwk: k.public_jwk,
            private_key: k.private_key,
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
            expires_at: k.expires_at,
        }
    }
}

/// Every key, oldest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<KeyRow>, KeyError> {
    Ok(signing_keys::table
        .order((signing_keys::created_at.asc(), signing_keys::kid.asc()))
        .select(StoredKey::as_select())
        .load(conn)?
        .into_iter()
        .map(KeyRow::from)
        .collect())
}

/// A fresh private key of `algorithm`, as PKCS#8 PEM.
pub fn generate_pem(algorithm: Algorithm) -> Result<Secret, KeyError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use rand_core::OsRng;
    let pem = match algorithm {
        Algorithm::EdDSA => {
            // PKCS#8 v1 (RFC 8410 7), what `openssl genpkey -algorithm ed25519` writes:
            // the seed alone. ed25519-dalek writes v2, with the public key, which
            // jsonwebtoken does not read.
            use base64::Engine;
            const PREFIX: [u8; 16] = [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            let seed = ed25519_dalek::SigningKey::generate(&mut OsRng).to_bytes();
            let mut der = PREFIX.to_vec();
            der.extend_from_slice(&seed);
            let body = base64::engine::general_purpose::STANDARD.encode(&der);
            return Ok(Secret::new(format!(
                "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
            )));
        }
        Algorithm::ES256 => p256::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Generate("P-256", e.to_string()))?,
        Algorithm::RS256 => rsa::RsaPrivateKey::new(&mut OsRng, 2048)
            .map_err(|e| KeyError::Generate("RSA", e.to_string()))?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Generate("RSA", e.to_string()))?,
        other => return Err(KeyError::Unsupported(format!("{other:?}"))),
    };
    Ok(Secret::new(pem.as_str()))
}

/// A key made by [`generate`], not stored yet: RSA takes a while to make, so keys are
/// made outside any transaction.
pub struct NewKey {
    kid: String,
    algorithm: Algorithm,
    public_jwk: String,
    sealed: String,
}

impl NewKey {
    /// Its id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Makes a key of `algorithm` and seals its private half under `encryption_key`.
pub fn generate(algorithm: Algorithm, encryption_key: &Secret) -> Result<NewKey, KeyError> {
    let pem = generate_pem(algorithm)?;
    let encoding = encoding_key("generated key", algorithm, pem.expose())?;
    let public = PublicKey::of_private(algorithm, &encoding)?;
    let kid = public.verifying.kid.clone().unwrap_or_default();
    let public_jwk =
        serde_json::to_string(&public.jwk).map_err(|_| KeyError::Stored(kid.clone()))?;
    let sealed = sealed::seal(encryption_key, &kid, pem.expose().as_bytes())?;
    Ok(NewKey {
        kid,
        algorithm,
        public_jwk,
        sealed,
    })
}

/// Stores `key`: `current` when no key signs yet, else `next`, with its audit event.
/// Returns its state.
pub fn insert(
    conn: &mut DbConnection,
    key: &NewKey,
    origin: &Origin,
) -> Result<KeyState, KeyError> {
    conn.transaction(|conn| insert_in(conn, key, origin))
}

fn insert_in(conn: &mut DbConnection, key: &NewKey, origin: &Origin) -> Result<KeyState, KeyError> {
    let now = crate::db::clock(conn)?;
    let has_current = signing_keys::table
        .filter(signing_keys::state.eq(KeyState::Current.as_str()))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    let state = if has_current {
        KeyState::Next
    } else {
        KeyState::Current
    };
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(&key.kid),
            signing_keys::algorithm.eq(format!("{:?}", key.algorithm)),
            signing_keys::state.eq(state.as_str()),
            signing_keys::public_jwk.eq(&key.public_jwk),
            signing_keys::private_key.eq(&key.sealed),
            signing_keys::created_at.eq(now),
            signing_keys::activated_at.eq((state == KeyState::Current).then_some(now)),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        Event::new(Action::KeyGenerated, Outcome::Ok, origin)
            .detail("kid", key.kid.as_str())
            .detail("algorithm", format!("{:?}", key.algorithm))
            .detail("state", state.as_str()),
    )?;
    Ok(state)
}

/// What `keys rotate` did, or why it could not.
#[derive(Debug)]
pub enum Rotation {
    /// `kid` signs now; `retired` (if any) verifies until `until`.
    Rotated {
        /// The key that signs now.
        kid: String,
        /// The key that signed before.
        retired: Option<String>,
        /// When the retired key's last token expires.
        until: NaiveDateTime,
    },
    /// No `next` key: generate one first.
    NoNextKey,
    /// The oldest `next` key has not been published by every instance for the JWKS
    /// max-age yet.
    TooEarly {
        /// That key.
        kid: String,
        /// Seconds to wait.
        wait_secs: i64,
    },
}

/// Makes the oldest `next` key that every instance has published for at least `max_age`
/// (so [`super::PUBLISHED_WITHIN`] and `max_age` after it was stored) the current one,
/// and retires the current one until `token_lifetime` has passed (its last token's
/// expiry). A verifier that cached any instance's JWKS just before the new key appeared
/// there has fetched it again by then, so it never meets an unknown `kid`.
pub fn rotate(
    conn: &mut DbConnection,
    max_age: chrono::Duration,
    token_lifetime: chrono::Duration,
    origin: &Origin,
) -> Result<Rotation, KeyError> {
    // One transaction: no instance ever reads a moment with two current keys or none.
    conn.transaction(|conn| rotate_in(conn, max_age, token_lifetime, origin))
}

fn rotate_in(
    conn: &mut DbConnection,
    max_age: chrono::Duration,
    token_lifetime: chrono::Duration,
    origin: &Origin,
) -> Result<Rotation, KeyError> {
    let now = crate::db::clock(conn)?;
    let next: Option<KeyRow> = signing_keys::table
        .filter(signing_keys::state.eq(KeyState::Next.as_str()))
        .order((signing_keys::created_at.asc(), signing_keys::kid.asc()))
        .select(StoredKey::as_select())
        .first(conn)
        .optional()?
        .map(KeyRow::from);
    let Some(next) = next else {
        return Ok(Rotation::NoNextKey);
    };
    let ready_at = next.created_at + signs_after(max_age);
    if ready_at > now {
        return Ok(Rotation::TooEarly {
            kid: next.kid,
            wait_secs: ((ready_at - now).num_milliseconds() + 999) / 1000,
        });
    }
    let until = now + token_lifetime;
    let retired: Option<String> = signing_keys::table
        .filter(signing_keys::state.eq(KeyState::Current.as_str()))
        .select(signing_keys::kid)
        .first(conn)
        .optional()?;
    diesel::update(signing_keys::table.filter(signing_keys::state.eq(KeyState::Current.as_str())))
        .set((
            signing_keys::state.eq(KeyState::Retired.as_str()),
            signing_keys::retired_at.eq(now),
            signing_keys::expires_at.eq(until),
        ))
        .execute(conn)?;
    diesel::update(signing_keys::table.find(&next.kid))
        .set((
            signing_keys::state.eq(KeyState::Current.as_str()),
            signing_keys::activated_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        Event::new(Action::KeyRotated, Outcome::Ok, origin)
            .detail("kid", next.kid.as_str())
            .detail("retired", retired.clone()),
    )?;
    Ok(Rotation::Rotated {
        kid: next.kid,
        retired,
        until,
    })
}

/// How long after it is stored a `next` key may sign, for a JWKS max-age of `max_age`.
pub fn signs_after(max_age: chrono::Duration) -> chrono::Duration {
    max_age + chrono::Duration::seconds(super::PUBLISHED_WITHIN.as_secs() as i64)
}

/// What `keys retire KID` did, or why it could not.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// The key is gone from the database and the JWKS.
    Removed,
    /// No such key.
    Unknown,
    /// Only retired keys can be removed.
    NotRetired(KeyState),
    /// Its tokens live until then.
    TooEarly(NaiveDateTime),
}

/// Deletes the retired key `kid` once every token it signed has expired.
pub fn remove_retired(
    conn: &mut DbConnection,
    kid: &str,
    origin: &Origin,
) -> Result<Removal, KeyError> {
    conn.transaction(|conn| remove_retired_in(conn, kid, origin))
}

fn remove_retired_in(
    conn: &mut DbConnection,
    kid: &str,
    origin: &Origin,
) -> Result<Removal, KeyError> {
    let now = crate::db::clock(conn)?;
    let row: Option<KeyRow> = signing_keys::table
        .find(kid)
        .select(StoredKey::as_select())
        .first(conn)
        .optional()?
        .map(KeyRow::from);
    let Some(row) = row else {
        return Ok(Removal::Unknown);
    };
    if row.state != KeyState::Retired {
        return Ok(Removal::NotRetired(row.state));
    }
    if let Some(until) = row.expires_at.filter(|until| *until > now) {
        return Ok(Removal::TooEarly(until));
    }
    diesel::delete(signing_keys::table.find(kid)).execute(conn)?;
    audit::record(
        conn,
        Event::new(Action::KeyRetired, Outcome::Ok, origin).detail("kid", kid),
    )?;
    Ok(Removal::Removed)
}
