//! The official Python clients (`ollama`, `openai`) against an engine process and against the
//! platform's gateway (tests/python/clients.py does the talking).

use std::path::{Path, PathBuf};
use std::process::Command;

use kit::testing::TestInfra;
use serde_json::{Value, json};

use crate::helpers::{Deployment, base_config, spawn_serve, without_engine};

/// The client versions the contract is checked against.
const REQUIREMENTS: [&str; 2] = ["ollama==0.6.3", "openai==1.109.1"];

/// A virtualenv with the clients, made once per target directory.
fn python_with_clients() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-clients-{}", REQUIREMENTS.join("-")));
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let tmp = venv.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let made = Command::new("python3").args(["-m", "venv"]).arg(&tmp).status().expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed (Debian: apt-get install python3-venv)");
        let installed = Command::new(tmp.join("bin").join("python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(REQUIREMENTS)
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install {REQUIREMENTS:?} failed");
        // Renamed into place only once complete, so an interrupted install is redone.
        std::fs::rename(&tmp, &venv).expect("venv moved into place");
    }
    python
}

#[tokio::test]
async fn the_official_python_clients_work_against_the_engine_and_the_gateway() {
    let python = tokio::task::spawn_blocking(python_with_clients).await.unwrap();
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(1);
    config.engine.num_ctx = 512;
    let mut engine_config = config.clone();
    engine_config.infra.data_dir = infra.data_dir().join("engine");
    crate::engine::import_tiny(&engine_config.infra.data_dir, &engine_config, "tiny", 5).await;
    let (_engine, engine_url) = spawn_serve(&infra, &engine_config, &["--only", "engine"]).await;
    config.inference.nodes = vec![engine_url.clone().into()];
    let d = Deployment::in_process_with(infra, config, &without_engine()).await;
    let token = d.user_token("pyclient").await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let url = d.url.clone();
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("ENGINE_URL", &engine_url)
        .env("GATEWAY_URL", url)
        .env("TOKEN", token)
        .env("MODEL", "tiny")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "clients.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    for face in ["ollama_engine", "ollama_gateway"] {
        assert_eq!(
            seen[face],
            json!({
                "list": ["tiny:latest"],
                "family": "llama",
                "chat_chunks": 7,
                "chat_done_reason": "length",
                "chat_eval_count": 6,
                "generate_eval_count": 4,
                "generate_done": true,
                "missing_status": 404,
            }),
            "{face}"
        );
    }
    for face in ["openai_engine", "openai_gateway"] {
        assert_eq!(
            seen[face],
            json!({
                "models": ["tiny:latest"],
                "finish_reasons": ["length"],
                "completion_tokens": 5,
                "whole_completion_tokens": 3,
                "whole_role": "assistant",
                "completion_completion_tokens": 3,
                "missing_status": 404,
            }),
            "{face}"
        );
    }
}
