//! Public-key tokens as a verifier, an attacker and an operator meet them: every token
//! names its key (`kid`), the JWKS publishes every key whose tokens may be live and
//! nothing private, each key verifies its own algorithm only, a rotation made in the
//! database is followed by every instance without a restart, and private keys are kept
//! sealed under JWT_KEY_ENCRYPTION_KEY.

use std::future::Future;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use diesel::prelude::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stores_api::auth::audit::Origin;
use stores_api::auth::keys::store::{self, KeyRow, Removal, Rotation};
use stores_api::auth::keys::{KeyState, PUBLISHED_WITHIN};
use stores_api::config::{DatabaseUrl, KeySource, Secret, Settings};
use stores_api::db::PooledConnection;
use stores_api::schema::signing_keys;

use crate::helpers::{
    assert_error, b64, claims, flask_payload, ok_json, sign_raw, Reply, TestApp, TestUser, TEST_KEY,
};

/// JWT_KEY_ENCRYPTION_KEY of the test servers: 32 bytes as 64 hex characters.
const ENCRYPTION_KEY: &str = "9a4c1f0e7b2d58a3c6e1f40b9d2a7c5e8f3b16d0a4e9c27b5f8d1a3e6c0b4f72";
/// Another operator's JWT_KEY_ENCRYPTION_KEY: it opens none of the keys above.
const OTHER_ENCRYPTION_KEY: &str =
    "1b7e5d3c9f0a2468ace13579bdf02468ace13579bdf02468ace13579bdf0246a";

/// JWKS_MAX_AGE of the test servers: a next key may sign one second after every
/// instance can have published it (PUBLISHED_WITHIN after it is stored).
const MAX_AGE: Duration = Duration::from_secs(1);

/// Instances read the database's keys every 2 s: a change is followed well within this.
const FOLLOW_BOUND: Duration = Duration::from_secs(6);

/// The members of a JWK that only a private key (or an HMAC secret) has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

// The servers and their settings

/// Keys of `algorithm` kept in the database under `encryption_key`, published for
/// PUBLISHED_WITHIN and one second before they may sign.
fn keys_in_database_under(s: &mut Settings, algorithm: Algorithm, encryption_key: &str) {
    s.tokens.algorithm = algorithm;
    s.tokens.keys = Some(KeySource::Database {
        encryption_key: Secret::new(encryption_key),
        generated_file: None,
        public: None,
    });
    s.tokens.jwks_max_age = MAX_AGE;
    // The tests log in again and again while they wait for an instance to follow a
    // rotation: the per-address limit of the auth endpoints is not under test here.
    s.limits.auth_per_minute = 0;
}

fn keys_in_database(s: &mut Settings, algorithm: Algorithm) {
    keys_in_database_under(s, algorithm, ENCRYPTION_KEY);
}

/// A server whose keys of `algorithm` live in the database (it makes the first one).
async fn database_keys(algorithm: Algorithm) -> TestApp {
    TestApp::spawn_with(|s| keys_in_database(s, algorithm)).await
}

/// A second instance on `app`'s database with `app`'s token settings (its keys, its
/// key-encryption key), as a second replica behind a load balancer. (`spawn_sibling`
/// starts from the default HS256 settings.)
async fn replica(app: &TestApp) -> TestApp {
    let url = app.settings.database.url.clone();
    let tokens = app.settings.tokens.clone();
    let limits = app.settings.limits.clone();
    TestApp::spawn_with(move |s| {
        s.database.url = url;
        s.tokens = tokens;
        s.limits = limits;
    })
    .await
}

/// The key-encryption key `app` runs with.
fn encryption_key(app: &TestApp) -> Secret {
    match &app.settings.tokens.keys {
        Some(KeySource::Database { encryption_key, .. }) => encryption_key.clone(),
        other => panic!("the keys are not in the database: {other:?}"),
    }
}

// Reading tokens and the JWKS

/// The JOSE header of a JWT, unverified.
fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWT");
    let bytes = URL_SAFE_NO_PAD.decode(header).expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// The `kid` a token's header names.
fn kid_of(token: &str) -> String {
    let header = header_of(token);
    header["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("the token names its key: {header}"))
        .to_owned()
}

/// GET /.well-known/jwks.json; asserts a 200 with a JSON body.
async fn jwks(app: &TestApp) -> Reply {
    jwks_with(app, None).await
}

/// GET /.well-known/jwks.json, with `If-None-Match` when given.
async fn jwks_with(app: &TestApp, if_none_match: Option<&str>) -> Reply {
    let call = app.call(Method::GET, "/.well-known/jwks.json");
    let call = match if_none_match {
        Some(tag) => call.header("If-None-Match", tag),
        None => call,
    };
    let reply = Reply::read(call.send().await).await;
    if reply.status == StatusCode::OK {
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{}",
            reply.text
        );
    }
    reply
}

/// The keys of a JWKS answer.
fn keys_of(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).expect("the JWKS is JSON");
    body["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("a JWKS has keys: {body}"))
        .clone()
}

/// The `kid`s a JWKS answer publishes, in its order.
fn kids_of(reply: &Reply) -> Vec<String> {
    keys_of(reply)
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid").to_owned())
        .collect()
}

/// The kids `app` publishes now.
async fn published(app: &TestApp) -> Vec<String> {
    kids_of(&jwks(app).await)
}

