//! Prometheus metrics: served on a listener of their own (METRICS_ADDR), in the text
//! format, counting requests by route template and flows by outcome, with no path,
//! username or token in any label; and the alert rules and the dashboard name only
//! metrics that exist. Counters are process-wide and the tests run side by side, so
//! every assertion is on a label set or on an increase, never on an absolute value.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, PASSWORD};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// GET /metrics on the app's metrics listener: asserts a 200 in the text format.
async fn scrape(app: &TestApp) -> String {
    let url = app.metrics_url("/metrics").expect("a metrics listener");
    let resp = reqwest::get(&url)
        .await
        .expect("the metrics listener answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
    resp.text().await.expect("a text body")
}

/// The value of the series `name` whose labels include every pair of `labels`, summed
/// over the series that match (0 when none does).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| number.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// The metric names the exposition declares (`# TYPE name kind`).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn the_metrics_listener_serves_the_text_format_and_the_api_port_does_not() {
    let app = TestApp::spawn().await;
    app.get("/", None).await;
    let text = scrape(&app).await;
    assert!(text.contains("# TYPE stores_api_http_requests_total counter"));
    assert!(text.contains("# TYPE stores_api_http_request_duration_seconds histogram"));
    assert!(text.contains("stores_api_build_info{"), "{text}");
    assert!(
        !text.contains("# EOF"),
        "the classic format, not OpenMetrics"
    );

    let on_api_port = app.get("/metrics", None).await;
    assert_eq!(on_api_port.status(), StatusCode::NOT_FOUND);
    let other_path = reqwest::get(app.metrics_url("/other").expect("a listener"))
        .await
        .expect("the metrics listener answers");
    assert_eq!(other_path.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn requests_and_logins_are_counted_by_route_template_and_outcome() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, item) = app
        .store_with_item(&admin.tokens.access, "Metrics", "Gauge")
        .await;
    let item_path = format!("/item/{}", item["id"]);
    let before = scrape(&app).await;

    let marker_user = "marker-user-q7z3x";
    assert!(app
        .register(marker_user, PASSWORD)
        .await
        .status()
        .is_success());
    let ok = app.try_login(marker_user, PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let failed = app.try_login(marker_user, "marker-password-q7z3x").await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let read = app.get(&item_path, Some(&admin.tokens.access)).await;
    assert_eq!(read.status(), StatusCode::OK);
    let missing = app.get("/marker-path-q7z3x", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let expired = app.get("/me", Some("marker-token-q7z3x")).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);

    let after = scrape(&app).await;
    let increase = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let requests = "stores_api_http_requests_total";
    let login = [("route", "/login"), ("method", "POST")];
    assert!(increase(requests, &[login[0], login[1], ("status", "2xx")]) >= 1.0);
    assert!(increase(requests, &[login[0], login[1], ("status", "4xx")]) >= 1.0);
    let item_read = [
        ("route", "/item/{id}"),
        ("method", "GET"),
        ("status", "2xx"),
    ];
    assert!(increase(requests, &item_read) >= 1.0, "{after}");
    let unmatched = [("route", "unmatched"), ("status", "4xx")];
    assert!(increase(requests, &unmatched) >= 1.0);
    let latency = "stores_api_http_request_duration_seconds_count";
    assert!(increase(latency, &[("route", "/item/{id}")]) >= 1.0);

    let flows = "stores_api_auth_flows_total";
    assert!(increase(flows, &[("flow", "register"), ("outcome", "ok")]) >= 1.0);
    assert!(increase(flows, &[("flow", "login"), ("outcome", "ok")]) >= 1.0);
    let refused = [("flow", "login"), ("outcome", "invalid_credentials")];
    assert!(increase(flows, &refused) >= 1.0);
    assert!(increase("stores_api_sessions_opened_total", &[]) >= 1.0);
    let checks = "stores_api_token_checks_total";
    assert!(increase(checks, &[("outcome", "ok")]) >= 1.0);
    assert!(increase(checks, &[("outcome", "invalid_token")]) >= 1.0);
    assert!(increase("stores_api_password_hash_duration_seconds_count", &[]) >= 2.0);

    // Route templates only: no raw path, id, username, password or token.
    for secret in ["marker", "q7z3x", &item_path] {
        assert!(!after.contains(secret), "{secret} in the exposition");
    }
}

#[actix_web::test]
async fn a_spent_refresh_token_presented_again_is_counted_as_reuse() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let before = scrape(&app).await;
    app.refresh(&user.tokens.refresh).await;
    let again = app.post("/refresh", Some(&user.tokens.refresh), None).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let after = scrape(&app).await;
    let increase = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert!(increase("stores_api_refresh_reuse_detected_total", &[]) >= 1.0);
    assert!(increase("stores_api_revocations_total", &[("kind", "session")]) >= 1.0);
    let refreshes = "stores_api_auth_flows_total";
    assert!(increase(refreshes, &[("flow", "refresh"), ("outcome", "ok")]) >= 1.0);
    let reused = [("flow", "refresh"), ("outcome", "token_revoked")];
    assert!(increase(refreshes, &reused) >= 1.0);
}

#[actix_web::test]
async fn an_empty_metrics_addr_means_no_metrics_listener() {
    let app = TestApp::spawn_with(|s| s.http.metrics_addr = None).await;
    assert!(app.metrics_url("/metrics").is_none());
    assert_eq!(app.get("/", None).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// The metric names an expression uses: every `stores_api_...` word, less the
/// `_bucket`, `_sum` and `_count` of a histogram, which the exposition lists under the
/// histogram's name.
fn names_in(expression: &str, exposed: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expression;
    while let Some(at) = rest.find("stores_api_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| word.strip_suffix(suffix))
            .filter(|base| exposed.contains(*base));
        names.insert(base.map_or(word.clone(), str::to_owned));
    }
    names
}

/// Every `expr` string in the dashboard, however deep.
fn expressions(json: &Value, found: &mut Vec<String>) {
    match json {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| expressions(v, found)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_alert_rules_and_the_dashboard_use_only_metrics_the_server_exposes() {
    let app = TestApp::spawn().await;
    app.get("/", None).await;
    let exposed = exposed_names(&scrape(&app).await);
    let root = env!("CARGO_MANIFEST_DIR");

    let alerts = std::fs::read_to_string(format!("{root}/docs/prometheus/alerts.yml"))
        .expect("docs/prometheus/alerts.yml");
    let in_alerts = names_in(&alerts, &exposed);
    assert!(in_alerts.len() >= 4, "{in_alerts:?}");

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/docs/grafana/stores-api.json"))
            .expect("docs/grafana/stores-api.json"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"]
        .as_array()
        .expect("a dashboard with panels");
    assert!(!panels.is_empty());
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= panels.len(),
        "every panel has a PromQL target"
    );
    let in_dashboard: BTreeSet<String> = exprs.iter().flat_map(|e| names_in(e, &exposed)).collect();

    for name in in_alerts.iter().chain(&in_dashboard) {
        assert!(exposed.contains(name), "{name} is not exposed: {exposed:?}");
    }
}
