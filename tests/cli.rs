//! The `stores-api` binary as an operator runs it: help, migrate, the admin
//! subcommands, and the start-up refusals of a bad configuration.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use stores_api::config::Settings;
use stores_api::startup::Application;

const KEY: &str = "cli-test-key-cli-test-key-cli-test-key-!"; // 40 bytes

/// The binary with an empty environment but PATH, run from the package root.
fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stores-api"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    cmd
}

/// The environment of a test-mode operator working on a SQLite file under `dir`.
fn operator_env(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("APP_ENV".into(), "test".into()),
        ("JWT_SECRET_KEY".into(), KEY.into()),
        (
            "DATABASE_URL".into(),
            dir.join("cli.db").display().to_string(),
        ),
        ("DATA_DIR".into(), dir.display().to_string()),
        ("BCRYPT_COST".into(), "4".into()),
    ]
}

/// Runs the binary with `args` and `env`, feeding `stdin` when given.
fn run(env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = bin();
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("the binary exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Everything a run printed, for assertion messages.
fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn assert_success(out: &Output) {
    assert!(out.status.success(), "{}", describe(out));
}

fn assert_failure(out: &Output) {
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "expected a clean non-zero exit: {}",
        describe(out)
    );
}

// Help

#[test]
fn help_lists_the_subcommands() {
    let out = run(&[], &["--help"], None);
    assert_success(&out);
    let stdout = text(&out.stdout);
    for word in ["serve", "migrate", "admin", "keys", "openapi"] {
        assert!(stdout.contains(word), "--help mentions {word}: {stdout}");
    }
}

#[test]
fn admin_help_lists_the_operator_actions() {
    let out = run(&[], &["admin", "--help"], None);
    assert_success(&out);
    let stdout = text(&out.stdout);
    for word in ["create", "promote", "demote", "revoke"] {
        assert!(
            stdout.contains(word),
            "admin --help mentions {word}: {stdout}"
        );
    }
}

// Migrate and the admin subcommands

#[test]
fn migrate_creates_the_database_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let out = run(&env, &["migrate"], None);
    assert_success(&out);
    assert!(dir.path().join("cli.db").exists(), "{}", describe(&out));
    let again = run(&env, &["migrate"], None);
    assert_success(&again);
}

/// The binary serving under `umask` (through `sh`, which sets it for the process), its
/// log on a pipe.
#[cfg(unix)]
fn serve_under_umask(env: &[(String, String)], umask: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", &format!("umask {umask} && exec \"$0\" serve")])
        .arg(env!("CARGO_BIN_EXE_stores-api"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

#[cfg(unix)]
#[test]
fn the_sqlite_file_and_its_wal_and_shm_are_private_whatever_the_umask() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    // 022 is the usual umask (0644 files); 277 would leave SQLite a read-only 0400 file.
    for umask in ["022", "277"] {
        let dir = tempfile::tempdir().unwrap();
        let env = operator_env(dir.path());
        let mut server = serve_under_umask(&env, umask);
        let stderr = server.stderr.take().expect("stderr");
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines_tx.send(line);
            }
        });
        let mut log = Vec::new();
        while !log.iter().any(|l: &String| l.contains("listening on")) {
            match lines.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(line) => log.push(line),
                Err(e) => panic!("no start-up under umask {umask} ({e}): {log:#?}"),
            }
        }
        // The server has migrated and holds its connections open: all three files exist.
        for suffix in ["", "-wal", "-shm"] {
            let path = dir.path().join(format!("cli.db{suffix}"));
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .permissions()
                .mode();
            assert_eq!(
                format!("{:o}", mode & 0o777),
                "600",
                "{} under umask {umask}",
                path.display()
            );
        }
        server.kill().expect("stop the server");
        server.wait().expect("the server exits");
    }
}

