//! The model store, laid out like Ollama's:
//!
//! ```text
//! <models_dir>/manifests/<host>/<namespace>/<model>/<tag>   JSON manifest
//! <models_dir>/blobs/sha256-<hex>                          content-addressed layers
//! ```
//!
//! A manifest lists a config blob and layers (`application/vnd.ollama.image.model` is the GGUF;
//! `template`, `system`, `params`, `license` are optional). An existing Ollama store may be
//! attached read-only: its models are listed and served, never changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use ollamanet_model_format::gguf::{self, GgufFile};
use ollamanet_model_format::manifest::digest_hex;
pub use ollamanet_model_format::manifest::{
    CONFIG_MEDIA_TYPE, LICENSE_MEDIA_TYPE, Layer, MANIFEST_MEDIA_TYPE, MODEL_MEDIA_TYPE, Manifest, PARAMS_MEDIA_TYPE,
    SYSTEM_MEDIA_TYPE, TEMPLATE_MEDIA_TYPE, valid_digest,
};

use crate::name::ModelName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("model \"{0}\" not found")]
    NotFound(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error("malformed manifest for {0}: {1}")]
    Manifest(String, String),
    #[error("model \"{0}\" is in the read-only Ollama store")]
    ReadOnly(String),
    #[error("{0}")]
    Invalid(String),
}

/// The config blob, as Ollama writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub model_format: String,
    #[serde(default)]
    pub model_family: String,
    #[serde(default)]
    pub model_families: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub file_type: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// A model found in one of the stores.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub name: ModelName,
    pub manifest: Manifest,
    /// Hex SHA-256 of the manifest file (what `/api/tags` calls the digest).
    pub digest: String,
    pub modified: SystemTime,
    /// The store directory that holds its blobs.
    pub root: PathBuf,
    pub read_only: bool,
}

impl ModelEntry {
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        blob_file(&self.root, digest)
    }

    /// The GGUF file.
    pub fn model_path(&self) -> Option<PathBuf> {
        self.manifest.layer(MODEL_MEDIA_TYPE).and_then(|l| self.blob_path(&l.digest))
    }

    pub fn model_digest(&self) -> Option<&str> {
        self.manifest.layer(MODEL_MEDIA_TYPE).map(|l| l.digest.as_str())
    }

    /// A small text layer (template, system prompt, license).
    pub fn text_layer(&self, media_type: &str) -> Option<String> {
        let layer = self.manifest.layer(media_type)?;
        String::from_utf8(read_small(&self.blob_path(&layer.digest)?)?).ok()
    }

    /// The `params` layer: default options such as `stop`, `temperature`, `num_ctx`.
    pub fn params(&self) -> serde_json::Map<String, serde_json::Value> {
        self.text_layer(PARAMS_MEDIA_TYPE).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
    }

    pub fn config(&self) -> ModelConfig {
        self.blob_path(&self.manifest.config.digest)
            .and_then(|p| read_small(&p))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// Bytes of the small layers (config, template, system prompt, license, parameters) that are
/// read into memory: a registry may declare a config of gigabytes, and it is read on every
/// listing.
const SMALL_LAYER: u64 = 1 << 20;

/// A small layer's content; `None` when it is unreadable or larger than [`SMALL_LAYER`].
fn read_small(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path).ok()?.take(SMALL_LAYER + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= SMALL_LAYER).then_some(bytes)
}

/// `sha256:<64 hex>` → `<root>/blobs/sha256-<hex>`; anything else is refused.
pub fn blob_file(root: &Path, digest: &str) -> Option<PathBuf> {
    Some(root.join("blobs").join(format!("sha256-{}", digest_hex(digest)?)))
}

pub struct Store {
    dir: PathBuf,
    ollama: Option<PathBuf>,
    /// Manifest writes and garbage collection exclude each other.
    write: Mutex<()>,
    /// GGUF headers by blob digest (read once; blobs never change).
    headers: Mutex<HashMap<String, Arc<GgufFile>>>,
}

