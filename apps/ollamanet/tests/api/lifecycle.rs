//! Process lifecycle: graceful shutdown on SIGTERM, and slow clients cut off.

use std::time::Duration;

use kit::testing::TestInfra;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{base_config, client, spawn_process};

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let infra = TestInfra::new().await;
    let config = base_config(&infra);
    let (mut child, url) = spawn_process(&infra, &config, "auth,gateway").await;
    let health = client().get(format!("{url}/health")).send().await.unwrap();
    assert!(health.status().is_success());

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits after draining").unwrap();
    assert!(status.success(), "a signalled shutdown is a clean exit: {status}");
    assert!(client().get(format!("{url}/health")).send().await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.gateway.header_read_timeout = Duration::from_secs(1);
    let (_child, url) = spawn_process(&infra, &config, "auth,gateway").await;
    let mut s = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    // The server must give up on us: either a 408 or a closed connection, long before this bound.
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 20 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}
