//! `/api/pull` against a local HTTP test double standing for an Ollama registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestEngine, test_config};

/// The registry test double: one model, with switches to cut a download short or serve the
/// wrong bytes, and a record of the `Range` headers it saw.
#[derive(Clone, Default)]
struct Registry {
    manifest: Arc<Mutex<Value>>,
    blobs: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Serve only this many bytes of the next blob download, then break the connection.
    cut_next_at: Arc<Mutex<Option<usize>>>,
    /// Serve these bytes instead of the real ones.
    corrupt: Arc<Mutex<bool>>,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    /// Answer blob requests with a redirect to `/cdn/…`, as registry.ollama.ai does.
    redirect_blobs: Arc<Mutex<bool>>,
    /// Answer blob requests with a redirect to this URL instead.
    redirect_blobs_to: Arc<Mutex<Option<String>>>,
    /// Answer manifest requests with a redirect to this URL.
    redirect_manifest_to: Arc<Mutex<Option<String>>>,
    /// Serve a manifest of a gigabyte.
    huge_manifest: Arc<Mutex<bool>>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Registry {
    fn add_model(&self, gguf: Vec<u8>) {
        let config = serde_json::to_vec(
            &json!({"model_format": "gguf", "model_family": "llama", "model_type": "116K", "file_type": "F32"}),
        )
        .unwrap();
        let layer = |media: &str, b: &[u8]| json!({"mediaType": media, "digest": digest(b), "size": b.len()});
        *self.manifest.lock().unwrap() = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": layer("application/vnd.docker.container.image.v1+json", &config),
            "layers": [layer("application/vnd.ollama.image.model", &gguf)],
        });
        let mut blobs = self.blobs.lock().unwrap();
        blobs.insert(digest(&config), config);
        blobs.insert(digest(&gguf), gguf);
    }

    fn router(self) -> Router {
        Router::new()
            .route("/v2/{ns}/{model}/manifests/{tag}", get(manifest))
            .route("/v2/{ns}/{model}/blobs/{digest}", get(blob))
            .route("/cdn/{digest}", get(cdn_blob))
            .route("/hop/{n}", get(hop))
            .with_state(self)
    }

    async fn serve(self) -> String {
        let app = self.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

async fn manifest(
    State(r): State<Registry>,
    Path((ns, model, tag)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    assert_eq!(headers[header::ACCEPT], "application/vnd.docker.distribution.manifest.v2+json");
    if let Some(to) = r.redirect_manifest_to.lock().unwrap().clone() {
        return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
    }
    if *r.huge_manifest.lock().unwrap() {
        // `{"layers": [` and then a gigabyte of spaces, with no length announced.
        let chunk = axum::body::Bytes::from(vec![b' '; 1 << 16]);
        let start =
            futures::stream::once(async { Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"layers\": [")) });
        let rest = futures::stream::iter(std::iter::repeat_n(chunk, (1 << 30) >> 16).map(Ok));
        return Body::from_stream(start.chain(rest)).into_response();
    }
    if (ns.as_str(), model.as_str(), tag.as_str()) != ("library", "tiny", "latest") {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(r.manifest.lock().unwrap().clone()).into_response()
}

/// An endless chain of redirects within the registry.
async fn hop(Path(n): Path<u32>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, format!("/hop/{}", n + 1))]).into_response()
}

async fn blob(
    State(r): State<Registry>,
    Path((_, _, d)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(to) = r.redirect_blobs_to.lock().unwrap().clone() {
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response();
    }
    if *r.redirect_blobs.lock().unwrap() {
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, format!("/cdn/{d}"))]).into_response();
    }
    cdn_blob(State(r), Path(d), headers).await
}

