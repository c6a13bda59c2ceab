//! The OpenAPI document and Swagger UI: the document lists exactly the routes the server
//! registers (and the server answers on exactly those), guarded operations declare the
//! bearer scheme, errors use the one error schema, and Swagger UI is served offline. The
//! documentation in docs/ follows what is served: API.md has a section for every route
//! and only those, and openapi.json is the served document.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use stores_api::routes;

use crate::helpers::{assert_error, ok_json, TestApp};

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

/// (METHOD, path) of every route the server registers.
fn registered() -> BTreeSet<(String, String)> {
    let list = routes::registered();
    let set: BTreeSet<_> = list
        .iter()
        .map(|(method, path)| (method.to_string(), path.clone()))
        .collect();
    assert_eq!(
        set.len(),
        list.len(),
        "a route is registered twice: {list:?}"
    );
    set
}

/// Every operation of the document: (METHOD, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in HTTP_METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    operations(doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// A concrete URL for a templated path: ids that exist nowhere.
fn concrete(path: &str) -> String {
    path.replace("{id}", "987654")
        .replace("{tag_id}", "987655")
        .replace(
            "/sessions/987654",
            "/sessions/9f1c2d3e-0000-4000-8000-000000000000",
        )
}

/// An operation's responses, each `$ref` to `#/components/responses/...` resolved.
fn resolved_responses(doc: &Value, op: &Value) -> serde_json::Map<String, Value> {
    op["responses"]
        .as_object()
        .expect("responses")
        .iter()
        .map(|(status, response)| {
            let resolved = match response["$ref"].as_str() {
                Some(reference) => {
                    let name = reference
                        .strip_prefix("#/components/responses/")
                        .unwrap_or_else(|| panic!("a response $ref: {reference}"));
                    let component = &doc["components"]["responses"][name];
                    assert!(component.is_object(), "no response component {name}");
                    component.clone()
                }
                None => response.clone(),
            };
            (status.clone(), resolved)
        })
        .collect()
}

fn generated() -> Value {
    serde_json::from_str(stores_api::routes::docs::document()).expect("the document is JSON")
}

#[test]
fn every_registered_route_is_documented_and_every_documented_route_is_registered() {
    let registered = registered();
    let documented = documented(&generated());
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "registered but not in the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in the OpenAPI document but not registered: {unserved:?}"
    );
    // The whole API, GET / and /openapi.json itself.
    assert_eq!(registered.len(), 39, "{registered:?}");
    assert!(registered.contains(&("GET".into(), "/openapi.json".into())));
}

#[actix_web::test]
async fn the_server_answers_on_exactly_the_documented_routes() {
    let app = TestApp::spawn().await;
    let doc = generated();
    let documented = documented(&doc);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = concrete(path);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let resp = app
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &url,
                    None,
                    None,
                )
                .await;
            let status = resp.status();
            if documented.contains(&(method.to_string(), path.clone())) {
                // Routed: whatever the answer, it is not "no such route".
                let text = resp.text().await.unwrap();
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
                assert!(
                    !text.contains("The requested URL was not found."),
                    "{method} {url} is documented but not routed: {status} {text}"
                );
                // And an operation that requires a token says so, and the reverse.
                let op = &item[method.to_lowercase()];
                let guarded = op["security"]
                    .as_array()
                    .is_some_and(|alternatives| !alternatives.contains(&serde_json::json!({})));
                assert_eq!(
                    status == StatusCode::UNAUTHORIZED,
                    guarded,
                    "{method} {url} answered {status} without a token: {text}"
                );
            } else {
                // Not routed, and the 405 says which methods are (RFC 9110 15.5.6).
                let allow: BTreeSet<String> = resp
                    .headers()
                    .get("allow")
                    .map(|v| v.to_str().unwrap().split(", ").map(str::to_owned).collect())
                    .unwrap_or_default();
                let expected: BTreeSet<String> = documented
                    .iter()
                    .filter(|(_, p)| p == path)
                    .map(|(m, _)| m.clone())
                    .collect();
                assert_eq!(allow, expected, "Allow of {method} {url}");
                assert_error(resp, 405, "method_not_allowed").await;
            }
        }
    }
}

