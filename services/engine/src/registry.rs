//! Pulling models from a registry that speaks Ollama's protocol (Docker registry v2 paths):
//! `GET /v2/<namespace>/<model>/manifests/<tag>`, then `GET /v2/<namespace>/<model>/blobs/<digest>`
//! for each missing layer. Downloads go to `blobs/sha256-<hex>-partial` and resume with `Range`
//! after an interruption; every blob is checked against its digest before it is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::name::{DEFAULT_HOST, ModelName};
use crate::store::{Layer, MANIFEST_MEDIA_TYPE, Manifest, Store, StoreError};

/// One line of Ollama's pull progress.
pub use ollama_api::types::ProgressResponse as Progress;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pull model manifest: file does not exist")]
    ManifestNotFound,
    #[error("{0}")]
    Http(String),
    #[error("digest mismatch, file must be downloaded again: want {want}, got {got}")]
    DigestMismatch { want: String, got: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The client pulls go through: http or https (the platform's trust store, see `kit::tls`, and
/// `ca_file` when set), redirects followed (registries hand blobs to a CDN), a bounded connect
/// time.
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, PullError> {
    let tls = match ca_file {
        Some(path) => kit::tls::client_config_trusting(path).map_err(|e| PullError::Invalid(e.to_string()))?,
        None => kit::tls::client_config(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| PullError::Http(kit::error_chain(&e)))
}

/// Serialises concurrent pulls of one model (they would write the same partial files).
#[derive(Default, Clone)]
pub struct Pulls(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl Pulls {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_owned()).or_default().clone()
    }
}

/// The registry base URL for `name`: the configured one for the default host.
pub fn registry_base(name: &ModelName, registry_url: &str, insecure: bool) -> String {
    if name.host == DEFAULT_HOST {
        registry_url.trim_end_matches('/').to_owned()
    } else {
        format!("{}://{}", if insecure { "http" } else { "https" }, name.host)
    }
}

/// Pulls `name`, reporting progress; blobs already present are not fetched again.
pub async fn pull(
    store: &Store,
    client: &reqwest::Client,
    pulls: &Pulls,
    registry_url: &str,
    name: &ModelName,
    insecure: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), PullError> {
    let lock = pulls.lock_for(&name.to_string());
    let _guard = lock.lock().await;
    let base = registry_base(name, registry_url, insecure);
    let repo = format!("{base}/v2/{}/{}", name.namespace, name.model);

    progress(Progress::status("pulling manifest"));
    let res = client
        .get(format!("{repo}/manifests/{}", name.tag))
        .header("Accept", MANIFEST_MEDIA_TYPE)
        .send()
        .await
        .map_err(|e| PullError::Http(kit::error_chain(&e)))?;
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(PullError::ManifestNotFound);
    }
    if !res.status().is_success() {
        return Err(PullError::Http(format!("registry answered {} for the manifest", res.status())));
    }
    let manifest_bytes = res.bytes().await.map_err(|e| PullError::Http(kit::error_chain(&e)))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| PullError::Invalid(format!("the registry sent a malformed manifest: {e}")))?;

    let layers: Vec<Layer> = std::iter::once(manifest.config.clone()).chain(manifest.layers.iter().cloned()).collect();
    let mut fetched: Vec<(Layer, PathBuf)> = Vec::new();
    for layer in &layers {
        let final_path = store.blob_path(&layer.digest)?;
        let short = layer.digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        let status = format!("pulling {short}");
        if final_path.is_file() {
            progress(Progress {
                status,
                digest: layer.digest.clone(),
                total: Some(layer.size),
                completed: Some(layer.size),
            });
            continue;
        }
        let partial = PathBuf::from(format!("{}-partial", final_path.display()));
        download(client, &format!("{repo}/blobs/{}", layer.digest), &partial, layer, &status, progress).await?;
        fetched.push((layer.clone(), partial));
    }

    progress(Progress::status("verifying sha256 digest"));
    for (layer, partial) in &fetched {
        let got = file_digest(partial).await?;
        if got != layer.digest {
            let _ = tokio::fs::remove_file(partial).await;
            return Err(PullError::DigestMismatch { want: layer.digest.clone(), got });
        }
        tokio::fs::rename(partial, store.blob_path(&layer.digest)?).await?;
    }

    progress(Progress::status("writing manifest"));
    store.write_manifest(name, &manifest)?;
    progress(Progress::status("success"));
    Ok(())
}

async fn download(
    client: &reqwest::Client,
    url: &str,
    partial: &PathBuf,
    layer: &Layer,
    status: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), PullError> {
    let have = tokio::fs::metadata(partial).await.map(|m| m.len()).unwrap_or(0);
    let mut req = client.get(url);
    if have > 0 && have < layer.size {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let report = |completed: u64| Progress {
        status: status.to_owned(),
        digest: layer.digest.clone(),
        total: Some(layer.size),
        completed: Some(completed),
    };
    if have == layer.size && have > 0 {
        progress(report(have));
        return Ok(());
    }
    let res = req.send().await.map_err(|e| PullError::Http(kit::error_chain(&e)))?;
    let (mut file, mut done) = match res.status() {
        reqwest::StatusCode::PARTIAL_CONTENT => {
            let f = tokio::fs::OpenOptions::new().append(true).open(partial).await?;
            (f, have)
        }
        s if s.is_success() => (tokio::fs::File::create(partial).await?, 0),
        s => return Err(PullError::Http(format!("registry answered {s} for blob {}", layer.digest))),
    };
    progress(report(done));
    let mut body = res.bytes_stream();
    let mut last_report = done;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // Keep what arrived: the next pull resumes from it.
                file.flush().await?;
                file.sync_all().await?;
                return Err(PullError::Http(format!("download of {} interrupted: {e}", layer.digest)));
            }
        };
        file.write_all(&chunk).await?;
        done += chunk.len() as u64;
        if done > layer.size {
            return Err(PullError::Invalid(format!("blob {} is larger than its manifest says", layer.digest)));
        }
        if done - last_report >= 1 << 20 || done == layer.size {
            progress(report(done));
            last_report = done;
        }
    }
    file.flush().await?;
    file.sync_all().await?;
    if done != layer.size {
        return Err(PullError::Http(format!(
            "download of {} ended early ({done} of {} bytes); pull again to resume",
            layer.digest, layer.size
        )));
    }
    Ok(())
}

async fn file_digest(path: &PathBuf) -> Result<String, PullError> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