impl Store {
    pub fn open(dir: &Path, ollama: Option<&Path>) -> Result<Self, StoreError> {
        fs::create_dir_all(dir.join("manifests"))?;
        fs::create_dir_all(dir.join("blobs"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ollama: ollama.map(Path::to_path_buf),
            write: Mutex::new(()),
            headers: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        blob_file(&self.dir, digest).ok_or_else(|| StoreError::InvalidDigest(digest.to_owned()))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// A temporary file in the blobs directory (same file system, so it can be renamed in).
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        Ok(tempfile::Builder::new().prefix(".tmp-").tempfile_in(self.dir.join("blobs"))?)
    }

    /// Streams `reader` into a blob; returns its digest and size. With `expected`, a different
    /// content is refused and nothing is kept.
    pub fn write_blob(&self, reader: &mut dyn Read, expected: Option<&str>) -> Result<(String, u64), StoreError> {
        if let Some(d) = expected
            && !valid_digest(d)
        {
            return Err(StoreError::InvalidDigest(d.to_owned()));
        }
        let mut tmp = self.temp_file()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(StoreError::DigestMismatch { expected: expected.to_owned(), actual: digest });
        }
        tmp.as_file().sync_all()?;
        let path = self.blob_path(&digest)?;
        tmp.persist(&path).map_err(|e| StoreError::Io(e.error))?;
        Ok((digest, size))
    }

    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<(String, u64), StoreError> {
        self.write_blob(&mut io::Cursor::new(bytes), None)
    }

    /// The GGUF header of a blob (cached).
    pub fn gguf(&self, path: &Path, digest: &str) -> Result<Arc<GgufFile>, StoreError> {
        if let Some(h) = self.headers.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
            return Ok(h.clone());
        }
        let header = Arc::new(GgufFile::read(path, false)?);
        self.headers.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.to_owned(), header.clone());
        Ok(header)
    }

    fn roots(&self) -> Vec<(&Path, bool)> {
        let mut roots = vec![(self.dir.as_path(), false)];
        if let Some(o) = &self.ollama {
            roots.push((o.as_path(), true));
        }
        roots
    }

    fn read_entry(root: &Path, read_only: bool, name: &ModelName) -> Result<Option<ModelEntry>, StoreError> {
        let path = root.join("manifests").join(name.manifest_rel_path());
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let manifest = Manifest::parse(&bytes).map_err(|e| StoreError::Manifest(name.to_string(), e.to_string()))?;
        let modified = fs::metadata(&path)?.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Some(ModelEntry {
            name: name.clone(),
            manifest,
            digest: hex::encode(Sha256::digest(&bytes)),
            modified,
            root: root.to_path_buf(),
            read_only,
        }))
    }

    /// Finds a model, in this store first, then in the attached Ollama store.
    pub fn get(&self, name: &ModelName) -> Result<Option<ModelEntry>, StoreError> {
        for (root, ro) in self.roots() {
            if let Some(e) = Self::read_entry(root, ro, name)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Every model of both stores (this one wins when a name is in both), sorted by short name.
    pub fn list(&self) -> Result<Vec<ModelEntry>, StoreError> {
        let mut found: BTreeMap<ModelName, ModelEntry> = BTreeMap::new();
        for (root, ro) in self.roots() {
            for name in manifest_names(&root.join("manifests")) {
                if found.contains_key(&name) {
                    continue;
                }
                match Self::read_entry(root, ro, &name) {
                    Ok(Some(e)) => {
                        found.insert(name, e);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(model = %name, error = %e, "skipping an unreadable manifest"),
                }
            }
        }
        let mut out: Vec<ModelEntry> = found.into_values().collect();
        out.sort_by_cached_key(|e| e.name.display_short());
        Ok(out)
    }

    pub fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<(), StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.write_manifest_locked(name, manifest)
    }

    fn write_manifest_locked(&self, name: &ModelName, manifest: &Manifest) -> Result<(), StoreError> {
        for d in manifest.digests() {
            if !self.has_blob(d) {
                return Err(StoreError::Invalid(format!("layer {d} is missing")));
            }
        }
        let path = self.dir.join("manifests").join(name.manifest_rel_path());
        let parent = path.parent().ok_or_else(|| StoreError::Invalid("manifest path".into()))?;
        fs::create_dir_all(parent)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(parent)?;
        tmp.write_all(&serde_json::to_vec(manifest).map_err(|e| StoreError::Invalid(e.to_string()))?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| StoreError::Io(e.error))?;
        Ok(())
    }

    /// Builds and writes the manifest of a model whose GGUF blob is `model_digest`, with the
    /// optional text layers.
    pub fn create(&self, name: &ModelName, model_digest: &str, extra: &ExtraLayers) -> Result<ModelEntry, StoreError> {
        let model_path = self.blob_path(model_digest)?;
        let model_size = fs::metadata(&model_path)?.len();
        let header = self.gguf(&model_path, model_digest)?;
        let family = header.architecture().unwrap_or("unknown").to_owned();
        let mut layers = vec![Layer {
            media_type: MODEL_MEDIA_TYPE.into(),
            digest: model_digest.to_owned(),
            size: model_size,
            from: None,
        }];
        let mut text = |media: &str, content: &Option<String>| -> Result<(), StoreError> {
            if let Some(c) = content {
                let (digest, size) = self.write_blob_bytes(c.as_bytes())?;
                layers.push(Layer { media_type: media.into(), digest, size, from: None });
            }
            Ok(())
        };
        text(TEMPLATE_MEDIA_TYPE, &extra.template)?;
        text(SYSTEM_MEDIA_TYPE, &extra.system)?;
        text(LICENSE_MEDIA_TYPE, &extra.license)?;
        if let Some(p) = extra.params.as_ref().filter(|p| !p.is_empty()) {
            let json = serde_json::to_vec(p).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let (digest, size) = self.write_blob_bytes(&json)?;
            layers.push(Layer { media_type: PARAMS_MEDIA_TYPE.into(), digest, size, from: None });
        }
        let config = ModelConfig {
            model_format: "gguf".into(),
            model_family: family.clone(),
            model_families: Some(vec![family]),
            model_type: gguf::human_parameters(header.parameter_count()),
            file_type: header.quantization_level(),
            architecture: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            os: std::env::consts::OS.into(),
            rootfs: RootFs { kind: "layers".into(), diff_ids: layers.iter().map(|l| l.digest.clone()).collect() },
        };
        let (digest, size) =
            self.write_blob_bytes(&serde_json::to_vec(&config).map_err(|e| StoreError::Invalid(e.to_string()))?)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.into(),
            config: Layer { media_type: CONFIG_MEDIA_TYPE.into(), digest, size, from: None },
            layers,
        };
        self.write_manifest(name, &manifest)?;
        self.get(name)?.ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// Copies a GGUF file into the store under `name`.
    pub fn import_gguf(&self, path: &Path, name: &ModelName, extra: &ExtraLayers) -> Result<ModelEntry, StoreError> {
        // Refuse anything that is not GGUF before copying gigabytes.
        GgufFile::read(path, false)?;
        let (digest, _) = self.write_blob(&mut File::open(path)?, None)?;
        self.create(name, &digest, extra)
    }

    /// Gives `source`'s manifest a second name (blobs of a read-only source are copied in).
    pub fn copy(&self, source: &ModelName, destination: &ModelName) -> Result<(), StoreError> {
        let entry = self.get(source)?.ok_or_else(|| StoreError::NotFound(source.display_short()))?;
        if entry.read_only {
            for d in entry.manifest.digests() {
                if !self.has_blob(d) {
                    let from = entry.blob_path(d).ok_or_else(|| StoreError::InvalidDigest(d.to_owned()))?;
                    let (got, _) = self.write_blob(&mut File::open(from)?, Some(d))?;
                    debug_assert_eq!(got, d);
                }
            }
        }
        self.write_manifest(destination, &entry.manifest)
    }

    /// Removes a model and every blob no other manifest references.
    pub fn remove(&self, name: &ModelName) -> Result<(), StoreError> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.dir.join("manifests").join(name.manifest_rel_path());
        if !path.is_file() {
            if self.ollama.as_ref().is_some_and(|o| o.join("manifests").join(name.manifest_rel_path()).is_file()) {
                return Err(StoreError::ReadOnly(name.display_short()));
            }
            return Err(StoreError::NotFound(name.display_short()));
        }
        fs::remove_file(&path)?;
        // Empty directories up to manifests/ go too.
        let stop = self.dir.join("manifests");
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == stop || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        self.prune_locked()
    }

    /// Deletes blobs that no manifest references (partial downloads are kept for resuming).
    fn prune_locked(&self) -> Result<(), StoreError> {
        let mut used = HashSet::new();
        for name in manifest_names(&self.dir.join("manifests")) {
            match Self::read_entry(&self.dir, false, &name) {
                Ok(Some(e)) => used.extend(e.manifest.digests().map(|d| d.replace(':', "-"))),
                Ok(None) => {}
                // An unreadable manifest might reference anything: delete nothing.
                Err(_) => return Ok(()),
            }
        }
        for entry in fs::read_dir(self.dir.join("blobs"))? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with("sha256-") && !file.ends_with("-partial") && !used.contains(&file) {
                let _ = fs::remove_file(entry.path());
                self.headers.lock().unwrap_or_else(|e| e.into_inner()).remove(&file.replace('-', ":"));
            }
        }
        Ok(())
    }
}