/// The `kid` of the tokens `app` mints now, read from a new login of `user`; both
/// tokens of the pair name the same key.
async fn minted_kid(app: &TestApp, user: &TestUser) -> String {
    let tokens = app.login(&user.username, &user.password).await;
    let kid = kid_of(&tokens.access);
    assert_eq!(kid_of(&tokens.refresh), kid, "both tokens of a login");
    kid
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, computed here from its required
/// members in lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("OKP") => &["crv", "kty", "x"],
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        other => panic!("unexpected kty {other:?}"),
    };
    let canonical = members
        .iter()
        .map(|m| {
            let value = jwk[*m].as_str().unwrap_or_else(|| panic!("{m} in {jwk}"));
            format!("\"{m}\":\"{value}\"")
        })
        .collect::<Vec<_>>()
        .join(",");
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{canonical}}}").as_bytes()))
}

/// The length of a base64url member in bytes.
fn decoded_len(jwk: &Value, member: &str) -> usize {
    let text = jwk[member]
        .as_str()
        .unwrap_or_else(|| panic!("{member} in {jwk}"));
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|_| panic!("{member} is base64url: {jwk}"))
        .len()
}

/// Asserts that a published key has exactly the public members of its algorithm, with
/// `use: sig`, its `alg` and its thumbprint as `kid`, and nothing private.
fn assert_public_jwk(jwk: &Value, algorithm: Algorithm) {
    let object = jwk.as_object().expect("a JWK is an object");
    for member in PRIVATE_MEMBERS {
        assert!(
            !object.contains_key(member),
            "private member {member}: {jwk}"
        );
    }
    let mut members: Vec<&str> = object.keys().map(String::as_str).collect();
    members.sort_unstable();
    match algorithm {
        Algorithm::EdDSA => {
            assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"], "{jwk}");
            assert_eq!(jwk["kty"], "OKP", "{jwk}");
            assert_eq!(jwk["crv"], "Ed25519", "{jwk}");
            assert_eq!(decoded_len(jwk, "x"), 32, "{jwk}");
        }
        Algorithm::ES256 => {
            assert_eq!(
                members,
                ["alg", "crv", "kid", "kty", "use", "x", "y"],
                "{jwk}"
            );
            assert_eq!(jwk["kty"], "EC", "{jwk}");
            assert_eq!(jwk["crv"], "P-256", "{jwk}");
            assert_eq!(decoded_len(jwk, "x"), 32, "{jwk}");
            assert_eq!(decoded_len(jwk, "y"), 32, "{jwk}");
        }
        Algorithm::RS256 => {
            assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"], "{jwk}");
            assert_eq!(jwk["kty"], "RSA", "{jwk}");
            assert_eq!(jwk["e"], "AQAB", "{jwk}");
            assert!(decoded_len(jwk, "n") >= 256, "a 2048-bit modulus: {jwk}");
        }
        other => panic!("no JWK for {other:?}"),
    }
    assert_eq!(jwk["alg"], format!("{algorithm:?}"), "{jwk}");
    assert_eq!(jwk["use"], "sig", "{jwk}");
    assert_eq!(
        jwk["kid"],
        thumbprint(jwk),
        "the kid is the thumbprint: {jwk}"
    );
}

// Waiting for an instance to follow the database

/// Runs `probe` every 100 ms until it gives a value, for at most FOLLOW_BOUND.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < FOLLOW_BOUND,
            "{what}: not within {FOLLOW_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `app` publishes exactly `kids`, in this order.
async fn until_published(app: &TestApp, kids: &[&str]) {
    let what = format!("the JWKS publishes {kids:?}");
    eventually(&what, || async {
        let now = published(app).await;
        (now == kids).then_some(())
    })
    .await;
}

/// Waits until `app` mints tokens naming `kid`.
async fn until_signing_with(app: &TestApp, user: &TestUser, kid: &str) {
    let what = format!("tokens name {kid}");
    eventually(&what, || async {
        (minted_kid(app, user).await == kid).then_some(())
    })
    .await;
}

// The operator's side: the store functions on a connection of the test's own

/// A connection of the test's own to `app`'s database.
fn own_connection(app: &TestApp) -> PooledConnection {
    stores_api::db::pool(&app.settings.database)
        .get()
        .expect("a connection of the test's own")
}

/// Every key in `app`'s database, oldest first.
fn stored_keys(app: &TestApp) -> Vec<KeyRow> {
    store::list(&mut own_connection(app)).expect("list the keys")
}

/// `stores-api keys generate` with a key already signing: a next key of `algorithm`.
fn generate_next(app: &TestApp, algorithm: Algorithm) -> String {
    let key = store::generate(algorithm, &encryption_key(app)).expect("generate a key");
    let state =
        store::insert(&mut own_connection(app), &key, &Origin::cli()).expect("store the key");
    assert_eq!(state, KeyState::Next, "a key signs already");
    key.kid().to_owned()
}

/// How long the retired key verifies, as `stores-api keys rotate` reckons it: the
/// longest token lifetime and the leeway.
fn token_lifetime(app: &TestApp) -> chrono::Duration {
    let tokens = &app.settings.tokens;
    chrono::Duration::from_std(tokens.access_ttl.max(tokens.refresh_ttl) + tokens.leeway)
        .expect("a lifetime")
}

/// `stores-api keys rotate`, once.
fn rotate(app: &TestApp) -> Rotation {
    let max_age = chrono::Duration::from_std(app.settings.tokens.jwks_max_age).expect("max age");
    store::rotate(
        &mut own_connection(app),
        max_age,
        token_lifetime(app),
        &Origin::cli(),
    )
    .expect("rotate")
}

/// `stores-api keys rotate --wait`: the next key signs once it has been published for
/// JWKS_MAX_AGE. Returns the key that signs now and the one retired.
async fn rotate_when_published(app: &TestApp) -> (String, Option<String>) {
    eventually("the next key may sign", || async {
        match rotate(app) {
            Rotation::Rotated { kid, retired, .. } => Some((kid, retired)),
            Rotation::TooEarly { .. } => None,
            Rotation::NoNextKey => panic!("no next key to rotate to"),
        }
    })
    .await
}

