//! The commands README.md and docs/ show, run as a newcomer pastes them. Every shell block in
//! those files is either run here against a live platform or listed with the reason it is not
//! (it runs for minutes, or needs no server and is run by another test): a block added without
//! either fails `every_command_block_is_run_or_accounted_for`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kit::testing::{Stack, TestInfra};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::fake_ollama::FakeOllama;
use crate::helpers::{Deployment, Mode, base_config, eventually};

/// What happens to a shell block, found by the file it is in and its first line.
enum Fate {
    /// Run by the named test in this module.
    Run(&'static str),
    /// Not run here, and why.
    Elsewhere(&'static str),
}

const BLOCKS: &[(&str, &str, Fate)] = &[
    (
        "README.md",
        "scripts/run",
        Fate::Elsewhere(
            "the quick start: `scripts/test` is what .ci/run runs; `scripts/run` is a release build, \
             `models demo` (tested by the browser test, which starts from it) and `serve` (run by \
             readme_running_it_for_real)",
        ),
    ),
    ("README.md", "curl -s localhost:8080/api/auth/register", Fate::Run("readme_try_it_registers_and_chats")),
    ("README.md", "echo 'a long passphrase' | ollamanet users create", Fate::Run("readme_running_it_for_real")),
    ("README.md", "openssl rand -hex 32 > bus_secret", Fate::Run("readme_split_deployment")),
    (
        "docs/engine.md",
        "ollamanet models list",
        Fate::Elsewhere(
            "no server: the model store's commands, run by the engine's CLI tests (a pull from the public \
             registry needs the internet; tests pull from a registry double)",
        ),
    ),
    ("docs/performance.md", "bench/gateway/run.sh", Fate::Elsewhere("a benchmark: minutes of load, run by hand")),
    ("docs/performance.md", "bench/engine/run.sh", Fate::Elsewhere("a benchmark: minutes of load, run by hand")),
    ("docs/performance.md", "bench/conversation/run.sh", Fate::Elsewhere("a benchmark: minutes of load, run by hand")),
    (
        "docs/security.md",
        "scripts/fuzz",
        Fate::Elsewhere(
            "fuzzing: ten minutes per target, run by hand; every input it failed on is replayed by the fuzz \
             crate's every_finding_stays_fixed",
        ),
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell blocks of a Markdown file: (first line, whole block).
fn shell_blocks(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence == "```sh" || fence == "```bash" || fence == "```shell" => {
                current = Some(Vec::new())
            }
            (Some(lines), "```") => {
                let first =
                    lines.iter().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned()).unwrap_or_default();
                blocks.push((first, lines.join("\n")));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The block of `file` whose first line starts with `first`.
fn block(file: &str, first: &str) -> String {
    shell_blocks(&root().join(file))
        .into_iter()
        .find(|(line, _)| line.starts_with(first))
        .unwrap_or_else(|| panic!("{file} has no shell block starting with {first:?}"))
        .1
}

#[test]
fn every_command_block_is_run_or_accounted_for() {
    let mut unaccounted = Vec::new();
    let mut seen = vec![false; BLOCKS.len()];
    for file in documents() {
        let name = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        for (first, _) in shell_blocks(&file) {
            match BLOCKS.iter().position(|(f, start, _)| *f == name && first.starts_with(start)) {
                Some(i) => seen[i] = true,
                None => unaccounted.push(format!("{name}: {first}")),
            }
        }
    }
    assert!(unaccounted.is_empty(), "shell blocks no test runs or accounts for (add them to BLOCKS): {unaccounted:#?}");
    let stale: Vec<_> =
        BLOCKS.iter().zip(seen).filter(|(_, seen)| !seen).map(|((f, start, _), _)| (f, start)).collect();
    assert!(stale.is_empty(), "BLOCKS names blocks the documents no longer have: {stale:?}");
    for (_, _, fate) in BLOCKS {
        match fate {
            Fate::Run(test) => assert!(
                include_str!("docs_commands.rs").contains(&format!("async fn {test}()")),
                "BLOCKS names a test this module does not have: {test}"
            ),
            Fate::Elsewhere(why) => assert!(!why.is_empty()),
        }
    }
}

/// A shell running `script` in `dir` with the built `ollamanet` first on `PATH` and none of the
/// harness's backend variables (a newcomer's shell has none).
fn shell(script: &str, dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_ollamanet")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script]).current_dir(dir).env("PATH", path).kill_on_drop(true);
    for var in ["DATABASE_URL", "REDIS_URL", "AMQP_URL", "OLLAMANET_CONFIG"] {
        c.env_remove(var);
    }
    c
}

/// The block with the documented address replaced by where the test's platform listens.
fn at(block: &str, url: &str) -> String {
    let host = url.trim_start_matches("http://");
    block.replace("http://127.0.0.1:8080", url).replace("localhost:8080", host)
}

/// README "Quick start": register with curl, then chat with the demo model using the token.
#[tokio::test]
async fn readme_try_it_registers_and_chats() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(2);
    ollamanet_engine::demo(infra.data_dir(), &config.engine, |m| eprintln!("{m}")).await.expect("demo models");
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let dir = tempfile::tempdir().unwrap();
    let script = at(&block("README.md", "curl -s localhost:8080/api/auth/register"), &d.url);
    let out = tokio::time::timeout(Duration::from_secs(300), shell(&script, dir.path()).output())
        .await
        .expect("the README's commands finish")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    assert!(token.trim().starts_with("ey"), "the first command saved an access token: {token:?}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("NDJSON")).collect();
    let last = lines.last().expect("a streamed reply");
    assert_eq!(last["done"], true, "{stdout}");
    assert_eq!(last["model"], "smollm2:135m");
    let text: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    assert!(!text.trim().is_empty(), "the model answered: {stdout}");
}

/// README "Running it for real": the first administrator from the command line, then `serve`;
/// that administrator signs in with the Admin role.
#[tokio::test]
async fn readme_running_it_for_real() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = block("README.md", "echo 'a long passphrase' | ollamanet users create");
    let mut child = shell(&script, dir.path())
        .env("OLLAMANET_LISTEN", format!("127.0.0.1:{port}"))
        .env("OLLAMANET_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = crate::helpers::client();
    let mut up = false;
    for _ in 0..240 {
        if http.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "`ollamanet serve` exited");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(up, "`ollamanet serve` answers /health");
    let res = http
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"login": "admin", "password": "a long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let res = http.get(format!("{url}/api/admin/users")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the user the README creates is an administrator");
    assert!(dir.path().join("data").is_dir(), "state under ./data, as the README says");
    child.kill().await.unwrap();
}

/// README "Split deployment": every `ollamanet` line a process of its own, as on the README's
/// hosts, sharing the test's PostgreSQL, Redis and RabbitMQ. Here all hosts are this machine: a
/// specific address (`10.0.0.2:8081`) becomes a loopback port, a wildcard one (`0.0.0.0:8080`)
/// stays a wildcard on a free port (so the front process's defaults are those of an exposed
/// listener), and the Ollama server "elsewhere" is a test double. The platform then registers a
/// user and chats with the engine's model and with the announced server's.
#[tokio::test]
async fn readme_split_deployment() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let readme = block("README.md", "openssl rand -hex 32 > bus_secret");
    let ollama = FakeOllama::start("elsewhere", &["notebook"]).await;
    // The lines for the shell (the secret made once, the exports), run in one directory with the
    // test's backends in place of the README's hosts; what they export is every process's
    // environment.
    let host = tempfile::tempdir().unwrap();
    let prelude: Vec<&str> = readme.lines().filter(|l| !l.trim_start().starts_with("ollamanet ")).collect();
    let script = format!(
        "{}\nexport DATABASE_URL={} REDIS_URL={} AMQP_URL={}\nenv -0",
        prelude.join("\n"),
        infra.config.database_url.as_deref().unwrap(),
        infra.config.redis_url.as_deref().unwrap(),
        infra.config.amqp_url.as_deref().unwrap(),
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(host.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "the README's shell lines run: {}", String::from_utf8_lossy(&out.stderr));
    let mut env: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| prelude.iter().any(|e| e.contains(&format!("{k}="))))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let secret = env.iter().find(|(k, _)| k == "OLLAMANET_BUS_SECRET").map(|(_, v)| v.len());
    assert_eq!(secret, Some(64), "the README's bus secret is the 32 random bytes it made");
    // What one machine needs that separate hosts do not: its own names on the shared backends,
    // and engines on loopback accepted.
    for (k, v) in [
        ("OLLAMANET_BUS_NAMESPACE", infra.config.bus_namespace.as_str()),
        ("OLLAMANET_CACHE_PREFIX", infra.config.cache_prefix.as_str()),
        ("OLLAMANET_INFERENCE__ANNOUNCE_POLICY__ALLOW_PRIVATE", "true"),
        ("OLLAMANET_INFERENCE__ANNOUNCE_POLICY__ALLOWED_HOSTS", "[\"127.0.0.1\"]"),
        ("OLLAMANET_LOG__LEVEL", "warn"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }

    let mut processes = Vec::new();
    let mut front = None;
    for line in readme.lines() {
        let command = line.split(" #").next().unwrap().trim();
        if !command.starts_with("ollamanet ") {
            continue;
        }
        let mut words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        assert!(!command.contains(['\'', '"', '$']), "one word per space: {command}");
        let dir = tempfile::tempdir().unwrap();
        let mut port = None;
        for i in 1..words.len() {
            match words[i - 1].as_str() {
                "--listen" => {
                    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                    let wildcard = words[i].starts_with("0.0.0.0:") || words[i].starts_with("[::]:");
                    words[i] = format!("{}:{free}", if wildcard { "0.0.0.0" } else { "127.0.0.1" });
                    port = Some(free);
                }
                "--url" => words[i] = ollama.url.clone(),
                _ => {}
            }
        }
        if words.iter().any(|w| w == "engine") {
            let mut config = base_config(&infra);
            config.infra.data_dir = dir.path().join("data");
            crate::engine::engine_config(&mut config);
            crate::engine::import_tiny(&config.infra.data_dir, &config, "tiny", 3).await;
            env.push(("OLLAMANET_ENGINE__THREADS".into(), "1".into()));
        }
        if words.iter().any(|w| w.contains("gateway")) {
            front = port;
        }
        let child = Command::new(env!("CARGO_BIN_EXE_ollamanet"))
            .args(&words[1..])
            .current_dir(dir.path())
            .env_remove("OLLAMANET_CONFIG")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        processes.push((child, dir, command.to_owned()));
    }
    let url = format!("http://127.0.0.1:{}", front.expect("the block starts a gateway"));
    let config = base_config(&infra);
    let d = Deployment::running(infra, config, url);
    let mut check = async || {
        for (child, _, command) in &mut processes {
            assert!(child.try_wait().unwrap().is_none(), "`{command}` exited");
        }
    };
    eventually("the gateway to answer", async || {
        d.client.get(d.at("/health")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    check().await;
    let token = d.user_token("grace").await;
    let admin = d.admin_token("root").await;
    for model in ["tiny", "notebook"] {
        // A model the catalog does not describe is for administrators on an exposed listener;
        // the administrator makes it public the way the README's admin would.
        let (status, body) =
            d.call(reqwest::Method::POST, "/api/admin/models", Some(&admin), Some(json!({"name": model}))).await;
        assert!(status.is_success(), "catalogue {model}: {status} {body}");
        eventually(&format!("a chat with {model}"), async || {
            let body = json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": false,
                              "options": {"num_predict": 2}});
            d.call(reqwest::Method::POST, "/ollama/api/chat", Some(&token), Some(body)).await.0 == StatusCode::OK
        })
        .await;
    }
    check().await;
}
