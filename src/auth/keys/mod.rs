//! The keys that sign and verify tokens: one HMAC secret, or public-key pairs from PEM
//! or from the database, each known by its `kid` (the RFC 7638 thumbprint of its public
//! key) and pinned to its own algorithm (RFC 8725 3.1). The set in use is swapped whole
//! when the database's keys change, so every instance follows a rotation without a
//! restart.

mod sealed;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

pub use sealed::SealError;
pub use store::{KeyRow, KeyState};

use crate::config::{is_hmac, KeySource, Secret, TokenSettings};
use crate::db::DbConnection;
use crate::error::ApiError;

/// How often an instance reads the database's signing keys: a key generated or rotated
/// by `stores-api keys` (or another instance) is followed within this long.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// How long after a key is stored every instance publishes it: one poll, and a second
/// for the read itself and a late tick.
pub const PUBLISHED_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a key could not be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A PEM that is not a key of the algorithm.
    #[error("{0}: not a PEM {1} key ({2})")]
    Pem(&'static str, &'static str, String),
    /// The algorithm cannot have a key of this kind.
    #[error("{0} keys cannot be generated or published")]
    Unsupported(String),
    /// Generating a key failed.
    #[error("cannot generate a {0} key: {1}")]
    Generate(&'static str, String),
    /// A sealed private key could not be opened or sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A stored public key is not a JWK of ours.
    #[error("the stored public key of {0} is not a valid JWK")]
    Stored(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Database(e) => ApiError::from(e),
            other => ApiError::Internal(format!("signing keys: {other}")),
        }
    }
}

/// A key that verifies tokens of one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    /// Its id; none for the HMAC secret and for `JWT_PUBLIC_KEY`'s tokens without `kid`.
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub algorithm: Algorithm,
    /// The key itself.
    pub decoding: DecodingKey,
}

/// The key that signs new tokens.
pub struct SigningKey {
    /// The header every token it signs carries (`alg`, `typ`, and `kid` when public-key).
    pub header: Header,
    /// The private key or the secret.
    pub encoding: EncodingKey,
}

/// The keys in use at one moment: the signing key, the verifying keys by `kid`, the key
/// for tokens without `kid`, and the JWKS that publishes them.
pub struct KeySet {
    /// Signs new tokens; none while the database holds no current key.
    pub signing: Option<SigningKey>,
    by_kid: HashMap<String, VerifyingKey>,
    without_kid: Option<VerifyingKey>,
    jwks: String,
    etag: String,
    /// Bumped at every change, so that what was verified under an older set is checked again.
    pub generation: u64,
}

impl KeySet {
    /// The HMAC set: one secret, no `kid`, an empty JWKS (a secret is never published).
    pub fn hmac(algorithm: Algorithm, secret: &Secret) -> KeySet {
        let bytes = secret.expose().as_bytes();
        KeySet::new(
            Some(SigningKey {
                header: Header::new(algorithm),
                encoding: EncodingKey::from_secret(bytes),
            }),
            Vec::new(),
            Some(VerifyingKey {
                kid: None,
                algorithm,
                decoding: DecodingKey::from_secret(bytes),
            }),
        )
    }

    /// A set of public-key pairs: `signing` signs (it is also among `published`), every
    /// key of `published` verifies its own tokens and is in the JWKS, and `without_kid`
    /// verifies tokens that name no key.
    fn new(
        signing: Option<SigningKey>,
        published: Vec<PublicKey>,
        without_kid: Option<VerifyingKey>,
    ) -> KeySet {
        let jwks = serde_json::json!({
            "keys": published.iter().map(|k| &k.jwk).collect::<Vec<_>>()
        })
        .to_string();
        let etag = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(jwks.as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        };
        KeySet {
            signing,
            by_kid: published
                .into_iter()
                .map(|k| (k.verifying.kid.clone().unwrap_or_default(), k.verifying))
                .collect(),
            without_kid,
            jwks,
            etag,
            generation: 0,
        }
    }

    /// The key a token's header names: by `kid`, else the key for tokens without one.
    pub fn verifying(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.without_kid.as_ref(),
        }
    }

    /// The JWKS document (`{"keys": [...]}`, public members only) and its ETag.
    pub fn jwks(&self) -> (&str, &str) {
        (&self.jwks, &self.etag)
    }

    /// Whether tokens carry a `kid` (public-key sets) or not (HMAC).
    pub fn uses_kid(&self) -> bool {
        self.signing
            .as_ref()
            .map_or(!self.by_kid.is_empty(), |s| s.header.kid.is_some())
    }
}

