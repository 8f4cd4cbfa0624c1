//! Pulling models from a registry that speaks Ollama's protocol (Docker registry v2 paths):
//! `GET /v2/<namespace>/<model>/manifests/<tag>`, then `GET /v2/<namespace>/<model>/blobs/<digest>`
//! for each missing layer. Downloads go to `blobs/sha256-<hex>-partial` and resume with `Range`
//! after an interruption; every blob is checked against its digest before it is kept.
//!
//! What a registry sends is not trusted: a manifest is read up to [`MAX_BYTES`] and checked, and a
//! redirect is followed only to where the registry itself could not send the engine otherwise —
//! https (or http when the registry is http), at most [`MAX_REDIRECTS`] hops, and never to a
//! private, loopback or link-local address other than the registry's own (a host name is
//! resolved, checked, and connected to at the addresses checked, so a name that changes its
//! answer between the check and the connection gains nothing). Each pull has a client of its
//! own, so no connection opened for one registry serves another's redirect.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::EngineConfig;
use crate::engine::Failure;
use crate::name::{DEFAULT_HOST, ModelName};
use ollamanet_model_format::manifest::{Layer, MANIFEST_MEDIA_TYPE, MAX_BYTES, Manifest, ManifestError};

use crate::store::{Store, StoreError};

/// One line of Ollama's pull progress.
pub use ollama_api::types::ProgressResponse as Progress;

/// Redirects one request may follow. A registry hands a blob to its CDN in one.
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pull model manifest: file does not exist")]
    ManifestNotFound,
    /// The registry could not be reached or stopped answering: refused connection, DNS, TLS, a
    /// 5xx, a download that broke off.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    #[error("registry timed out: {0}")]
    Timeout(String),
    /// The registry answered something unusable.
    #[error("{0}")]
    Registry(String),
    #[error("digest mismatch, file must be downloaded again: want {want}, got {got}")]
    DigestMismatch { want: String, got: String },
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// A redirect the engine does not follow.
#[derive(Debug, thiserror::Error)]
#[error("refused to follow the registry to {0}")]
pub struct Refused(String);

impl PullError {
    /// A failed request: one the engine refused, one that timed out, or the registry unreachable.
    fn request(e: reqwest::Error, what: &str) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<Refused>() {
                return PullError::Refused(Refused(refused.0.clone()));
            }
            source = cause.source();
        }
        if e.is_timeout() {
            PullError::Timeout(format!("{what}: {}", kit::error_chain(&e)))
        } else if e.is_redirect() {
            PullError::Refused(Refused(format!("more than {MAX_REDIRECTS} redirects")))
        } else {
            PullError::Unavailable(format!("{what}: {}", kit::error_chain(&e)))
        }
    }

    /// The registry answered `status` where it should have served `what`.
    fn status(status: reqwest::StatusCode, what: &str) -> Self {
        let message = format!("the registry answered {status} for {what}");
        if status.is_server_error() { PullError::Unavailable(message) } else { PullError::Registry(message) }
    }
}

impl From<PullError> for Failure {
    /// What is the registry's fault is a 502 or 504 with a stable code; only what went wrong
    /// here (the disk) is a 500.
    fn from(e: PullError) -> Self {
        let (status, code) = match &e {
            PullError::ManifestNotFound => (404, "model_not_found"),
            PullError::Unavailable(_) => (502, "registry_unavailable"),
            PullError::Timeout(_) => (504, "registry_timeout"),
            PullError::Registry(_) | PullError::DigestMismatch { .. } => (502, "registry_error"),
            PullError::Refused(_) => (502, "registry_redirect_refused"),
            PullError::Store(_) | PullError::Io(_) | PullError::Setup(_) => return Failure::internal(e.to_string()),
        };
        Failure::coded(status, code, e.to_string())
    }
}

/// How pulls reach registries: the configured registry, the TLS trust (the platform's trust
/// store, see `kit::tls`, and `registry_ca_file` when set), the time limits.
pub struct Registry {
    url: String,
    tls: rustls::ClientConfig,
    timeout: Duration,
    private_redirects: bool,
}

impl Registry {
    pub fn new(config: &EngineConfig) -> Result<Self, PullError> {
        let tls = match &config.registry_ca_file {
            Some(path) => kit::tls::client_config_trusting(path).map_err(|e| PullError::Setup(e.to_string()))?,
            None => kit::tls::client_config(),
        };
        Ok(Self {
            url: config.registry_url.trim_end_matches('/').to_owned(),
            tls,
            timeout: config.registry_timeout,
            private_redirects: config.registry_private_redirects,
        })
    }

