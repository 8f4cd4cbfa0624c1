//! The binary's other commands: configuration, users, routes.

use std::io::Write;
use std::process::{Command, Stdio};

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Deployment, Mode, PASSWORD, base_config};

fn ollamanet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ollamanet"));
    for var in ["DATABASE_URL", "REDIS_URL", "AMQP_URL", "OLLAMANET_CONFIG"] {
        c.env_remove(var);
    }
    c
}

#[test]
fn config_print_redacts_secrets() {
    let out = ollamanet()
        .args(["config", "print"])
        .env("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/ollamanet")
        .env("OLLAMANET_AUTH__MAIL__SMTP_URL", "smtps://mailer:s3cret@smtp.example.com")
        .env("OLLAMANET_GATEWAY__BODY_LIMIT", "4096")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("postgres://app:***@db.internal:5432/ollamanet"), "{text}");
    assert!(text.contains("smtps://mailer:***@smtp.example.com"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");
    assert!(text.contains("body_limit = 4096"), "environment overrides nested keys: {text}");
}

#[test]
fn unknown_configuration_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ollamanet.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9\"\nlisten_adress = \"typo\"\n").unwrap();
    let out = ollamanet().args(["--config", file.to_str().unwrap(), "config", "print"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_adress"));

    std::fs::write(&file, "[gateway]\nbody_limt = 1\n").unwrap();
    let out = ollamanet().args(["--config", file.to_str().unwrap(), "config", "print"]).output().unwrap();
    assert!(!out.status.success(), "typos inside sections are caught too");
}

#[test]
fn routes_print_lists_the_table() {
    let out = ollamanet().args(["routes", "print"]).current_dir(std::env::temp_dir()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("/api/auth/login") && l.contains("anonymous")), "{text}");
    assert!(text.lines().any(|l| l.contains("/api/admin/roles") && l.contains("roles Admin")), "{text}");
}

/// `ollamanet users create --admin` against the configured database, then that admin signs in.
#[tokio::test]
async fn users_create_makes_an_admin_who_can_sign_in() {
    let infra = TestInfra::new().await;
    let config = base_config(&infra);
    let file = infra.data_dir().join("cli.toml");
    std::fs::write(&file, ollamanet::config::to_toml(&config, false)).unwrap();
    let mut child = ollamanet()
        .args([
            "--config",
            file.to_str().unwrap(),
            "users",
            "create",
            "--email",
            "Root@Example.com",
            "--username",
            "root",
        ])
        .args(["--password-stdin", "--admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "prints the new user's id: {id}");

    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let (status, login) = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"login": "root@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user"]["id"], id);
    assert!(login["user"]["roles"].as_array().unwrap().iter().any(|r| r == "Admin"));
}

#[test]
fn models_import_list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let file = dir.path().join("tiny.gguf");
    ollamanet_engine::write_tiny_llama(&file, 9).unwrap();
    let run = |args: &[&str]| {
        let out = ollamanet().args(["models"]).args(args).args(["--data-dir", data]).output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        (out.status.success(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (ok, _, err) = run(&["import", file.to_str().unwrap(), "--name", "team/tiny:v1"]);
    assert!(ok, "{err}");
    assert!(err.contains("imported team/tiny:v1"), "{err}");
    let (ok, list, _) = run(&["list"]);
    assert!(ok);
    assert!(list.lines().any(|l| l.starts_with("team/tiny:v1") && l.contains("KB")), "{list}");

    let (ok, _, err) = run(&["import", "/no/such/file.gguf", "--name", "x"]);
    assert!(!ok);
    assert_eq!(err.trim(), "error: importing /no/such/file.gguf: No such file or directory (os error 2)");
    let not_gguf = dir.path().join("notes.txt");
    std::fs::write(&not_gguf, "hi").unwrap();
    let (ok, _, err) = run(&["import", not_gguf.to_str().unwrap(), "--name", "x"]);
    assert!(!ok);
    assert!(err.trim().ends_with("not a GGUF file"), "{err}");
    let (ok, _, err) = run(&["import", file.to_str().unwrap(), "--name", "../escape"]);
    assert!(!ok, "a name that is not a model name is refused: {err}");

    let (ok, _, err) = run(&["rm", "team/tiny:v1"]);
    assert!(ok, "{err}");
    let (_, list, _) = run(&["list"]);
    assert!(!list.contains("team/tiny"), "{list}");
    let blobs = std::fs::read_dir(dir.path().join("models/blobs")).unwrap().count();
    assert_eq!(blobs, 0, "removing the only model removes its blobs");
}

/// `ollamanet doctor` refuses (exit 1, the setting named) a configuration that hands a stranger
/// something, and passes one that does not.
#[test]
fn doctor_names_what_makes_a_deployment_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let out = ollamanet()
        .args(["doctor", "--listen", "0.0.0.0:8080"])
        .env("OLLAMANET_OPS_TOKEN", "short")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for setting in ["auth.mail.transport", "ops_token", "listen"] {
        assert!(text.lines().any(|l| l.contains(setting)), "{setting} is named: {text}");
    }

    let out = ollamanet()
        .args(["doctor", "--listen", "127.0.0.1:8080"])
        .env("OLLAMANET_OPS_TOKEN", "a-long-random-operators-token")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the defaults on loopback are safe: {text}");
    assert!(!text.contains("UNSAFE"), "{text}");
}