/// A server on the operator's database, as the CLI left it.
async fn serve(env: &[(String, String)]) -> (String, reqwest::Client) {
    let mut map: HashMap<String, String> = env.iter().cloned().collect();
    map.insert("HOST".into(), "127.0.0.1".into());
    map.insert("PORT".into(), "0".into());
    let settings = Settings::load_from(map).expect("settings");
    let app = Application::build(settings)
        .await
        .expect("the server starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    (address, reqwest::Client::new())
}

/// Logs in over HTTP; returns the access token.
async fn login(address: &str, client: &reqwest::Client, username: &str, password: &str) -> String {
    let resp = client
        .post(format!("{address}/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 200, "login of {username}");
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access").to_string()
}

/// GET /me: its status and body.
async fn me(address: &str, client: &reqwest::Client, token: &str) -> (u16, Value) {
    let resp = client
        .get(format!("{address}/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

/// GET /me after a revocation made by the command line, another process: the server
/// learns it from the revocation log, as any instance does, within API.md's one second.
/// The last answer, once it is not a 200 or the second is up.
async fn me_once_revoked(address: &str, client: &reqwest::Client, token: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let (status, body) = me(address, client, token).await;
        if status != 200 || std::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn an_operator_manages_admins_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    assert_success(&run(&env, &["migrate"], None));

    let out = run(&env, &["admin", "create", "bob"], Some("bob-password-1\n"));
    assert_success(&out);
    assert!(text(&out.stdout).contains("bob"), "{}", describe(&out));
    assert!(
        !text(&out.stdout).contains("bob-password-1")
            && !text(&out.stderr).contains("bob-password-1"),
        "the password is never echoed: {}",
        describe(&out)
    );

    // What was stored: bob logs in with that password, as an admin.
    let (address, client) = serve(&env).await;
    let token = login(&address, &client, "bob", "bob-password-1").await;
    let (status, body) = me(&address, &client, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_admin"], true, "{body}");

    let out = run(
        &env,
        &["admin", "create", "bob"],
        Some("other-password-2\n"),
    );
    assert_failure(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bob") && stderr.contains("already exists"),
        "a clear message: {}",
        describe(&out)
    );
    // The existing account keeps its password.
    login(&address, &client, "bob", "bob-password-1").await;

    let out = run(&env, &["admin", "demote", "bob"], None);
    assert_success(&out);
    assert!(text(&out.stdout).contains("bob"), "{}", describe(&out));
    // The demotion ended bob's sessions (the server learns it from the revocation log,
    // as any instance does, within API.md's one second); the next login is not an admin.
    let (status, body) = me_once_revoked(&address, &client, &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "token_revoked", "{body}");
    let token = login(&address, &client, "bob", "bob-password-1").await;
    assert_eq!(me(&address, &client, &token).await.1["is_admin"], false);

    let out = run(&env, &["admin", "promote", "bob"], None);
    assert_success(&out);
    assert!(text(&out.stdout).contains("bob"), "{}", describe(&out));
    let token = login(&address, &client, "bob", "bob-password-1").await;
    assert_eq!(me(&address, &client, &token).await.1["is_admin"], true);

    let out = run(&env, &["admin", "promote", "nobody"], None);
    assert_failure(&out);
    assert!(text(&out.stderr).contains("nobody"), "{}", describe(&out));

    let out = run(&env, &["admin", "revoke", "bob"], None);
    assert_success(&out);
    assert!(text(&out.stdout).contains("bob"), "{}", describe(&out));
    let (status, body) = me_once_revoked(&address, &client, &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "token_revoked", "{body}");
}

#[test]
fn admin_create_refuses_a_password_that_breaks_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let out = run(&env, &["admin", "create", "carol"], Some("short\n"));
    assert_failure(&out);
    assert!(text(&out.stderr).contains("password"), "{}", describe(&out));
    let out = run(
        &env,
        &["admin", "create", "carol"],
        Some(&format!("{}\n", "x".repeat(73))),
    );
    assert_failure(&out);
    // Nothing was created: a valid create now succeeds.
    let out = run(
        &env,
        &["admin", "create", "carol"],
        Some("carol-password-1\n"),
    );
    assert_success(&out);
}

#[test]
fn admin_create_refuses_a_username_with_invisible_characters() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let out = run(
        &env,
        &["admin", "create", "ca\u{200B}rol"],
        Some("carol-password-1\n"),
    );
    assert_failure(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("username") && stderr.contains("zero-width"),
        "{}",
        describe(&out)
    );
}

#[test]
fn admin_create_refuses_another_spelling_of_a_taken_username() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let out = run(
        &env,
        &["admin", "create", "Carol"],
        Some("carol-password-1\n"),
    );
    assert_success(&out);
    for variant in ["carol", "CAROL", "\u{FF43}arol"] {
        let out = run(
            &env,
            &["admin", "create", variant],
            Some("other-password-2\n"),
        );
        assert_failure(&out);
        assert!(
            text(&out.stderr).contains("a user named 'Carol' already exists"),
            "{}",
            describe(&out)
        );
    }
}

// Signing keys

/// `operator_env` signing with EdDSA, its keys in the database.
fn keys_env(dir: &Path) -> Vec<(String, String)> {
    let mut env = operator_env(dir);
    env.extend([
        ("JWT_ALGORITHM".to_owned(), "EdDSA".to_owned()),
        ("JWT_KEY_ENCRYPTION_KEY".to_owned(), "0f".repeat(32)),
        ("JWKS_MAX_AGE".to_owned(), "1".to_owned()),
    ]);
    env
}

/// `keys list`, as (kid, state) pairs.
fn key_states(env: &[(String, String)]) -> Vec<(String, String)> {
    let out = run(env, &["keys", "list"], None);
    assert_success(&out);
    text(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_owned(), words.nth(1)?.to_owned()))
        })
        .collect()
}

#[test]
fn keys_help_lists_the_operator_actions() {
    let out = run(&[], &["keys", "--help"], None);
    assert_success(&out);
    let stdout = text(&out.stdout);
    for word in ["generate", "list", "rotate", "retire", "JWKS_MAX_AGE"] {
        assert!(
            stdout.contains(word),
            "keys --help mentions {word}: {stdout}"
        );
    }
}

#[test]
fn an_operator_generates_rotates_and_retires_keys() {
    let dir = tempfile::tempdir().unwrap();
    let env = keys_env(dir.path());
    let out = run(&env, &["keys", "generate"], None);
    assert_success(&out);
    assert!(
        text(&out.stdout).contains("it signs now"),
        "{}",
        describe(&out)
    );
    let first = key_states(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].1, "current");
    let out = run(&env, &["keys", "generate", "--algorithm", "ES256"], None);
    assert_success(&out);
    assert!(
        text(&out.stdout).contains("generated as next"),
        "{}",
        describe(&out)
    );
    // Published for less than JWKS_MAX_AGE: refused, with how long to wait.
    let out = run(&env, &["keys", "rotate"], None);
    assert_failure(&out);
    assert!(text(&out.stderr).contains("--wait"), "{}", describe(&out));
    let out = run(&env, &["keys", "rotate", "--wait"], None);
    assert_success(&out);
    let states = key_states(&env);
    let old = &first[0].0;
    assert!(
        states.contains(&(old.clone(), "retired".to_owned())),
        "{states:?}"
    );
    assert_eq!(states.iter().filter(|(_, s)| s == "current").count(), 1);
    // Its tokens may still be live: it stays, and so does the refusal's reason.
    let out = run(&env, &["keys", "retire", old], None);
    assert_failure(&out);
    assert!(
        text(&out.stderr).contains("still verifies live tokens"),
        "{}",
        describe(&out)
    );
    let out = run(&env, &["keys", "retire", "no-such-kid"], None);
    assert_failure(&out);
    let out = run(&env, &["keys", "rotate"], None);
    assert_failure(&out);
    assert!(
        text(&out.stderr).contains("keys generate"),
        "{}",
        describe(&out)
    );
    for line in text(&run(&env, &["keys", "list"], None).stdout).lines() {
        assert!(!line.contains("PRIVATE"), "{line}");
    }
}