#[actix_web::test]
async fn the_served_document_is_openapi_3_with_bearer_security_and_error_bodies() {
    let app = TestApp::spawn().await;
    let resp = app.get("/openapi.json", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.expect("the document is JSON");
    assert_eq!(doc, generated(), "the served document is the generated one");

    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "stores-api");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("Flask-JWT-Extended compatible")));
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "JWT");
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    for field in ["code", "status", "error", "message"] {
        assert!(
            error_body["required"]
                .as_array()
                .unwrap()
                .contains(&field.into()),
            "ErrorBody requires {field}"
        );
    }

    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        let description = op["description"].as_str().unwrap_or_default();
        let security = &op["security"];
        // The guard, in words and in the security requirement.
        if description.starts_with("Public.") {
            assert!(security.is_null(), "{name}: public, yet {security}");
        } else if description.starts_with("Optional token") {
            assert_eq!(
                *security,
                serde_json::json!([{}, {"bearer": []}, {"access_cookie": []}]),
                "{name}"
            );
        } else {
            assert!(
                description.starts_with("Requires "),
                "{name}: {description}"
            );
            // The header, or in browser mode its cookie: the refresh token's on /refresh.
            let cookie = if path == "/refresh" {
                "refresh_cookie"
            } else {
                "access_cookie"
            };
            // Introspection also takes a client's HTTP Basic credentials.
            let expected = if path == "/introspect" {
                serde_json::json!([{"client_basic": []}, {"bearer": []}, {cookie: []}])
            } else {
                serde_json::json!([{"bearer": []}, {cookie: []}])
            };
            assert_eq!(*security, expected, "{name}");
        }
        let responses = &resolved_responses(&doc, &op);
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no success response"
        );
        // Every error response has the one error body.
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], ERROR_BODY,
                    "{name} {status}"
                );
            }
        }
        if !security.is_null() {
            assert!(responses.contains_key("401"), "{name}: guarded, no 401");
        }
        if let Some(too_many) = responses.get("429") {
            assert!(
                too_many["headers"]["Retry-After"].is_object(),
                "{name}: 429 without Retry-After"
            );
        }
        // Offset pages count the rows of all pages; cursor pages (the audit log, which
        // grows while it is read) say where the next page starts instead.
        let paged = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "offset"));
        if paged {
            assert!(
                responses["200"]["headers"]["X-Total-Count"].is_object(),
                "{name}: a list without X-Total-Count"
            );
        }
        // Only the index, the liveness probe, the documents and the key documents cannot
        // fail; the readiness probe fails with a 503 only; every other operation has
        // client errors.
        let never_fail = [
            "GET /",
            "GET /health",
            "GET /openapi.json",
            "GET /.well-known/jwks.json",
            "GET /.well-known/oauth-authorization-server",
        ];
        if !never_fail.contains(&name.as_str()) {
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('4') || s.starts_with('5')),
                "{name}: no error response documented"
            );
        }
        if !never_fail.contains(&name.as_str()) && name != "GET /ready" {
            assert!(
                responses.keys().any(|s| s.starts_with('4')),
                "{name}: no 4xx response documented"
            );
        }
    }
}

/// schemathesis signs a user up from POST /register's body schema; a bare `$ref` there
/// made it stop with an internal error before testing anything
/// (checks/schemathesis/run.sh).
#[test]
fn the_register_body_schema_is_inline_for_openapi_testers() {
    let doc = generated();
    let schema =
        &doc["paths"]["/register"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.get("$ref").is_none(), "{schema}");
    assert_eq!(schema["type"], "object", "{schema}");
    for field in ["username", "password"] {
        assert!(
            schema["properties"].get(field).is_some(),
            "{field}: {schema}"
        );
    }
}

/// The 422s of rules about stored state, which no schema can express, are documented
/// (checks/schemathesis/schemathesis.toml accepts them from schema-valid input on these
/// only).
#[test]
fn state_dependent_422s_are_documented() {
    let doc = generated();
    for (method, path) in [
        ("post", "/item"),
        ("put", "/me/password"),
        ("post", "/item/{id}/tag/{tag_id}"),
    ] {
        let op = &doc["paths"][path][method];
        let responses = resolved_responses(&doc, op);
        assert!(responses.contains_key("422"), "{method} {path}");
    }
}