/// A public key as published: its JWK (with `kid`, `alg`, `use`) and its verifier.
#[derive(Clone)]
pub struct PublicKey {
    /// The public JWK.
    pub jwk: Jwk,
    /// The key that verifies its tokens.
    pub verifying: VerifyingKey,
}

impl PublicKey {
    /// The public key of `private` (PEM of `algorithm`), named by its thumbprint.
    pub fn of_private(algorithm: Algorithm, private: &EncodingKey) -> Result<PublicKey, KeyError> {
        let jwk = Jwk::from_encoding_key(private, algorithm)
            .map_err(|e| KeyError::Unsupported(format!("{algorithm:?} ({e})")))?;
        PublicKey::of_jwk(algorithm, jwk)
    }

    /// A public key given as PEM (`JWT_PUBLIC_KEY`).
    pub fn of_public_pem(algorithm: Algorithm, pem: &str) -> Result<PublicKey, KeyError> {
        let kind = family(algorithm)?;
        let decoding = match algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .map_err(|e| KeyError::Pem("JWT_PUBLIC_KEY", kind, e.to_string()))?;
        let jwk = Jwk::from_decoding_key(&decoding, Some(algorithm))
            .map_err(|e| KeyError::Pem("JWT_PUBLIC_KEY", kind, e.to_string()))?;
        PublicKey::of_jwk(algorithm, jwk)
    }

    /// A stored public JWK, checked against its `kid`.
    pub fn of_stored(kid: &str, algorithm: Algorithm, jwk: &str) -> Result<PublicKey, KeyError> {
        let jwk: Jwk = serde_json::from_str(jwk).map_err(|_| KeyError::Stored(kid.to_owned()))?;
        let key = PublicKey::of_jwk(algorithm, jwk)?;
        if key.verifying.kid.as_deref() != Some(kid) {
            return Err(KeyError::Stored(kid.to_owned()));
        }
        Ok(key)
    }

    /// `jwk` with its thumbprint as `kid`, `alg` and `use: sig`, and its verifier.
    fn of_jwk(algorithm: Algorithm, mut jwk: Jwk) -> Result<PublicKey, KeyError> {
        let unsupported =
            |e: jsonwebtoken::errors::Error| KeyError::Unsupported(format!("{algorithm:?} ({e})"));
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(unsupported)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.key_algorithm = Some(algorithm.into());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(unsupported)?;
        Ok(PublicKey {
            jwk,
            verifying: VerifyingKey {
                kid: Some(kid),
                algorithm,
                decoding,
            },
        })
    }
}

/// The private key `pem` of `algorithm`, read for signing.
pub fn encoding_key(
    setting: &'static str,
    algorithm: Algorithm,
    pem: &str,
) -> Result<EncodingKey, KeyError> {
    let kind = family(algorithm)?;
    match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .map_err(|e| KeyError::Pem(setting, kind, e.to_string()))
}

/// The kind of key `algorithm` takes, for messages; an error for HMAC.
fn family(algorithm: Algorithm) -> Result<&'static str, KeyError> {
    match algorithm {
        Algorithm::EdDSA => Ok("Ed25519"),
        Algorithm::ES256 => Ok("P-256 EC"),
        Algorithm::RS256 => Ok("RSA"),
        other => Err(KeyError::Unsupported(format!("{other:?}"))),
    }
}

/// The set a signing key and its public half make.
fn signing_pair(
    algorithm: Algorithm,
    encoding: EncodingKey,
) -> Result<(SigningKey, PublicKey), KeyError> {
    let public = PublicKey::of_private(algorithm, &encoding)?;
    let mut header = Header::new(algorithm);
    header.kid = public.verifying.kid.clone();
    Ok((SigningKey { header, encoding }, public))
}

/// The keys the service uses, swapped whole when they change.
pub struct Keys {
    set: RwLock<Arc<KeySet>>,
    settings: TokenSettings,
    /// The rows the set was built from (kid and state, unexpired only), to rebuild it
    /// only when they change.
    installed: std::sync::Mutex<Vec<(String, KeyState)>>,
}

