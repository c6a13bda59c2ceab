//! Usernames: the characters refused in them.

use serde_json::Value;

use crate::helpers::{assert_error, TestApp, PASSWORD};

/// The 422's problems with `username`.
async fn username_problems(app: &TestApp, username: &str) -> Vec<String> {
    let body = assert_error(
        app.register(username, PASSWORD).await,
        422,
        "validation_error",
    )
    .await;
    body["errors"]["json"]["username"]
        .as_array()
        .unwrap_or_else(|| panic!("a problem with username: {body}"))
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn invisible_and_reordering_characters_are_refused_by_kind() {
    let app = TestApp::spawn().await;
    for (username, kind) in [
        ("mal\u{7}lory", "control"),
        ("mallory\u{202E}nimda", "bidirectional control"),
        ("\u{2067}mallory\u{2069}", "bidirectional control"),
        ("mal\u{200B}lory", "zero-width"),
        ("mal\u{200C}lory", "zero-width"),
        ("mal\u{200D}lory", "zero-width"),
        ("mal\u{2060}lory", "zero-width"),
        ("\u{FEFF}mallory", "zero-width"),
        ("mal\u{AD}lory", "format"),
        ("mallory\u{E0061}", "format"),
    ] {
        assert_eq!(
            username_problems(&app, username).await,
            [format!("Must not contain {kind} characters.")],
            "{username:?}"
        );
    }
    // None of them was created: the plain name is free.
    let resp = app.register("mallory", PASSWORD).await;
    assert_eq!(resp.status(), 201);
}
