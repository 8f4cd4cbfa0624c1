//! The browser tests (`e2e/`): the whole platform with the real SmolLM2 and MiniLM models, and
//! a user's story driven through Chromium by Playwright. They run on each stack like every other
//! test; `scripts/test` installs Node's packages and Chromium first. Screenshots of the main
//! pages land in `e2e/artifacts/<stack>/` (not committed).

use std::path::PathBuf;
use std::process::Stdio;

use kit::testing::TestInfra;
use tokio::process::Command;

use crate::helpers::{Deployment, Mode, PASSWORD, base_config};

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

#[tokio::test]
async fn slow_browser_a_users_story_in_chromium() {
    let e2e = e2e_dir();
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "the browser tests need their packages: `npm ci --prefix e2e` (scripts/test does it)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the browser tests need Chromium: `apt-get install -y chromium` (scripts/test does it)"
    );

    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(2);
    config.engine.num_ctx = 2048;
    ollamanet_engine::demo(infra.data_dir(), &config.engine, |m| eprintln!("{m}")).await.expect("demo models");
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await.patient();
    d.admin_token("root").await;

    let stack = format!("{:?}", kit::testing::stack()).to_lowercase();
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", "tests/"])
        .current_dir(&e2e)
        .env("OLLAMANET_URL", d.at(""))
        .env("OLLAMANET_ADMIN", "root")
        .env("OLLAMANET_PASSWORD", PASSWORD)
        .env("OLLAMANET_MODEL", "smollm2:135m")
        .env("E2E_ARTIFACTS", e2e.join("artifacts").join(stack))
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (apt-get install -y nodejs npm)");
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser tests failed:\n{report}");
    eprintln!("{report}");
}