/// `stores-api keys retire KID`.
fn remove_retired(app: &TestApp, kid: &str) -> Removal {
    store::remove_retired(&mut own_connection(app), kid, &Origin::cli()).expect("remove")
}

// Keys of our own making, as another service or an attacker holds them

/// The PKCS#8 v1 DER prefix of an Ed25519 private key (RFC 8410 7): the 32-byte seed
/// follows. This is what `openssl genpkey -algorithm ed25519` writes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The SubjectPublicKeyInfo DER prefix of an Ed25519 public key: the 32 bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

/// An Ed25519 key pair made here.
struct Ed25519Pair(ed25519_dalek::SigningKey);

impl Ed25519Pair {
    fn generate() -> Ed25519Pair {
        Ed25519Pair(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    fn private_pem(&self) -> String {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.0.to_bytes());
        pem("PRIVATE KEY", &der)
    }

    fn public_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn public_pem(&self) -> String {
        public_pem_of(&self.public_bytes())
    }

    /// The JWK `x` of the public key.
    fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_bytes())
    }

    /// The RFC 7638 thumbprint of the public key.
    fn thumbprint(&self) -> String {
        thumbprint(&json!({"kty": "OKP", "crv": "Ed25519", "x": self.x()}))
    }

    /// Signs `payload` with a header of `alg: EdDSA` and `kid` when given.
    fn sign(&self, kid: Option<&str>, payload: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        let key = EncodingKey::from_ed_pem(self.private_pem().as_bytes()).expect("our PEM");
        jsonwebtoken::encode(&header, payload, &key).expect("sign")
    }

    /// Signs `payload` under whatever `header` says, with EdDSA.
    fn sign_raw(&self, header: &Value, payload: &Value) -> String {
        let key = EncodingKey::from_ed_pem(self.private_pem().as_bytes()).expect("our PEM");
        signed_with(header, payload, &key, Algorithm::EdDSA)
    }
}

/// The SubjectPublicKeyInfo PEM of an Ed25519 public key.
fn public_pem_of(public: &[u8]) -> String {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    pem("PUBLIC KEY", &der)
}

/// `header.payload` signed by `algorithm` with `key`, whatever the header says.
fn signed_with(header: &Value, payload: &Value, key: &EncodingKey, algorithm: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).expect("sign");
    format!("{message}.{signature}")
}

/// `header.payload` HMAC-signed by `algorithm` with these bytes as the secret.
fn hmac_signed(header: &Value, payload: &Value, secret: &[u8]) -> String {
    signed_with(
        header,
        payload,
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
}

/// A P-256 private key made here, for ES256.
fn p256_key() -> EncodingKey {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let pem = p256::SecretKey::random(&mut rand_core::OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PEM");
    EncodingKey::from_ec_pem(pem.as_bytes()).expect("our PEM")
}

// Checks of an answer

/// GET /me with `token` answers 200 for `user`.
async fn assert_me(app: &TestApp, token: &str, user: &TestUser, what: &str) {
    let resp = app.get("/me", Some(token)).await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{what} (body: {text})");
    let me: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(me["id"], user.id, "{what}");
}

/// GET /me with `token` is a 401 invalid_token, with `message` when given.
async fn assert_invalid_token(app: &TestApp, token: &str, message: Option<&str>, what: &str) {
    eprintln!("{what}");
    let body = assert_error(app.get("/me", Some(token)).await, 401, "invalid_token").await;
    if let Some(message) = message {
        assert_eq!(body["message"], message, "{what}");
    }
}

// Tokens name a published key

/// A server of `algorithm` with its keys in the database: its tokens carry `alg` and
/// `kid`, the JWKS publishes that key (public members only), a verifier holding only
/// the JWKS can check the token, and the server accepts it.
async fn tokens_name_a_published_key(algorithm: Algorithm) {
    let app = database_keys(algorithm).await;
    let alice = app.user().await;
    let kid = kid_of(&alice.tokens.access);
    for token in [&alice.tokens.access, &alice.tokens.refresh] {
        let header = header_of(token);
        assert_eq!(header["alg"], format!("{algorithm:?}"), "{header}");
        assert_eq!(header["kid"], kid, "{header}");
    }

    let reply = jwks(&app).await;
    let keys = keys_of(&reply);
    assert_eq!(keys.len(), 1, "the key made at start-up: {}", reply.text);
    assert_eq!(keys[0]["kid"], kid, "{}", reply.text);
    assert_public_jwk(&keys[0], algorithm);

    let jwk: Jwk = serde_json::from_value(keys[0].clone()).expect("a JWK jsonwebtoken reads");
    let decoding = DecodingKey::from_jwk(&jwk).expect("a verifying key");
    let mut validation = Validation::new(algorithm);
    validation.validate_aud = false;
    for token in [&alice.tokens.access, &alice.tokens.refresh] {
        let checked = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .expect("the published key verifies the token");
        assert_eq!(checked.claims["sub"], alice.id.to_string());
    }

    assert_me(&app, &alice.tokens.access, &alice, "the minted token").await;
}

#[actix_web::test]
async fn eddsa_tokens_name_a_key_the_jwks_publishes() {
    tokens_name_a_published_key(Algorithm::EdDSA).await;
}

#[actix_web::test]
async fn es256_tokens_name_a_key_the_jwks_publishes() {
    tokens_name_a_published_key(Algorithm::ES256).await;
}

#[actix_web::test]
async fn rs256_tokens_name_a_key_the_jwks_publishes() {
    tokens_name_a_published_key(Algorithm::RS256).await;
}

#[actix_web::test]
async fn with_hs256_the_jwks_is_empty_and_tokens_name_no_key() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    for token in [&alice.tokens.access, &alice.tokens.refresh] {
        let header = header_of(token);
        assert_eq!(header["alg"], "HS256", "{header}");
        assert!(header.get("kid").is_none(), "{header}");
    }
    let reply = jwks(&app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body: Value = serde_json::from_str(&reply.text).expect("JSON");
    assert_eq!(body, json!({"keys": []}), "the secret is never published");
    assert!(!reply.text.contains(TEST_KEY));
    assert_eq!(
        reply.header("cache-control"),
        Some(
            format!(
                "public, max-age={}",
                app.settings.tokens.jwks_max_age.as_secs()
            )
            .as_str()
        )
    );
}

#[actix_web::test]
async fn the_jwks_is_cacheable_and_its_etag_follows_the_keys() {
    let app = database_keys(Algorithm::EdDSA).await;
    let first = jwks(&app).await;
    assert_eq!(
        first.header("cache-control"),
        Some(format!("public, max-age={}", MAX_AGE.as_secs()).as_str())
    );
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "a quoted entity tag: {etag}"
    );

    // The same version: 304 without a body, with the same validators.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let again = jwks_with(&app, Some(&tag)).await;
        assert_eq!(
            again.status,
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {tag}"
        );
        assert_eq!(again.text, "", "a 304 has no body");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("cache-control"), first.header("cache-control"));
    }
    let other = jwks_with(&app, Some("\"not-this-version\"")).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.text, first.text);
    assert_eq!(other.header("etag"), Some(etag.as_str()));

    // A next key changes the set, and so its version.
    let old = kids_of(&first);
    let next = generate_next(&app, Algorithm::EdDSA);
    let expected = [old[0].as_str(), next.as_str()];
    until_published(&app, &expected).await;
    let changed = jwks_with(&app, Some(&etag)).await;
    assert_eq!(
        changed.status,
        StatusCode::OK,
        "the old ETag no longer matches"
    );
    assert_eq!(kids_of(&changed), expected);
    let new_etag = changed.header("etag").expect("an ETag");
    assert_ne!(new_etag, etag);
    let again = jwks_with(&app, Some(new_etag)).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