impl Keys {
    /// The keys `settings` give at start-up: the HMAC secret, the PEM pair, or (keys in
    /// the database) an empty set until [`Keys::load`] reads them.
    pub fn new(settings: &TokenSettings) -> Result<Keys, KeyError> {
        let set = match &settings.keys {
            _ if is_hmac(settings.algorithm) => KeySet::hmac(settings.algorithm, &settings.secret),
            Some(KeySource::Pem { private, public }) => {
                let encoding =
                    encoding_key("JWT_PRIVATE_KEY", settings.algorithm, private.expose())?;
                let (signing, published) = signing_pair(settings.algorithm, encoding)?;
                let without_kid = public_key_without_kid(settings, public.as_deref())?;
                let mut keys = vec![published];
                if let Some(extra) = &without_kid {
                    // Published too, so that a verifier can check what it signs.
                    if keys.iter().all(|k| k.verifying.kid != extra.verifying.kid) {
                        keys.push(extra.clone());
                    }
                }
                KeySet::new(Some(signing), keys, without_kid.map(|k| k.verifying))
            }
            Some(KeySource::Database { public, .. }) => {
                let without_kid = public_key_without_kid(settings, public.as_deref())?;
                KeySet::new(None, Vec::new(), without_kid.map(|k| k.verifying))
            }
            None => KeySet::new(None, Vec::new(), None),
        };
        Ok(Keys {
            set: RwLock::new(Arc::new(set)),
            settings: settings.clone(),
            installed: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether the keys live in the database (and so follow `stores-api keys`).
    pub fn in_database(&self) -> bool {
        matches!(self.settings.keys, Some(KeySource::Database { .. }))
            && !is_hmac(self.settings.algorithm)
    }

    /// Reads the database's keys and puts them in use; when no key signs yet, makes one
    /// of `JWT_ALGORITHM` first (a race with another instance doing the same leaves one
    /// current key: the loser's becomes `next`).
    pub fn load(&self, conn: &mut DbConnection) -> Result<(), KeyError> {
        let Some(KeySource::Database { encryption_key, .. }) = &self.settings.keys else {
            return Ok(());
        };
        let mut rows = store::list(conn)?;
        if !rows.iter().any(|r| r.state == KeyState::Current) {
            let key = store::generate(self.settings.algorithm, encryption_key)?;
            match store::insert(conn, &key, &crate::auth::audit::Origin::startup()) {
                Ok(state) => log::info!(
                    "signing keys: made {} key {} ({})",
                    self.settings.algorithm_name(),
                    key.kid(),
                    state.as_str()
                ),
                Err(KeyError::Database(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ))) => {}
                Err(e) => return Err(e),
            }
            rows = store::list(conn)?;
        }
        self.follow(&rows)
    }

    /// Puts `rows` in use when they differ from the set's (a rotation, a new key, a
    /// retired key whose tokens have now expired); a no-op otherwise.
    pub fn follow(&self, rows: &[KeyRow]) -> Result<(), KeyError> {
        let now = crate::db::now();
        let live: Vec<(String, KeyState)> = rows
            .iter()
            .filter(|r| !(r.state == KeyState::Retired && r.expires_at.is_some_and(|at| at <= now)))
            .map(|r| (r.kid.clone(), r.state))
            .collect();
        let mut installed = match self.installed.lock() {
            Ok(installed) => installed,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *installed == live && self.current().signing.is_some() {
            return Ok(());
        }
        self.install(rows)?;
        let signing = live
            .iter()
            .find(|(_, state)| *state == KeyState::Current)
            .map_or("none", |(kid, _)| kid.as_str());
        log::info!(
            "signing keys: {} published, signing with {signing}",
            live.len()
        );
        *installed = live;
        Ok(())
    }

    /// Builds the set from the database's `rows` (the current key signs; next, current
    /// and unexpired retired keys verify and are published) and puts it in use.
    fn install(&self, rows: &[KeyRow]) -> Result<(), KeyError> {
        let Some(KeySource::Database {
            encryption_key,
            public,
            ..
        }) = &self.settings.keys
        else {
            return Ok(());
        };
        let now = crate::db::now();
        let mut signing = None;
        let mut published = Vec::new();
        for row in rows {
            if row.state == KeyState::Retired && row.expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            let algorithm = row.algorithm()?;
            published.push(PublicKey::of_stored(&row.kid, algorithm, &row.public_jwk)?);
            if row.state == KeyState::Current {
                let private = sealed::open(encryption_key, &row.kid, &row.private_key)?;
                let encoding = encoding_key("signing_keys", algorithm, private.expose())?;
                let mut header = Header::new(algorithm);
                header.kid = Some(row.kid.clone());
                signing = Some(SigningKey { header, encoding });
            }
        }
        let without_kid = public_key_without_kid(&self.settings, public.as_deref())?;
        let mut set = KeySet::new(signing, published, without_kid.map(|k| k.verifying));
        let mut slot = match self.set.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.generation = slot.generation + 1;
        *slot = Arc::new(set);
        Ok(())
    }
}

/// `JWT_PUBLIC_KEY`, which verifies tokens without `kid` (Flask-JWT-Extended mints none).
fn public_key_without_kid(
    settings: &TokenSettings,
    public: Option<&str>,
) -> Result<Option<PublicKey>, KeyError> {
    public
        .map(|pem| PublicKey::of_public_pem(settings.algorithm, pem))
        .transpose()
}