#[test]
fn keys_refuse_when_the_keys_are_not_kept_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&operator_env(dir.path()), &["keys", "generate"], None);
    assert_failure(&out);
    assert!(text(&out.stderr).contains("HMAC"), "{}", describe(&out));
}

// Start-up refusals

/// An environment for `migrate` with `overrides` applied (an empty value removes).
fn env_with(dir: &Path, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: HashMap<String, String> = operator_env(dir).into_iter().collect();
    for (k, v) in overrides {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env.into_iter().collect()
}

/// Runs `migrate` and expects a refusal; returns stderr.
fn refused(env: &[(String, String)]) -> String {
    let out = run(env, &["migrate"], None);
    assert_failure(&out);
    text(&out.stderr)
}

/// The stderr lines that name `setting`.
fn lines_naming<'a>(stderr: &'a str, setting: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(setting)).collect()
}

#[test]
fn production_refuses_to_start_without_a_jwt_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(
        dir.path(),
        &[
            ("APP_ENV", "production"),
            ("JWT_SECRET_KEY", ""),
            ("BCRYPT_COST", "12"),
        ],
    );
    let stderr = refused(&env);
    assert!(stderr.contains("JWT_SECRET_KEY"), "{stderr}");
    assert!(!dir.path().join("cli.db").exists(), "nothing was migrated");
}