// A token cannot choose how it is verified

#[actix_web::test]
async fn tokens_that_pick_their_own_algorithm_or_key_are_refused() {
    let app = database_keys(Algorithm::EdDSA).await;
    let alice = app.user().await;
    let kid = kid_of(&alice.tokens.access);
    let reply = jwks(&app).await;
    let jwk = keys_of(&reply)[0].clone();
    let x = jwk["x"].as_str().expect("x").to_owned();
    let public = URL_SAFE_NO_PAD.decode(&x).expect("x is base64url");
    let payload = flask_payload(alice.id, json!({}));
    let hs256_ours = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let foreign = Ed25519Pair::generate();

    const ALG: &str = "The token's algorithm is not allowed.";
    const UNKNOWN: &str = "The token's key is not known.";
    const KIDLESS_REFUSAL: &str = "The token names no key.";
    const BAD_SIGNATURE: &str = "Signature verification failed.";
    const UNSUPPORTED: &str = "The token header carries unsupported parameters.";
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        // HS/EdDSA confusion: a verifier that let the header choose HMAC and keyed it
        // with the public key it holds would accept these (RFC 8725 2.1).
        (
            "HS256 naming our key, keyed with the JWK's x",
            hmac_signed(&hs256_ours, &payload, x.as_bytes()),
            Some(ALG),
        ),
        (
            "HS256 naming our key, keyed with the raw public key",
            hmac_signed(&hs256_ours, &payload, &public),
            Some(ALG),
        ),
        (
            "HS256 naming our key, keyed with the public key's PEM",
            hmac_signed(&hs256_ours, &payload, public_pem_of(&public).as_bytes()),
            Some(ALG),
        ),
        (
            "HS256 naming our key, keyed with the published JWK",
            hmac_signed(&hs256_ours, &payload, jwk.to_string().as_bytes()),
            Some(ALG),
        ),
        (
            "HS256 without kid, keyed with the JWK's x",
            hmac_signed(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &payload,
                x.as_bytes(),
            ),
            Some(KIDLESS_REFUSAL),
        ),
        (
            "alg none naming our key",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                b64(&payload)
            ),
            Some(ALG),
        ),
        (
            "alg none without kid",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&payload)),
            None,
        ),
        (
            "ES256 naming our EdDSA key, signed by a P-256 key",
            signed_with(
                &json!({"alg": "ES256", "typ": "JWT", "kid": kid}),
                &payload,
                &p256_key(),
                Algorithm::ES256,
            ),
            Some(ALG),
        ),
        // Another Ed25519 key: the algorithm is right, the key is not ours.
        (
            "another Ed25519 key claiming our kid",
            foreign.sign(Some(&kid), &payload),
            Some(BAD_SIGNATURE),
        ),
        (
            "another Ed25519 key under its own kid",
            foreign.sign(Some(&foreign.thumbprint()), &payload),
            Some(UNKNOWN),
        ),
        (
            "another Ed25519 key, no kid (no JWT_PUBLIC_KEY is set)",
            foreign.sign(None, &payload),
            Some(KIDLESS_REFUSAL),
        ),
        (
            "another Ed25519 key embedded in the header as jwk",
            foreign.sign_raw(
                &json!({
                    "alg": "EdDSA", "kid": foreign.thumbprint(),
                    "jwk": {"kty": "OKP", "crv": "Ed25519", "x": foreign.x()},
                }),
                &payload,
            ),
            Some(UNSUPPORTED),
        ),
        // The kid is a name looked up among the published keys, nothing more.
        (
            "kid ../../etc/passwd",
            foreign.sign(Some("../../etc/passwd"), &payload),
            Some(UNKNOWN),
        ),
        (
            "kid ' OR 1=1 --",
            foreign.sign(Some("' OR 1=1 --"), &payload),
            Some(UNKNOWN),
        ),
        (
            "kid our kid with a suffix",
            foreign.sign(Some(&format!("{kid}\0")), &payload),
            Some(UNKNOWN),
        ),
        (
            "an empty kid",
            foreign.sign(Some(""), &payload),
            Some(UNKNOWN),
        ),
        (
            "a 10 KB kid",
            foreign.sign(Some(&"k".repeat(10 * 1024)), &payload),
            None,
        ),
        (
            "a kid that is not a string",
            foreign.sign_raw(&json!({"alg": "EdDSA", "kid": 1}), &payload),
            None,
        ),
    ];
    for (what, token, message) in &cases {
        assert_invalid_token(&app, token, *message, what).await;
    }
    // None of this disturbed the real keys.
    assert_me(&app, &alice.tokens.access, &alice, "alice's own token").await;
    assert_eq!(published(&app).await, [kid]);
}