    /// The registry base URL for `name`: the configured one for the default host.
    fn base(&self, name: &ModelName, insecure: bool) -> String {
        if name.host == DEFAULT_HOST {
            self.url.clone()
        } else {
            format!("{}://{}", if insecure { "http" } else { "https" }, name.host)
        }
    }

    /// A client for one pull from `base`: its redirects and the names they lead to are checked
    /// against `base` (see the module's documentation). Proxies from the environment are not
    /// used: a proxy would resolve names where the checks cannot see.
    async fn client(&self, base: &Url) -> Result<reqwest::Client, PullError> {
        let host = base.host_str().unwrap_or_default().to_ascii_lowercase();
        let private = match ip_of(base) {
            Some(ip) => kit::net::is_private(&ip),
            // A name that does not resolve fails the pull at its first request.
            None => tokio::net::lookup_host((host.as_str(), 0))
                .await
                .is_ok_and(|mut addrs| addrs.any(|a| kit::net::is_private(&a.ip()))),
        };
        let origin = Origin {
            https: base.scheme() == "https",
            host: host.clone(),
            port: base.port_or_known_default(),
            private,
            private_redirects: private && self.private_redirects,
        };
        let resolver = Resolver { registry: host, private_ok: origin.private_redirects };
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refused(format!("a chain of more than {MAX_REDIRECTS} redirects")));
            }
            match origin.allows(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .connect_timeout(self.timeout)
            .read_timeout(self.timeout)
            .redirect(policy)
            .dns_resolver(resolver)
            .no_proxy()
            .build()
            .map_err(|e| PullError::Setup(kit::error_chain(&e)))
    }

    /// Pulls `name`, reporting progress; blobs already present are not fetched again.
    pub async fn pull(
        &self,
        store: &Store,
        pulls: &Pulls,
        name: &ModelName,
        insecure: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), PullError> {
        let lock = pulls.lock_for(&name.to_string());
        let _guard = lock.lock().await;
        let base = self.base(name, insecure);
        let base_url = Url::parse(&base).map_err(|e| PullError::Setup(format!("registry URL {base}: {e}")))?;
        let repo = format!("{base}/v2/{}/{}", name.namespace, name.model);

        progress(Progress::status("pulling manifest"));
        let manifest_phase = async {
            let client = self.client(&base_url).await?;
            let manifest = fetch_manifest(&client, &repo, &name.tag).await?;
            Ok::<_, PullError>((client, manifest))
        };
        let (client, manifest) = tokio::time::timeout(self.timeout, manifest_phase)
            .await
            .map_err(|_| PullError::Timeout(format!("no manifest within {:?}", self.timeout)))??;

        let layers: Vec<Layer> =
            std::iter::once(manifest.config.clone()).chain(manifest.layers.iter().cloned()).collect();
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
            let download = Download { client: &client, timeout: self.timeout, layer, status: &status };
            download.run(&format!("{repo}/blobs/{}", layer.digest), &partial, progress).await?;
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
}

/// The manifest of `tag`, read up to [`MAX_BYTES`] and checked ([`Manifest::parse`]) before
/// anything in it is used.
async fn fetch_manifest(client: &reqwest::Client, repo: &str, tag: &str) -> Result<Manifest, PullError> {
    let res = client
        .get(format!("{repo}/manifests/{tag}"))
        .header("Accept", MANIFEST_MEDIA_TYPE)
        .send()
        .await
        .map_err(|e| PullError::request(e, "the manifest"))?;
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(PullError::ManifestNotFound);
    }
    if !res.status().is_success() {
        return Err(PullError::status(res.status(), "the manifest"));
    }
    let refused = |e: ManifestError| PullError::Registry(format!("the registry's {e}"));
    if res.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(refused(ManifestError::TooLarge));
    }
    let mut bytes = Vec::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| PullError::request(e, "the manifest"))?;
        if bytes.len() + chunk.len() > MAX_BYTES {
            return Err(refused(ManifestError::TooLarge));
        }
        bytes.extend_from_slice(&chunk);
    }
    Manifest::parse(&bytes).map_err(refused)
}