async fn cdn_blob(State(r): State<Registry>, Path(d): Path<String>, headers: HeaderMap) -> Response {
    let Some(mut bytes) = r.blobs.lock().unwrap().get(&d).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if *r.corrupt.lock().unwrap() && bytes.len() > 1000 {
        bytes.iter_mut().take(100).for_each(|b| *b = b.wrapping_add(1));
    }
    let range = headers.get(header::RANGE).map(|v| v.to_str().unwrap().to_owned());
    if bytes.len() > 1000 {
        r.ranges.lock().unwrap().push(range.clone());
    }
    let total = bytes.len();
    let (status, body) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-'))
    {
        Some(start) => {
            let start: usize = start.parse().unwrap();
            (StatusCode::PARTIAL_CONTENT, bytes[start..].to_vec())
        }
        None => (StatusCode::OK, bytes),
    };
    let len = body.len();
    let cut = if total > 1000 { r.cut_next_at.lock().unwrap().take() } else { None };
    if let Some(cut) = cut {
        // Send part of the body, then fail: the connection breaks mid-download.
        // (The pause lets the server write the first part out before the connection breaks.)
        let first = axum::body::Bytes::from(body[..cut].to_vec());
        let stream = futures::stream::unfold(0, move |step| {
            let first = first.clone();
            async move {
                match step {
                    0 => Some((Ok::<_, std::io::Error>(first), 1)),
                    1 => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        Some((Err(std::io::Error::other("connection lost")), 2))
                    }
                    _ => None,
                }
            }
        });
        return (status, [(header::CONTENT_LENGTH, len.to_string())], Body::from_stream(stream)).into_response();
    }
    (status, [(header::CONTENT_LENGTH, len.to_string())], body).into_response()
}

async fn engine_for(registry: &str) -> TestEngine {
    let mut config = test_config();
    config.registry_url = registry.to_owned();
    TestEngine::with_config(config).await
}

fn statuses(lines: &[Value]) -> Vec<String> {
    lines.iter().filter_map(|l| l["status"].as_str()).map(str::to_owned).collect()
}

#[tokio::test]
async fn pulls_resume_after_an_interruption_and_verify_digests() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.gguf");
    ollamanet_engine::write_tiny_llama(&file, 9).unwrap();
    let gguf = std::fs::read(&file).unwrap();
    let model_digest = digest(&gguf);
    registry.add_model(gguf.clone());
    let url = registry.clone().serve().await;
    let e = engine_for(&url).await;

    // The first download breaks halfway: the stream ends with an error, the part is kept.
    *registry.cut_next_at.lock().unwrap() = Some(gguf.len() / 2);
    let (res, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(res.status, 200);
    assert!(lines.last().unwrap()["error"].is_string(), "{lines:?}");
    assert_eq!(e.get("/api/tags").await.body["models"], json!([]));

    // The second resumes where the first stopped.
    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    for l in &lines {
        let _: ollama_api::types::ProgressResponse = serde_json::from_value(l.clone()).expect("a progress line");
    }
    let s = statuses(&lines);
    assert_eq!(s.first().unwrap(), "pulling manifest");
    assert_eq!(&s[s.len() - 3..], ["verifying sha256 digest", "writing manifest", "success"], "{lines:?}");
    let short = &model_digest["sha256:".len().."sha256:".len() + 12];
    let progress: Vec<&Value> = lines.iter().filter(|l| l["status"] == format!("pulling {short}")).collect();
    assert!(!progress.is_empty());
    assert_eq!(progress[0]["digest"], model_digest);
    assert_eq!(progress[0]["total"], gguf.len());
    assert_eq!(progress.last().unwrap()["completed"], gguf.len());
    let ranges = registry.ranges.lock().unwrap().clone();
    assert_eq!(ranges, [None, Some(format!("bytes={}-", gguf.len() / 2))]);

    let tags = e.get("/api/tags").await.body;
    assert_eq!(tags["models"][0]["name"], "tiny:latest");
    let out = e
        .post(
            "/api/generate",
            &json!({"model": "tiny", "prompt": "hi", "stream": false, "options": {"num_predict": 2}}),
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.text);

    // Pulling again fetches nothing.
    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(statuses(&lines).last().unwrap(), "success");
    assert_eq!(registry.ranges.lock().unwrap().len(), 2);

    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "missing"})).await;
    assert!(lines.last().unwrap()["error"].as_str().unwrap().contains("file does not exist"));
}