#[actix_web::test]
async fn with_hs256_a_token_that_names_a_key_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let payload = flask_payload(alice.id, json!({}));
    let control = sign_raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &payload,
        TEST_KEY,
        Algorithm::HS256,
    );
    assert_me(&app, &control, &alice, "the same token without kid").await;
    for kid in ["a-key", "", "../../etc/passwd"] {
        let token = sign_raw(
            &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            &payload,
            TEST_KEY,
            Algorithm::HS256,
        );
        assert_invalid_token(
            &app,
            &token,
            Some("The token header carries unsupported parameters."),
            &format!("HS256 with kid {kid:?}"),
        )
        .await;
    }
}

// Rotation

#[actix_web::test]
async fn a_next_key_is_published_first_and_signs_after_a_rotation() {
    let app = database_keys(Algorithm::EdDSA).await;
    let alice = app.user().await;
    let old = kid_of(&alice.tokens.access);
    assert_eq!(published(&app).await, [old.as_str()]);

    // A next key: rotating at once is too early, verifiers may not have it yet.
    let next = generate_next(&app, Algorithm::EdDSA);
    match rotate(&app) {
        Rotation::TooEarly { kid, wait_secs } => {
            assert_eq!(kid, next);
            // Every instance publishes it within PUBLISHED_WITHIN; then JWKS_MAX_AGE.
            assert_eq!(
                wait_secs,
                (PUBLISHED_WITHIN + MAX_AGE).as_secs() as i64,
                "JWKS_MAX_AGE after every instance can have published it"
            );
        }
        other => panic!("a rotation before JWKS_MAX_AGE: {other:?}"),
    }
    until_published(&app, &[old.as_str(), next.as_str()]).await;
    assert_eq!(
        minted_kid(&app, &alice).await,
        old,
        "the next key does not sign yet"
    );

    // Published for JWKS_MAX_AGE: the next key signs, the old one is retired.
    let (current, retired) = rotate_when_published(&app).await;
    assert_eq!(current, next);
    assert_eq!(retired.as_deref(), Some(old.as_str()));
    until_signing_with(&app, &alice, &next).await;
    let states: Vec<(String, KeyState)> = stored_keys(&app)
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert_eq!(
        states,
        [
            (old.clone(), KeyState::Retired),
            (next.clone(), KeyState::Current)
        ]
    );

    // The retired key still verifies its tokens and is still published.
    assert_me(
        &app,
        &alice.tokens.access,
        &alice,
        "a token of the retired key",
    )
    .await;
    let refreshed = app.refresh(&alice.tokens.refresh).await;
    assert_eq!(
        kid_of(&refreshed.access),
        next,
        "a refresh signs with the new key"
    );
    assert_me(&app, &refreshed.access, &alice, "a token of the new key").await;
    assert_eq!(published(&app).await, [old.as_str(), next.as_str()]);

    // Its tokens live until the longest of them expires: it cannot be removed before.
    match remove_retired(&app, &old) {
        Removal::TooEarly(until) => {
            let floor = chrono::Utc::now().naive_utc() + token_lifetime(&app)
                - chrono::Duration::minutes(1);
            assert!(until > floor, "retired until {until} only");
        }
        other => panic!("removing a retired key with live tokens: {other:?}"),
    }
    assert_eq!(
        remove_retired(&app, &next),
        Removal::NotRetired(KeyState::Current)
    );
    assert_eq!(remove_retired(&app, "no-such-kid"), Removal::Unknown);
    assert_eq!(stored_keys(&app).len(), 2);
}

#[actix_web::test]
async fn a_retired_key_leaves_the_jwks_when_its_tokens_have_expired() {
    let app = database_keys(Algorithm::EdDSA).await;
    let alice = app.user().await;
    let old = kid_of(&alice.tokens.access);
    let next = generate_next(&app, Algorithm::EdDSA);
    let (current, _) = rotate_when_published(&app).await;
    assert_eq!(current, next);
    assert!(matches!(remove_retired(&app, &old), Removal::TooEarly(_)));

    // Its last token's expiry passes (moved to the past rather than waited for).
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
    diesel::update(signing_keys::table.find(&old))
        .set(signing_keys::expires_at.eq(Some(past)))
        .execute(&mut *own_connection(&app))
        .expect("expire the retired key");
    until_published(&app, &[next.as_str()]).await;
    assert_eq!(remove_retired(&app, &old), Removal::Removed);
    let left: Vec<String> = stored_keys(&app).into_iter().map(|k| k.kid).collect();
    assert_eq!(left, [next.as_str()]);
    assert_eq!(published(&app).await, [next.as_str()]);
    // A key that left the set verifies nothing, even a token it verified before.
    assert_invalid_token(
        &app,
        &alice.tokens.access,
        Some("The token's key is not known."),
        "a token of the removed key",
    )
    .await;
    assert_eq!(minted_kid(&app, &alice).await, next);
}