/// Where a pull's redirects may lead.
struct Origin {
    https: bool,
    host: String,
    port: Option<u16>,
    /// The registry is at a private, loopback or link-local address.
    private: bool,
    /// Other private addresses are allowed too (`engine.registry_private_redirects`).
    private_redirects: bool,
}

impl Origin {
    fn allows(&self, url: &Url) -> Result<(), Refused> {
        // The query of a CDN's address is a signature: it stays out of messages.
        let shown = format!("{}://{}", url.scheme(), url.authority());
        let refuse = |why: &str| Err(Refused(format!("{shown}: {why}")));
        match url.scheme() {
            "https" => {}
            "http" if !self.https => {}
            "http" => return refuse("plain http from an https registry"),
            _ => return refuse("not http(s)"),
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host == self.host && url.port_or_known_default() == self.port {
            return Ok(());
        }
        match ip_of(url) {
            Some(ip) if kit::net::is_private(&ip) && !self.private_redirects => {
                refuse("a private, loopback or link-local address")
            }
            Some(_) => Ok(()),
            // Another port of a registry's private host is another service of that network.
            None if host == self.host && self.private && !self.private_redirects => {
                refuse("another port of the registry's private host")
            }
            // A name: its addresses are checked when it is resolved.
            None => Ok(()),
        }
    }
}

/// The address of a URL whose host is an IP address (the resolver never sees those).
fn ip_of(url: &Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Resolves names for one pull, refusing any name other than the registry's own that has a
/// private, loopback or link-local address. The connection goes to the addresses returned here,
/// the ones checked.
struct Resolver {
    registry: String,
    private_ok: bool,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let check = host != self.registry && !self.private_ok;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if check && let Some(private) = addrs.iter().find(|a| kit::net::is_private(&a.ip())) {
                let why = format!("{host}, which resolves to the private address {}", private.ip());
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Serialises concurrent pulls of one model (they would write the same partial files).
#[derive(Default, Clone)]
pub struct Pulls(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl Pulls {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_owned()).or_default().clone()
    }
}

/// The download of one blob.
struct Download<'a> {
    client: &'a reqwest::Client,
    timeout: Duration,
    layer: &'a Layer,
    status: &'a str,
}

impl Download<'_> {
    fn report(&self, completed: u64) -> Progress {
        Progress {
            status: self.status.to_owned(),
            digest: self.layer.digest.clone(),
            total: Some(self.layer.size),
            completed: Some(completed),
        }
    }

    async fn run(
        &self,
        url: &str,
        partial: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), PullError> {
        let layer = self.layer;
        let have = tokio::fs::metadata(partial).await.map(|m| m.len()).unwrap_or(0);
        if have == layer.size && have > 0 {
            progress(self.report(have));
            return Ok(());
        }
        // Reported before the request: a pull's answer starts with the first layer, once the
        // manifest is in.
        progress(self.report(have));
        let mut req = self.client.get(url);
        if have > 0 && have < layer.size {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let what = format!("blob {}", layer.digest);
        let res = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| PullError::Timeout(format!("no answer for {what} within {:?}", self.timeout)))?
            .map_err(|e| PullError::request(e, &what))?;
        let (mut file, mut done) = match res.status() {
            reqwest::StatusCode::PARTIAL_CONTENT => {
                let f = tokio::fs::OpenOptions::new().append(true).open(partial).await?;
                (f, have)
            }
            s if s.is_success() => (tokio::fs::File::create(partial).await?, 0),
            s => return Err(PullError::status(s, &what)),
        };
        if done != have {
            progress(self.report(done));
        }
        let mut body = res.bytes_stream();
        let mut last_report = done;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // Keep what arrived: the next pull resumes from it.
                    file.flush().await?;
                    file.sync_all().await?;
                    return Err(PullError::request(e, &format!("download of {} interrupted", layer.digest)));
                }
            };
            file.write_all(&chunk).await?;
            done += chunk.len() as u64;
            if done > layer.size {
                return Err(PullError::Registry(format!("blob {} is larger than its manifest says", layer.digest)));
            }
            if done - last_report >= 1 << 20 || done == layer.size {
                progress(self.report(done));
                last_report = done;
            }
        }
        file.flush().await?;
        file.sync_all().await?;
        if done != layer.size {
            return Err(PullError::Unavailable(format!(
                "download of {} ended early ({done} of {} bytes); pull again to resume",
                layer.digest, layer.size
            )));
        }
        Ok(())
    }
}

async fn file_digest(path: &Path) -> Result<String, PullError> {
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
