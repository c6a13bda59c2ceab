//! Hostile tokens (RFC 8725, OWASP JSON Web Token Cheat Sheet): one test per attack.
//! Each forged token claims the most it can (the real admin's id, `fresh`, `is_admin`)
//! and is sent to two guarded writes: creating a store and making a victim an admin.
//! Each must be a 401 in the contract's shape, and afterwards the admin sees that
//! neither write happened. errors.rs covers the same refusals on GET /me; here the
//! point is that none of them reaches a handler.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stores_api::config::Settings;

use crate::helpers::{
    assert_error, b64, flask_payload, forge, sign_raw, TestApp, TestUser, OTHER_KEY, TEST_KEY,
};

/// A server, its logged-in admin, and a non-admin victim.
struct Scene {
    app: TestApp,
    admin: TestUser,
    victim: TestUser,
}

impl Scene {
    async fn new() -> Scene {
        Scene::with(|_| {}).await
    }

    async fn with(edit: impl FnOnce(&mut Settings)) -> Scene {
        let app = TestApp::spawn_with(edit).await;
        let admin = app.admin().await;
        let victim = app.user().await;
        Scene { app, admin, victim }
    }

    /// The strongest claims a forger can make: the admin's id, fresh, admin.
    fn mighty_payload(&self) -> Value {
        flask_payload(self.admin.id, json!({"fresh": true, "is_admin": true}))
    }

    /// Sends `token` to both guarded writes, expects the same 401 from each, and checks
    /// as the admin that nothing was written.
    async fn refused(&self, token: &str, error: &str, message: Option<&str>) {
        let resp = self
            .app
            .post("/store", Some(token), Some(json!({"name": "Loot"})))
            .await;
        let refused = assert_error(resp, 401, error).await;
        if let Some(message) = message {
            assert_eq!(refused["message"], message);
        }
        let resp = self
            .app
            .patch(
                &format!("/user/{}", self.victim.id),
                Some(token),
                json!({"is_admin": true}),
            )
            .await;
        let refused = assert_error(resp, 401, error).await;
        if let Some(message) = message {
            assert_eq!(refused["message"], message);
        }
        self.assert_nothing_happened().await;
    }

    async fn assert_nothing_happened(&self) {
        let resp = self
            .app
            .get("/store", Some(&self.admin.tokens.access))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-total-count"], "0", "a store was created");
        let resp = self
            .app
            .get(
                &format!("/user/{}", self.victim.id),
                Some(&self.admin.tokens.access),
            )
            .await;
        let victim: Value = resp.json().await.expect("json");
        assert_eq!(victim["is_admin"], false, "the victim was promoted");
        // The victim's session survived (a PATCH of is_admin would have ended it).
        let resp = self.app.get("/me", Some(&self.victim.tokens.access)).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[actix_web::test]
async fn the_same_claims_signed_with_the_servers_key_do_get_through() {
    // The control: every refusal below is about the one thing its token changes.
    let scene = Scene::new().await;
    let token = sign_raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &scene.mighty_payload(),
        TEST_KEY,
        Algorithm::HS256,
    );
    let resp = scene
        .app
        .post("/store", Some(&token), Some(json!({"name": "Loot"})))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[actix_web::test]
async fn alg_none_without_a_signature_is_refused() {
    let scene = Scene::new().await;
    let payload = b64(&scene.mighty_payload());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            eprintln!("{token}");
            scene.refused(&token, "invalid_token", None).await;
        }
    }
}