#[actix_web::test]
async fn rotate_without_a_next_key_says_so() {
    let app = database_keys(Algorithm::EdDSA).await;
    assert!(matches!(rotate(&app), Rotation::NoNextKey));
    let kids: Vec<(String, KeyState)> = stored_keys(&app)
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(kids[0].1, KeyState::Current);
}

// Two instances on one database

#[actix_web::test]
async fn two_instances_follow_a_rotation_and_accept_each_others_tokens() {
    let a = database_keys(Algorithm::EdDSA).await;
    let b = replica(&a).await;
    let alice = a.user().await;
    let old = kid_of(&alice.tokens.access);
    // B found A's key at start-up rather than making its own.
    assert_eq!(minted_kid(&b, &alice).await, old);
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(ja.text, jb.text);
    assert_eq!(ja.header("etag"), jb.header("etag"));
    assert_eq!(kids_of(&ja), [old.as_str()]);

    let next = generate_next(&a, Algorithm::EdDSA);
    let (current, _) = rotate_when_published(&a).await;
    assert_eq!(current, next);
    let rotated = Instant::now();
    for app in [&a, &b] {
        until_signing_with(app, &alice, &next).await;
    }
    assert!(rotated.elapsed() < FOLLOW_BOUND);
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(ja.text, jb.text, "both instances publish the same set");
    assert_eq!(ja.header("etag"), jb.header("etag"));
    assert_eq!(kids_of(&ja), [old.as_str(), next.as_str()]);

    let on_a = a.login(&alice.username, &alice.password).await;
    let on_b = b.login(&alice.username, &alice.password).await;
    assert_eq!(kid_of(&on_a.access), next);
    assert_eq!(kid_of(&on_b.access), next);
    assert_me(&b, &on_a.access, &alice, "A's token on B").await;
    assert_me(&a, &on_b.access, &alice, "B's token on A").await;
    assert_me(
        &b,
        &alice.tokens.access,
        &alice,
        "the retired key's token on B",
    )
    .await;
    assert_me(
        &a,
        &alice.tokens.access,
        &alice,
        "the retired key's token on A",
    )
    .await;
    let refreshed = b.refresh(&on_a.refresh).await;
    assert_me(
        &a,
        &refreshed.access,
        &alice,
        "a token refreshed on B, on A",
    )
    .await;
}

// The verification cache