/// Optional layers written next to the model.
#[derive(Debug, Clone, Default)]
pub struct ExtraLayers {
    pub template: Option<String>,
    pub system: Option<String>,
    pub license: Option<String>,
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Names of every manifest below `manifests/` (four levels: host, namespace, model, tag).
fn manifest_names(dir: &Path) -> Vec<ModelName> {
    let mut out = Vec::new();
    let list = |p: &Path| -> Vec<(String, PathBuf)> {
        fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .filter(|(n, _)| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (host, hp) in list(dir) {
        for (ns, np) in list(&hp) {
            for (model, mp) in list(&np) {
                for (tag, tp) in list(&mp) {
                    if !tp.is_file() {
                        continue;
                    }
                    let candidate = format!("{host}/{ns}/{model}:{tag}");
                    if let Ok(name) = ModelName::parse(&candidate)
                        && name.manifest_rel_path() == Path::new(&host).join(&ns).join(&model).join(&tag)
                    {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(dir: &Path) -> PathBuf {
        let p = dir.join("tiny.gguf");
        crate::tiny::write_tiny_llama(&p, 1).unwrap();
        p
    }

    #[test]
    fn import_list_copy_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("models"), None).unwrap();
        let name = ModelName::parse("tiny").unwrap();
        let entry = store.import_gguf(&tiny(dir.path()), &name, &ExtraLayers::default()).unwrap();
        assert_eq!(entry.manifest.layers.len(), 1);
        assert!(entry.model_path().unwrap().is_file());
        let config = entry.config();
        assert_eq!(config.model_family, "llama");
        assert_eq!(config.file_type, "F32");

        let copy = ModelName::parse("me/tiny2:v1").unwrap();
        store.copy(&name, &copy).unwrap();
        let names: Vec<String> = store.list().unwrap().iter().map(|e| e.name.display_short()).collect();
        assert_eq!(names, ["me/tiny2:v1", "tiny:latest"]);

        store.remove(&name).unwrap();
        assert!(entry.model_path().unwrap().is_file(), "still used by the copy");
        store.remove(&copy).unwrap();
        assert!(!entry.model_path().unwrap().exists(), "unreferenced blobs are deleted");
        assert!(matches!(store.remove(&copy), Err(StoreError::NotFound(_))));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn reads_an_ollama_store_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let ollama = Store::open(&dir.path().join("ollama"), None).unwrap();
        let name = ModelName::parse("tiny:q").unwrap();
        ollama.import_gguf(&tiny(dir.path()), &name, &ExtraLayers::default()).unwrap();
        let store = Store::open(&dir.path().join("models"), Some(&dir.path().join("ollama"))).unwrap();
        let e = store.get(&name).unwrap().unwrap();
        assert!(e.read_only);
        assert!(matches!(store.remove(&name), Err(StoreError::ReadOnly(_))));
        store.copy(&name, &ModelName::parse("mine").unwrap()).unwrap();
        assert!(!store.get(&ModelName::parse("mine").unwrap()).unwrap().unwrap().read_only);
    }

    #[test]
    fn blob_digests_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let (d, size) = store.write_blob_bytes(b"hello").unwrap();
        assert_eq!(d, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(size, 5);
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            store.write_blob(&mut io::Cursor::new(b"x"), Some(&wrong)),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(store.blob_path("sha256:../../etc").is_err());
    }
}