#[actix_web::test]
async fn alg_none_with_a_valid_hmac_signature_is_refused() {
    let scene = Scene::new().await;
    for alg in ["none", "None"] {
        let token = sign_raw(
            &json!({"alg": alg, "typ": "JWT"}),
            &scene.mighty_payload(),
            TEST_KEY,
            Algorithm::HS256,
        );
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn a_token_signed_with_another_key_is_refused() {
    let scene = Scene::new().await;
    let token = forge(scene.mighty_payload(), OTHER_KEY);
    scene
        .refused(
            &token,
            "invalid_token",
            Some("Signature verification failed."),
        )
        .await;
}

#[actix_web::test]
async fn an_asymmetric_alg_over_an_hmac_signature_with_the_servers_key_is_refused() {
    // HS/RS confusion: a verifier that trusted the header's alg and used its key
    // material for it would accept these (RFC 8725 2.1, 3.1).
    let scene = Scene::new().await;
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let token = sign_raw(
            &json!({"alg": alg, "typ": "JWT"}),
            &scene.mighty_payload(),
            TEST_KEY,
            Algorithm::HS256,
        );
        eprintln!("{alg}");
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn another_hmac_algorithm_than_the_configured_one_is_refused() {
    // Validly signed with the server's key, but only HS256 is configured: the
    // algorithm is pinned, not taken from the token (RFC 8725 3.1).
    let scene = Scene::new().await;
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign_raw(
            &json!({"alg": format!("{algorithm:?}"), "typ": "JWT"}),
            &scene.mighty_payload(),
            TEST_KEY,
            algorithm,
        );
        eprintln!("{algorithm:?}");
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn injected_header_parameters_are_refused_even_when_validly_signed() {
    // kid could pick a key (path traversal, SQL), jku/x5u/jwk/x5c fetch or embed one,
    // crit demands extensions we do not implement (RFC 7515 4.1.11): none is honoured.
    let scene = Scene::new().await;
    let injections = [
        ("kid", json!("../../../../dev/null")),
        ("kid", json!("' OR '1'='1")),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "jwk",
            json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(OTHER_KEY)}),
        ),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("crit", json!(["exp"])),
        ("crit", json!(["b64"])),
    ];
    for (field, value) in injections {
        let mut header = json!({"alg": "HS256", "typ": "JWT"});
        header[field] = value;
        let token = sign_raw(&header, &scene.mighty_payload(), TEST_KEY, Algorithm::HS256);
        eprintln!("{header}");
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn a_tampered_payload_with_the_original_signature_is_refused() {
    let scene = Scene::new().await;
    // The victim's own, real token, with is_admin flipped and the signature kept.
    let real = &scene.victim.tokens.access;
    let mut parts = real.split('.');
    let (header, payload, signature) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    assert_eq!(claims["is_admin"], false);
    claims["is_admin"] = json!(true);
    let tampered = format!("{header}.{}.{signature}", b64(&claims));
    scene
        .refused(
            &tampered,
            "invalid_token",
            Some("Signature verification failed."),
        )
        .await;
}

#[actix_web::test]
async fn segments_that_are_not_base64url_are_refused() {
    let scene = Scene::new().await;
    let good = sign_raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &scene.mighty_payload(),
        TEST_KEY,
        Algorithm::HS256,
    );
    let parts: Vec<&str> = good.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let padded_header = STANDARD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let cases = [
        format!("!!!{header}.{payload}.{signature}"),
        format!("{header}.{payload}*.{signature}"),
        format!("{header}.{payload}.{signature}~~"),
        format!("{header}.{}.{signature}", "%7B%22sub%22%7D"),
        // Standard base64 with padding is not base64url (RFC 7515 2).
        format!("{padded_header}==.{payload}.{signature}"),
        format!(
            "{header}.{payload}.{}",
            signature.replace('-', "+").replace('_', "/") + "=="
        ),
        // Valid base64url, but not JSON.
        format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode("not json")
        ),
        format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00])
        ),
    ];
    for token in cases {
        eprintln!("{token}");
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn too_few_or_too_many_segments_are_refused() {
    let scene = Scene::new().await;
    let good = forge(scene.mighty_payload(), TEST_KEY);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        parts[0].to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        // The shape of a JWE (five segments).
        format!("{good}.{}.{}", parts[1], parts[2]),
        format!("{good}."),
        format!(".{good}"),
        "..".to_string(),
    ];
    for token in cases {
        eprintln!("{token}");
        scene.refused(&token, "invalid_token", None).await;
    }
}

#[actix_web::test]
async fn a_100_kb_token_is_refused_as_invalid() {
    // actix-http buffers up to 128 KB of request head, so a 100 KB header reaches the
    // application, and the decoder's size check refuses it before any parsing.
    let scene = Scene::new().await;
    let payload = flask_payload(
        scene.admin.id,
        json!({"fresh": true, "is_admin": true, "padding": "A".repeat(75 * 1024)}),
    );
    let token = forge(payload, TEST_KEY);
    assert!(
        (100 * 1024..110 * 1024).contains(&token.len()),
        "{}",
        token.len()
    );
    scene
        .refused(&token, "invalid_token", Some("The token is too large."))
        .await;
}