#[test]
fn a_jwt_key_under_32_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = "0123456789";
    let env = env_with(dir.path(), &[("JWT_SECRET_KEY", short)]);
    let stderr = refused(&env);
    assert!(stderr.contains("JWT_SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains(short), "the key is not printed: {stderr}");
}

#[test]
fn an_unparsable_database_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(dir.path(), &[("DATABASE_URL", "postgres://[bad")]);
    let stderr = refused(&env);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn any_origin_with_browser_cookies_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(
        dir.path(),
        &[
            ("JWT_TOKEN_LOCATION", "headers,cookies"),
            ("CORS_ALLOWED_ORIGINS", "*"),
        ],
    );
    let stderr = refused(&env);
    let lines = lines_naming(&stderr, "CORS_ALLOWED_ORIGINS");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("cookies"), "{stderr}");
}

#[test]
fn an_out_of_range_bcrypt_cost_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(dir.path(), &[("BCRYPT_COST", "99")]);
    let stderr = refused(&env);
    assert!(stderr.contains("BCRYPT_COST"), "{stderr}");
}

#[test]
fn every_configuration_problem_is_reported_at_once_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let short = "0123456789";
    let env = env_with(
        dir.path(),
        &[
            ("APP_ENV", "production"),
            ("JWT_SECRET_KEY", short),
            ("DATABASE_URL", "postgres://[bad"),
            ("BCRYPT_COST", "99"),
        ],
    );
    let stderr = refused(&env);
    let settings = ["JWT_SECRET_KEY", "DATABASE_URL", "BCRYPT_COST"];
    let mut seen = Vec::new();
    for setting in settings {
        let lines = lines_naming(&stderr, setting);
        assert_eq!(lines.len(), 1, "{setting} on one line: {stderr}");
        for other in settings.iter().filter(|s| **s != setting) {
            assert!(!lines[0].contains(other), "one per line: {stderr}");
        }
        seen.push(lines[0]);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "{stderr}");

    // Production without any key, with the other two problems: all three named too.
    let env = env_with(
        dir.path(),
        &[
            ("APP_ENV", "production"),
            ("JWT_SECRET_KEY", ""),
            ("DATABASE_URL", "postgres://[bad"),
            ("BCRYPT_COST", "99"),
        ],
    );
    let stderr = refused(&env);
    for setting in settings {
        assert_eq!(
            lines_naming(&stderr, setting).len(),
            1,
            "{setting} on one line: {stderr}"
        );
    }
}

