//! The token layer's hot path: decoding a valid access token on every request, and
//! minting one at login (for reference). Target: a token check under 5 µs.
//!
//! Public keys: `decode_<alg>_first` verifies the signature every time (what the first
//! request with a token costs); `decode_eddsa_repeat` is a token seen before, answered
//! from the verification cache (target: under 5 µs).
//!
//! Run: `cargo bench --bench tokens`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use stores_api::auth::keys::store::generate_pem;
use stores_api::auth::tokens::{Claims, Delivery, Subject, TokenService};
use stores_api::config::{KeySource, Secret, TokenSettings};

/// A key as long as the generated development key.
const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The production shape: HS256, a 64-hex-digit key, no iss/aud, zero leeway.
fn service() -> TokenService {
    TokenService::new(&settings()).expect("token service")
}

fn settings() -> TokenSettings {
    TokenSettings {
        secret: Secret::new(KEY),
        algorithm: Algorithm::HS256,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(2_592_000),
        leeway: Duration::ZERO,
        issuer: None,
        audience: None,
        refresh_reuse_grace: Duration::ZERO,
        max_sessions_per_user: 100,
        generated_key_file: None,
        keys: None,
        jwks_max_age: Duration::from_secs(300),
        verify_cache_size: 0,
    }
}

/// What the bearer middleware's token checks (the subject of a typical login).
fn subject() -> Subject<'static> {
    Subject {
        user_id: 42,
        is_admin: false,
        session_id: Some("6f1c2d0e-7a4b-4c59-9d7e-2b1f0a3c4d5e"),
        delivery: Delivery::Body,
    }
}

fn tokens(c: &mut Criterion) {
    let service = service();
    let Ok(minted) = service.access(subject(), true) else {
        panic!("minting the benchmark's token failed");
    };
    c.bench_function("decode_access_token", |b| {
        b.iter(|| service.decode(black_box(&minted.token)))
    });
    // The library's own decode with the same rules, as an anchor for ratios on this
    // shared, noisy machine: our decoder used to be this plus a header check.
    let key = DecodingKey::from_secret(KEY.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    c.bench_function("reference_jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&minted.token), &key, &validation))
    });
    c.bench_function("encode_access_token", |b| {
        b.iter(|| service.access(black_box(subject()), true))
    });
}

/// A service signing with a fresh key pair of `algorithm`, remembering `cache` tokens.
fn public_key_service(algorithm: Algorithm, cache: usize) -> TokenService {
    let private = generate_pem(algorithm).expect("a key");
    let mut settings = settings();
    settings.algorithm = algorithm;
    settings.secret = Secret::new("");
    settings.keys = Some(KeySource::Pem {
        private,
        public: None,
    });
    settings.verify_cache_size = cache;
    TokenService::new(&settings).expect("token service")
}

fn public_keys(c: &mut Criterion) {
    for (algorithm, name) in [
        (Algorithm::EdDSA, "eddsa"),
        (Algorithm::ES256, "es256"),
        (Algorithm::RS256, "rs256"),
    ] {
        let service = public_key_service(algorithm, 0);
        let token = service.access(subject(), true).expect("a token").token;
        c.bench_function(&format!("decode_{name}_first"), |b| {
            b.iter(|| service.decode_shared(black_box(&token)))
        });
    }
    let service = public_key_service(Algorithm::EdDSA, 10_000);
    let token = service.access(subject(), true).expect("a token").token;
    service.decode_shared(&token).expect("the token verifies");
    c.bench_function("decode_eddsa_repeat", |b| {
        b.iter(|| service.decode_shared(black_box(&token)))
    });
}

criterion_group!(benches, tokens, public_keys);
criterion_main!(benches);