#[actix_web::test]
async fn a_request_head_over_actix_s_buffer_gets_a_bare_431_or_a_closed_connection() {
    // Past actix-http's 128 KB request-head buffer no application code runs: actix
    // queues a bare 431 and closes the connection, which the client may see as a reset
    // while it is still sending (API.md allows a bare 431 for oversized headers).
    let scene = Scene::new().await;
    let token = "A".repeat(200 * 1024);
    // A client of its own: actix closes that connection, and a pooled client could
    // hand the dead connection to the next request of the test.
    let sent = reqwest::Client::new()
        .post(scene.app.url("/store"))
        .bearer_auth(&token)
        .json(&json!({"name": "Loot"}))
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(e.is_request() && !e.is_timeout(), "{e:?}"),
    }
    scene.assert_nothing_happened().await;
}

#[actix_web::test]
async fn a_token_whose_sub_names_a_deleted_user_is_revoked() {
    let scene = Scene::new().await;
    // A user who was an admin, with a real fresh token; then deleted by the admin.
    let doomed = scene.app.user().await;
    let resp = scene
        .app
        .patch(
            &format!("/user/{}", doomed.id),
            Some(&scene.admin.tokens.access),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doomed = scene
        .app
        .logged_in(&doomed.username, &doomed.password)
        .await;
    let forged = forge(
        flask_payload(doomed.id, json!({"fresh": true, "is_admin": true})),
        TEST_KEY,
    );
    let resp = scene
        .app
        .delete(
            &format!("/user/{}", doomed.id),
            Some(&scene.admin.tokens.access),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for token in [&doomed.tokens.access, &forged] {
        scene
            .refused(token, "token_revoked", Some("The token has been revoked."))
            .await;
    }
    let resp = scene
        .app
        .post("/refresh", Some(&doomed.tokens.refresh), None)
        .await;
    assert_error(resp, 401, "token_revoked").await;
}

#[actix_web::test]
async fn a_refresh_token_used_as_an_access_token_is_refused() {
    let scene = Scene::new().await;
    // The admin's own refresh token, and a forged one claiming everything.
    let forged = forge(
        flask_payload(
            scene.admin.id,
            json!({"type": "refresh", "fresh": true, "is_admin": true}),
        ),
        TEST_KEY,
    );
    for token in [&scene.admin.tokens.refresh, &forged] {
        scene
            .refused(
                token,
                "invalid_token",
                Some("Only access tokens are allowed."),
            )
            .await;
    }
}

#[actix_web::test]
async fn an_access_token_on_refresh_is_refused_and_mints_nothing() {
    let scene = Scene::new().await;
    let user = &scene.victim;
    let forged = forge(flask_payload(user.id, json!({"fresh": true})), TEST_KEY);
    for token in [&user.tokens.access, &forged] {
        let resp = scene.app.post("/refresh", Some(token), None).await;
        let refused = assert_error(resp, 401, "invalid_token").await;
        assert_eq!(refused["message"], "Only refresh tokens are allowed.");
    }
    // Still the one session from the login, and its refresh token was not spent.
    let resp = scene.app.get("/sessions", Some(&user.tokens.access)).await;
    let sessions: Value = resp.json().await.expect("json");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    let resp = scene
        .app
        .post("/refresh", Some(&user.tokens.refresh), None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn tokens_of_another_issuer_or_audience_are_refused_when_configured() {
    let scene = Scene::with(|s| {
        s.tokens.issuer = Some("stores".into());
        s.tokens.audience = Some("shop-apps".into());
    })
    .await;
    let id = scene.admin.id;
    let claims = json!({"fresh": true, "is_admin": true});
    let with = |extra: Value| {
        let mut payload = flask_payload(id, claims.clone());
        for (k, v) in extra.as_object().expect("object") {
            payload[k] = v.clone();
        }
        forge(payload, TEST_KEY)
    };
    let cases = [
        (
            "another issuer",
            with(json!({"iss": "billing", "aud": "shop-apps"})),
        ),
        (
            "another audience",
            with(json!({"iss": "stores", "aud": "billing-apps"})),
        ),
        (
            "an audience list without ours",
            with(json!({"iss": "stores", "aud": ["a", "b"]})),
        ),
        ("no iss or aud", with(json!({}))),
    ];
    for (what, token) in cases {
        eprintln!("{what}");
        scene.refused(&token, "invalid_token", None).await;
    }
    // A real token minted by a server with the same key and another issuer.
    let elsewhere = TestApp::spawn_with(|s| {
        s.tokens.issuer = Some("billing".into());
        s.tokens.audience = Some("shop-apps".into());
    })
    .await;
    let foreign = elsewhere.admin().await;
    scene
        .refused(&foreign.tokens.access, "invalid_token", None)
        .await;
}
