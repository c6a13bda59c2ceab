//! Property tests: the token decoder and every JSON body parser, fed arbitrary input,
//! never panic; the decoder accepts only a token it signed and
//! nobody touched, and the parsers answer a value or a validation error, nothing else.
//! The HTTP-level counterpart is tests/api/props.rs.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{Map, Value};
use stores_api::auth::tokens::{Delivery, Subject, TokenService};
use stores_api::config::Settings;
use stores_api::error::ApiError;
use stores_api::input::{parse_object, FromJsonBody};
use stores_api::routes::auth::{Credentials, PasswordChange, Registration};
use stores_api::routes::items::{ItemChanges, NewItem};
use stores_api::routes::stores::NameBody;
use stores_api::routes::users::AdminFlag;

#[path = "strategies/json.rs"]
mod json_strategies;

use json_strategies::{json_object, json_value, key_from};

const KEY: &str = "property-test-key-property-test-key-0123";

/// The decoder as the service builds it, from the same settings; built once.
fn service() -> &'static TokenService {
    static SERVICE: OnceLock<TokenService> = OnceLock::new();
    SERVICE.get_or_init(build_service)
}

fn build_service() -> TokenService {
    let env: HashMap<String, String> = [
        ("APP_ENV", "test"),
        ("JWT_SECRET_KEY", KEY),
        ("DATABASE_URL", "unused.db"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_from(env).expect("settings");
    TokenService::new(&settings.tokens).expect("token service")
}

/// A token the service minted and accepts.
fn valid_token(service: &TokenService) -> String {
    let sid = uuid::Uuid::new_v4().to_string();
    let subject = Subject {
        user_id: 7,
        is_admin: true,
        session_id: Some(&sid),
        delivery: Delivery::Body,
    };
    let token = service.access(subject, true).expect("mint").token;
    assert!(
        service.decode(&token).is_ok(),
        "the untouched token is valid"
    );
    token
}

/// Signs `payload` with the service's key: a token whose signature holds, whatever
/// the claims say.
fn signed(payload: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        payload,
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("encode")
}

/// The claims of a token.
const CLAIMS: &[&str] = &[
    "sub", "type", "fresh", "jti", "iat", "nbf", "exp", "is_admin", "sid", "iss", "aud",
];

/// A token payload: claims with values of every type, and sometimes the right type.
fn claims_object() -> impl Strategy<Value = Map<String, Value>> {
    let now = chrono::Utc::now().timestamp();
    let value = prop_oneof![
        json_value(),
        (now - 1000..now + 1000).prop_map(Value::from),
        (-5i64..1_000).prop_map(|n| Value::from(n.to_string())),
        prop::sample::select(vec!["access", "refresh"]).prop_map(Value::from),
        Just(Value::from(uuid::Uuid::new_v4().to_string())),
    ];
    prop::collection::btree_map(key_from(CLAIMS), value, 0..12)
        .prop_map(|m| m.into_iter().collect())
}

/// `T`'s parser on `object`: a value or a validation error, never anything else.
fn parses_or_refuses<T: FromJsonBody>(object: &Map<String, Value>) -> Result<(), TestCaseError> {
    match parse_object(object.clone(), T::from_fields) {
        Ok(_) | Err(ApiError::Validation(_)) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!(
            "{} on {object:?}: {other:?}",
            std::any::type_name::<T>()
        ))),
    }
}

/// A change to a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a mask that keeps it ASCII.
    Flip(usize, u8),
    /// Keep only the first bytes.
    Truncate(usize),
    /// Insert a copy of one segment after another.
    Duplicate(usize, usize),
    /// Swap two segments.
    Swap(usize, usize),
    /// Append characters.
    Append(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..128).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<usize>().prop_map(Mutation::Truncate),
        (0usize..3, 0usize..4).prop_map(|(s, at)| Mutation::Duplicate(s, at)),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::Swap(a, b)),
        "[A-Za-z0-9_.=+/ -]{1,8}".prop_map(Mutation::Append),
    ]
}

fn apply(token: &str, mutation: &Mutation) -> String {
    match mutation {
        Mutation::Flip(i, mask) => {
            let mut bytes = token.as_bytes().to_vec();
            let i = i % bytes.len();
            bytes[i] ^= mask;
            String::from_utf8(bytes).expect("ASCII stays ASCII")
        }
        Mutation::Truncate(n) => token[..n % token.len()].to_owned(),
        Mutation::Duplicate(segment, at) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            let copy = parts[*segment];
            parts.insert(*at, copy);
            parts.join(".")
        }
        Mutation::Swap(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            parts.swap(*a, *b);
            parts.join(".")
        }
        Mutation::Append(tail) => format!("{token}{tail}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_refuses_any_string(token in "\\PC{0,300}") {
        prop_assert!(service().decode(&token).is_err());
    }

    #[test]
    fn the_decoder_refuses_any_three_base64url_segments(
        segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 3),
    ) {
        let token = segments.iter().map(|s| URL_SAFE_NO_PAD.encode(s)).collect::<Vec<_>>().join(".");
        prop_assert!(service().decode(&token).is_err());
    }

    #[test]
    fn the_decoder_refuses_a_json_header_and_payload_with_a_wrong_signature(
        payload in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature));
        prop_assert!(service().decode(&token).is_err());
    }

    #[test]
    fn a_correctly_signed_token_is_accepted_only_with_valid_claims(claims in claims_object()) {
        let token = signed(&Value::Object(claims.clone()));
        if let Ok(decoded) = service().decode(&token) {
            let now = chrono::Utc::now().timestamp();
            prop_assert!(decoded.exp > now, "accepted an expired token: {claims:?}");
            prop_assert!(decoded.user_id > 0, "accepted a bad sub: {claims:?}");
            let sub = decoded.user_id.to_string();
            prop_assert_eq!(claims["sub"].as_str(), Some(sub.as_str()));
        }
    }

    #[test]
    fn any_change_to_a_valid_token_is_refused(mutation in mutation()) {
        let service = service();
        let token = valid_token(service);
        let changed = apply(&token, &mutation);
        prop_assume!(changed != token);
        prop_assert!(service.decode(&changed).is_err(), "{mutation:?} accepted: {changed}");
    }

    #[test]
    fn every_body_parser_answers_a_value_or_a_validation_error(object in json_object()) {
        parses_or_refuses::<Registration>(&object)?;
        parses_or_refuses::<Credentials>(&object)?;
        parses_or_refuses::<PasswordChange>(&object)?;
        parses_or_refuses::<NameBody>(&object)?;
        parses_or_refuses::<AdminFlag>(&object)?;
        parses_or_refuses::<ItemChanges>(&object)?;
        for store_exists in [false, true] {
            match parse_object(object.clone(), |f| NewItem::read(f, store_exists)) {
                Ok(_) | Err(ApiError::Validation(_)) => {}
                Err(other) => prop_assert!(false, "NewItem on {object:?}: {other:?}"),
            }
        }
    }
}