#[actix_web::test]
async fn the_document_is_public_whatever_the_token() {
    let app = TestApp::spawn().await;
    let resp = app.get("/openapi.json", Some("not-a-token")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.get("/swagger-ui/", Some("not-a-token")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The `src="..."` and `href="..."` references of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

#[actix_web::test]
async fn swagger_ui_is_served_with_its_scripts_and_styles_from_the_server() {
    let app = TestApp::spawn().await;

    // Without the slash, a redirect to the index (whose relative links need it).
    let resp = app.get("/swagger-ui", None).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/swagger-ui/");

    let resp = app.get("/swagger-ui/", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = resp.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "{html}");

    let refs = references(&html);
    let scripts: Vec<_> = refs.iter().filter(|r| r.ends_with(".js")).collect();
    let styles: Vec<_> = refs.iter().filter(|r| r.ends_with(".css")).collect();
    assert!(!scripts.is_empty() && !styles.is_empty(), "{refs:?}");
    for reference in &refs {
        // Offline: nothing from a CDN.
        assert!(
            !reference.contains("//"),
            "Swagger UI loads {reference} from elsewhere"
        );
        let path = match reference.strip_prefix("./") {
            Some(relative) => format!("/swagger-ui/{relative}"),
            None if reference.starts_with('/') => reference.clone(),
            None => format!("/swagger-ui/{reference}"),
        };
        let resp = app.get(&path, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{path} is empty");
    }

    // The initializer points Swagger UI at this server's document.
    let init = app
        .get("/swagger-ui/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");

    // An unknown file is the contract's 404.
    let resp = app.get("/swagger-ui/no-such-file.js", None).await;
    assert_error(resp, 404, "not_found").await;
}

/// A file of the repository's docs/ folder.
fn read_doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

/// The (METHOD, path) of every `### METHOD /path` heading of API.md: one per route.
fn routes_in_api_md(markdown: &str) -> BTreeSet<(String, String)> {
    markdown
        .lines()
        .filter_map(|line| {
            let (method, path) = line.strip_prefix("### ")?.split_once(' ')?;
            let is_method = ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method);
            let is_path = path.starts_with('/') && !path.contains(char::is_whitespace);
            (is_method && is_path).then(|| (method.to_owned(), path.to_owned()))
        })
        .collect()
}

#[actix_web::test]
async fn api_md_documents_exactly_the_routes_the_server_serves() {
    let app = TestApp::spawn().await;
    let served = ok_json(app.get("/openapi.json", None).await).await;
    let mut served = documented(&served);
    // Swagger UI is served beside the document, not in it.
    served.insert(("GET".into(), "/swagger-ui/".into()));
    let in_docs = routes_in_api_md(&read_doc("API.md"));
    let undocumented: Vec<String> = served
        .difference(&in_docs)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let unserved: Vec<String> = in_docs
        .difference(&served)
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "docs/API.md has no `### METHOD /path` section for {undocumented:?}; \
         it documents {unserved:?}, which the server does not serve"
    );
}

/// Where two JSON objects differ, one level into the members that are objects on both
/// sides (`paths./item`), so that a failure says more than "regenerate".
fn differences(a: &Value, b: &Value) -> Vec<String> {
    fn keys<'v>(a: &'v Value, b: &'v Value) -> BTreeSet<&'v String> {
        let of = |v: &'v Value| v.as_object().into_iter().flat_map(|o| o.keys());
        of(a).chain(of(b)).collect()
    }
    let mut found = Vec::new();
    if a == b {
        return found;
    }
    if !(a.is_object() && b.is_object()) {
        found.push("the whole document".to_owned());
        return found;
    }
    for key in keys(a, b) {
        let (x, y) = (&a[key.as_str()], &b[key.as_str()]);
        if x == y {
            continue;
        }
        if x.is_object() && y.is_object() {
            for inner in keys(x, y) {
                if x[inner.as_str()] != y[inner.as_str()] {
                    found.push(format!("{key}.{inner}"));
                }
            }
        } else {
            found.push(key.clone());
        }
    }
    found
}

#[actix_web::test]
async fn the_committed_openapi_json_is_the_document_the_server_serves() {
    let app = TestApp::spawn().await;
    let served = ok_json(app.get("/openapi.json", None).await).await;
    let committed: Value =
        serde_json::from_str(&read_doc("openapi.json")).expect("docs/openapi.json is JSON");
    let differing = differences(&committed, &served);
    assert!(
        differing.is_empty(),
        "docs/openapi.json is not what the server serves (differing: {differing:?}); \
         regenerate it with `cargo run -q -- openapi > docs/openapi.json`"
    );
}