#[tokio::test]
async fn pulls_from_an_https_registry_whose_certificate_is_trusted() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.gguf");
    ollamanet_engine::write_tiny_llama(&file, 9).unwrap();
    registry.add_model(std::fs::read(&file).unwrap());
    *registry.redirect_blobs.lock().unwrap() = true;
    let (url, ca_pem) = kit::testing::serve_tls(registry.clone().router()).await;

    // A certificate nobody vouches for is refused, and the error says why: the registry is not
    // reachable (a 502, before any stream).
    let untrusting = engine_for(&url).await;
    let res = untrusting.post("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(res.status, 502, "{}", res.text);
    assert_eq!(res.body["code"], "registry_unavailable");
    let err = res.body["error"].as_str().unwrap();
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(untrusting.get("/api/tags").await.body["models"], json!([]));

    // Trusted through engine.registry_ca_file: the manifest, then blobs by way of the redirect.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut config = test_config();
    config.registry_url = url;
    config.registry_ca_file = Some(ca_file);
    let e = TestEngine::with_config(config).await;
    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    assert_eq!(e.get("/api/tags").await.body["models"][0]["name"], "tiny:latest");
}

#[tokio::test]
async fn an_unreadable_registry_ca_file_is_a_clear_error() {
    let mut config = test_config();
    config.registry_ca_file = Some("/nonexistent/ca.pem".into());
    let infra = kit::testing::TestInfra::new().await;
    let platform = kit::config::Platform::new(infra.config.clone(), "engine").unwrap();
    let started = ollamanet_engine::start(&platform, &config, Default::default()).await;
    let err = started.err().expect("the engine refuses to start").to_string();
    assert!(err.contains("cannot read the certificates in /nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_refused() {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.gguf");
    ollamanet_engine::write_tiny_llama(&file, 10).unwrap();
    registry.add_model(std::fs::read(&file).unwrap());
    *registry.corrupt.lock().unwrap() = true;
    let url = registry.clone().serve().await;
    let e = engine_for(&url).await;
    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    let err = lines.last().unwrap()["error"].as_str().unwrap().to_owned();
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(e.get("/api/tags").await.body["models"], json!([]));
    // Nothing of the bad download is kept: the next pull starts from zero.
    *registry.corrupt.lock().unwrap() = false;
    let (_, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(statuses(&lines).last().unwrap(), "success");
    assert_eq!(registry.ranges.lock().unwrap().as_slice(), [None, None]);
}

/// A listener standing for a service of the engine's own network: it only records that someone
/// connected.
async fn tripwire() -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let touched = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = touched.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, touched)
}

/// Generous: only a hang, or a gigabyte being read, takes this long.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

async fn tiny_registry() -> (Registry, String) {
    let registry = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.gguf");
    ollamanet_engine::write_tiny_llama(&file, 11).unwrap();
    registry.add_model(std::fs::read(&file).unwrap());
    let url = registry.clone().serve().await;
    (registry, url)
}

#[tokio::test]
async fn a_manifest_of_a_gigabyte_is_refused() {
    let (registry, url) = tiny_registry().await;
    *registry.huge_manifest.lock().unwrap() = true;
    let e = engine_for(&url).await;
    let res = tokio::time::timeout(DEADLINE, e.post("/api/pull", &json!({"model": "tiny", "stream": false})))
        .await
        .expect("refused long before a gigabyte is read");
    assert_eq!(res.status, 502, "{}", res.text);
    assert_eq!(res.body["code"], "registry_error");
    assert!(res.body["error"].as_str().unwrap().contains("manifest is larger than"), "{}", res.text);
}

