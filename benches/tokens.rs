//! The token layer's hot path: decoding a valid access token on every request, and
//! minting one at login (for reference). Target: a token check under 5 µs.
//!
//! Run: `cargo bench --bench tokens`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use stores_api::auth::tokens::{Claims, Delivery, Subject, TokenService};
use stores_api::config::{Secret, TokenSettings};

/// A key as long as the generated development key.
const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The production shape: HS256, a 64-hex-digit key, no iss/aud, zero leeway.
fn service() -> TokenService {
    TokenService::new(&TokenSettings {
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
    })
    .expect("token service")
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

criterion_group!(benches, tokens);
criterion_main!(benches);