#[test]
fn an_unknown_log_format_is_refused_naming_the_formats() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(dir.path(), &[("LOG_FORMAT", "xml")]);
    let out = run(&env, &["migrate"], None);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert_eq!(
        lines_naming(&stderr, "LOG_FORMAT"),
        ["error: LOG_FORMAT: 'xml' is not a log format (use text or json)"],
        "{stderr}"
    );
    assert!(!dir.path().join("cli.db").exists(), "nothing was migrated");
}

#[test]
fn with_log_format_json_a_refused_setting_is_a_json_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(
        dir.path(),
        &[
            ("LOG_FORMAT", "json"),
            ("BCRYPT_COST", "99"),
            ("DATABSE_URL", "x.db"),
        ],
    );
    let out = run(&env, &["migrate"], None);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\n{stderr}")))
        .collect();
    let warning = lines
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("the misspelt DATABSE_URL is warned about: {stderr}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("did you mean DATABASE_URL?"),
        "{stderr}"
    );
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("BCRYPT_COST"),
        "{stderr}"
    );
    assert!(errors[0]["time"].is_string(), "{stderr}");
}

// The audit log

#[test]
fn audit_help_explains_the_export() {
    let out = run(&[], &["audit", "--help"], None);
    assert_success(&out);
    assert!(text(&out.stdout).contains("export"), "{}", describe(&out));
    let out = run(&[], &["audit", "export", "--help"], None);
    assert_success(&out);
    let stdout = text(&out.stdout);
    for word in ["--since", "--until", "NDJSON", "RFC 3339", "oldest first"] {
        assert!(
            stdout.contains(word),
            "export --help mentions {word}: {stdout}"
        );
    }
}

#[test]
fn audit_export_refuses_a_time_that_is_not_rfc_3339() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    for args in [
        &["audit", "export", "--since", "yesterday"][..],
        &[
            "audit",
            "export",
            "--since",
            "2026-12-01T00:00:00Z",
            "--until",
            "tomorrow",
        ][..],
    ] {
        let out = run(&env, args, None);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let name = if args.contains(&"tomorrow") {
            "--until"
        } else {
            "--since"
        };
        let stderr = text(&out.stderr);
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("RFC 3339")),
            "one line names {name} and RFC 3339: {}",
            describe(&out)
        );
        assert!(text(&out.stdout).is_empty(), "{}", describe(&out));
    }
}

/// GET /audit as `token`: every event, newest first.
async fn audit_events(address: &str, client: &reqwest::Client, token: &str) -> Vec<Value> {
    let resp = client
        .get(format!("{address}/audit?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["next_cursor"], Value::Null, "{body}");
    body["events"].as_array().expect("events").clone()
}

/// `stores-api audit export` with `args`: the events it printed, one a line.
fn export(env: &[(String, String)], args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "export"];
    all.extend_from_slice(args);
    let out = run(env, &all, None);
    assert_success(&out);
    text(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("each line is JSON ({e}): {line}"))
        })
        .collect()
}

