//! Registry manifests, as Ollama's registry serves them and as the model store keeps them: a
//! config blob and layers (`application/vnd.ollama.image.model` is the GGUF; `template`,
//! `system`, `params`, `license` are optional), each named by its SHA-256 digest.
//!
//! A manifest comes from a registry, or from a store another program wrote: [`Manifest::parse`]
//! checks everything that is later used to build a path or add up sizes before anyone uses it.

use serde::{Deserialize, Serialize};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";
pub const TEMPLATE_MEDIA_TYPE: &str = "application/vnd.ollama.image.template";
pub const SYSTEM_MEDIA_TYPE: &str = "application/vnd.ollama.image.system";
pub const PARAMS_MEDIA_TYPE: &str = "application/vnd.ollama.image.params";
pub const LICENSE_MEDIA_TYPE: &str = "application/vnd.ollama.image.license";

/// Bytes a manifest may have. Ollama's are about a kilobyte.
pub const MAX_BYTES: usize = 1 << 20;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("malformed manifest: {0}")]
    Malformed(String),
    #[error("manifest names an invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("manifest declares impossible sizes")]
    ImpossibleSizes,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Layer,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Manifest {
    /// Reads a manifest: at most [`MAX_BYTES`], every digest `sha256:` and 64 lowercase hex
    /// digits (it becomes a file name), sizes that add up without overflowing.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if let Some(bad) = manifest.digests().find(|d| !valid_digest(d)) {
            return Err(ManifestError::InvalidDigest(bad.to_owned()));
        }
        let mut sizes = std::iter::once(manifest.config.size).chain(manifest.layers.iter().map(|l| l.size));
        if sizes.try_fold(0u64, u64::checked_add).is_none() {
            return Err(ManifestError::ImpossibleSizes);
        }
        Ok(manifest)
    }

    pub fn layer(&self, media_type: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }

    /// Every blob the manifest references, the config included.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.config.digest.as_str()).chain(self.layers.iter().map(|l| l.digest.as_str()))
    }

    /// The bytes of every blob together ([`Manifest::parse`] made sure they add up).
    pub fn total_size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// The hex part of a `sha256:<64 lowercase hex>` digest; `None` for anything else.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then_some(hex)
}

pub fn valid_digest(digest: &str) -> bool {
    digest_hex(digest).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(digest: &str, size: u64) -> serde_json::Value {
        serde_json::json!({ "mediaType": MODEL_MEDIA_TYPE, "digest": digest, "size": size })
    }

    fn manifest(config: serde_json::Value, layers: Vec<serde_json::Value>) -> Vec<u8> {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "config": config, "layers": layers,
        });
        serde_json::to_vec(&m).unwrap()
    }

    #[test]
    fn reads_a_manifest_and_refuses_what_could_reach_a_path_or_overflow() {
        let good = format!("sha256:{}", "a".repeat(64));
        let parsed = Manifest::parse(&manifest(layer(&good, 10), vec![layer(&good, 20)])).unwrap();
        assert_eq!(parsed.total_size(), 30);
        assert_eq!(parsed.layer(MODEL_MEDIA_TYPE).map(|l| l.size), Some(20));

        for bad in ["sha256:../../etc/passwd", &format!("sha256:{}", "A".repeat(64)), "md5:abc", ""] {
            let err = Manifest::parse(&manifest(layer(&good, 1), vec![layer(bad, 1)])).unwrap_err();
            assert_eq!(err, ManifestError::InvalidDigest(bad.to_owned()));
        }
        let overflow = manifest(layer(&good, u64::MAX), vec![layer(&good, 1)]);
        assert_eq!(Manifest::parse(&overflow).unwrap_err(), ManifestError::ImpossibleSizes);
        assert!(matches!(Manifest::parse(b"{\"schemaVersion\":"), Err(ManifestError::Malformed(_))));
        assert_eq!(Manifest::parse(&vec![b' '; MAX_BYTES + 1]).unwrap_err(), ManifestError::TooLarge);
    }
}
