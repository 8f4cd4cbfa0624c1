//! Bad input gets a 4xx problem+json with a stable code; nothing reaches a 5xx or a panic.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Deployment, Mode, PASSWORD};

async fn send_raw(d: &Deployment, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = d.client.post(d.at("/api/auth/register")).body(body);
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json", "{status}");
    (status, res.json().await.unwrap())
}

/// A request body, its content type, and the status and problem code it must get.
type Case = (&'static str, Option<&'static str>, Vec<u8>, StatusCode, &'static str);

#[tokio::test]
async fn malformed_bodies_get_stable_codes() {
    let d = Deployment::start(Mode::AllInOne).await;
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        ("malformed JSON", json, b"{\"username\": ".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("not JSON at all", json, b"username=a&password=b".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            "wrong type",
            json,
            br#"{"username": 5, "email": "a@b.co", "password": "x"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        ("missing field", json, br#"{"username": "abc"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("array instead of object", json, b"[1,2,3]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            "no content type",
            None,
            br#"{"username":"abc"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"username":"abc"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("invalid utf-8", json, vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'], StatusCode::BAD_REQUEST, "malformed_json"),
    ];
    for (name, ct, body, status, code) in cases {
        let (got, problem) = send_raw(&d, ct, body).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert_eq!(problem["code"], code, "{name}: {problem}");
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["request_id"].is_string(), "{name}: problems carry the request id");
    }
}

#[tokio::test]
async fn invalid_fields_are_named() {
    let d = Deployment::start(Mode::AllInOne).await;
    let cases = [
        (json!({"username": "ok_name", "email": "not-an-email", "password": PASSWORD}), "email"),
        (json!({"username": "ok_name", "email": "a@b", "password": PASSWORD}), "email"),
        (json!({"username": "x", "email": "x@example.com", "password": PASSWORD}), "username"),
        (json!({"username": "bad name!", "email": "x@example.com", "password": PASSWORD}), "username"),
        (json!({"username": "ok_name", "email": "x@example.com", "password": "short"}), "password"),
        (json!({"username": "ok_name", "email": "x@example.com", "password": "password123"}), "password"),
        (json!({"username": "ok_name", "email": "x@example.com", "password": "P".repeat(300)}), "password"),
        (json!({"username": "ok_name", "email": "x@example.com", "password": PASSWORD, "is_admin": true}), "is_admin"),
    ];
    for (body, field) in cases {
        let (status, problem) = d.call(Method::POST, "/api/auth/register", None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        let fields: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&field), "{body}: expected an error on {field}: {problem}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let d = Deployment::start(Mode::AllInOne).await;
    let big = vec![b' '; 2 * 1024 * 1024];

    // Announced size: refused before the body is read.
    let res = d
        .client
        .post(d.at("/api/auth/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "payload_too_large");

    // Chunked, no announced size: cut off at the limit while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = d
        .client
        .post(d.at("/api/auth/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_routes_methods_and_ambiguous_paths() {
    let d = Deployment::start(Mode::AllInOne).await;
    let (status, body) = d.call(Method::GET, "/api/nothing-here", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let res = d.client.delete(d.at("/api/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "POST");

    // Raw request lines: HTTP clients normalise these paths before sending.
    for path in ["/api/auth/../auth/roles", "/api/auth/%2e%2e/auth/roles", "/api//auth/me"] {
        let addr = d.url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains("invalid_path"), "{path}: {out}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let d = Deployment::start(Mode::AllInOne).await;
    let res = d.client.get(d.at("/api/auth/me")).header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    assert_eq!(res.json::<Value>().await.unwrap()["request_id"], "trace-abc-123");

    let res = d.client.get(d.at("/api/auth/me")).header("x-request-id", "evil id; drop").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "evil id; drop");
    assert_eq!(id.len(), 36, "a fresh UUID replaces an unsafe id");
}