#[tokio::test]
async fn redirects_into_the_engines_network_are_refused_before_any_connection() {
    let (registry, url) = tiny_registry().await;
    let (port, touched) = tripwire().await;
    let e = engine_for(&url).await;
    let targets = [
        format!("http://127.0.0.1:{port}/v2/library/tiny/manifests/latest"),
        format!("http://localhost:{port}/v2/library/tiny/manifests/latest"),
        format!("http://[::1]:{port}/"),
        format!("http://169.254.169.254:{port}/latest/meta-data/"),
        format!("ftp://127.0.0.1:{port}/"),
    ];
    for target in &targets {
        *registry.redirect_manifest_to.lock().unwrap() = Some(target.clone());
        let res = e.post("/api/pull", &json!({"model": "tiny", "stream": false})).await;
        assert_eq!(res.status, 502, "{target}: {}", res.text);
        assert_eq!(res.body["code"], "registry_redirect_refused", "{target}: {}", res.text);
        // The streaming answer says the same, before it streams.
        let res = e.post("/api/pull", &json!({"model": "tiny"})).await;
        assert_eq!((res.status, &res.body["code"]), (502, &json!("registry_redirect_refused")), "{target}");
    }
    // An endless chain of redirects within the registry ends.
    *registry.redirect_manifest_to.lock().unwrap() = Some("/hop/0".into());
    let res = e.post("/api/pull", &json!({"model": "tiny", "stream": false})).await;
    assert_eq!((res.status, &res.body["code"]), (502, &json!("registry_redirect_refused")), "{}", res.text);

    // A blob's redirect is checked the same way; the pull ends with the refusal.
    *registry.redirect_manifest_to.lock().unwrap() = None;
    *registry.redirect_blobs_to.lock().unwrap() = Some(format!("http://localhost:{port}/blob"));
    let (res, lines) = e.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert_eq!(res.status, 200, "the manifest came: the stream started");
    assert_eq!(lines.last().unwrap()["code"], "registry_redirect_refused", "{lines:?}");
    assert!(!touched.load(std::sync::atomic::Ordering::SeqCst), "the refused address was contacted");
    assert_eq!(e.get("/api/tags").await.body["models"], json!([]));

    // An operator whose mirror hands blobs to a store of its own network can allow it.
    let mut config = test_config();
    config.registry_url = url;
    config.registry_private_redirects = true;
    let allowing = TestEngine::with_config(config).await;
    let (_, lines) = allowing.ndjson("/api/pull", &json!({"model": "tiny"})).await;
    assert!(lines.last().unwrap()["error"].is_string(), "{lines:?}");
    assert!(touched.load(std::sync::atomic::Ordering::SeqCst), "followed once allowed");
}

#[tokio::test]
async fn registry_failures_are_502_and_504_with_codes() {
    // Nothing listens: connection refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let e = engine_for(&format!("http://{closed}")).await;
    for stream in [false, true] {
        let res = e.post("/api/pull", &json!({"model": "tiny", "stream": stream})).await;
        assert_eq!(res.status, 502, "{}", res.text);
        assert_eq!(res.body["code"], "registry_unavailable", "{}", res.text);
    }

    // The registry fails.
    let failing = Router::new().fallback(|| async { StatusCode::SERVICE_UNAVAILABLE });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, failing).await.unwrap() });
    let e = engine_for(&url).await;
    let res = e.post("/api/pull", &json!({"model": "tiny", "stream": false})).await;
    assert_eq!((res.status, &res.body["code"]), (502, &json!("registry_unavailable")), "{}", res.text);

    // The registry accepts the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let mut config = test_config();
    config.registry_url = url;
    config.registry_timeout = std::time::Duration::from_secs(1);
    let e = TestEngine::with_config(config).await;
    let res = tokio::time::timeout(DEADLINE, e.post("/api/pull", &json!({"model": "tiny", "stream": false})))
        .await
        .expect("the registry's timeout, not the test's");
    assert_eq!((res.status, &res.body["code"]), (504, &json!("registry_timeout")), "{}", res.text);

    // A model the registry does not have.
    let (_, url) = tiny_registry().await;
    let e = engine_for(&url).await;
    let res = e.post("/api/pull", &json!({"model": "missing"})).await;
    assert_eq!((res.status, &res.body["code"]), (404, &json!("model_not_found")), "{}", res.text);
}