#[actix_web::test]
async fn operator_commands_are_in_the_audit_log_and_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let before = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_success(&run(&env, &["migrate"], None));
    assert_success(&run(
        &env,
        &["admin", "create", "bob"],
        Some("bob-password-1\n"),
    ));
    assert_success(&run(&env, &["admin", "demote", "bob"], None));
    assert_success(&run(&env, &["admin", "promote", "bob"], None));

    let (address, client) = serve(&env).await;
    let token = login(&address, &client, "bob", "bob-password-1").await;
    let (_, me) = me(&address, &client, &token).await;
    let bob = me["id"].as_i64().expect("id");
    let events = audit_events(&address, &client, &token).await;
    let actions: Vec<&str> = events
        .iter()
        .rev()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["register", "demoted", "promoted", "login"]);
    for event in &events[1..] {
        assert!(event["actor_id"].is_null(), "no user acted: {event}");
        assert_eq!(event["target_id"], bob, "{event}");
        assert_eq!(event["details"]["via"], "cli", "{event}");
        assert!(
            event["ip"].is_null() && event["user_agent"].is_null(),
            "{event}"
        );
    }
    assert_eq!(events[1]["action"], "promoted");
    assert_eq!(events[3]["details"]["admin"], true, "{}", events[3]);

    // The export: the same events, oldest first, one JSON object a line.
    let exported = export(&env, &["--since", &before]);
    let mut newest_first = exported.clone();
    newest_first.reverse();
    assert_eq!(newest_first, events, "the export is what GET /audit shows");
    for event in &exported {
        for field in [
            "id",
            "at",
            "action",
            "outcome",
            "actor_id",
            "target_id",
            "session_id",
            "ip",
            "user_agent",
            "details",
        ] {
            assert!(event.get(field).is_some(), "{field} in {event}");
        }
    }

    // --until stops before the promotion; --since from it.
    let promoted_at = events[1]["at"].as_str().expect("at");
    let until = export(&env, &["--since", &before, "--until", promoted_at]);
    let since = export(&env, &["--since", promoted_at]);
    let actions = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["action"].as_str().expect("action").to_owned())
            .collect()
    };
    assert_eq!(actions(&until), ["register", "demoted"]);
    assert_eq!(actions(&since), ["promoted", "login"]);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(export(&env, &["--since", &later]), Vec::<Value>::new());
}

#[test]
fn key_commands_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let env = keys_env(dir.path());
    let before = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_success(&run(&env, &["keys", "generate"], None));
    assert_success(&run(
        &env,
        &["keys", "generate", "--algorithm", "ES256"],
        None,
    ));
    // Refused (not published long enough): nothing happened, nothing is recorded.
    assert_failure(&run(&env, &["keys", "rotate"], None));
    assert_success(&run(&env, &["keys", "rotate", "--wait"], None));
    let (first, next) = {
        let mut states = key_states(&env);
        states.sort_by_key(|(_, state)| state != "retired");
        (states[0].0.clone(), states[1].0.clone())
    };

    let events = export(&env, &["--since", &before]);
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert!(e["actor_id"].is_null() && e["target_id"].is_null(), "{e}");
            assert_eq!(e["details"]["via"], "cli", "{e}");
            assert_eq!(e["outcome"], "ok", "{e}");
            (
                e["action"].as_str().expect("action").to_owned(),
                e["details"]["kid"].as_str().expect("kid").to_owned(),
            )
        })
        .collect();
    let wanted = [
        ("key_generated", &first),
        ("key_generated", &next),
        ("key_rotated", &next),
    ]
    .map(|(a, k)| (a.to_owned(), k.clone()));
    assert_eq!(got, wanted);
}

#[test]
fn admin_revoke_is_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let env = operator_env(dir.path());
    let before = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_success(&run(
        &env,
        &["admin", "create", "carol"],
        Some("carol-password-1\n"),
    ));
    assert_success(&run(&env, &["admin", "revoke", "carol"], None));
    // A refused command records nothing.
    assert_failure(&run(&env, &["admin", "revoke", "nobody"], None));

    let events = export(&env, &["--since", &before]);
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["register", "admin_revoke"]);
    let revoke = &events[1];
    assert!(revoke["actor_id"].is_null(), "{revoke}");
    assert_eq!(revoke["target_id"], events[0]["target_id"], "{revoke}");
    assert_eq!(revoke["details"]["via"], "cli", "{revoke}");
    assert_eq!(revoke["details"]["sessions_ended"], 0, "{revoke}");
}
