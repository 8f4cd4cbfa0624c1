//! Process lifecycle: graceful shutdown on SIGTERM (within its grace, whatever is under way), and
//! slow or idle clients cut off.

use std::time::Duration;

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::documents::{BOUNDARY, children, multipart};
use crate::helpers::{Deployment, base_config, client, eventually, spawn_process};

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

/// SIGTERM while two hostile uploads are under way: one whose document is still being read (a
/// test double stands for a document that takes forever: a program that only sleeps, in place
/// of the reader), one whose client sends its body and then nothing more. The process exits
/// within its shutdown grace (plus slack for the rest of the shutdown), and the reader is killed,
/// not left behind.
#[tokio::test]
async fn sigterm_during_hostile_uploads_exits_within_the_grace() {
    use std::os::unix::fs::PermissionsExt;

    const GRACE: Duration = Duration::from_secs(3);
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    let stuck = infra.data_dir().join("stuck-reader.sh");
    std::fs::write(&stuck, "#!/bin/sh\n# Test double: a document reader that never finishes.\nexec sleep 600\n")
        .unwrap();
    std::fs::set_permissions(&stuck, std::fs::Permissions::from_mode(0o755)).unwrap();
    config.conversation.documents.extract_program = Some(stuck);
    config.conversation.documents.extract_timeout = Duration::from_secs(600);
    config.server.shutdown_grace = GRACE;
    let mut d = Deployment::process(infra, config, &["--only", "gateway,auth,conversation,inference"], &[]).await;
    let token = d.user_token("sam").await;
    let (status, c) =
        d.call(Method::POST, "/api/conversations", Some(&token), Some(json!({"model": "alpha", "title": "t"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_str().unwrap().to_owned();
    let body = multipart(&[("conversation_id", None, cid.as_bytes()), ("file", Some("a.txt"), b"Some words.")]);

    let reading = tokio::spawn({
        let request = d
            .client
            .post(d.at("/api/documents"))
            .bearer_auth(&token)
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(body.clone());
        async move { request.send().await }
    });
    let mut readers = Vec::new();
    eventually("the reader to start", async || {
        readers = children(d.pid());
        !readers.is_empty()
    })
    .await;

    let mut slow = tokio::net::TcpStream::connect(d.url.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /api/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len() + 1000
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..body.len() / 2]).await.unwrap();

    let status = d.terminate(GRACE + Duration::from_secs(12)).await.expect("exited within the grace and slack");
    assert!(status.success(), "a signalled shutdown is a clean exit: {status}");
    for reader in readers {
        eventually("the reader to be gone", async || !std::path::Path::new(&format!("/proc/{reader}")).exists()).await;
    }
    // The upload being read was answered that the server is going away, or cut off with it.
    if let Ok(res) = reading.await.unwrap() {
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("shutting_down")));
    }
}

/// Connections that carry no request are closed: HTTP/2 after `server.idle_timeout`, HTTP/1.1
/// (waiting for its next request) after `gateway.header_read_timeout`.
#[tokio::test]
async fn idle_connections_are_closed() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.server.idle_timeout = Duration::from_secs(1);
    config.gateway.header_read_timeout = Duration::from_secs(1);
    let (_child, url) = spawn_process(&infra, &config, "auth,gateway").await;
    let addr = url.trim_start_matches("http://").to_owned();

    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("{url}/health")).body(Empty::<bytes::Bytes>::new()).unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert!(res.status().is_success());
    res.into_body().collect().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection was still open after 20 s");

    let mut h1 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    h1.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), h1.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "an idle HTTP/1.1 connection was still open after 20 s");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "answered before it was closed");
}