#[actix_web::test]
async fn a_token_verified_before_is_still_refused_once_revoked() {
    let app = database_keys(Algorithm::EdDSA).await;
    let alice = app.user().await;
    for round in 0..3 {
        assert_me(
            &app,
            &alice.tokens.access,
            &alice,
            &format!("check {round}"),
        )
        .await;
    }
    let resp = app.post("/logout", Some(&alice.tokens.access), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.get("/me", Some(&alice.tokens.access)).await;
    assert_error(resp, 401, "token_revoked").await;
    let resp = app
        .post("/refresh", Some(&alice.tokens.refresh), None)
        .await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn a_token_verified_before_is_still_refused_once_expired() {
    let app = TestApp::spawn_with(|s| {
        keys_in_database(s, Algorithm::EdDSA);
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::ZERO;
    })
    .await;
    let alice = app.user().await;
    let token = app.login(&alice.username, &alice.password).await.access;
    let exp = claims(&token)["exp"].as_i64().expect("exp");
    assert_me(&app, &token, &alice, "a fresh token").await;
    assert_me(&app, &token, &alice, "the same token again").await;

    // Checked again and again until it expires: the first refusal is the expiry, and
    // it comes once `exp` has passed.
    let started = Instant::now();
    loop {
        let resp = app.get("/me", Some(&token)).await;
        if resp.status() != StatusCode::OK {
            assert_error(resp, 401, "token_expired").await;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a token with a 1 s lifetime is still accepted after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(chrono::Utc::now().timestamp() > exp, "refused before exp");
    let resp = app.get("/me", Some(&token)).await;
    assert_error(resp, 401, "token_expired").await;
}

// A fixed key pair: JWT_PRIVATE_KEY and JWT_PUBLIC_KEY

/// A server signing with `private`; `public` verifies tokens without kid.
async fn pem_keys(private: &Ed25519Pair, public: Option<String>) -> TestApp {
    let private = private.private_pem();
    TestApp::spawn_with(move |s| {
        s.tokens.algorithm = Algorithm::EdDSA;
        s.tokens.keys = Some(KeySource::Pem {
            private: Secret::new(private),
            public,
        });
        s.tokens.jwks_max_age = MAX_AGE;
    })
    .await
}

#[actix_web::test]
async fn a_pem_pair_signs_with_its_thumbprint_and_verifies_kid_less_tokens() {
    let pair = Ed25519Pair::generate();
    let app = pem_keys(&pair, Some(pair.public_pem())).await;
    let alice = app.user().await;
    assert_eq!(kid_of(&alice.tokens.access), pair.thumbprint());
    assert_eq!(header_of(&alice.tokens.access)["alg"], "EdDSA");
    let keys = keys_of(&jwks(&app).await);
    assert_eq!(keys.len(), 1, "the pair is published once: {keys:?}");
    assert_public_jwk(&keys[0], Algorithm::EdDSA);
    assert_eq!(keys[0]["x"], pair.x());
    assert_eq!(keys[0]["kid"], pair.thumbprint());

    let payload = flask_payload(alice.id, json!({}));
    // What Flask-JWT-Extended mints with the same private key: no kid.
    let kid_less = pair.sign(None, &payload);
    assert!(header_of(&kid_less).get("kid").is_none());
    assert_me(&app, &kid_less, &alice, "a kid-less token of the pair").await;
    let named = pair.sign(Some(&pair.thumbprint()), &payload);
    assert_me(&app, &named, &alice, "a token of the pair naming it").await;
    let foreign = Ed25519Pair::generate();
    assert_invalid_token(
        &app,
        &foreign.sign(None, &payload),
        Some("Signature verification failed."),
        "a kid-less token of another key",
    )
    .await;
}

#[actix_web::test]
async fn without_jwt_public_key_a_kid_less_token_is_refused() {
    let pair = Ed25519Pair::generate();
    let app = pem_keys(&pair, None).await;
    let alice = app.user().await;
    let payload = flask_payload(alice.id, json!({}));
    let named = pair.sign(Some(&pair.thumbprint()), &payload);
    assert_me(&app, &named, &alice, "the same token naming the key").await;
    assert_invalid_token(
        &app,
        &pair.sign(None, &payload),
        Some("The token names no key."),
        "a kid-less token of the server's own key",
    )
    .await;
}

#[actix_web::test]
async fn jwt_public_key_alone_verifies_kid_less_tokens() {
    // Another service's key verifies what it mints without kid; the server's own
    // private key does not stand in for it.
    let ours = Ed25519Pair::generate();
    let flask = Ed25519Pair::generate();
    let app = pem_keys(&ours, Some(flask.public_pem())).await;
    let alice = app.user().await;
    assert_eq!(kid_of(&alice.tokens.access), ours.thumbprint());
    let published: Vec<String> = published(&app).await;
    assert_eq!(published, [ours.thumbprint(), flask.thumbprint()]);
    let payload = flask_payload(alice.id, json!({}));
    assert_me(
        &app,
        &flask.sign(None, &payload),
        &alice,
        "the service's kid-less token",
    )
    .await;
    assert_invalid_token(
        &app,
        &ours.sign(None, &payload),
        Some("Signature verification failed."),
        "a kid-less token of the server's own key",
    )
    .await;

    // The same with the keys in the database.
    let public = flask.public_pem();
    let app = TestApp::spawn_with(move |s| {
        keys_in_database(s, Algorithm::EdDSA);
        if let Some(KeySource::Database { public: slot, .. }) = &mut s.tokens.keys {
            *slot = Some(public);
        }
    })
    .await;
    let bob = app.user().await;
    let payload = flask_payload(bob.id, json!({}));
    assert_me(
        &app,
        &flask.sign(None, &payload),
        &bob,
        "kid-less, keys in the database",
    )
    .await;
    assert_invalid_token(
        &app,
        &ours.sign(None, &payload),
        Some("Signature verification failed."),
        "a kid-less token of another key, keys in the database",
    )
    .await;
}

// Private keys at rest

/// DER that starts every PKCS#8 key of ours, or names its algorithm: none of it may be
/// readable in a sealed key.
const DER_MARKERS: [&[u8]; 3] = [
    // Ed25519 PKCS#8 v1 up to the OID.
    &[
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
    ],
    // id-ecPublicKey.
    &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
    // rsaEncryption.
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ],
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_web::test]
async fn private_keys_are_sealed_in_the_database() {
    let app = database_keys(Algorithm::EdDSA).await;
    generate_next(&app, Algorithm::ES256);
    generate_next(&app, Algorithm::RS256);
    let rows = stored_keys(&app);
    let algorithms: Vec<&str> = rows.iter().map(|r| r.algorithm_name.as_str()).collect();
    assert_eq!(algorithms, ["EdDSA", "ES256", "RS256"]);
    for row in &rows {
        let sealed = &row.private_key;
        for text in ["PRIVATE KEY", "BEGIN"] {
            assert!(
                !sealed.contains(text),
                "{text} in the sealed key of {}",
                row.kid
            );
        }
        // How the base64 of a PKCS#8 key of each algorithm begins (a PEM body without
        // its armour).
        for start in ["MC4CAQAw", "MIGHAgEA", "MIIEv"] {
            assert!(
                !sealed.starts_with(start),
                "the sealed key of {} is a bare PEM body",
                row.kid
            );
        }
        let bytes = STANDARD
            .decode(sealed)
            .unwrap_or_else(|_| panic!("the sealed key of {} is base64", row.kid));
        for marker in [b"PRIVATE KEY".as_slice(), b"-----BEGIN"] {
            assert!(!contains(&bytes, marker), "PEM inside the sealed key");
        }
        for marker in DER_MARKERS {
            assert!(!contains(&bytes, marker), "DER inside the sealed key");
        }
        let jwk: Value = serde_json::from_str(&row.public_jwk).expect("a JWK");
        for member in PRIVATE_MEMBERS {
            assert!(
                jwk.get(member).is_none(),
                "{member} in the stored public key"
            );
        }
        assert!(!sealed.contains(jwk["x"].as_str().unwrap_or("no x")));
    }
    // Every key is published once the server has read them; the sealed halves are
    // nowhere in the JWKS.
    let kids: Vec<&str> = rows.iter().map(|r| r.kid.as_str()).collect();
    until_published(&app, &kids).await;
    let reply = jwks(&app).await;
    for row in &rows {
        assert!(!reply.text.contains(&row.private_key));
    }
}

#[actix_web::test]
async fn an_instance_with_another_encryption_key_does_not_start() {
    let a = database_keys(Algorithm::EdDSA).await;
    let alice = a.user().await;
    let before = stored_keys(&a);
    assert_eq!(before.len(), 1);

    let url = a.settings.database.url.clone();
    let refused = TestApp::try_spawn_with(move |s| {
        keys_in_database_under(s, Algorithm::EdDSA, OTHER_ENCRYPTION_KEY);
        s.database.url = url;
    })
    .await
    .err()
    .expect("an instance that cannot open the keys does not start");
    let shown = refused.to_string();
    let debug = format!("{refused:?}");
    assert!(shown.contains("JWT_KEY_ENCRYPTION_KEY"), "{shown}");
    for text in [&shown, &debug] {
        for secret in [ENCRYPTION_KEY, OTHER_ENCRYPTION_KEY, "PRIVATE KEY", "BEGIN"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for row in &before {
            assert!(
                !text.contains(&row.private_key[..24]),
                "the sealed key in {text}"
            );
        }
    }

    // It left the keys as they were, and the running instance is unaffected.
    let after = stored_keys(&a);
    assert_eq!(
        after
            .iter()
            .map(|r| (&r.kid, &r.private_key, r.state))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|r| (&r.kid, &r.private_key, r.state))
            .collect::<Vec<_>>()
    );
    assert_me(&a, &alice.tokens.access, &alice, "the running instance").await;
    // The right key opens them: an instance with it starts and signs with the same key.
    let b = replica(&a).await;
    assert_eq!(minted_kid(&b, &alice).await, before[0].kid);
}

// The metadata

#[actix_web::test]
async fn the_metadata_names_the_issuer_the_jwks_and_the_endpoints() {
    let issuer = "https://auth.stores.example";
    let app = TestApp::spawn_with(|s| {
        keys_in_database(s, Algorithm::EdDSA);
        s.tokens.issuer = Some(issuer.to_owned());
    })
    .await;
    let resp = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    let metadata = ok_json(resp).await;
    assert_eq!(metadata["issuer"], issuer, "{metadata}");
    let base = app.url("");
    let jwks_uri = metadata["jwks_uri"].as_str().expect("jwks_uri");
    assert_eq!(jwks_uri, format!("{base}/.well-known/jwks.json"));
    for (member, path) in [
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(metadata[member], format!("{base}{path}"), "{metadata}");
    }
    assert_eq!(
        metadata["token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    // The URI it names serves the keys the tokens name.
    let alice = app.user().await;
    let fetched: Value = reqwest::get(jwks_uri)
        .await
        .expect("GET jwks_uri")
        .json()
        .await
        .expect("JSON");
    assert_eq!(fetched["keys"][0]["kid"], kid_of(&alice.tokens.access));
    assert_eq!(claims(&alice.tokens.access)["iss"], issuer);

    // Without JWT_ISSUER the issuer is the service's own base URL.
    let plain = TestApp::spawn().await;
    let metadata = ok_json(
        plain
            .get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert_eq!(metadata["issuer"], plain.url(""), "{metadata}");
    assert_eq!(
        metadata["token_signing_alg_values_supported"],
        json!(["HS256"])
    );
}

// The operator's command line

/// The environment `stores-api keys` runs with for `app`: its database, algorithm,
/// key-encryption key and JWKS_MAX_AGE.
fn operator_env(app: &TestApp, dir: &std::path::Path) -> Vec<(String, String)> {
    let database_url = match &app.settings.database.url {
        DatabaseUrl::Postgres(url) => url.expose().to_owned(),
        DatabaseUrl::Sqlite(path) => path.display().to_string(),
    };
    let tokens = &app.settings.tokens;
    vec![
        ("APP_ENV".into(), "test".into()),
        ("DATABASE_URL".into(), database_url),
        ("DATA_DIR".into(), dir.display().to_string()),
        ("JWT_ALGORITHM".into(), format!("{:?}", tokens.algorithm)),
        (
            "JWT_KEY_ENCRYPTION_KEY".into(),
            encryption_key(app).expose().to_owned(),
        ),
        (
            "JWKS_MAX_AGE".into(),
            tokens.jwks_max_age.as_secs().to_string(),
        ),
    ]
}

/// Runs `stores-api keys ARGS` with `env`, off the test's thread.
async fn keys_command(env: &[(String, String)], args: &[&str]) -> Output {
    let env = env.to_vec();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stores-api"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("keys")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("the command's thread")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[actix_web::test]
async fn an_operator_rotates_with_the_command_line_and_the_server_follows() {
    let app = database_keys(Algorithm::EdDSA).await;
    let alice = app.user().await;
    let old = kid_of(&alice.tokens.access);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = operator_env(&app, dir.path());

    let out = keys_command(&env, &["generate"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let next = stored_keys(&app)
        .into_iter()
        .find(|k| k.state == KeyState::Next)
        .expect("a next key")
        .kid;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&next),
        "{}",
        describe(&out)
    );

    let out = keys_command(&env, &["rotate"]).await;
    assert_eq!(out.status.code(), Some(1), "too early: {}", describe(&out));
    let out = keys_command(&env, &["rotate", "--wait"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    until_signing_with(&app, &alice, &next).await;
    assert_me(
        &app,
        &alice.tokens.access,
        &alice,
        "a token of the retired key",
    )
    .await;

    let out = keys_command(&env, &["retire", &old]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "its tokens are live: {}",
        describe(&out)
    );
    let out = keys_command(&env, &["list"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    for (kid, state) in [(&old, "retired"), (&next, "current")] {
        let line = listing
            .lines()
            .find(|l| l.starts_with(kid.as_str()))
            .unwrap_or_else(|| panic!("{kid} listed: {listing}"));
        assert!(line.contains(state), "{line}");
    }
    for text in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(text);
        assert!(!text.contains("PRIVATE KEY") && !text.contains(ENCRYPTION_KEY));
    }
    assert_eq!(published(&app).await, [old.as_str(), next.as_str()]);
}
